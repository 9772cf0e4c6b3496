/**
 * Copying the lists of the four `vmail.mailbox` columns into the amavisd white/blacklist tables
 * (`mailwarden migrate-to-amavisd`), pure: for one mailbox, what its columns hold and what the
 * amavisd tables already hold for the same account give the lists to write and what to tell the
 * person migrating. Adding only: an amavisd pair that is already there stays, whatever the
 * columns say, so a second run writes nothing.
 *
 * The two stores mean different things (docs/migrating.md): the columns' allowed list beats its
 * rejected twin whatever is more specific, while amavisd's most specific pair wins. Where that
 * changes an answer for this mailbox, a note says which entries and how.
 */
import { amavisdForm, partyPriority } from '../restrictions/amavisd-entry.ts';
import { addressForms } from '../restrictions/amavisd-wblist.ts';
import { parseEntry } from '../restrictions/entry.ts';
import { LIST_NAMES, type ListName, type RestrictionLists } from '../restrictions/lists.ts';
import { trimAscii } from '../restrictions/sql-list.ts';
import type { StoredMailbox } from '../stores/store.ts';

/** Something the person migrating should know about one account. */
export interface MigrationNote {
  readonly list?: ListName;
  /**
   * `skipped`: a stored value that is not copied (never an entry the columns matched with);
   * `meaning`: an answer that changes with the move; `conflict`: the amavisd tables already hold
   * the opposite W/B for a party, so nothing is written for the account.
   */
  readonly severity: 'info' | 'skipped' | 'meaning' | 'conflict';
  readonly message: string;
}

/** One pair the migration adds: the list it stands for (its table and W/B) and the party. */
export interface AddedPair {
  readonly list: ListName;
  readonly entry: string;
}

export interface AccountMigration {
  /** The amavisd account (`users.email`): the mailbox address, lower-case, ASCII domain. */
  readonly account: string;
  /** What to write: the amavisd lists as they are plus the columns' entries not yet there. */
  readonly lists: RestrictionLists;
  /** The pairs the write adds (empty: nothing to write). */
  readonly added: readonly AddedPair[];
  readonly notes: readonly MigrationNote[];
  /** True when a conflict means nothing may be written for this account. */
  readonly refused: boolean;
}

/** The table and W/B of each list, for messages. */
export const PAIR_OF_LIST: Readonly<Record<ListName, string>> = {
  allowedSenders: 'wblist W',
  rejectedSenders: 'wblist B',
  allowedRecipients: 'outbound_wblist W',
  rejectedRecipients: 'outbound_wblist B',
};

const TWIN: Readonly<Record<ListName, ListName>> = {
  allowedSenders: 'rejectedSenders',
  rejectedSenders: 'allowedSenders',
  allowedRecipients: 'rejectedRecipients',
  rejectedRecipients: 'allowedRecipients',
};

const DIRECTIONS = [
  { allowed: 'allowedSenders', rejected: 'rejectedSenders', party: 'sender' },
  { allowed: 'allowedRecipients', rejected: 'rejectedRecipients', party: 'recipient' },
] as const;

/**
 * The migration of one mailbox: `stored` as the vmail columns hold it (raw values), `existing`
 * the account's amavisd lists as the amavisd store observes them (canonical).
 */
