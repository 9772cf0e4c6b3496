import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FINALIZER } from '../../../src/reconcilers/mail-user-restriction.ts';
import type { Operator } from '../../../src/operator/manager.ts';
import { BACKEND_KINDS, startBackend, type BackendFixture } from '../../harness/backends.ts';
import { eventually, resources, startOperatorEnv, type OperatorEnv } from '../../harness/operator-env.ts';
import { moreReconciles } from '../../harness/operator-outcomes.ts';

// managementPolicy Observe on a real API server and real stores: the operator reports whether
// the store matches the spec and what differs, in status and Events, and never writes; switching
// to Enforce writes exactly the difference once; switching back and forth writes nothing.
// "Nothing written" is read from the store itself: SQL counts every UPDATE of the row with a
// trigger, LDAP's entryCSN changes with every modify.

/** Resyncs come quickly, so "never, over several resyncs" is seen in a second or two. */
const RESYNC_MS = 400;

describe('operator: managementPolicy Observe', () => {
  let env: OperatorEnv;
  before(async () => {
    env = await startOperatorEnv();
  });
  after(async () => env?.stopAll());

  for (const kind of BACKEND_KINDS) {
    describe(kind, () => {
      let backend: BackendFixture;
      let r: ReturnType<typeof resources>;
      let operator: Operator;
      before(async () => {
        backend = await startBackend(kind);
        const ns = await env.namespace(`observe-${kind}`);
        r = resources(env, ns);
        await r.createBackend('vmail', backend.spec, backend.password);
        operator = await env.operator([ns], { resyncMs: RESYNC_MS });
      });
      after(async () => backend?.stop());

      /**
       * Waits until `n` more reconciles concluded `reason`: the operator has looked at the store that
       * often. Each test keeps one restriction in the namespace (deleted at its end), so they are its.
       */
      const reconciles = (reason: string, n: number): Promise<void> => moreReconciles(operator, reason, n);
      const eventsOf = async (name: string, reason: string) => (await r.events(name)).filter((e) => e.reason === reason);
      const isSql = kind !== 'openldap';

      test('a store that matches: Ready StoreMatches and a Normal Event, no finalizer, never written over resyncs, nor on delete', async () => {
        await backend.addMailbox('match@example.com');
        // Typed by hand: capitals, spacing and order differ from the spec, the meaning does not.
        await backend.writeRaw('match@example.com', 'rejectedSenders', isSql ? ' @Spam.TEST ,@other.test' : [' @Spam.TEST', '@other.test']);
        await backend.writeRaw('match@example.com', 'allowedRecipients', '@Example.com');
        const stored = await backend.readRaw('match@example.com');
        const mark = await backend.writeMark('match@example.com');

        await r.create('match', {
          mailbox: 'match@example.com',
          backendRef: { name: 'vmail' },
          managementPolicy: 'Observe',
          deletionPolicy: 'Clear',
          rejectedSenders: ['@other.test', '@spam.test'],
          allowedRecipients: ['@example.com'],
        });
        const { obj, ready } = await r.waitReason('match', 'StoreMatches');
        assert.equal(ready.status, 'True');
        assert.match(ready.message, /the lists of match@example\.com in vmail match the spec \(managementPolicy Observe: nothing is written\)/);
        assert.deepEqual(obj.metadata.finalizers ?? [], [], 'an observed restriction never writes, so it holds no finalizer');
        const event = await eventually('StoreMatches Event', async () => (await eventsOf('match', 'StoreMatches'))[0]);
        assert.equal(event.type, 'Normal');
        assert.match(event.message ?? '', /match the spec/);

        await reconciles('StoreMatches', 4);
        assert.equal(await backend.writeMark('match@example.com'), mark, 'no write under Observe');
        assert.equal((await eventsOf('match', 'StoreMatches')).length, 1, 'one Event for the transition, not one per resync');

        await r.delete('match');
        await eventually('object gone', async () => (await r.get('match')) === undefined);
        assert.equal(await backend.writeMark('match@example.com'), mark, 'deletionPolicy Clear clears nothing under Observe');
        assert.deepEqual(await backend.readRaw('match@example.com'), stored);
      });

      test('a store that differs: StoreDiffers names what enforcing would add and remove, in status and a Warning Event; hand edits are followed, never corrected', async () => {
        await backend.addMailbox('differs@example.com');
        await backend.writeList('differs@example.com', 'rejectedSenders', ['@keep.test', '@old.test']);
        let mark = await backend.writeMark('differs@example.com');

        await r.create('differs', {
          mailbox: 'differs@example.com',
          backendRef: { name: 'vmail' },
          managementPolicy: 'Observe',
          rejectedSenders: ['@keep.test', '@new.test'],
          rejectedRecipients: ['@.'],
        });
        const first = 'rejectedSenders +@new.test -@old.test; rejectedRecipients +@.';
        const { ready } = await r.waitReason('differs', 'StoreDiffers');
        assert.equal(ready.status, 'False');
        assert.equal(ready.message, `the lists of differs@example.com in vmail differ from the spec (managementPolicy Observe: nothing is written): ${first}`);
        const warning = await eventually('StoreDiffers Event', async () => (await eventsOf('differs', 'StoreDiffers'))[0]);
        assert.equal(warning.type, 'Warning');
        assert.equal(warning.message, ready.message);
        await reconciles('StoreDiffers', 4);
        assert.equal(await backend.writeMark('differs@example.com'), mark, 'no write under Observe');

        // Someone edits the store: still different, in another way. Status and a new Event say how.
        await backend.writeList('differs@example.com', 'rejectedSenders', ['@keep.test', '@new.test']);
        mark = await backend.writeMark('differs@example.com');
        const second = await eventually('the new difference in status', async () => {
          const now = await r.condition('differs');
          return now?.message.endsWith(': rejectedRecipients +@.') ? now : undefined;
        });
        assert.equal(second.reason, 'StoreDiffers');
        await eventually('a Warning naming the new difference', async () => (await eventsOf('differs', 'StoreDiffers')).some((e) => e.message === second.message));
        await reconciles('StoreDiffers', 4);
        assert.equal(await backend.writeMark('differs@example.com'), mark, 'the hand edit is reported, not corrected');
        assert.deepEqual((await backend.readLists('differs@example.com'))?.rejectedRecipients, []);

        // The store is made to match by hand: reported as such.
        await backend.writeList('differs@example.com', 'rejectedRecipients', ['@.']);
        mark = await backend.writeMark('differs@example.com');
        await r.waitReason('differs', 'StoreMatches');
        await eventually('StoreMatches Event', async () => (await eventsOf('differs', 'StoreMatches')).length === 1);
        await reconciles('StoreMatches', 3);
        assert.equal(await backend.writeMark('differs@example.com'), mark);

        await r.delete('differs');
        await eventually('object gone', async () => (await r.get('differs')) === undefined);
      });

      test('switching to Enforce writes exactly the difference, once: only the changed list, the stored text of what stays kept', async () => {
        await backend.addMailbox('enforce@example.com');
        await backend.writeRaw('enforce@example.com', 'rejectedSenders', isSql ? ' @Keep.TEST ,@old.test' : [' @Keep.TEST', '@old.test']);
        await backend.writeRaw('enforce@example.com', 'allowedRecipients', '@Example.COM');
        const untouched = (await backend.readRaw('enforce@example.com')).allowedRecipients;

        await r.create('enforce', {
          mailbox: 'enforce@example.com',
          backendRef: { name: 'vmail' },
          managementPolicy: 'Observe',
          deletionPolicy: 'Orphan',
          rejectedSenders: ['@keep.test', '@new.test'],
          allowedRecipients: ['@example.com'],
        });
        const { ready } = await r.waitReason('enforce', 'StoreDiffers');
        assert.match(ready.message, /: rejectedSenders \+@new\.test -@old\.test$/);
        const before = await backend.writeMark('enforce@example.com');

        await r.update('enforce', { managementPolicy: 'Enforce' });
        const applied = await r.waitReason('enforce', 'Applied');
        // The resync that follows the write may already have replaced the status message with
        // "match the spec"; the Event of the transition keeps what the write said.
        const appliedEvents = await eventsOf('enforce', 'Applied');
        assert.ok(appliedEvents.some((e) => /the lists of enforce@example\.com were written to vmail/.test(e.message ?? '')), `Applied events: ${appliedEvents.map((e) => e.message).join(' | ')}`);
        assert.ok(applied.obj.metadata.finalizers?.includes(FINALIZER), 'enforcing writes, so the finalizer goes on');
        const afterWrite = await backend.writeMark('enforce@example.com');
        assert.notEqual(afterWrite, before, 'the difference was written');
        if (isSql) assert.equal(Number(afterWrite) - Number(before), 1, 'in one UPDATE');
        const raw = await backend.readRaw('enforce@example.com');
        assert.deepEqual(raw.rejectedSenders, isSql ? ' @Keep.TEST ,@new.test' : [' @Keep.TEST', '@new.test'], 'the entry that stays keeps its stored text');
        assert.deepEqual(raw.allowedRecipients, untouched, 'a list that matched by meaning is not written');

        await reconciles('Applied', 4);
        assert.equal(await backend.writeMark('enforce@example.com'), afterWrite, 'written once, never again');
        assert.equal((await r.events('enforce')).filter((e) => e.reason === 'DriftCorrected').length, 0);

        await r.delete('enforce');
        await eventually('object gone', async () => (await r.get('enforce')) === undefined);
      });

      test('switching back and forth writes nothing while the lists in the spec stay the same', async () => {
        await backend.addMailbox('flip@example.com');
        await r.create('flip', { mailbox: 'flip@example.com', backendRef: { name: 'vmail' }, deletionPolicy: 'Clear', rejectedSenders: ['@flip.test'], allowedRecipients: ['@example.com'] });
        await r.waitReason('flip', 'Applied');
        const mark = await backend.writeMark('flip@example.com');

        for (let round = 0; round < 3; round++) {
          await r.update('flip', { managementPolicy: 'Observe' });
          await r.waitReason('flip', 'StoreMatches');
          await reconciles('StoreMatches', 2);
          await r.update('flip', { managementPolicy: 'Enforce' });
          await r.waitReason('flip', 'Applied');
          await reconciles('Applied', 2);
        }
        assert.equal(await backend.writeMark('flip@example.com'), mark, 'no write without a change of the lists');
        const reasons = (await r.events('flip')).map((e) => e.reason);
        assert.ok(reasons.includes('StoreMatches') && reasons.includes('Applied'), `events: ${reasons.join(', ')}`);
        assert.ok(!reasons.includes('DriftCorrected'), `events: ${reasons.join(', ')}`);

        // Deleted while observed: the finalizer Enforce put on lets go without clearing.
        await r.update('flip', { managementPolicy: 'Observe' });
        await r.waitReason('flip', 'StoreMatches');
        await r.delete('flip');
        await eventually('object gone', async () => (await r.get('flip')) === undefined);
        assert.equal(await backend.writeMark('flip@example.com'), mark);
        assert.deepEqual((await backend.readLists('flip@example.com'))?.rejectedSenders, ['@flip.test']);
      });
    });
  }
});
