import { parseEntry, type InvalidEntry } from './entry.ts';
import { asciiAddress } from './idn.ts';
import { trimAscii } from './sql-list.ts';

/** What an index key stands for in one list: an address, a domain (`@d`) or a domain tree (`@.d`). */
export const ADDRESS = 0;
export const DOMAIN = 1;
export const TREE = 2;
export type EntryKind = typeof ADDRESS | typeof DOMAIN | typeof TREE;

/** The bit of `kind` entries of list number `list` (0–3) in a mailbox index value. */
export function kindBit(list: number, kind: EntryKind): number {
  return 1 << (list * 3 + kind);
}

/**
 * Where one mailbox's lists are filed for matching: every entry's match text (an address or a
 * domain) → a bit per (list, kind), plus a bit per list for `@.` (any) and for "has trees".
 * One hash table per mailbox, whatever its lists: a decision reads a handful of keys from it,
 * which at 10,000 mailboxes costs memory reads (cache misses) more than anything else.
 */
export interface IndexBuilder {
  readonly keys: Map<string, number>;
  any: number;
  trees: number;
}

/**
 * Files the entries of list number `list` into `index`. Returns the entries ignored as invalid
 * (default semantics only).
 *
 * Under the `iredapd` preset entries are not validated: every piece is filed by its first
 * characters exactly as iRedAPD compared them (`address == entry`, `'@'+domain == entry`,
 * `'@.'+domain == entry`, `'@.' == entry`), which reproduces its quirks — an empty piece
 * matches the null sender, a lone `@` matches an address with an empty domain, a bare domain
 * matches nothing.
 */
export function fileList(values: readonly string[], validate: boolean, list: number, index: IndexBuilder): InvalidEntry[] {
  const invalid: InvalidEntry[] = [];
  const file = (key: string, kind: EntryKind): void => {
    index.keys.set(key, (index.keys.get(key) ?? 0) | kindBit(list, kind));
    if (kind === TREE) index.trees |= 1 << list;
  };
  for (const value of values) {
    if (validate) {
      const entry = parseEntry(value);
      switch (entry.kind) {
        case 'invalid':
          invalid.push(entry);
          continue;
        case 'any':
          index.any |= 1 << list;
          break;
        case 'domain':
          file(entry.domain, DOMAIN);
          break;
        case 'domainTree':
          file(entry.domain, TREE);
          break;
        case 'address':
          file(entry.address, ADDRESS);
          break;
      }
    } else {
      const piece = asciiAddress(trimAscii(value).toLowerCase());
      if (piece === '@.') index.any |= 1 << list;
      else if (piece.startsWith('@.')) file(piece.slice(2), TREE);
      else if (piece.startsWith('@')) file(piece.slice(1), DOMAIN);
      else file(piece, ADDRESS);
    }
  }
  return invalid;
}

/** The domain part as the spec defines it: the text after the last `@`. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? address : address.slice(at + 1);
}