export function planAccountMigration(stored: StoredMailbox, existing: RestrictionLists): AccountMigration {
  const notes: MigrationNote[] = [];
  const parsed = parseEntry(stored.mailbox);
  if (parsed.kind !== 'address') {
    const message = `${JSON.stringify(stored.storedAs ?? stored.mailbox)} is not a mailbox address (user@domain): its lists are not copied`;
    return { account: trimAscii(stored.mailbox).toLowerCase(), lists: existing, added: [], notes: [{ severity: 'conflict', message }], refused: true };
  }
  const account = parsed.text;
  const columns = columnEntries(stored, notes);
  for (const { allowed, rejected } of DIRECTIONS) {
    // The columns' allowed entry beat its rejected twin: W alone keeps that answer (one pair holds one of W and B).
    for (const entry of [...columns[rejected]]) {
      if (!columns[allowed].has(entry)) continue;
      columns[rejected].delete(entry);
      notes.push({ list: rejected, severity: 'info', message: `"${entry}" is in ${allowed} too, which won under the vmail columns: only its W pair is written` });
    }
  }
  notes.push(...meaningChanges(columns));
  const lists = {} as Record<ListName, string[]>;
  const added: AddedPair[] = [];
  let refused = false;
  for (const list of LIST_NAMES) {
    const have = new Set(existing[list]);
    lists[list] = [...existing[list]];
    for (const entry of [...columns[list]].sort()) {
      if (have.has(entry)) continue;
      if (existing[TWIN[list]].includes(entry)) {
        refused = true;
        notes.push({ list, severity: 'conflict', message: `"${entry}" is ${PAIR_OF_LIST[TWIN[list]].slice(-1)} in the amavisd tables (${TWIN[list]}) but in ${list} in the vmail columns: nothing written for this account until one of them is changed` });
        continue;
      }
      lists[list].push(entry);
      added.push({ list, entry });
    }
    lists[list].sort();
  }
  return { account, lists, added: refused ? [] : added, notes, refused };
}

/** The columns' valid entries per list (canonical: lower case, ASCII domain), noting what is left out. */
function columnEntries(stored: StoredMailbox, notes: MigrationNote[]): Record<ListName, Set<string>> {
  const out = {} as Record<ListName, Set<string>>;
  for (const list of LIST_NAMES) {
    out[list] = new Set();
    for (const value of stored.lists[list]) {
      const text = trimAscii(value);
      if (text === '') continue;
      const parsed = parseEntry(text);
      if (parsed.kind === 'invalid') {
        notes.push({ list, severity: 'skipped', message: `${JSON.stringify(value)} ${parsed.reason}: not copied (it never matched anything)` });
        continue;
      }
      out[list].add(parsed.text);
    }
  }
  return out;
}

/**
 * Where the move changes an answer: a rejected entry that shares addresses with an allowed one
 * of the same direction lost to it under the columns, and wins in amavisd when its form is more
 * specific (higher mailaddr priority); on equal priority either pair may decide.
 */
function meaningChanges(columns: Record<ListName, Set<string>>): MigrationNote[] {
  const notes: MigrationNote[] = [];
  for (const { allowed, rejected, party } of DIRECTIONS) {
    for (const black of columns[rejected]) {
      for (const white of columns[allowed]) {
        if (!overlap(black, white)) continue;
        const [b, w] = [priorityOf(black), priorityOf(white)];
        if (b < w) continue;
        const who = black === '@.' ? 'any' : `a ${party} matching "${black}"`;
        notes.push({
          list: rejected,
          severity: 'meaning',
          message:
            b > w
              ? `${who} was allowed by ${allowed} "${white}" (the allowed list won); in amavisd the more specific B pair "${black}" wins: now rejected`
              : `${who} was allowed by ${allowed} "${white}" (the allowed list won); in amavisd "${black}" (B) and "${white}" (W) have the same priority: either may decide`,
        });
      }
    }
  }
  return notes;
}

/** Whether some address matches both entries (the column forms nest: one covers the other). */
function overlap(a: string, b: string): boolean {
  return coveringForms(a).includes(b) || coveringForms(b).includes(a);
}

/** The entries that match every address `entry` matches (itself included). */
function coveringForms(entry: string): string[] {
  if (entry === '@.') return ['@.'];
  if (entry.startsWith('@.')) return addressForms(`x@${entry.slice(2)}`).filter((f) => f.startsWith('@.'));
  if (entry.startsWith('@')) return addressForms(`x${entry}`).filter((f) => f.startsWith('@'));
  return addressForms(entry);
}

function priorityOf(entry: string): number {
  const form = amavisdForm(entry);
  return typeof form === 'string' ? partyPriority(form) : 0;
}
