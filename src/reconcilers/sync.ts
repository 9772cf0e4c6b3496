import { LIST_NAMES, type ListName, type RestrictionLists } from '../restrictions/lists.ts';
import type { WritableMailboxStore } from '../stores/store.ts';

/** What a sync found and did. */
export interface SyncResult {
  /** The lists that differed from the desired ones and were written (empty: no write). */
  readonly changed: readonly ListName[];
}

/**
 * Makes one mailbox's lists equal `desired`: observe, compare as sets (LDAP keeps no order, and
 * order means nothing to the decision), write all four in one apply only on a difference. Shared
 * by the operator and `mailwarden apply`, so both write exactly the same way.
 */
export async function syncMailbox(store: WritableMailboxStore, mailbox: string, desired: RestrictionLists): Promise<SyncResult> {
  const observed = await store.observe(mailbox);
  const changed = LIST_NAMES.filter((n) => !sameList(observed[n], desired[n]));
  if (changed.length > 0) await store.apply(mailbox, desired);
  return { changed };
}

export function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((v) => set.has(v));
}
