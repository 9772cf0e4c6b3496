// The folders of src/ form layers: a folder imports only from folders below it, so no folder
// cycle can form and a change to a lower layer never needs to know the ones above it.
// docs/architecture.md explains the order; this test keeps the code and that page to it.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, test } from 'node:test';
import ts from 'typescript';

/** The folders of src/, lowest first. */
const LAYERS = ['time', 'restrictions', 'api', 'observability', 'files', 'kube', 'controller', 'stores', 'adoption', 'policy', 'reconcilers', 'webhook', 'operator', 'cli'] as const;

const ROOT = resolve(import.meta.dirname, '../..');
const SRC = join(ROOT, 'src');

interface FolderImport {
  readonly file: string;
  readonly specifier: string;
  readonly from: string;
  readonly to: string;
}

/** Every import (static, type-only, re-export, dynamic) from one src/ folder into another. */
function folderImports(): FolderImport[] {
  const out: FolderImport[] = [];
  for (const entry of readdirSync(SRC, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const file = join(entry.parentPath, entry.name);
    const from = folderOf(file);
    // The TypeScript compiler's own scanner, so multi-line, type-only and dynamic imports all count.
    for (const { fileName: specifier } of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
      if (!specifier.startsWith('.')) continue;
      const to = folderOf(resolve(dirname(file), specifier));
      if (to !== undefined && to !== from) out.push({ file: relative(ROOT, file), specifier, from: from!, to });
    }
  }
  return out;
}

/** The top folder under src/ that `path` lies in; undefined outside src/. */
function folderOf(path: string): string | undefined {
  const rel = relative(SRC, path);
  if (rel.startsWith('..') || !rel.includes(sep)) return undefined;
  return rel.split(sep)[0];
}

/** Imports that point at a layer above the importer's (or at a folder with no layer). */
function upwardImports(imports: readonly FolderImport[], layers: readonly string[]): FolderImport[] {
  return imports.filter((i) => !layers.includes(i.to) || layers.indexOf(i.to) > layers.indexOf(i.from));
}

/** One cycle of the folder graph as `a → b → a`, or undefined when there is none. */
function folderCycle(imports: readonly FolderImport[]): string | undefined {
  const edges = new Map<string, Set<string>>();
  for (const i of imports) edges.set(i.from, (edges.get(i.from) ?? new Set()).add(i.to));
  const done = new Set<string>();
  const visit = (folder: string, path: string[]): string | undefined => {
    if (path.includes(folder)) return [...path.slice(path.indexOf(folder)), folder].join(' → ');
    if (done.has(folder)) return undefined;
    for (const next of edges.get(folder) ?? []) {
      const cycle = visit(next, [...path, folder]);
      if (cycle !== undefined) return cycle;
    }
    done.add(folder);
    return undefined;
  };
  for (const folder of edges.keys()) {
    const cycle = visit(folder, []);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
}

const describeImport = (i: FolderImport) => `${i.file} (${i.from}) imports '${i.specifier}' (${i.to})`;

describe('layering of src/', () => {
  const imports = folderImports();

  test('every folder of src/ has a layer', () => {
    const folders = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    assert.deepEqual(folders.filter((f) => !(LAYERS as readonly string[]).includes(f)), [], 'add the folder to LAYERS here and in docs/architecture.md');
  });

  test('no folder imports a folder above it', () => {
    assert.ok(imports.length > 0, 'the scan found the imports between folders');
    assert.deepEqual(upwardImports(imports, LAYERS).map(describeImport), []);
  });

  test('no cycle between folders', () => {
    assert.equal(folderCycle(imports), undefined);
  });

  test('docs/architecture.md gives the same order', () => {
    const docs = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8');
    assert.ok(docs.includes(LAYERS.map((l) => `\`${l}\``).join(' → ')), 'docs/architecture.md lists the layers in this order');
  });

  describe('the checks themselves', () => {
    const edge = (from: string, to: string): FolderImport => ({ file: `src/${from}/x.ts`, specifier: `../${to}/y.ts`, from, to });

    test('an import of a higher layer is reported', () => {
      assert.deepEqual(upwardImports([edge('api', 'restrictions'), edge('api', 'stores')], LAYERS), [edge('api', 'stores')]);
    });

    test('an import of a folder without a layer is reported', () => {
      assert.deepEqual(upwardImports([edge('cli', 'misc')], LAYERS), [edge('cli', 'misc')]);
    });

    test('a cycle is named', () => {
      assert.equal(folderCycle([edge('api', 'stores'), edge('stores', 'policy'), edge('policy', 'api')]), 'api → stores → policy → api');
      assert.equal(folderCycle([edge('stores', 'api'), edge('policy', 'api'), edge('policy', 'stores')]), undefined);
    });
  });
});
