import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { crdFiles } from '../api/crds.ts';
import { EXIT_OK, parseCommandLine, type Io } from './usage.ts';

export const CRDS_HELP = `Usage: mailwarden crds [--out DIR]

Prints mailwarden's CustomResourceDefinitions as YAML (for "kubectl apply -f -"), or writes one
file per CRD into DIR (this is how crds/ is generated: npm run gen:crds).`;

export async function crdsCommand(args: readonly string[], io: Io): Promise<number> {
  const { values } = parseCommandLine(args, { out: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    io.stdout.write(CRDS_HELP + '\n');
    return EXIT_OK;
  }
  const files = crdFiles();
  if (values.out === undefined) {
    io.stdout.write(files.map((f) => f.text).join('---\n'));
    return EXIT_OK;
  }
  await mkdir(values.out, { recursive: true });
  for (const file of files) await writeFile(path.join(values.out, file.name), file.text);
  io.stderr.write(`wrote ${files.map((f) => path.join(values.out!, f.name)).join(', ')}\n`);
  return EXIT_OK;
}
