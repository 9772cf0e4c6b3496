import { migrateToAmavisd, type AccountOutcome } from '../adoption/amavisd-migration-run.ts';
import { PAIR_OF_LIST } from '../adoption/amavisd-migration.ts';
import { openAmavisdStore } from '../stores/amavisd-sql.ts';
import { openWritableStore } from '../stores/open.ts';
import { readPassword } from './secrets.ts';
import { readSettingsFile } from './store-flags.ts';
import { EXIT_FAILURE, EXIT_OK, parseCommandLine, UsageError, type Io } from './usage.ts';

export const MIGRATE_TO_AMAVISD_HELP = `Usage: mailwarden migrate-to-amavisd --from URL --to URL [--dry-run]

Copies the lists of the four vmail.mailbox columns (iRedMail 0.8.4 – 1.3.x) into the amavisd
white/blacklist tables (users, mailaddr, wblist, outbound_wblist: iRedMail 0.9.x onwards), as
iRedAdmin would write them: allowedSenders/rejectedSenders become wblist W/B pairs,
allowedRecipients/rejectedRecipients outbound_wblist W/B pairs of the mailbox's account. Only
adds: pairs already in the amavisd tables stay, so running it again writes nothing. An entry in
an allowed list and its rejected twin is written as W only (the allowed list won); a party the
amavisd tables hold with the opposite W/B is a conflict, and nothing is written for that
account. Answers that change with the move ("most specific pair wins" instead of "allowed list
beats rejected list") are printed per account (docs/migrating.md). Exits 0 when every account is
in the amavisd tables, else 1.

      --from URL               the vmail store: postgres://user@host/vmail or mysql://… (read only)
      --from-settings FILE     its YAML store settings (table and column names, TLS …)
      --from-password-env NAME environment variable with its password (default MAILWARDEN_FROM_PASSWORD)
      --from-password-file PATH file with its password
      --to URL                 the amavisd database: postgres://user@host/amavisd or mysql://…
      --to-settings FILE       its YAML store settings (TLS, pool, timeouts)
      --to-password-env NAME   environment variable with its password (default MAILWARDEN_TO_PASSWORD)
      --to-password-file PATH  file with its password
      --dry-run                print what would be written, write nothing`;

export async function migrateToAmavisdCommand(args: readonly string[], io: Io): Promise<number> {
  const { values } = parseCommandLine(args, {
    from: { type: 'string' },
    'from-settings': { type: 'string' },
    'from-password-env': { type: 'string' },
    'from-password-file': { type: 'string' },
    to: { type: 'string' },
    'to-settings': { type: 'string' },
    'to-password-env': { type: 'string' },
    'to-password-file': { type: 'string' },
    'dry-run': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    io.stdout.write(MIGRATE_TO_AMAVISD_HELP + '\n');
    return EXIT_OK;
  }
  if (values.from === undefined || values.to === undefined) throw new UsageError('migrate-to-amavisd needs --from URL (the vmail store) and --to URL (the amavisd database)');
  const password = (side: 'from' | 'to'): string | undefined => {
    const file = values[`${side}-password-file`];
    const name = values[`${side}-password-env`];
    // One store's default file variable must not feed the other's password: no fallback file here.
    if (file !== undefined || name !== undefined) return readPassword({ passwordFile: file ?? '', passwordEnv: name }, io.env);
    return io.env[side === 'from' ? 'MAILWARDEN_FROM_PASSWORD' : 'MAILWARDEN_TO_PASSWORD'];
  };
  const dryRun = values['dry-run'] === true;
  const source = await openWritableStore({ store: values.from, settings: await readSettingsFile(values['from-settings']), semantics: 'default', password: password('from') });
  try {
    const target = await openAmavisdStore(values.to, await readSettingsFile(values['to-settings']), { semantics: 'default', password: password('to') });
    try {
      const summary = await migrateToAmavisd(source, target, { dryRun }, (outcome) => io.stdout.write(outcomeText(outcome, dryRun)));
      io.stdout.write(
        `mailwarden migrate-to-amavisd: ${dryRun ? 'dry run, nothing written: ' : ''}${summary.accounts} mailbox(es) with lists read, ` +
          `${summary.pairs} pair(s) ${dryRun ? 'would be written' : 'written'} for ${summary.accountsWritten} account(s)` +
          `${summary.refused > 0 ? `, ${summary.refused} account(s) refused` : ''}${summary.failed > 0 ? `, ${summary.failed} account(s) failed` : ''}\n`,
      );
      return summary.refused + summary.failed === 0 ? EXIT_OK : EXIT_FAILURE;
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

/** One account's lines: what is (or would be) written, then its notes. */
function outcomeText({ plan, result, error }: AccountOutcome, dryRun: boolean): string {
  const head: Record<AccountOutcome['result'], string> = {
    written: `${plan.added.length} pair(s) written`,
    planned: `would write ${plan.added.length} pair(s)`,
    unchanged: 'nothing to write (already in the amavisd tables)',
    refused: 'refused, nothing written',
    failed: `failed, nothing written: ${error?.kind}: ${error?.message}`,
  };
  const lines = [`${plan.account}: ${head[result]}`];
  if (result === 'written' || result === 'planned') {
    for (const { list, entry } of plan.added) lines.push(`  ${dryRun ? 'would add' : 'added'} ${PAIR_OF_LIST[list]} ${entry}  (${list})`);
  }
  for (const note of plan.notes) lines.push(`  ${note.severity}: ${note.list === undefined ? '' : `${note.list}: `}${note.message}`);
  return lines.join('\n') + '\n';
}
