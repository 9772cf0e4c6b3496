/**
 * Reads what a plan needs from a store: each document's mailbox as stored now, and with pruning,
 * every mailbox with lists. Reads only; never writes.
 */
import type { SourcedRestriction } from '../api/documents.ts';
import { storeListsOf } from '../api/mail-user-restriction.ts';
import { StoreError, type StoredMailbox, type MailboxWriter } from '../stores/store.ts';
import { declaredPlan, isPruned, planChanges, pruneScope, prunePlan, type MailboxPlan } from './store-plan.ts';

/** Mailboxes observed at once: a store's pool is a few connections. */
const OBSERVE_CONCURRENCY = 4;

export interface PlanOptions {
  /** Prune within these domains; [] = the domains the documents cover; undefined = no pruning. */
  readonly pruneDomains?: readonly string[] | undefined;
}

/** The plan for `restrictions` against `store`, documents first (in their order), then pruning. */
export async function readPlan(store: MailboxWriter, restrictions: readonly SourcedRestriction[], options: PlanOptions = {}): Promise<MailboxPlan[]> {
  const plans = await mapConcurrently(restrictions, OBSERVE_CONCURRENCY, async ({ document, source }) => {
    const mailbox = document.spec.mailbox;
    try {
      return declaredPlan(mailbox, source, await store.observe(mailbox), storeListsOf(document.spec));
    } catch (error) {
      if (error instanceof StoreError && error.kind === 'MailboxNotFound') return { kind: 'missing', mailbox, source } as const;
      throw error;
    }
  });
  if (options.pruneDomains !== undefined) plans.push(...(await prunePlans(store, restrictions, options.pruneDomains)));
  return plans;
}

/** The mailboxes pruning would clear: with lists, in scope, declared by no document. */
export async function prunePlans(store: MailboxWriter, restrictions: readonly SourcedRestriction[], domains: readonly string[]): Promise<MailboxPlan[]> {
  const scope = pruneScope(restrictions.map((r) => r.document.spec.mailbox), domains);
  const stored: StoredMailbox[] = await store.mailboxesWithLists();
  return stored
    // A spelling no write reaches is no mailbox to clear (clear would reach the other one).
    .filter((m) => m.unaddressed === undefined && isPruned(scope, m.mailbox, m.aliases))
    .sort((a, b) => (a.mailbox < b.mailbox ? -1 : 1))
    .map((m) => prunePlan(m.mailbox, m.lists))
    // Blank values only: nothing to clear, and no reason to write.
    .filter(planChanges);
}

/** `work` over `items` with at most `limit` at once; results in item order. */
async function mapConcurrently<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      out[index] = await work(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}
