import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startBackend, type BackendFixture } from '../../harness/backends.ts';
import { eventually, resources, startOperatorEnv, type OperatorEnv } from '../../harness/operator-env.ts';

/**
 * #25 item 3 through an LDAP alias, on a real API server and a real OpenLDAP: a user entry is
 * found by its `mail` and by each `shadowAddress`, so restrictions naming two of its addresses
 * write the same attributes. The store resolves each address to the entry's DN; the oldest
 * restriction wins, the younger reports Conflict and writes nothing (no flip at every resync).
 */
describe('operator: restrictions on two addresses of one LDAP entry', () => {
  let env: OperatorEnv;
  let ldap: BackendFixture;
  let r: ReturnType<typeof resources>;
  before(async () => {
    env = await startOperatorEnv();
    ldap = await startBackend('openldap');
    const ns = await env.namespace('alias');
    r = resources(env, ns);
    await r.createBackend('vmail', ldap.spec, ldap.password);
    // The same directory and base DN, spelled differently: the same store.
    const spec = ldap.spec as { ldap: { baseDn: string } };
    await r.createBackend('vmail-again', { ...spec, ldap: { ...spec.ldap, baseDn: spec.ldap.baseDn.toUpperCase().replaceAll(',', ', ') } }, ldap.password);
    await env.operator([ns], { resyncMs: 1_500 });
  });
  after(async () => {
    await env?.stopAll();
    await ldap?.stop();
  });

  // Restrictions created in the same second are ordered by name: the names below follow creation.

  /** Waits out several resyncs, so a flip between the two would have happened. */
  const resyncs = () => new Promise((resolve) => setTimeout(resolve, 5_000));

  test('primary address first, shadowAddress second: the younger is Conflict, writes nothing, clears nothing, and takes over when the older goes', async () => {
    await ldap.addMailbox('alice@example.com', ['al@example.com', 'a.smith@example.com']);
    await r.create('a-primary', { mailbox: 'alice@example.com', backendRef: { name: 'vmail' }, rejectedRecipients: ['@first.test'] });
    await r.waitReason('a-primary', 'Applied');
    await r.create('b-alias', { mailbox: 'Al@Example.com', backendRef: { name: 'vmail' }, rejectedRecipients: ['@second.test'], deletionPolicy: 'Clear' });
    const { ready } = await r.waitReason('b-alias', 'Conflict');
    assert.match(ready.message, /mailbox Al@Example\.com in MailBackend vmail is an address of the same directory entry as alice@example\.com, whose lists MailUserRestriction [\w-]+\/a-primary already manages through MailBackend [\w-]+\/vmail \(the oldest wins\); this one writes nothing/);
    const mark = await ldap.writeMark('alice@example.com');
    await resyncs();
    assert.equal(await ldap.writeMark('alice@example.com'), mark, 'the entry was not written again (entryCSN unchanged)');
    assert.deepEqual((await ldap.readLists('alice@example.com'))?.rejectedRecipients, ['@first.test']);
    assert.equal((await r.waitReason('b-alias', 'Conflict')).ready.status, 'False');
    assert.ok(!(await r.get('b-alias'))?.metadata.finalizers?.length, 'a restriction in conflict holds no finalizer');

    await r.delete('a-primary');
    await r.waitReason('b-alias', 'Applied');
    assert.deepEqual((await ldap.readLists('alice@example.com'))?.rejectedRecipients, ['@second.test']);
    await r.delete('b-alias');
    await eventually('alias gone', async () => (await r.get('b-alias')) === undefined);
    assert.deepEqual((await ldap.readLists('alice@example.com'))?.rejectedRecipients, [], 'the owner that goes clears');
  });

  test('shadowAddress first, primary address second through another MailBackend of the same directory', async () => {
    await ldap.addMailbox('bob@example.com', ['robert@example.com']);
    await r.create('c-shadow-first', { mailbox: 'robert@example.com', backendRef: { name: 'vmail' }, rejectedSenders: ['@first.test'] });
    await r.waitReason('c-shadow-first', 'Applied');
    await r.create('d-primary-second', { mailbox: 'bob@example.com', backendRef: { name: 'vmail-again' }, rejectedSenders: ['@second.test'] });
    const { ready } = await r.waitReason('d-primary-second', 'Conflict');
    assert.match(ready.message, /same directory entry as robert@example\.com, whose lists MailUserRestriction [\w-]+\/c-shadow-first already manages through MailBackend [\w-]+\/vmail /);
    await resyncs();
    assert.deepEqual((await ldap.readLists('bob@example.com'))?.rejectedSenders, ['@first.test']);
    assert.equal((await r.waitReason('c-shadow-first', 'Applied')).ready.status, 'True');
  });

  test('a younger restriction that once owned the entry, now in conflict, clears nothing when deleted', async () => {
    // The older one names a MailBackend that does not exist yet, so the younger writes first.
    await ldap.addMailbox('carol@example.com', ['caro@example.com']);
    await r.create('older', { mailbox: 'carol@example.com', backendRef: { name: 'vmail-later' }, rejectedRecipients: ['@older.test'] });
    await r.waitReason('older', 'BackendNotFound');
    await r.create('younger', { mailbox: 'caro@example.com', backendRef: { name: 'vmail' }, rejectedRecipients: ['@younger.test'], deletionPolicy: 'Clear' });
    await r.waitReason('younger', 'Applied');
    await r.createBackend('vmail-later', ldap.spec, ldap.password);
    await r.waitReason('older', 'Applied');
    await r.waitReason('younger', 'Conflict');
    // A write of the younger's still in flight when the older took over is corrected by the older's resync.
    await eventually("the older one's lists", async () => (await ldap.readLists('carol@example.com'))?.rejectedRecipients.join() === '@older.test');
    await r.delete('younger');
    await eventually('younger gone', async () => (await r.get('younger')) === undefined);
    assert.deepEqual((await ldap.readLists('carol@example.com'))?.rejectedRecipients, ['@older.test'], "the older one's lists are still there");
    const events = (await r.events('younger')).map((e) => `${e.reason}: ${e.message}`);
    assert.ok(events.some((e) => /^Conflict: the lists of caro@example\.com were left as they are: MailUserRestriction [\w-]+\/older manages them/.test(e)), events.join('\n'));
  });

  test('an address that is one entry\'s shadowAddress and another entry\'s mail reaches the latter: no conflict', async () => {
    // dave's entry lists dan@ as a shadowAddress, but dan@ is its own entry's mail: writes to dan@ go there.
    await ldap.addMailbox('dan@example.com');
    await ldap.addMailbox('dave@example.com', ['dan@example.com']);
    await r.create('dan', { mailbox: 'dan@example.com', backendRef: { name: 'vmail' }, rejectedRecipients: ['@dan.test'] });
    await r.waitReason('dan', 'Applied');
    await r.create('dave', { mailbox: 'dave@example.com', backendRef: { name: 'vmail' }, rejectedRecipients: ['@dave.test'] });
    await r.waitReason('dave', 'Applied');
    assert.deepEqual((await ldap.readLists('dan@example.com'))?.rejectedRecipients, ['@dan.test']);
    assert.deepEqual((await ldap.readLists('dave@example.com'))?.rejectedRecipients, ['@dave.test']);
  });

  test('tenancy through an alias: a shadowAddress in a tenant\'s domain does not reach the lists of an account of another domain', async () => {
    // A MailBackend of the same directory for a tenant that owns tenant-b.test only.
    await r.createBackend('tenant-b', { ...(ldap.spec as object), domains: ['tenant-b.test'] }, ldap.password);
    await ldap.addMailbox('victim@example.com', ['victim@tenant-b.test']);
    await ldap.addMailbox('own@tenant-b.test', ['owner@tenant-b.test']);
    const mark = await ldap.writeMark('victim@example.com');
    await r.create('through-alias', { mailbox: 'victim@tenant-b.test', backendRef: { name: 'tenant-b' }, rejectedSenders: ['@tenant.test'] });
    const { ready } = await r.waitReason('through-alias', 'OutsideDomains');
    assert.match(ready.message, /mailbox victim@tenant-b\.test is an address of the directory entry of victim@example\.com, which is outside the domains of MailBackend tenant-b \(tenant-b\.test\); nothing is written or cleared/);
    // Its own account, reached through its own shadowAddress, the tenant may manage.
    await r.create('own-alias', { mailbox: 'owner@tenant-b.test', backendRef: { name: 'tenant-b' }, rejectedSenders: ['@own.test'] });
    await r.waitReason('own-alias', 'Applied');
    assert.deepEqual((await ldap.readLists('own@tenant-b.test'))?.rejectedSenders, ['@own.test']);
    assert.equal(await ldap.writeMark('victim@example.com'), mark, 'the other domain\'s entry was never written');
    assert.deepEqual((await ldap.readLists('victim@example.com'))?.rejectedSenders, []);
    assert.ok(!(await r.get('through-alias'))?.metadata.finalizers?.length, 'refused before any finalizer');
  });
});
