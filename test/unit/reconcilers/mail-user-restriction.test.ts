import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Secret } from '@kubernetes/client-node';
import { FINALIZER, Message, MailUserRestrictionReconciler, Reason, type ServingDaemon } from '../../../src/reconcilers/mail-user-restriction.ts';
import { RetryError } from '../../../src/reconcilers/status.ts';
import type { BackendObject, RestrictionObject } from '../../../src/reconcilers/types.ts';
import { StoreError } from '../../../src/stores/store.ts';
import { UNREACHABLE } from '../../../src/reconcilers/status-text.ts';
import { outsideDomainsMessage } from '../../../src/api/backend-domains.ts';
import { FakeStore, lister, NOW, Recorder, type RecordedEvent } from './fakes.ts';

const API = 'mailwarden.io/v1alpha1';
const MAILBOX = 'alice@example.com';

function backend(spec: Record<string, unknown> = { url: 'postgres://vmail@127.0.0.1:5432/vmail', credentialsSecretRef: { name: 'pg' } }): BackendObject {
  return { apiVersion: API, kind: 'MailBackend', metadata: { namespace: 'mail', name: 'pg', generation: 1 }, spec } as BackendObject;
}

const secret: V1Secret = { metadata: { namespace: 'mail', name: 'pg' }, stringData: { password: 'pw' } };

interface RestrictionFixture {
  name?: string;
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  finalizers?: string[];
  created?: string;
  deleting?: boolean;
  uid?: string;
  resourceVersion?: string;
}

function restriction(f: RestrictionFixture = {}): RestrictionObject {
  return {
    apiVersion: API,
    kind: 'MailUserRestriction',
    metadata: {
      namespace: 'mail',
      name: f.name ?? 'alice',
      generation: 2,
      uid: f.uid ?? `uid-${f.name ?? 'alice'}`,
      resourceVersion: f.resourceVersion ?? '7',
      creationTimestamp: f.created ?? '2026-01-01T00:00:00Z',
      finalizers: f.finalizers ?? [FINALIZER],
      ...(f.deleting ? { deletionTimestamp: '2026-12-04T14:59:00Z' } : {}),
    },
    spec: f.spec ?? { mailbox: MAILBOX, backendRef: { name: 'pg' }, rejectedSenders: ['spam@bad.example'] },
    status: f.status,
  } as RestrictionObject;
}

/** A status that says generation 2 was applied (as the previous reconcile wrote it). */
const applied = (message = Message.written(MAILBOX, 'pg')) => ({
  observedGeneration: 2,
  backend: 'pg',
  conditions: [{ type: 'Ready', status: 'True', reason: Reason.Applied, message, lastTransitionTime: '2026-12-04T14:00:00Z', observedGeneration: 2 }],
});

const STORED = { rejectedSenders: ['spam@bad.example'] };

interface Case {
  readonly name: string;
  readonly restrictions: RestrictionObject[];
  readonly backends?: BackendObject[];
  readonly store?: FakeStore;
  /** PolicyDaemons with store Kubernetes in the namespace; undefined: the operator manages none. */
  readonly daemons?: ServingDaemon[];
  /** setFinalizers answers this (false: the object is gone). */
  readonly finalizerPresent?: boolean;
  /** The object as the API server has it (null: gone); default the cached one. */
  readonly live?: RestrictionObject | null;
  readonly expect: {
    /** Ready reason and status of the one status patch; undefined: no patch. */
    readonly ready?: { status: 'True' | 'False'; reason: string; message?: string };
    readonly events?: Pick<RecordedEvent, 'type' | 'reason'>[];
    readonly writes?: string[];
    readonly result?: { requeueAfterMs?: number } | undefined;
    readonly retry?: boolean;
    readonly finalizers?: string[][];
    /** The resourceVersion each finalizer patch was made at. */
    readonly finalizerVersions?: string[];
    /** The mailboxes the store's entryOf was asked for, in order. */
    readonly entryLookups?: string[];
    readonly debug?: RegExp;
    readonly drift?: number;
  };
}

