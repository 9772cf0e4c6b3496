/**
 * Runs the vmail-columns → amavisd migration over a whole store: every mailbox with a list is
 * read from the columns in one read, each account's amavisd lists are observed and the missing
 * pairs added in one transaction per account (amavisd-migration.ts decides what), or only
 * reported in a dry run. An account that is refused or whose values a store refuses is reported
 * and the others go on; a store that is unavailable or misconfigured stops the run.
 */
import { EMPTY_LISTS } from '../restrictions/lists.ts';
import type { AmavisdWblistStore } from '../stores/amavisd-sql.ts';
import { StoreError, type MailboxWriter } from '../stores/store.ts';
import { planAccountMigration, type AccountMigration } from './amavisd-migration.ts';

/** The amavisd store as the migration uses it. */
export type AmavisdTarget = Pick<AmavisdWblistStore, 'observe' | 'apply'>;

export interface MigrationOptions {
  readonly dryRun: boolean;
  /** For the whole read of the source (the stores' own timeouts are per account). */
  readonly readTimeoutMs?: number;
}

/** What happened to one account. */
export interface AccountOutcome {
  readonly plan: AccountMigration;
  /** `written`: pairs added; `unchanged`: nothing to add; `planned`: a dry run would add them. */
  readonly result: 'written' | 'unchanged' | 'planned' | 'refused' | 'failed';
  /** The store's error, for `failed`. */
  readonly error?: StoreError;
}

export interface MigrationSummary {
  readonly accounts: number;
  /** Pairs written (dry run: that would be written). */
  readonly pairs: number;
  readonly accountsWritten: number;
  readonly refused: number;
  readonly failed: number;
}

/** Migrates every mailbox; `onAccount` hears each account as it is done. */
export async function migrateToAmavisd(
  source: Pick<MailboxWriter, 'mailboxesWithLists'>,
  target: AmavisdTarget,
  options: MigrationOptions,
  onAccount: (outcome: AccountOutcome) => void,
): Promise<MigrationSummary> {
  const stored = await source.mailboxesWithLists(AbortSignal.timeout(options.readTimeoutMs ?? 300_000));
  stored.sort((a, b) => (a.mailbox < b.mailbox ? -1 : a.mailbox > b.mailbox ? 1 : 0));
  let pairs = 0;
  let accountsWritten = 0;
  let refused = 0;
  let failed = 0;
  for (const mailbox of stored) {
    let plan = planAccountMigration(mailbox, EMPTY_LISTS);
    if (plan.refused) {
      refused++;
      onAccount({ plan, result: 'refused' });
      continue;
    }
    try {
      plan = planAccountMigration(mailbox, await target.observe(plan.account));
      if (plan.refused) {
        refused++;
        onAccount({ plan, result: 'refused' });
        continue;
      }
      if (plan.added.length === 0) {
        onAccount({ plan, result: 'unchanged' });
        continue;
      }
      if (!options.dryRun) await target.apply(plan.account, plan.lists);
      pairs += plan.added.length;
      accountsWritten++;
      onAccount({ plan, result: options.dryRun ? 'planned' : 'written' });
    } catch (error) {
      // A store that cannot be reached or used fails every account alike: stop (a rerun goes on where this stopped).
      if (!(error instanceof StoreError) || error.kind === 'Unavailable' || error.kind === 'Misconfigured') throw error;
      failed++;
      onAccount({ plan, result: 'failed', error });
    }
  }
  return { accounts: stored.length, pairs, accountsWritten, refused, failed };
}
