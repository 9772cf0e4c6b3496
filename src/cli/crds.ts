import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { crdFiles } from '../api/crds.ts';
import { EXIT_OK, parseCommandLine, type Io } from './usage.ts';

export const CRDS_HELP = `Usage: mailwarden crds [--out DIR]...

Prints mailwarden's CustomResourceDefinitions as YAML (for "kubectl apply -f -"), or writes one
file per CRD into each DIR (this is how crds/ and the Helm chart's crds/ are generated:
npm run gen:crds).`;

export async function crdsCommand(args: readonly string[], io: Io): Promise<number> {
  const { values } = parseCommandLine(args, { out: { type: 'string', short: 'o', multiple: true }, help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    io.stdout.write(CRDS_HELP + '\n');
    return EXIT_OK;
  }
  const files = crdFiles();
  if (values.out === undefined) {
    io.stdout.write(files.map((f) => f.text).join('---\n'));
    return EXIT_OK;
  }
  for (const dir of values.out) {
    await mkdir(dir, { recursive: true });
    for (const file of files) await writeFile(path.join(dir, file.name), file.text);
    io.stderr.write(`wrote ${files.map((f) => path.join(dir, f.name)).join(', ')}\n`);
  }
  return EXIT_OK;
}