const cases: Case[] = [
  {
    name: 'a restriction gone from the cache: nothing to do, said at debug level',
    restrictions: [],
    expect: { debug: /nothing to do/ },
  },
  {
    name: 'an invalid spec: InvalidSpec with the issues, a Warning, nothing written',
    restrictions: [restriction({ spec: { mailbox: 'not-an-address', backendRef: { name: 'pg' } } })],
    expect: { ready: { status: 'False', reason: Reason.InvalidSpec }, events: [{ type: 'Warning', reason: Reason.InvalidSpec }], writes: [], debug: /not synced/ },
  },
  {
    name: 'no backendRef, a ready PolicyDaemon with store Kubernetes in the namespace: Served by it (not by one not ready), nothing written, no finalizer',
    restrictions: [restriction({ spec: { mailbox: MAILBOX }, finalizers: [] })],
    daemons: [{ name: 'policyd', ready: true }, { name: 'starting', ready: false }],
    expect: { ready: { status: 'True', reason: Reason.Served, message: Message.servedBy(MAILBOX, ['policyd']) }, events: [{ type: 'Normal', reason: Reason.Served }], writes: [], finalizers: [] },
  },
  {
    name: 'no backendRef and no PolicyDaemon to serve it: NotServed',
    restrictions: [restriction({ spec: { mailbox: MAILBOX }, finalizers: [] })],
    daemons: [],
    expect: { ready: { status: 'False', reason: Reason.NotServed, message: Message.notServed('mail') }, events: [{ type: 'Warning', reason: Reason.NotServed }], debug: /not synced/ },
  },
  {
    name: 'no backendRef, PolicyDaemons with store Kubernetes but none ready (no daemon has listed the restrictions): NotServed, naming them',
    restrictions: [restriction({ spec: { mailbox: MAILBOX }, finalizers: [] })],
    daemons: [{ name: 'policyd', ready: false }],
    expect: { ready: { status: 'False', reason: Reason.NotServed, message: Message.notReady('mail', ['policyd']) }, events: [{ type: 'Warning', reason: Reason.NotServed }], writes: [], finalizers: [], debug: /not synced/ },
  },
  {
    name: 'no backendRef, PolicyDaemons not managed by this operator: Served to whoever reads them',
    restrictions: [restriction({ spec: { mailbox: MAILBOX }, finalizers: [] })],
    expect: { ready: { status: 'True', reason: Reason.Served, message: Message.servedToReaders(MAILBOX, 'mail') } },
  },
  {
    name: 'no backendRef, an older one on the same mailbox: Conflict, ignored by the daemons',
    restrictions: [restriction({ name: 'young', spec: { mailbox: MAILBOX }, created: '2026-06-01T00:00:00Z' }), restriction({ name: 'old', spec: { mailbox: MAILBOX } })],
    daemons: [{ name: 'policyd', ready: true }],
    expect: { ready: { status: 'False', reason: Reason.Conflict, message: Message.unboundConflict(MAILBOX, 'old') }, debug: /not synced/ },
  },
  {
    name: 'the MailBackend does not exist: BackendNotFound',
    restrictions: [restriction()],
    backends: [],
    expect: { ready: { status: 'False', reason: Reason.BackendNotFound, message: Message.backendNotFound('mail', 'pg') }, events: [{ type: 'Warning', reason: Reason.BackendNotFound }], debug: /not synced/ },
  },
  {
    name: 'an older restriction owns the mailbox: Conflict, nothing written',
    restrictions: [restriction({ name: 'young', created: '2026-06-01T00:00:00Z' }), restriction({ name: 'old', created: '2026-01-01T00:00:00Z' })],
    expect: { ready: { status: 'False', reason: Reason.Conflict, message: Message.conflict(MAILBOX, 'pg', 'old') }, events: [{ type: 'Warning', reason: Reason.Conflict }], writes: [], debug: /not synced/ },
  },
  {
    name: 'an older restriction names another address of the same stored entry (an LDAP shadowAddress): Conflict, nothing written, no finalizer',
    restrictions: [
      restriction({ name: 'young', created: '2026-06-01T00:00:00Z', finalizers: [], spec: { mailbox: 'al@example.com', backendRef: { name: 'pg' }, rejectedSenders: ['@.'] } }),
      restriction({ name: 'old', created: '2026-01-01T00:00:00Z' }),
    ],
    store: new FakeStore({ [MAILBOX]: STORED }, { 'al@example.com': MAILBOX }),
    expect: {
      ready: { status: 'False', reason: Reason.Conflict, message: Message.sameEntry('al@example.com', 'pg', MAILBOX, 'mail/old', 'mail/pg') },
      writes: [],
      finalizers: [],
      debug: /not synced/,
    },
  },
  {
    name: 'the younger of two addresses of one entry, deleted under Clear after it once wrote: the older owner keeps its lists',
    restrictions: [
      restriction({ name: 'young', deleting: true, created: '2026-06-01T00:00:00Z', spec: { mailbox: 'al@example.com', backendRef: { name: 'pg' } } }),
      restriction({ name: 'old', created: '2026-01-01T00:00:00Z' }),
    ],
    store: new FakeStore({ [MAILBOX]: STORED }, { 'al@example.com': MAILBOX }),
    expect: { writes: [], events: [{ type: 'Normal', reason: Reason.Conflict }], finalizers: [[]] },
  },
  {
    name: 'first reconcile: the finalizer goes on before the lists are written, then Applied',
    restrictions: [restriction({ finalizers: [] })],
    store: new FakeStore({ [MAILBOX]: {} }),
    expect: {
      finalizers: [[FINALIZER]],
      writes: [`apply ${MAILBOX}`],
      ready: { status: 'True', reason: Reason.Applied, message: Message.written(MAILBOX, 'pg') },
      events: [{ type: 'Normal', reason: Reason.Applied }],
    },
  },
  {
    name: 'deleted before the finalizer went on: nothing written, no status',
    restrictions: [restriction({ finalizers: [] })],
    store: new FakeStore({ [MAILBOX]: {} }),
    finalizerPresent: false,
    expect: { finalizers: [[FINALIZER]], writes: [], debug: /before its finalizer/ },
  },
  {
    name: 'the store already matches and status says so: no write, no status patch',
    restrictions: [restriction({ status: applied() })],
    store: new FakeStore({ [MAILBOX]: STORED }),
    expect: { writes: [], events: [] },
  },
  {
    name: 'the store was changed by hand: rewritten, DriftCorrected, one Warning and the drift counted',
    restrictions: [restriction({ status: applied() })],
    store: new FakeStore({ [MAILBOX]: { rejectedSenders: ['someone@else.example'] } }),
    expect: {
      writes: [`apply ${MAILBOX}`],
      ready: { status: 'True', reason: Reason.DriftCorrected, message: Message.drifted('rejectedSenders', MAILBOX) },
      events: [{ type: 'Warning', reason: Reason.DriftCorrected }],
      drift: 1,
    },
  },
  {
    name: 'the mailbox does not exist yet: MailboxNotFound, looked at again later',
    restrictions: [restriction()],
    store: new FakeStore({}),
    expect: { ready: { status: 'False', reason: Reason.MailboxNotFound }, events: [{ type: 'Warning', reason: Reason.MailboxNotFound }], result: { requeueAfterMs: 1_000 } },
  },
  {
    name: 'a value the store cannot hold: InvalidSpec, not retried',
    restrictions: [restriction()],
    store: Object.assign(new FakeStore({ [MAILBOX]: {} }), { fail: { apply: new StoreError('InvalidValue', 'rejectedsenders is longer than the column') } }),
    expect: { ready: { status: 'False', reason: Reason.InvalidSpec, message: 'rejectedsenders is longer than the column' }, events: [{ type: 'Warning', reason: Reason.InvalidSpec }] },
  },
  {
    name: 'the store is down: BackendUnavailable written, then retried with backoff',
    restrictions: [restriction()],
    store: Object.assign(new FakeStore({ [MAILBOX]: {} }), { fail: { apply: new StoreError('Unavailable', 'connection refused') } }),
    // Never the raw error: for a URL naming any host, status would tell refused from filtered (#25).
    expect: { ready: { status: 'False', reason: Reason.BackendUnavailable, message: Message.backendFailed('pg', UNREACHABLE) }, events: [{ type: 'Warning', reason: Reason.BackendUnavailable }], retry: true },
  },
  {
    name: 'a mailbox outside the domains of its MailBackend: OutsideDomains, no finalizer, nothing written',
    restrictions: [restriction({ finalizers: [], spec: { mailbox: 'postmaster@other.org', backendRef: { name: 'pg' }, rejectedSenders: ['@.'] } })],
    backends: [backend({ url: 'postgres://vmail@127.0.0.1:5432/vmail', domains: ['example.com'] })],
    store: new FakeStore({ 'postmaster@other.org': STORED }),
    expect: { ready: { status: 'False', reason: Reason.OutsideDomains, message: outsideDomainsMessage('postmaster@other.org', 'pg', ['example.com']) }, writes: [], finalizers: [], events: [{ type: 'Warning', reason: Reason.OutsideDomains }] },
  },
  {
    name: 'a mailbox of one of its domains (any case, IDN in either form) is written',
    restrictions: [restriction({ spec: { mailbox: 'Alice@Example.COM', backendRef: { name: 'pg' }, rejectedSenders: ['spam@bad.example'] } })],
    backends: [backend({ url: 'postgres://vmail@127.0.0.1:5432/vmail', credentialsSecretRef: { name: 'pg' }, domains: ['other.org', 'example.com'] })],
    store: new FakeStore({ 'Alice@Example.COM': {} }),
    expect: { ready: { status: 'True', reason: Reason.Applied } },
  },
  {
    name: 'with domains, the stored entry is looked up once per reconcile: the tenancy and the alias checks share it',
    restrictions: [restriction()],
    backends: [backend({ url: 'postgres://vmail@127.0.0.1:5432/vmail', credentialsSecretRef: { name: 'pg' }, domains: ['example.com'] })],
    store: new FakeStore({ [MAILBOX]: {} }, { 'al@example.com': MAILBOX }),
    expect: { ready: { status: 'True', reason: Reason.Applied }, entryLookups: [MAILBOX] },
  },
  {
    name: 'deleting a restriction outside the domains clears nothing (create + delete must not wipe lists)',
    restrictions: [restriction({ deleting: true, spec: { mailbox: 'postmaster@other.org', backendRef: { name: 'pg' } } })],
    backends: [backend({ url: 'postgres://vmail@127.0.0.1:5432/vmail', domains: ['example.com'] })],
    store: new FakeStore({ 'postmaster@other.org': STORED }),
    expect: { writes: [], events: [{ type: 'Warning', reason: Reason.OutsideDomains }], finalizers: [[]] },
  },
  {
    name: "the backend's Secret is missing: BackendUnavailable, retried",
    restrictions: [restriction()],
    backends: [backend({ url: 'postgres://vmail@127.0.0.1:5432/vmail', credentialsSecretRef: { name: 'absent' } })],
    expect: { ready: { status: 'False', reason: Reason.BackendUnavailable, message: Message.backendFailed('pg', 'Secret mail/absent not found') }, retry: true },
  },
  {
    name: 'an invalid MailBackend: BackendUnavailable, not retried (its fix queues the restriction)',
    restrictions: [restriction()],
    backends: [backend({ url: 'gopher://x' })],
    expect: { ready: { status: 'False', reason: Reason.BackendUnavailable }, writes: [], debug: /not synced/ },
  },
  {
    name: 'a status with the retired Synced condition: rewritten once without it',
    restrictions: [
      restriction({
        status: { ...applied(), conditions: [...applied().conditions, { type: 'Synced', status: 'True', reason: 'Applied', message: 'm', lastTransitionTime: '2026-12-04T14:00:00Z' }] },
      }),
    ],
    store: new FakeStore({ [MAILBOX]: STORED }),
    expect: { ready: { status: 'True', reason: Reason.Applied }, writes: [], events: [] },
  },
  {
    name: 'deleted, owner, deletionPolicy Clear: the lists are cleared, then the finalizer goes',
    restrictions: [restriction({ deleting: true })],
    store: new FakeStore({ [MAILBOX]: STORED }),
    expect: { writes: [`clear ${MAILBOX}`], events: [{ type: 'Normal', reason: Reason.Cleared }], finalizers: [[]] },
  },
  {
    name: 'deleted under deletionPolicy Orphan: the lists stay, the finalizer goes',
    restrictions: [restriction({ deleting: true, spec: { mailbox: MAILBOX, backendRef: { name: 'pg' }, deletionPolicy: 'Orphan' } })],
    store: new FakeStore({ [MAILBOX]: STORED }),
    expect: { writes: [], events: [], finalizers: [[]], debug: /lists left as they are/ },
  },
  {
    name: 'deleted while the store is down: a Warning, the finalizer kept, retried',
    restrictions: [restriction({ deleting: true })],
    store: Object.assign(new FakeStore({ [MAILBOX]: STORED }), { fail: { clear: new StoreError('Unavailable', 'connection refused') } }),
    expect: { writes: [], events: [{ type: 'Warning', reason: Reason.BackendUnavailable }], finalizers: [], retry: true },
  },
  {
    name: 'deleted after its MailBackend: a Warning that nothing could be cleared, the finalizer goes',
    restrictions: [restriction({ deleting: true })],
    backends: [],
    expect: { events: [{ type: 'Warning', reason: Reason.BackendNotFound }], finalizers: [[]] },
  },
  {
    name: 'deleted without our finalizer: nothing to clean up',
    restrictions: [restriction({ deleting: true, finalizers: ['other.io/x'] })],
    store: new FakeStore({ [MAILBOX]: STORED }),
    expect: { writes: [], events: [], finalizers: [], debug: /without our finalizer/ },
  },
  {
    // The race behind a takeover that lost its lists: a reconcile queued while the owner let go
    // ran on the cached copy from before; the younger restriction had already taken over and
    // written, and that copy's clear wiped it.
    name: 'deleted, but the cached copy is from before its finalizer went (the API server has it no more, the younger one took over): nothing cleared, no patch',
    restrictions: [restriction({ deleting: true }), restriction({ name: 'young', created: '2026-06-01T00:00:00Z' })],
    live: null,
    store: new FakeStore({ [MAILBOX]: STORED }),
    expect: { writes: [], events: [], finalizers: [], debug: /already finalized/ },
  },
  {
    name: 'deleted, and created again under the same name since (the API server has another object): the old copy clears nothing',
    restrictions: [restriction({ deleting: true })],
    live: restriction({ uid: 'uid-alice-again', resourceVersion: '12' }),
    store: new FakeStore({ [MAILBOX]: STORED }),
    expect: { writes: [], events: [], finalizers: [], debug: /already finalized/ },
  },
  {
    name: 'deleted, the cached copy says Clear but the API server\'s says Orphan (changed while the delete waited): the lists stay, the finalizer goes at its resourceVersion',
    restrictions: [restriction({ deleting: true })],
    live: restriction({ deleting: true, resourceVersion: '9', spec: { mailbox: MAILBOX, backendRef: { name: 'pg' }, deletionPolicy: 'Orphan' } }),
    store: new FakeStore({ [MAILBOX]: STORED }),
    expect: { writes: [], events: [], finalizers: [[]], finalizerVersions: ['9'], debug: /lists left as they are/ },
  },
  {
    name: 'deleted, the cached copy says Orphan but the API server\'s says Clear: cleared',
    restrictions: [restriction({ deleting: true, spec: { mailbox: MAILBOX, backendRef: { name: 'pg' }, deletionPolicy: 'Orphan' } })],
    live: restriction({ deleting: true, resourceVersion: '9' }),
    store: new FakeStore({ [MAILBOX]: STORED }),
    expect: { writes: [`clear ${MAILBOX}`], events: [{ type: 'Normal', reason: Reason.Cleared }], finalizers: [[]], finalizerVersions: ['9'] },
  },
  {
    name: 'deleted, not the owner (an older restriction names the mailbox): the lists stay',
    restrictions: [restriction({ name: 'young', deleting: true, created: '2026-06-01T00:00:00Z' }), restriction({ name: 'old' })],
    store: new FakeStore({ [MAILBOX]: STORED }),
    expect: { writes: [], events: [], finalizers: [[]], debug: /not the owner/ },
  },
];

