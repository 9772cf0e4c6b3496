import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exportDocuments, type ExportNote } from '../adoption/export-documents.ts';
import { documentYaml } from '../adoption/restriction-yaml.ts';
import { ConfigError } from '../api/config-error.ts';
import { listSchemaOfStore, openStoreFromFlags, STORE_FLAGS, STORE_FLAGS_HELP } from './store-flags.ts';
import { EXIT_FAILURE, EXIT_OK, parseCommandLine, type Io } from './usage.ts';

export const EXPORT_HELP = `Usage: mailwarden export --store URL [--namespace NS] [--backend NAME] [--observe] [--output-dir DIR]

Reads every mailbox that has a list from a PostgreSQL, MySQL/MariaDB or LDAP store and writes one
MailUserRestriction document per mailbox: to stdout as one multi-document YAML stream, or one
file per mailbox (NAME.yaml) into a directory. Applying the export to the same store writes
nothing. Values that are not valid entries are exported as stored under spec.invalidEntries;
they and every other oddity (white space, capitals, repeats) are reported on stderr, and so is
a document mailwarden would refuse (a list longer than a restriction may hold: it is exported
whole, never cut). Exits 0, or 1 when a stored value could not be exported or a document would
be refused.

${STORE_FLAGS_HELP}
      --namespace NS           metadata.namespace of every document
      --backend NAME           spec.backendRef.name (the MailBackend the operator writes with)
      --observe                spec.managementPolicy: Observe (the operator reports, never writes)
  -o, --output-dir DIR         one file per mailbox into DIR (created; existing files are never replaced)`;

/** Generous for a whole-store read: the store's own operation timeout is meant for one mailbox. */
const EXPORT_TIMEOUT_MS = 300_000;

export async function exportCommand(args: readonly string[], io: Io): Promise<number> {
  const { values } = parseCommandLine(args, {
    ...STORE_FLAGS,
    namespace: { type: 'string' },
    backend: { type: 'string' },
    observe: { type: 'boolean' },
    'output-dir': { type: 'string', short: 'o' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    io.stdout.write(EXPORT_HELP + '\n');
    return EXIT_OK;
  }
  const store = await openStoreFromFlags('export', values, io);
  let stored;
  try {
    stored = await store.mailboxesWithLists(AbortSignal.timeout(EXPORT_TIMEOUT_MS));
  } finally {
    await store.close();
  }
  const { documents, notes } = exportDocuments(stored, {
    namespace: values.namespace,
    backend: values.backend,
    managementPolicy: values.observe ? 'Observe' : undefined,
    schema: listSchemaOfStore(store),
  });
  for (const note of notes) io.stderr.write(`mailwarden export: ${noteLine(note)}\n`);
  const dir = values['output-dir'];
  if (dir === undefined) {
    io.stdout.write(documents.map((d) => documentYaml(d.document)).join('---\n'));
  } else {
    await writeFiles(dir, documents.map((d) => ({ file: `${d.name}.yaml`, text: documentYaml(d.document) })));
  }
  const lost = notes.filter((n) => n.severity === 'lost').length;
  const invalid = notes.filter((n) => n.severity === 'invalid').length;
  const refused = notes.filter((n) => n.severity === 'refused').length;
  io.stderr.write(
    `mailwarden export: ${documents.length} mailbox(es) exported${dir === undefined ? '' : ` to ${dir}`}` +
      `${invalid > 0 ? `, ${invalid} invalid value(s) kept under spec.invalidEntries` : ''}` +
      `${lost > 0 ? `, ${lost} value(s) NOT exported (see above)` : ''}` +
      `${refused > 0 ? `, ${refused} document(s) mailwarden refuses as they are (see above)` : ''}\n`,
  );
  return lost > 0 || refused > 0 ? EXIT_FAILURE : EXIT_OK;
}

function noteLine(note: ExportNote): string {
  return `${note.mailbox}${note.list === undefined ? '' : ` ${note.list}`}: ${note.message}`;
}

/** Writes every file, or none: a directory that already holds one of them is refused first. */
async function writeFiles(dir: string, files: readonly { file: string; text: string }[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  const present = new Set(await readdir(dir));
  const clashes = files.filter((f) => present.has(f.file)).map((f) => f.file);
  if (clashes.length > 0) {
    throw new ConfigError(`${dir} already has ${clashes.slice(0, 3).join(', ')}${clashes.length > 3 ? ` and ${clashes.length - 3} more` : ''}: nothing written (export into an empty directory)`);
  }
  for (const { file, text } of files) await writeFile(path.join(dir, file), text, { flag: 'wx' });
}
