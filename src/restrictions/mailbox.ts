import { ADDRESS, DOMAIN, fileList, kindBit, TREE, type IndexBuilder } from './list-index.ts';
import type { InvalidEntry } from './entry.ts';
import { LIST_NAMES, type ListName, type MailboxRecord } from './lists.ts';
import type { DecisionOptions } from './options.ts';

/** A list's number in a mailbox index: its position in LIST_NAMES. */
export const LIST_NUMBER: Readonly<Record<ListName, number>> = Object.freeze({
  allowedSenders: 0,
  rejectedSenders: 1,
  allowedRecipients: 2,
  rejectedRecipients: 3,
});

/**
 * A mailbox ready for decisions: its four lists filed into one index (see IndexBuilder), so a
 * decision costs a few lookups in one hash table however many lists and entries it has.
 */
export class CompiledMailbox {
  readonly address: string;
  /** A bit per list number for each list that is set (not null, not empty). */
  readonly lists: number;
  /** Invalid entries found in any list (default semantics), for the metric and the log. */
  readonly invalid: readonly { readonly list: ListName; readonly entry: InvalidEntry }[];
  readonly #keys: Map<string, number> | null;
  readonly #any: number;
  readonly #trees: number;

  constructor(address: string, lists: number, index: IndexBuilder, invalid: CompiledMailbox['invalid']) {
    this.address = address;
    this.lists = lists;
    this.invalid = invalid;
    this.#keys = index.keys.size > 0 ? index.keys : null;
    this.#any = index.any;
    this.#trees = index.trees;
  }

  /** The index bits of `key` (an address or a domain); 0 when no list names it. */
  bits(key: string): number {
    return this.#keys === null ? 0 : (this.#keys.get(key) ?? 0);
  }

  /**
   * The entry of list number `list` that matches `address`, given the index bits of the address
   * and of its `domain`; undefined when none does. First the address, then the domain (`@d`),
   * a tree of the domain (`@.d`), with `subdomains` a tree of a parent domain, then `@.`.
   */
  entryFor(list: number, address: string, addressBits: number, domain: string, domainBits: number, subdomains: boolean): string | undefined {
    if ((addressBits & kindBit(list, ADDRESS)) !== 0) return address;
    if ((domainBits & kindBit(list, DOMAIN)) !== 0) return `@${domain}`;
    if ((domainBits & kindBit(list, TREE)) !== 0) return `@.${domain}`;
    if (subdomains && (this.#trees & (1 << list)) !== 0) {
      for (let dot = domain.indexOf('.'); dot >= 0; dot = domain.indexOf('.', dot + 1)) {
        const parent = domain.slice(dot + 1);
        if ((this.bits(parent) & kindBit(list, TREE)) !== 0) return `@.${parent}`;
      }
    }
    if ((this.#any & (1 << list)) !== 0) return '@.';
    return undefined;
  }
}

export function compileMailbox(record: MailboxRecord, options: DecisionOptions): CompiledMailbox {
  const invalid: { list: ListName; entry: InvalidEntry }[] = [];
  const index: IndexBuilder = { keys: new Map(), any: 0, trees: 0 };
  let lists = 0;
  for (const name of LIST_NAMES) {
    const values = record.lists[name];
    if (values === null || values.length === 0) continue;
    const number = LIST_NUMBER[name];
    lists |= 1 << number;
    for (const entry of fileList(values, options.validateEntries, number, index)) invalid.push({ list: name, entry });
  }
  return new CompiledMailbox(record.address, lists, index, invalid);
}
