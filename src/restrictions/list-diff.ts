/**
 * What differs between the lists a store holds and the lists wanted, by meaning: entries compare
 * trimmed of ASCII white space, in lower case and with domains in ASCII form (as every reader of
 * a store compares them), as sets (order and repetition mean nothing to a decision), and blank
 * pieces are not entries. So a
 * store holding ` @Example.com ,@example.com` already holds `["@example.com"]`, and adopting a
 * server whose lists were typed by hand writes nothing.
 */
import { asciiAddress } from './idn.ts';
import { LIST_NAMES, type ListName, type RestrictionLists } from './lists.ts';
import { trimAscii } from './sql-list.ts';

/** The entries one list would gain and lose. */
export interface ListChange {
  /** Wanted, not stored: in the wanted order, as wanted. */
  readonly added: readonly string[];
  /** Stored, not wanted: in the stored order, as stored. */
  readonly removed: readonly string[];
}

export type ListsDiff = { readonly [K in ListName]: ListChange };

/** How an entry compares: trimmed, lower-case, its domain in ASCII form; '' for a blank piece (not an entry). */
export function entryKey(entry: string): string {
  return asciiAddress(trimAscii(entry).toLowerCase());
}

/** The difference of one list; each added or removed entry appears once. */
export function diffList(stored: readonly string[], wanted: readonly string[]): ListChange {
  const storedKeys = new Set(stored.map(entryKey));
  const wantedKeys = new Set(wanted.map(entryKey));
  return { added: distinctMissing(wanted, storedKeys), removed: distinctMissing(stored, wantedKeys) };
}

function distinctMissing(entries: readonly string[], present: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    const key = entryKey(entry);
    if (key === '' || present.has(key) || seen.has(key)) continue;
    seen.add(key);
    out.push(entry);
  }
  return out;
}

export function diffLists(stored: RestrictionLists, wanted: RestrictionLists): ListsDiff {
  const out = {} as Record<ListName, ListChange>;
  for (const name of LIST_NAMES) out[name] = diffList(stored[name], wanted[name]);
  return out;
}

/** The lists that would change, in LIST_NAMES order (empty: the store already matches). */
export function changedLists(diff: ListsDiff): ListName[] {
  return LIST_NAMES.filter((name) => diff[name].added.length > 0 || diff[name].removed.length > 0);
}

/**
 * The list a write stores: what is stored, less the removed entries, plus the added ones at the
 * end. Entries that stay keep their stored text (spacing, case, repeats), so a write changes the
 * store by exactly the difference; blank pieces go, since the list is written anyway.
 */
export function mergeList(stored: readonly string[], wanted: readonly string[]): string[] {
  const { added } = diffList(stored, wanted);
  const wantedKeys = new Set(wanted.map(entryKey));
  const kept = stored.filter((entry) => {
    const key = entryKey(entry);
    return key !== '' && wantedKeys.has(key);
  });
  return [...kept, ...added];
}
