import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { documentYaml } from '../../../src/adoption/restriction-yaml.ts';

describe('restriction YAML: what the YAML library reads back is what was written', () => {
  const awkward = ['@example.com', '@.', 'yes', 'No', 'null', '~', '123', '1e3', 'true', ' lead', 'trail ', '#hash', 'a: b', '- dash', '"quoted"', "o'neil@x.test", 'back\\slash', 'tab\there', 'new\nline', 'jösé@exämple.test', '例え', '\u0001', '*star', '&anchor', '!tag', '%pct', '|', '>', '[x]', '{x}', '?', ':', ',', ''];
  test('every awkward string survives, as a list item and as a value', () => {
    const document = { apiVersion: 'mailwarden.io/v1alpha1', metadata: { name: 'alice-at-example.com' }, spec: { list: awkward, empty: [], nested: { inner: awkward } } };
    for (const value of awkward) assert.deepEqual(parse(documentYaml({ value })), { value });
    assert.deepEqual(parse(documentYaml(document)), document);
  });

  test('plain where nothing else could be read, quoted otherwise', () => {
    assert.equal(
      documentYaml({ apiVersion: 'mailwarden.io/v1alpha1', spec: { mailbox: 'alice@example.com', allowedSenders: ['@example.com'] } }),
      'apiVersion: mailwarden.io/v1alpha1\nspec:\n  mailbox: "alice@example.com"\n  allowedSenders:\n    - "@example.com"\n',
    );
  });
});
