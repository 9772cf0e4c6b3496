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

/** Index keys held in a mailbox's own fields; a mailbox with more keeps a Map instead. */
const INLINE_KEYS = 4;

/** FNV-1a, 30 bits (a small integer): what a mailbox's inline index is probed with. */
function indexHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h & 0x3fffffff;
}

/**
 * A mailbox ready for decisions: its four lists filed into one index (see IndexBuilder), so a
 * decision costs a few lookups however many lists and entries it has.
 *
 * Most mailboxes have a handful of entries: up to {@link INLINE_KEYS} index keys live in this
 * object's own fields (hash, key, bits) rather than in a Map. With 10,000 mailboxes they are out
 * of the CPU caches between requests, and every further object a decision reads costs a trip to
 * memory (figures: docs/performance.md).
 */
export class CompiledMailbox {
  readonly address: string;
  /** A bit per list number for each list that is set (not null, not empty). */
  readonly lists: number;
  readonly #any: number;
  readonly #trees: number;
  readonly #h0: number;
  readonly #h1: number;
  readonly #h2: number;
  readonly #h3: number;
  readonly #b0: number;
  readonly #b1: number;
  readonly #b2: number;
  readonly #b3: number;
  readonly #k0: string;
  readonly #k1: string;
  readonly #k2: string;
  readonly #k3: string;
  /** Every key, when there are more than the fields hold (then the fields are empty: hash -1). */
  readonly #more: Map<string, number> | null;
  /** Invalid entries found in any list (default semantics), for the metric and the log. */
  readonly invalid: readonly { readonly list: ListName; readonly entry: InvalidEntry }[];

  constructor(address: string, lists: number, index: IndexBuilder, invalid: CompiledMailbox['invalid']) {
    this.address = address;
    this.lists = lists;
    this.#any = index.any;
    this.#trees = index.trees;
    const inline = index.keys.size <= INLINE_KEYS ? [...index.keys] : [];
    const key = (i: number): string => inline[i]?.[0] ?? '';
    const hash = (i: number): number => (inline[i] === undefined ? -1 : indexHash(key(i)));
    this.#h0 = hash(0);
    this.#h1 = hash(1);
    this.#h2 = hash(2);
    this.#h3 = hash(3);
    this.#b0 = inline[0]?.[1] ?? 0;
    this.#b1 = inline[1]?.[1] ?? 0;
    this.#b2 = inline[2]?.[1] ?? 0;
    this.#b3 = inline[3]?.[1] ?? 0;
    this.#k0 = key(0);
    this.#k1 = key(1);
    this.#k2 = key(2);
    this.#k3 = key(3);
    this.#more = index.keys.size > INLINE_KEYS ? index.keys : null;
    this.invalid = invalid;
  }

  /** The index bits of `key` (an address or a domain); 0 when no list names it. */
  bits(key: string): number {
    if (this.#more !== null) return this.#more.get(key) ?? 0;
    // A key that is not there is refused by its hash, without reading the stored strings.
    const hash = indexHash(key);
    if (this.#h0 === hash && this.#k0 === key) return this.#b0;
    if (this.#h1 === hash && this.#k1 === key) return this.#b1;
    if (this.#h2 === hash && this.#k2 === key) return this.#b2;
    if (this.#h3 === hash && this.#k3 === key) return this.#b3;
    return 0;
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
