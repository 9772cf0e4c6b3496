/**
 * What a write of one account's four lists does to its amavisd pairs (wblist: inbound,
 * outbound_wblist: outbound), decided over the pairs read under the account's lock. Entries
 * compare as everywhere else (list-diff.ts: trimmed, lower-case, ASCII domains, as sets), so a
 * pair stored by hand in another spelling stays as it is, and only the difference is written:
 * pairs no list wants are deleted, a pair that moved between allowed and rejected has its wb
 * changed, and wanted entries not stored are added. A value the tables do not hold as an entry
 * (kept under spec.invalidEntries) is only ever kept where it is stored already. Pure.
 */
import { amavisdForm, FORM_WORDS, isClientForm } from './amavisd-entry.ts';
import { changedLists, diffLists, entryKey } from './list-diff.ts';
import { LIST_NAMES, type ListName, type RestrictionLists } from './lists.ts';

export type PairTable = 'wblist' | 'outbound_wblist';

/** One stored pair of the account: the other party's mailaddr row, and wb as stored. */
export interface StoredPair {
  readonly table: PairTable;
  readonly party: number;
  /** mailaddr.email as stored. */
  readonly email: string;
  readonly wb: string;
}

/** A pair to add: the party's mailaddr email (canonical form). */
export interface AddedPair {
  readonly table: PairTable;
  readonly email: string;
  readonly wb: 'W' | 'B';
}

export interface PairPlan {
  /** The lists that differ by meaning (empty: nothing is written). */
  readonly changed: readonly ListName[];
  readonly remove: readonly StoredPair[];
  readonly rewb: readonly (StoredPair & { readonly to: 'W' | 'B' })[];
  readonly add: readonly AddedPair[];
  /** Why the lists cannot be written (non-empty: nothing may be written). */
  readonly problems: readonly string[];
}

/** Which table and W/B a list is written to. */
export const LIST_ROWS: Readonly<Record<ListName, { readonly table: PairTable; readonly wb: 'W' | 'B' }>> = {
  allowedSenders: { table: 'wblist', wb: 'W' },
  rejectedSenders: { table: 'wblist', wb: 'B' },
  allowedRecipients: { table: 'outbound_wblist', wb: 'W' },
  rejectedRecipients: { table: 'outbound_wblist', wb: 'B' },
};

/** The list a stored pair stands for: W (any case, trimmed) is allowed, anything else rejected. */
export function listOfPair(table: PairTable, wb: string): ListName {
  const white = wb.trim().toUpperCase() === 'W';
  return table === 'wblist' ? (white ? 'allowedSenders' : 'rejectedSenders') : white ? 'allowedRecipients' : 'rejectedRecipients';
}

/** The stored pairs as four lists, each value as stored. */
export function pairLists(pairs: readonly StoredPair[]): Record<ListName, string[]> {
  const lists: Record<ListName, string[]> = { allowedSenders: [], rejectedSenders: [], allowedRecipients: [], rejectedRecipients: [] };
  for (const pair of pairs) lists[listOfPair(pair.table, pair.wb)].push(pair.email);
  return lists;
}

export function planPairs(stored: readonly StoredPair[], lists: RestrictionLists): PairPlan {
  const changed = changedLists(diffLists(pairLists(stored), lists));
  if (changed.length === 0) return { changed, remove: [], rewb: [], add: [], problems: [] };
  const problems: string[] = [];
  const remove: StoredPair[] = [];
  const rewb: (StoredPair & { to: 'W' | 'B' })[] = [];
  const add: AddedPair[] = [];
  for (const table of ['wblist', 'outbound_wblist'] as const) {
    // The wanted entries of this table by key, with the list (and so the W/B) that wants them.
    const wanted = new Map<string, { wb: 'W' | 'B'; list: ListName }>();
    for (const name of LIST_NAMES.filter((n) => LIST_ROWS[n].table === table)) {
      for (const value of lists[name]) {
        const key = entryKey(value);
        if (key === '') continue;
        const other = wanted.get(key);
        if (other !== undefined && other.list !== name) problems.push(`"${key}" is in both ${other.list} and ${name}: one pair holds one of W and B`);
        else wanted.set(key, { wb: LIST_ROWS[name].wb, list: name });
      }
    }
    const present = new Set<string>();
    for (const pair of stored.filter((p) => p.table === table)) {
      const key = entryKey(pair.email);
      const want = wanted.get(key);
      if (want === undefined) {
        remove.push(pair);
        continue;
      }
      present.add(key);
      if (listOfPair(table, pair.wb) !== want.list) rewb.push({ ...pair, to: want.wb });
    }
    for (const [key, want] of wanted) {
      if (present.has(key)) continue;
      const problem = entryProblem(want.list, key);
      if (problem !== undefined) problems.push(`${want.list}: ${problem}`);
      else add.push({ table, email: key, wb: want.wb });
    }
  }
  return { changed, remove, rewb, add, problems };
}

/** Why `key` cannot be written to list `name` as a new pair, or undefined. */
function entryProblem(name: ListName, key: string): string | undefined {
  const form = amavisdForm(key);
  if (typeof form !== 'string') return `${form.problem}; the amavisd tables keep such a value only where it is stored already (spec.invalidEntries), mailwarden never adds one`;
  if (name.endsWith('Recipients') && isClientForm(form)) return `"${key}" is ${FORM_WORDS[form]}: a client is a sender, never a recipient; the amavisd tables keep such a value only where it is stored already (spec.invalidEntries), mailwarden never adds one`;
  return undefined;
}
