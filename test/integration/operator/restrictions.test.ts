import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FINALIZER } from '../../../src/reconcilers/mail-user-restriction.ts';
import { BACKEND_KINDS, startBackend, type BackendFixture } from '../../harness/backends.ts';
import { eventually, resources, startOperatorEnv, type OperatorEnv } from '../../harness/operator-env.ts';

const empty = { allowedSenders: [], rejectedSenders: [], allowedRecipients: [], rejectedRecipients: [] };

describe('operator: MailUserRestriction into real stores', () => {
  let env: OperatorEnv;
  before(async () => {
    env = await startOperatorEnv();
  });
  after(async () => env?.stopAll());

  for (const kind of BACKEND_KINDS) {
    describe(kind, () => {
      let backend: BackendFixture;
      let r: ReturnType<typeof resources>;
      before(async () => {
        backend = await startBackend(kind);
        const ns = await env.namespace(kind);
        r = resources(env, ns);
        await r.createBackend('vmail', backend.spec, backend.password);
        await env.operator([ns], { resyncMs: 1_500 });
      });
      after(async () => backend?.stop());

      test('create, update and delete round trip (deletionPolicy Clear)', async () => {
        await backend.addMailbox('alice@example.com');
        await r.create('alice', { mailbox: 'alice@example.com', backendRef: { name: 'vmail' }, allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'] });
        const { obj } = await r.waitReason('alice', 'Applied');
        assert.ok(obj.metadata.finalizers?.includes(FINALIZER));
        assert.deepEqual(await backend.readLists('alice@example.com'), { ...empty, allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'] });

        await r.update('alice', { allowedRecipients: ['@example.com', '@.Partner.test'], rejectedSenders: ['@spam.test'] });
        await eventually('updated lists', async () => {
          const lists = await backend.readLists('alice@example.com');
          return lists?.allowedRecipients.length === 2 && lists.rejectedSenders[0] === '@spam.test' ? lists : undefined;
        });
        assert.deepEqual(await backend.readLists('alice@example.com'), { ...empty, allowedRecipients: ['@.partner.test', '@example.com'], rejectedRecipients: ['@.'], rejectedSenders: ['@spam.test'] });
        await r.waitReason('alice', 'Applied');

        await r.delete('alice');
        await eventually('object gone', async () => (await r.get('alice')) === undefined);
        assert.deepEqual(await backend.readLists('alice@example.com'), empty);
        const reasons = (await r.events('alice')).map((e) => e.reason);
        assert.ok(reasons.includes('Applied'), `events: ${reasons.join(', ')}`);
      });

      test('deletionPolicy Orphan leaves the lists in the store', async () => {
        await backend.addMailbox('orphan@example.com');
        await r.create('orphan', { mailbox: 'orphan@example.com', backendRef: { name: 'vmail' }, rejectedRecipients: ['@.'], deletionPolicy: 'Orphan' });
        await r.waitReason('orphan', 'Applied');
        await r.delete('orphan');
        await eventually('object gone', async () => (await r.get('orphan')) === undefined);
        assert.deepEqual(await backend.readLists('orphan@example.com'), { ...empty, rejectedRecipients: ['@.'] });
      });

      test('a missing mailbox is reported, then applied by itself once it exists', async () => {
        await r.create('later', { mailbox: 'later@example.com', backendRef: { name: 'vmail' }, rejectedSenders: ['@.'] });
        const { ready } = await r.waitReason('later', 'MailboxNotFound');
        assert.equal(ready.status, 'False');
        assert.equal(await backend.readLists('later@example.com'), undefined, 'the operator never creates mailboxes');
        await backend.addMailbox('later@example.com');
        await r.waitReason('later', 'Applied');
        assert.deepEqual(await backend.readLists('later@example.com'), { ...empty, rejectedSenders: ['@.'] });
      });

      test('a missing backend is reported', async () => {
        await r.create('nobackend', { mailbox: 'nb@example.com', backendRef: { name: 'nope' } });
        const { ready } = await r.waitReason('nobackend', 'BackendNotFound');
        assert.match(ready.message, /MailBackend .*\/nope not found/);
      });

      test('conflict: the oldest wins, the other takes over when it goes', async () => {
        await backend.addMailbox('shared@example.com');
        await r.create('first', { mailbox: 'shared@example.com', backendRef: { name: 'vmail' }, rejectedRecipients: ['@first.test'] });
        await r.waitReason('first', 'Applied');
        await r.create('second', { mailbox: 'Shared@Example.com', backendRef: { name: 'vmail' }, rejectedRecipients: ['@second.test'] });
        const { ready } = await r.waitReason('second', 'Conflict');
        assert.match(ready.message, /already managed by MailUserRestriction first/);
        assert.deepEqual((await backend.readLists('shared@example.com'))?.rejectedRecipients, ['@first.test']);
        await r.delete('first');
        await r.waitReason('second', 'Applied');
        assert.deepEqual((await backend.readLists('shared@example.com'))?.rejectedRecipients, ['@second.test']);
      });

      test('conflict across MailBackends: another MailBackend on the same store is the same target (oldest wins)', async () => {
        // The same database and table (LDAP: the same base DN), written differently.
        const again = backend.kind === 'openldap'
          ? { ...backend.spec, ldap: { ...(backend.spec.ldap as object), baseDn: String((backend.spec.ldap as { baseDn: string }).baseDn).toUpperCase().replaceAll(',', ', ') } }
          : { ...backend.spec, sql: { table: backend.kind === 'postgres' ? 'public.mailbox' : `vmail.mailbox` } };
        await r.createBackend('vmail-again', again, backend.password);
        await backend.addMailbox('twice@example.com');
        await r.create('cross-first', { mailbox: 'twice@example.com', backendRef: { name: 'vmail' }, rejectedRecipients: ['@first.test'] });
        await r.waitReason('cross-first', 'Applied');
        await r.create('cross-second', { mailbox: 'Twice@example.com', backendRef: { name: 'vmail-again' }, rejectedRecipients: ['@second.test'] });
        const { ready } = await r.waitReason('cross-second', 'Conflict');
        assert.match(ready.message, /already managed by MailUserRestriction [\w-]+\/cross-first through MailBackend [\w-]+\/vmail, which writes the same store as vmail-again/);
        // Several resyncs later the younger one still wrote nothing: no flip-flop.
        await new Promise((resolve) => setTimeout(resolve, 4_000));
        assert.deepEqual((await backend.readLists('twice@example.com'))?.rejectedRecipients, ['@first.test']);
        assert.equal((await r.waitReason('cross-first', 'Applied')).ready.status, 'True');
        await r.delete('cross-first');
        await r.waitReason('cross-second', 'Applied');
        assert.deepEqual((await backend.readLists('twice@example.com'))?.rejectedRecipients, ['@second.test']);
      });

      test('drift written directly into the store is corrected, with an Event', async () => {
        await backend.addMailbox('drift@example.com');
        await r.create('drift', { mailbox: 'drift@example.com', backendRef: { name: 'vmail' }, rejectedRecipients: ['@.'] });
        await r.waitReason('drift', 'Applied');
        await backend.writeList('drift@example.com', 'rejectedRecipients', ['@tampered.test']);
        await eventually('drift corrected', async () => (await backend.readLists('drift@example.com'))?.rejectedRecipients[0] === '@.');
        const events = await eventually('DriftCorrected event', async () => (await r.events('drift')).find((e) => e.reason === 'DriftCorrected'));
        assert.match(events.message ?? '', /rejectedRecipients of drift@example\.com differed/);
      });

      test('backend down, then back: reported and recovered by itself', async () => {
        await backend.addMailbox('outage@example.com');
        await backend.stopServer();
        try {
          await r.create('outage', { mailbox: 'outage@example.com', backendRef: { name: 'vmail' }, rejectedSenders: ['@outage.test'] });
          const { ready } = await r.waitReason('outage', 'BackendUnavailable');
          assert.equal(ready.status, 'False');
        } finally {
          await backend.startServer();
        }
        await r.waitReason('outage', 'Applied', 60_000);
        assert.deepEqual((await backend.readLists('outage@example.com'))?.rejectedSenders, ['@outage.test']);
      });

      test('Secret rotation: the new password is used without a restart', async () => {
        await backend.rotatePassword('rotated-Passw0rd');
        await r.setSecret('vmail-credentials', 'rotated-Passw0rd');
        await backend.addMailbox('rotate@example.com');
        await r.create('rotate', { mailbox: 'rotate@example.com', backendRef: { name: 'vmail' }, rejectedSenders: ['@rotated.test'] });
        await r.waitReason('rotate', 'Applied', 30_000);
        assert.deepEqual((await backend.readLists('rotate@example.com'))?.rejectedSenders, ['@rotated.test']);
      });
    });
  }
});
