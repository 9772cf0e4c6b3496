import { readRestrictions } from '../stores/manifests.ts';
import { EXIT_FAILURE, EXIT_OK, parseCommandLine, UsageError, type Io } from './usage.ts';

export const VALIDATE_HELP = `Usage: mailwarden validate [--store-schema vmail|amavisd] FILE|DIR...

Checks MailUserRestriction documents (multi-document YAML files too; directories are searched
for *.yaml and *.yml). Exits 0 when every document is valid, else 1 with one line per problem.
Documents of other kinds are passed over.

      --store-schema NAME      check mailboxes and entries against the forms a store holds: vmail
                               (default: the vmail.mailbox columns, LDAP, the manifests and Kubernetes
                               stores) or amavisd (also @domain and @. mailboxes; IP, network and
                               user@* entries)`;

export async function validateCommand(args: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parseCommandLine(args, { help: { type: 'boolean', short: 'h' }, 'store-schema': { type: 'string' } }, true);
  if (values.help) {
    io.stdout.write(VALIDATE_HELP + '\n');
    return EXIT_OK;
  }
  if (positionals.length === 0) throw new UsageError('validate needs at least one FILE or DIR (see mailwarden validate --help)');
  const schema = values['store-schema'] ?? 'vmail';
  if (schema !== 'vmail' && schema !== 'amavisd') throw new UsageError(`--store-schema is vmail or amavisd, not "${schema}"`);
  const { restrictions, files, problems } = await readRestrictions(positionals, schema);
  for (const p of problems) io.stderr.write(`${p.source}: ${p.message}\n`);
  if (problems.length > 0) return EXIT_FAILURE;
  io.stdout.write(`${restrictions.length} MailUserRestriction document(s) valid in ${files.length} file(s)\n`);
  return EXIT_OK;
}
