import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Secret } from '@kubernetes/client-node';
import { BackendMessage, BackendReason, MailBackendReconciler } from '../../../src/reconcilers/mail-backend.ts';
import type { BackendObject } from '../../../src/reconcilers/types.ts';
import { UNREACHABLE } from '../../../src/reconcilers/status-text.ts';
import { StoreError } from '../../../src/stores/store.ts';
import { FakeStore, lister, Recorder, type RecordedEvent } from './fakes.ts';

const URL = 'postgres://vmail@127.0.0.1:5432/vmail';

function backend(spec: Record<string, unknown> = { url: URL, credentialsSecretRef: { name: 'pg' } }, status?: Record<string, unknown>): BackendObject {
  return { apiVersion: 'mailwarden.io/v1alpha1', kind: 'MailBackend', metadata: { namespace: 'mail', name: 'pg', generation: 3 }, spec, status } as BackendObject;
}

const secret: V1Secret = { metadata: { namespace: 'mail', name: 'pg' }, stringData: { password: 'pw' } };
const connected = {
  observedGeneration: 3,
  conditions: [{ type: 'Ready', status: 'True', reason: 'Connected', message: BackendMessage.reachable('fake'), lastTransitionTime: '2026-12-04T14:00:00Z', observedGeneration: 3 }],
};

interface Case {
  readonly name: string;
  readonly backends: BackendObject[];
  readonly secrets?: V1Secret[];
  readonly probeFails?: StoreError;
  readonly expect: {
    readonly ready?: { status: 'True' | 'False'; reason: string; message?: string };
    readonly events?: Pick<RecordedEvent, 'type' | 'reason'>[];
    readonly result?: { requeueAfterMs?: number };
    readonly forgotten?: string[];
    readonly debug?: RegExp;
  };
}

const cases: Case[] = [
  { name: 'a backend gone from the cache: its connection is closed', backends: [], expect: { forgotten: ['mail/pg'], debug: /backend gone/ } },
  {
    name: 'an invalid spec: InvalidSpec, not probed again',
    backends: [backend({ url: 'gopher://x' })],
    expect: { ready: { status: 'False', reason: BackendReason.InvalidSpec }, events: [{ type: 'Warning', reason: 'InvalidSpec' }], debug: /not probed/ },
  },
  {
    name: 'the store answers the probe: Connected, a Normal Event, probed again after the interval',
    backends: [backend()],
    expect: { ready: { status: 'True', reason: BackendReason.Connected, message: 'fake store reachable' }, events: [{ type: 'Normal', reason: 'Connected' }], result: { requeueAfterMs: 5_000 } },
  },
  {
    name: 'still Connected as status says: no status patch, no Event',
    backends: [backend(undefined, connected)],
    expect: { events: [], result: { requeueAfterMs: 5_000 } },
  },
  {
    name: 'the credentials Secret is missing: SecretNotFound, probed again',
    backends: [backend()],
    secrets: [],
    expect: { ready: { status: 'False', reason: BackendReason.SecretNotFound, message: 'Secret mail/pg not found' }, events: [{ type: 'Warning', reason: 'SecretNotFound' }], result: { requeueAfterMs: 5_000 } },
  },
  {
    name: 'the store is misconfigured: Misconfigured',
    backends: [backend(undefined, connected)],
    probeFails: new StoreError('Misconfigured', 'relation "mailbox" does not exist'),
    expect: { ready: { status: 'False', reason: BackendReason.Misconfigured }, events: [{ type: 'Warning', reason: 'Misconfigured' }], result: { requeueAfterMs: 5_000 } },
  },
  {
    name: 'the store is down: Unavailable with its message',
    backends: [backend()],
    probeFails: new StoreError('Unavailable', 'connection refused'),
    expect: { ready: { status: 'False', reason: BackendReason.Unavailable, message: UNREACHABLE }, result: { requeueAfterMs: 5_000 } },
  },
];

describe('MailBackendReconciler', () => {
  for (const c of cases) {
    test(c.name, async () => {
      const recorder = new Recorder();
      const store = new FakeStore();
      if (c.probeFails) store.fail.ping = c.probeFails;
      const forgotten: string[] = [];
      const reconciler = new MailBackendReconciler({
        backends: lister(...c.backends),
        secrets: lister(...(c.secrets ?? [secret])),
        connections: { get: async () => store, forget: async (ns, name) => void forgotten.push(`${ns}/${name}`) },
        status: recorder.statusWriter('MailBackend'),
        logger: recorder.logger,
        probeIntervalMs: 5_000,
      });
      const result = await reconciler.reconcile('mail/pg');
      const e = c.expect;
      assert.deepEqual(result, e.result);
      if (e.ready === undefined) assert.equal(recorder.onlyPatch(), undefined);
      else {
        assert.equal(recorder.ready()?.status, e.ready.status);
        assert.equal(recorder.ready()?.reason, e.ready.reason);
        if (e.ready.message !== undefined) assert.equal(recorder.ready()?.message, e.ready.message);
        assert.deepEqual(Object.keys(recorder.onlyPatch()!).sort(), ['conditions', 'observedGeneration']);
      }
      if (e.events !== undefined) assert.deepEqual(recorder.events.map(({ type, reason }) => ({ type, reason })), e.events);
      assert.deepEqual(forgotten, e.forgotten ?? []);
      if (e.debug !== undefined) assert.ok(recorder.debugLines().some((l) => e.debug!.test(l)), recorder.debugLines().join(' | '));
    });
  }
});
