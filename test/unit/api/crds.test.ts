import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { crdFiles, buildCrds } from '../../../src/api/crds.ts';
import { repoPath } from '../../helpers/paths.ts';

describe('CRDs', () => {
  // One source: crds/ and the chart's copy are both what the generator writes.
  for (const dir of ['crds', 'charts/mailwarden/crds']) {
    test(`the checked-in files in ${dir}/ are what npm run gen:crds generates`, () => {
      const expected = crdFiles();
      const present = readdirSync(repoPath(dir)).filter((f) => f.endsWith('.yaml')).sort();
      assert.deepEqual(present, expected.map((f) => f.name).sort(), `${dir}/ has other files than the generator writes`);
      for (const file of expected) {
        assert.equal(readFileSync(repoPath(dir, file.name), 'utf8'), file.text, `${dir}/${file.name} is stale: run npm run gen:crds`);
      }
    });
  }

  test('schemas are structural: every node has a type, no additionalProperties: false', () => {
    const visit = (node: Record<string, unknown>, where: string) => {
      assert.ok(node.additionalProperties !== false, `${where}: additionalProperties false`);
      for (const bad of ['anyOf', 'oneOf', 'allOf', '$ref', 'nullable']) assert.ok(!(bad in node), `${where}: ${bad}`);
      if (!node['x-kubernetes-preserve-unknown-fields']) assert.ok(typeof node.type === 'string', `${where}: no type`);
      for (const [name, child] of Object.entries((node.properties ?? {}) as Record<string, Record<string, unknown>>)) visit(child, `${where}.${name}`);
      if (node.items) visit(node.items as Record<string, unknown>, `${where}[]`);
    };
    for (const crd of buildCrds()) {
      const version = (crd.spec as { versions: { schema: { openAPIV3Schema: Record<string, unknown> } }[] }).versions[0]!;
      visit(version.schema.openAPIV3Schema, String((crd.metadata as { name: string }).name));
    }
  });

  test('every field kubectl explain shows has a description (spec, status and all below; metadata is ObjectMeta, described by the API server)', () => {
    const missing: string[] = [];
    const visit = (node: Record<string, unknown>, where: string) => {
      for (const [name, child] of Object.entries((node.properties ?? {}) as Record<string, Record<string, unknown>>)) {
        if (where === 'root' && name === 'metadata') continue;
        if (typeof child.description !== 'string' || child.description === '') missing.push(`${where}.${name}`);
        visit(child, `${where}.${name}`);
      }
      if (node.items) visit(node.items as Record<string, unknown>, `${where}[]`);
      if (typeof node.additionalProperties === 'object' && node.additionalProperties !== null) visit(node.additionalProperties as Record<string, unknown>, `${where}{}`);
    };
    for (const crd of buildCrds()) {
      const version = (crd.spec as { versions: { schema: { openAPIV3Schema: Record<string, unknown> } }[] }).versions[0]!;
      visit(version.schema.openAPIV3Schema, 'root');
    }
    assert.deepEqual(missing, []);
  });
});
