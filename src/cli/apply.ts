import { storeListsOf } from '../api/mail-user-restriction.ts';
import { prunePlans, readPlan } from '../adoption/read-plan.ts';
import { formatPlan } from '../adoption/store-plan.ts';
import { loadRestrictions } from '../stores/manifests.ts';
import { StoreError } from '../stores/store.ts';
import { PRUNE_FLAGS, pruneDomainsOf } from './diff.ts';
import { listSchemaOfStore, openStoreFromFlags, STORE_FLAGS, STORE_FLAGS_HELP } from './store-flags.ts';
import { EXIT_FAILURE, EXIT_OK, parseCommandLine, UsageError, type Io } from './usage.ts';

export const APPLY_HELP = `Usage: mailwarden apply -f FILE|DIR... --store URL [--settings FILE] [--dry-run] [--prune [--prune-domain D]...]

Writes MailUserRestriction documents to a PostgreSQL, MySQL/MariaDB or LDAP store directly, with
the operator's own code (observe, compare, write only what differs), for servers outside a
cluster. Mailboxes are never created. Exits 0 when every document is in the store, else 1.

  -f, --filename PATH          documents (repeatable; directories are searched for *.yaml)
${STORE_FLAGS_HELP}
      --dry-run                print what would change (as mailwarden diff does), write nothing
      --prune                  also clear the lists of mailboxes in the documents' domains that no
                               document declares (never without this flag; see it first with diff --prune)
      --prune-domain D         prune within domain D instead (repeatable; implies --prune)`;

export async function applyCommand(args: readonly string[], io: Io): Promise<number> {
  const { values } = parseCommandLine(args, {
    filename: { type: 'string', short: 'f', multiple: true },
    ...STORE_FLAGS,
    ...PRUNE_FLAGS,
    'dry-run': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    io.stdout.write(APPLY_HELP + '\n');
    return EXIT_OK;
  }
  if (!values.filename || values.filename.length === 0) throw new UsageError('apply needs -f FILE|DIR (see mailwarden apply --help)');
  if (values.store === undefined) throw new UsageError('apply needs --store URL');
  const pruneDomains = pruneDomainsOf(values);
  const store = await openStoreFromFlags('apply', values, io);
  try {
    const { restrictions } = await loadRestrictions(values.filename, listSchemaOfStore(store));
    if (values['dry-run']) {
      const plans = await readPlan(store, restrictions, { pruneDomains });
      io.stdout.write(formatPlan(plans));
      return plans.some((p) => p.kind === 'missing') ? EXIT_FAILURE : EXIT_OK;
    }
    let failures = 0;
    for (const { document, source } of restrictions) {
      const mailbox = document.spec.mailbox;
      try {
        const { changed } = await store.apply(mailbox, storeListsOf(document.spec));
        io.stdout.write(`${mailbox}: ${changed.length === 0 ? 'unchanged' : `written (${changed.join(', ')})`}\n`);
      } catch (error) {
        if (!(error instanceof StoreError)) throw error;
        failures++;
        io.stderr.write(`${source}: ${mailbox}: ${error.kind}: ${error.message}\n`);
      }
    }
    if (pruneDomains === undefined) return failures === 0 ? EXIT_OK : EXIT_FAILURE;
    if (failures > 0) {
      io.stderr.write(`mailwarden apply: nothing pruned, since ${failures} document(s) could not be applied\n`);
      return EXIT_FAILURE;
    }
    for (const plan of await prunePlans(store, restrictions, pruneDomains)) {
      try {
        const { changed } = await store.clear(plan.mailbox);
        io.stdout.write(`${plan.mailbox}: ${changed.length > 0 ? 'cleared (pruned: no document declares it)' : 'unchanged'}\n`);
      } catch (error) {
        if (!(error instanceof StoreError)) throw error;
        failures++;
        io.stderr.write(`${plan.mailbox}: ${error.kind}: ${error.message}\n`);
      }
    }
    return failures === 0 ? EXIT_OK : EXIT_FAILURE;
  } finally {
    await store.close();
  }
}
