import { readPlan } from '../adoption/read-plan.ts';
import { formatPlan, planChanges } from '../adoption/store-plan.ts';
import { loadRestrictions } from '../stores/manifests.ts';
import { listSchemaOfStore, openStoreFromFlags, STORE_FLAGS, STORE_FLAGS_HELP } from './store-flags.ts';
import { EXIT_FAILURE, EXIT_OK, parseCommandLine, UsageError, type Io } from './usage.ts';

export const DIFF_HELP = `Usage: mailwarden diff -f FILE|DIR... --store URL [--prune [--prune-domain D]...]

Shows what "mailwarden apply" would change in the store, per mailbox and list: "+ entry" added,
"- entry" removed; "!" marks a mailbox the store does not have. Reads only. Exits 0 when apply
would change nothing, 1 when it would change something (or fail), as kubectl diff does.

  -f, --filename PATH          documents (repeatable; directories are searched for *.yaml)
${STORE_FLAGS_HELP}
      --prune                  also show the mailboxes apply --prune would clear: those with lists,
                               in the documents' domains, that no document declares
      --prune-domain D         prune within domain D instead (repeatable; implies --prune)`;

/** The prune flags of diff and apply. */
export const PRUNE_FLAGS = {
  prune: { type: 'boolean' },
  'prune-domain': { type: 'string', multiple: true },
} as const;

/** The prune scope the flags ask for: undefined (no pruning), [] (the documents' domains) or domains. */
export function pruneDomainsOf(values: { prune?: boolean | undefined; 'prune-domain'?: string[] | undefined }): string[] | undefined {
  const domains = values['prune-domain'] ?? [];
  for (const domain of domains) {
    if (!/^@?[^\s@,]+$/.test(domain)) throw new UsageError(`--prune-domain ${JSON.stringify(domain)} is not a domain`);
  }
  return values.prune || domains.length > 0 ? domains : undefined;
}

export async function diffCommand(args: readonly string[], io: Io): Promise<number> {
  const { values } = parseCommandLine(args, {
    filename: { type: 'string', short: 'f', multiple: true },
    ...STORE_FLAGS,
    ...PRUNE_FLAGS,
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    io.stdout.write(DIFF_HELP + '\n');
    return EXIT_OK;
  }
  if (!values.filename || values.filename.length === 0) throw new UsageError('diff needs -f FILE|DIR (see mailwarden diff --help)');
  const pruneDomains = pruneDomainsOf(values);
  const store = await openStoreFromFlags('diff', values, io);
  try {
    const { restrictions } = await loadRestrictions(values.filename, listSchemaOfStore(store));
    const plans = await readPlan(store, restrictions, { pruneDomains });
    io.stdout.write(formatPlan(plans));
    return plans.some(planChanges) ? EXIT_FAILURE : EXIT_OK;
  } finally {
    await store.close();
  }
}
