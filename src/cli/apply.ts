import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { listsOf } from '../api/mail-user-restriction.ts';
import { ConfigError } from '../api/config-error.ts';
import { LIST_NAMES, sameEntries } from '../restrictions/lists.ts';
import { loadRestrictions } from '../stores/manifests.ts';
import { openWritableStore } from '../stores/open.ts';
import { StoreError } from '../stores/store.ts';
import { readPassword } from './secrets.ts';
import { EXIT_FAILURE, EXIT_OK, parseCommandLine, UsageError, type Io } from './usage.ts';

export const APPLY_HELP = `Usage: mailwarden apply -f FILE|DIR... --store URL [--settings FILE] [--dry-run]

Writes MailUserRestriction documents to a PostgreSQL, MySQL/MariaDB or LDAP store directly, with
the operator's own code (observe, compare, write only what differs), for servers outside a
cluster. Mailboxes are never created. Exits 0 when every document is in the store, else 1.

  -f, --filename PATH          documents (repeatable; directories are searched for *.yaml)
      --store URL              postgres://user@host/vmail, mysql://…, ldap(s)://… (no password)
      --settings FILE          YAML store settings (table/columns, base DN, bind DN, TLS …)
      --password-env NAME      environment variable with the password (default MAILWARDEN_STORE_PASSWORD)
      --password-file PATH     file with the password
      --dry-run                say what would change, write nothing`;

export async function applyCommand(args: readonly string[], io: Io): Promise<number> {
  const { values } = parseCommandLine(args, {
    filename: { type: 'string', short: 'f', multiple: true },
    store: { type: 'string' },
    settings: { type: 'string' },
    'password-env': { type: 'string' },
    'password-file': { type: 'string' },
    'dry-run': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    io.stdout.write(APPLY_HELP + '\n');
    return EXIT_OK;
  }
  if (!values.filename || values.filename.length === 0) throw new UsageError('apply needs -f FILE|DIR (see mailwarden apply --help)');
  if (values.store === undefined) throw new UsageError('apply needs --store URL');
  const { restrictions } = await loadRestrictions(values.filename);
  let settings: unknown = {};
  if (values.settings !== undefined) {
    try {
      settings = parseYaml(await readFile(values.settings, 'utf8')) ?? {};
    } catch (error) {
      throw new ConfigError(`settings file ${values.settings}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  const store = await openWritableStore({
    store: values.store,
    settings,
    semantics: 'default',
    password: readPassword({ passwordEnv: values['password-env'], passwordFile: values['password-file'] }, io.env),
  });
  let failures = 0;
  try {
    for (const { document, source } of restrictions) {
      const mailbox = document.spec.mailbox;
      const desired = listsOf(document.spec);
      try {
        if (values['dry-run']) {
          const observed = await store.observe(mailbox);
          const differs = LIST_NAMES.filter((n) => !sameEntries(observed[n], desired[n]));
          io.stdout.write(`${mailbox}: ${differs.length === 0 ? 'unchanged' : `would change ${differs.join(', ')}`}\n`);
          continue;
        }
        const { changed } = await store.apply(mailbox, desired);
        io.stdout.write(`${mailbox}: ${changed.length === 0 ? 'unchanged' : `written (${changed.join(', ')})`}\n`);
      } catch (error) {
        if (!(error instanceof StoreError)) throw error;
        failures++;
        io.stderr.write(`${source}: ${mailbox}: ${error.kind}: ${error.message}\n`);
      }
    }
  } finally {
    await store.close();
  }
  return failures === 0 ? EXIT_OK : EXIT_FAILURE;
}
