import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { keyOf, keyOfObject, splitKey } from '../../../src/api/object-key.ts';

describe('object keys', () => {
  const cases: [what: string, namespace: string | undefined, name: string, key: string][] = [
    ['a namespaced object', 'mail', 'alice', 'mail/alice'],
    ['a cluster-scoped object', undefined, 'mailwarden', 'mailwarden'],
    ['a cluster-scoped object with an empty namespace', '', 'mailwarden', 'mailwarden'],
  ];
  for (const [what, namespace, name, key] of cases) {
    test(`${what}: ${JSON.stringify(key)}, and back`, () => {
      assert.equal(keyOf(namespace, name), key);
      assert.equal(keyOfObject({ metadata: { namespace, name } }), key);
      assert.deepEqual(splitKey(key), [namespace ?? '', name]);
    });
  }
});
