import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { slim, slimShared, StringPool } from '../../../src/controller/cached-object.ts';

const restriction = (name: string, mailbox: string) =>
  JSON.parse(
    JSON.stringify({
      apiVersion: 'mailwarden.io/v1alpha1',
      kind: 'MailUserRestriction',
      metadata: {
        name,
        namespace: 'mail',
        uid: `uid-${name}`,
        creationTimestamp: '2026-11-27T08:00:00Z',
        finalizers: ['mailwarden.io/cleanup'],
        managedFields: [{ manager: 'kubectl', fieldsV1: { 'f:spec': {} } }],
        annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"big":"copy"}', team: 'mail' },
      },
      spec: { mailbox, backendRef: { name: 'vmail' }, rejectedSenders: ['@spam.example', '@ads.example'] },
      status: { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'True', reason: 'Applied', lastTransitionTime: '2026-11-27T08:00:01Z', message: `applied ${mailbox}` }] },
    }),
  );

describe('cached objects', () => {
  test('slim drops managedFields and the last-applied copy, keeps every other annotation', () => {
    const out = slim(restriction('a', 'a@example.com'));
    assert.equal(out.metadata?.managedFields, undefined);
    assert.deepEqual(out.metadata?.annotations, { team: 'mail' });
    const bare = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' } };
    assert.equal(slim(bare), bare, 'nothing to drop: the object itself');
  });

  test('slimShared keeps the content and pools the shared strings only, not the mailbox or the message', () => {
    const pool = new StringPool();
    const a = slimShared(restriction('a', 'a@example.com'), pool);
    const afterOne = pool.size;
    const b = slimShared(restriction('b', 'b@example.com'), pool);
    assert.equal(pool.size, afterOne, 'a second object with the same shared values adds nothing');
    // apiVersion, kind, namespace, creationTimestamp, finalizer, backendRef name, 2 entries, 4 condition fields
    assert.equal(afterOne, 12);
    const expected = slim(restriction('b', 'b@example.com'));
    assert.deepEqual(b, expected);
    assert.equal((a as { spec: { mailbox: string } }).spec.mailbox, 'a@example.com');
  });

  test('a full pool starts over instead of growing', () => {
    const pool = new StringPool(3);
    for (const s of ['a', 'b', 'c', 'd']) pool.intern(s);
    assert.equal(pool.size, 1);
    assert.equal(pool.intern('d'), 'd');
  });
});