describe('MailUserRestrictionReconciler', () => {
  for (const c of cases) {
    test(c.name, async () => {
      const recorder = new Recorder();
      const store = c.store ?? new FakeStore({ [MAILBOX]: {} });
      const finalizers: string[][] = [];
      const finalizerVersions: string[] = [];
      let drift = 0;
      const reconciler = new MailUserRestrictionReconciler({
        restrictions: lister(...c.restrictions),
        backends: lister(...(c.backends ?? [backend()])),
        secrets: lister(secret),
        connections: { get: async () => store },
        client: {
          setFinalizers: async (_kind, _ns, _name, list, resourceVersion) => {
            finalizers.push(list);
            finalizerVersions.push(resourceVersion);
            return c.finalizerPresent ?? true;
          },
          read: async (_kind, namespace, name) => (c.live === undefined ? c.restrictions.find((r) => r.metadata.namespace === namespace && r.metadata.name === name) : (c.live ?? undefined)),
        },
        status: recorder.statusWriter('MailUserRestriction'),
        logger: recorder.logger,
        mailboxRetryMs: 1_000,
        onDriftCorrected: () => drift++,
        kubernetesDaemons: c.daemons === undefined ? undefined : () => c.daemons!,
      });
      const key = `mail/${c.restrictions[0]?.metadata.name ?? 'alice'}`;
      let result: unknown;
      let error: unknown;
      try {
        result = await reconciler.reconcile(key);
      } catch (e) {
        error = e;
      }

      const e = c.expect;
      if (e.retry) assert.ok(error instanceof RetryError, `expected a RetryError, got ${String(error)}`);
      else assert.equal(error, undefined);
      if (!e.retry) assert.deepEqual(result, e.result);
      if (e.ready === undefined) assert.equal(recorder.onlyPatch(), undefined, 'no status patch');
      else {
        const ready = recorder.ready();
        assert.equal(ready?.status, e.ready.status);
        assert.equal(ready?.reason, e.ready.reason);
        if (e.ready.message !== undefined) assert.equal(ready?.message, e.ready.message);
        const status = recorder.onlyPatch()!;
        assert.equal(status.observedGeneration, 2);
        assert.deepEqual((status.conditions as { type: string }[]).map((x) => x.type), ['Ready'], 'Ready only: Synced is retired');
        assert.equal(status.backend, c.restrictions[0]?.spec.backendRef?.name ?? null);
        if (e.ready.status === 'True') assert.equal(status.lastSyncTime, NOW.toISOString());
        else assert.equal(status.lastSyncTime, undefined);
      }
      if (e.events !== undefined) assert.deepEqual(recorder.events.map(({ type, reason }) => ({ type, reason })), e.events);
      if (e.writes !== undefined) assert.deepEqual(store.writes, e.writes);
      if (e.finalizers !== undefined) assert.deepEqual(finalizers, e.finalizers);
      if (e.finalizerVersions !== undefined) assert.deepEqual(finalizerVersions, e.finalizerVersions);
      if (e.entryLookups !== undefined) assert.deepEqual(store.entryLookups, e.entryLookups);
      if (e.debug !== undefined) assert.ok(recorder.debugLines().some((l) => e.debug!.test(l)), `a debug line matching ${e.debug}: ${recorder.debugLines().join(' | ')}`);
      assert.equal(drift, e.drift ?? 0);
    });
  }

  test('every outcome written is counted by kind and reason', async () => {
    const recorder = new Recorder();
    const reconciler = new MailUserRestrictionReconciler({
      restrictions: lister(restriction()),
      backends: lister(),
      secrets: lister(secret),
      connections: { get: async () => new FakeStore() },
      client: { setFinalizers: async () => true, read: async () => undefined },
      status: recorder.statusWriter('MailUserRestriction'),
      logger: recorder.logger,
    });
    await reconciler.reconcile('mail/alice');
    await reconciler.reconcile('mail/alice');
    assert.deepEqual(await recorder.counted(), { 'MailUserRestriction/BackendNotFound': 2 });
  });
});
