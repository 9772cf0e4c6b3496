import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StringPool } from '../../../src/controller/cached-object.ts';
import { ListsPool } from '../../../src/stores/in-memory-records.ts';
import { holdRestriction, RestrictionIndex } from '../../../src/stores/restriction-index.ts';

const restriction = (name: string, created: string, spec: Record<string, unknown>, namespace = 'mail') => ({
  apiVersion: 'mailwarden.io/v1alpha1',
  kind: 'MailUserRestriction',
  metadata: {
    name,
    namespace,
    resourceVersion: '1',
    creationTimestamp: created,
    managedFields: [{ manager: 'kubectl', fieldsV1: { 'f:spec': {} } }],
    annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
  },
  spec,
  status: { conditions: [{ type: 'Ready', status: 'True' }] },
});

describe('holdRestriction', () => {
  test('keeps identity, age and the canonical lists; drops managedFields, annotations and status', () => {
    const held = holdRestriction(restriction('a', '2026-01-01T00:00:00Z', { mailbox: 'Alice@Example.com', rejectedRecipients: ['@.', '@.'], allowedRecipients: ['@Example.COM'] }));
    assert.deepEqual({ ...held }, {
      name: 'a',
      namespace: 'mail',
      resourceVersion: '1',
      creationTimestamp: '2026-01-01T00:00:00Z',
      address: 'alice@example.com',
      problem: undefined,
      lists: { allowedSenders: null, rejectedSenders: null, allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'] },
    });
    // Its metadata, as the informer and the oldest-wins rule read it, is the object itself.
    assert.equal(held.metadata, held);
    assert.deepEqual(Object.keys(held.metadata).slice(0, 4), ['name', 'namespace', 'resourceVersion', 'creationTimestamp']);
  });

  test('a mailbox with an internationalised domain is held under its ASCII form, as requests look it up; both spellings are one mailbox', () => {
    const index = new RestrictionIndex();
    index.set(holdRestriction(restriction('unicode', '2026-01-01T00:00:00Z', { mailbox: 'Jörg@Bücher.example', rejectedSenders: ['@.'] })));
    index.set(holdRestriction(restriction('ascii', '2026-01-02T00:00:00Z', { mailbox: 'jörg@xn--bcher-kva.example', allowedSenders: ['@.'] })));
    assert.deepEqual(index.get('jörg@xn--bcher-kva.example')?.lists.rejectedSenders, ['@.']);
    assert.equal(index.owner('jörg@xn--bcher-kva.example')?.metadata.name, 'unicode');
    assert.equal(index.size, 1);
  });

  test('an invalid spec is held with its problem and no record', () => {
    const held = holdRestriction(restriction('bad', '2026-01-01T00:00:00Z', { mailbox: 'bob@example.com', rejectedSenders: ['not an entry'] }));
    assert.equal(held.lists, undefined);
    assert.match(held.problem ?? '', /^rejectedSenders\[0\]: "not an entry"/);
    assert.equal(held.address, 'bob@example.com');
  });

  test('a restriction with backendRef belongs to a MailBackend: it decides for no mailbox here', () => {
    const held = holdRestriction(restriction('sql', '2026-01-01T00:00:00Z', { mailbox: 'bob@example.com', backendRef: { name: 'db' } }));
    assert.equal(held.address, undefined);
    assert.equal(held.lists, undefined);
    assert.equal(held.problem, undefined);
  });

  test('restrictions with the same lists share one frozen copy of them; entries are interned', () => {
    const strings = new StringPool();
    const pools = { strings, lists: new ListsPool({ strings }) };
    const a = holdRestriction(restriction('a', '2026-01-01T00:00:00Z', { mailbox: 'a@example.com', rejectedSenders: ['@spam.example'] }), pools);
    const b = holdRestriction(restriction('b', '2026-01-01T00:00:00Z', { mailbox: 'b@example.com', rejectedSenders: ['@Spam.example'] }), pools);
    const c = holdRestriction(restriction('c', '2026-01-01T00:00:00Z', { mailbox: 'c@example.com', rejectedSenders: ['@spam.example'], allowedSenders: ['x@spam.example'] }), pools);
    assert.equal(a.lists, b.lists);
    assert.notEqual(a.lists, c.lists);
    assert.ok(Object.isFrozen(a.lists) && Object.isFrozen(a.lists!.rejectedSenders));
    assert.equal(strings.size, 4); // the namespace, the creation time, @spam.example, x@spam.example
  });

  test('a Date creation time (the generated client\'s list) is held as the same text as the watch sends', () => {
    const held = holdRestriction({ metadata: { name: 'a', namespace: 'mail', creationTimestamp: new Date('2026-01-01T00:00:00Z') }, spec: { mailbox: 'a@example.com' } });
    assert.equal(held.metadata.creationTimestamp, '2026-01-01T00:00:00.000Z');
  });
});

describe('RestrictionIndex', () => {
  const lists = (index: RestrictionIndex, mailbox: string) => index.get(mailbox)?.lists;
  const older = holdRestriction(restriction('older', '2026-01-01T00:00:00Z', { mailbox: 'a@example.com', rejectedRecipients: ['@.'] }));
  const younger = holdRestriction(restriction('younger', '2026-02-01T00:00:00Z', { mailbox: 'a@example.com', allowedSenders: ['@example.com'] }));

  test('the oldest restriction of a mailbox decides, whatever the order they arrive in', () => {
    for (const order of [[older, younger], [younger, older]]) {
      const index = new RestrictionIndex();
      for (const r of order) index.set(r);
      assert.deepEqual(lists(index, 'a@example.com')?.rejectedRecipients, ['@.']);
      assert.equal(index.owner('a@example.com')?.metadata.name, 'older');
    }
  });

  test('on the same second the name breaks the tie, as in the operator', () => {
    const b = holdRestriction(restriction('b', '2026-01-01T00:00:00Z', { mailbox: 'x@example.com', rejectedSenders: ['@.'] }));
    const a = holdRestriction(restriction('a', '2026-01-01T00:00:00Z', { mailbox: 'x@example.com' }));
    const index = new RestrictionIndex();
    index.set(b);
    index.set(a);
    assert.equal(index.owner('x@example.com')?.metadata.name, 'a');
  });

  test('deleting the owner hands the mailbox to the next oldest; deleting the last removes it', () => {
    const index = new RestrictionIndex();
    index.set(older);
    index.set(younger);
    assert.deepEqual(index.delete(older), ['a@example.com']);
    assert.deepEqual(lists(index, 'a@example.com')?.allowedSenders, ['@example.com']);
    index.delete(younger);
    assert.equal(index.get('a@example.com'), undefined);
    assert.equal(index.size, 0);
  });

  test('an update that changes the mailbox moves it and reports both mailboxes changed', () => {
    const index = new RestrictionIndex();
    index.set(older);
    const moved = holdRestriction(restriction('older', '2026-01-01T00:00:00Z', { mailbox: 'b@example.com', rejectedRecipients: ['@.'] }));
    assert.deepEqual(index.set(moved, older).sort(), ['a@example.com', 'b@example.com']);
    assert.equal(index.get('a@example.com'), undefined);
    assert.deepEqual(lists(index, 'b@example.com')?.rejectedRecipients, ['@.']);
  });

  test('an update of the same object replaces it instead of adding a second one', () => {
    const index = new RestrictionIndex();
    index.set(older);
    const edited = holdRestriction(restriction('older', '2026-01-01T00:00:00Z', { mailbox: 'a@example.com' }));
    index.set(edited, older);
    index.delete(edited);
    assert.equal(index.get('a@example.com'), undefined);
  });

  test('an invalid owner leaves the mailbox without restrictions (owner InvalidSpec, the younger Conflict)', () => {
    const invalid = holdRestriction(restriction('invalid', '2025-12-01T00:00:00Z', { mailbox: 'a@example.com', rejectedSenders: ['not an entry'] }));
    const index = new RestrictionIndex();
    index.set(younger);
    index.set(invalid);
    assert.equal(index.get('a@example.com'), undefined);
  });

  test('restrictions written to a MailBackend are not served', () => {
    const sql = holdRestriction(restriction('sql', '2025-01-01T00:00:00Z', { mailbox: 'a@example.com', backendRef: { name: 'db' }, rejectedSenders: ['@.'] }));
    const index = new RestrictionIndex();
    assert.deepEqual(index.set(sql), []);
    index.set(younger);
    assert.deepEqual(lists(index, 'a@example.com')?.allowedSenders, ['@example.com']);
  });

  test('a restriction that gains a backendRef leaves the store', () => {
    const index = new RestrictionIndex();
    index.set(older);
    const sql = holdRestriction(restriction('older', '2026-01-01T00:00:00Z', { mailbox: 'a@example.com', backendRef: { name: 'db' } }));
    assert.deepEqual(index.set(sql, older), ['a@example.com']);
    assert.equal(index.get('a@example.com'), undefined);
  });
});
