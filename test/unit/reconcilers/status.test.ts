import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RetryError, type Outcome, type StatusSubject } from '../../../src/reconcilers/status.ts';
import { NOW, Recorder } from './fakes.ts';

const ready = (reason: string, message: string, status: 'True' | 'False' = 'True') => ({ type: 'Ready', status, reason, message, lastTransitionTime: '2026-12-04T14:00:00Z', observedGeneration: 5 });

function subject(status?: StatusSubject['status']): StatusSubject {
  return { metadata: { namespace: 'mail', name: 'x', generation: 5 }, status };
}

interface Case {
  readonly name: string;
  readonly status?: StatusSubject['status'];
  readonly outcome: Outcome;
  /** Patched status (undefined: no patch) — the keys that matter. */
  readonly patch?: Record<string, unknown>;
  readonly events: string[];
}

const cases: Case[] = [
  {
    name: 'a first outcome: Ready written with observedGeneration, an Event for the transition',
    outcome: { ready: true, reason: 'Connected', message: 'up' },
    patch: { observedGeneration: 5, conditions: [{ type: 'Ready', status: 'True', reason: 'Connected', message: 'up', observedGeneration: 5, lastTransitionTime: '2026-12-04T15:00:00Z' }] },
    events: ['Normal Connected'],
  },
  {
    name: 'the same outcome again: no patch, no Event',
    status: { observedGeneration: 5, conditions: [ready('Connected', 'up')] },
    outcome: { ready: true, reason: 'Connected', message: 'up' },
    events: [],
  },
  {
    name: 'same reason, new message: patched, the transition time kept, no Event',
    status: { observedGeneration: 5, conditions: [ready('Injecting', '1 running')] },
    outcome: { ready: true, reason: 'Injecting', message: '2 running' },
    patch: { conditions: [{ type: 'Ready', status: 'True', reason: 'Injecting', message: '2 running', observedGeneration: 5, lastTransitionTime: '2026-12-04T14:00:00Z' }] },
    events: [],
  },
  {
    name: 'a failure after success: a Warning, a new transition time',
    status: { observedGeneration: 5, conditions: [ready('Connected', 'up')] },
    outcome: { ready: false, reason: 'Unavailable', message: 'down' },
    patch: { conditions: [{ type: 'Ready', status: 'False', reason: 'Unavailable', message: 'down', observedGeneration: 5, lastTransitionTime: '2026-12-04T15:00:00Z' }] },
    events: ['Warning Unavailable'],
  },
  {
    name: 'a field that changed is reason enough to write; undefined clears one (null in the merge patch)',
    status: { observedGeneration: 5, conditions: [ready('Available', 'm')], readyReplicas: 1, injectedPods: 3 },
    outcome: { ready: true, reason: 'Available', message: 'm', fields: { readyReplicas: 2, injectedPods: undefined } },
    patch: { readyReplicas: 2, injectedPods: null },
    events: [],
  },
  {
    name: 'stamps go along with a write but never cause one',
    status: { observedGeneration: 5, conditions: [ready('Applied', 'm')] },
    outcome: { ready: true, reason: 'Applied', message: 'm', stamps: (now) => ({ lastSyncTime: now.toISOString() }) },
    events: [],
  },
  {
    name: "an outcome with its own Event: recorded every time, in place of the transition's",
    status: { observedGeneration: 5, conditions: [ready('Applied', 'm')] },
    outcome: { ready: true, reason: 'DriftCorrected', message: 'rewritten', event: { type: 'Warning', message: 'differed' }, stamps: (now) => ({ lastSyncTime: now.toISOString() }) },
    patch: { lastSyncTime: NOW.toISOString() },
    events: ['Warning DriftCorrected'],
  },
  {
    name: 'a retired Synced condition is dropped with the next write',
    status: { observedGeneration: 5, conditions: [ready('Applied', 'm'), { ...ready('Applied', 'm'), type: 'Synced' }] },
    outcome: { ready: true, reason: 'Applied', message: 'm' },
    patch: { conditions: [{ type: 'Ready', status: 'True', reason: 'Applied', message: 'm', observedGeneration: 5, lastTransitionTime: '2026-12-04T14:00:00Z' }] },
    events: [],
  },
];

describe('StatusWriter', () => {
  for (const c of cases) {
    test(c.name, async () => {
      const recorder = new Recorder();
      await recorder.statusWriter('MailBackend').write(subject(c.status), c.outcome);
      const patched = recorder.onlyPatch();
      if (c.patch === undefined) {
        assert.equal(patched, undefined);
        assert.ok(recorder.debugLines().includes('status unchanged: not written'));
      } else {
        assert.ok(patched, 'a status patch');
        for (const [key, value] of Object.entries(c.patch)) assert.deepEqual(patched[key], value, key);
      }
      assert.deepEqual(recorder.events.map((e) => `${e.type} ${e.reason}`), c.events);
      for (const e of recorder.events) assert.equal(e.kind, 'MailBackend');
    });
  }

  test('settle: a retry is thrown as RetryError after the status is written; a requeue is returned', async () => {
    const recorder = new Recorder();
    const writer = recorder.statusWriter('MailBackend');
    await assert.rejects(writer.settle(subject(), { ready: false, reason: 'Unavailable', message: 'down', retry: { cause: new Error('x') } }), RetryError);
    assert.equal(recorder.patches.length, 1);
    assert.deepEqual(await writer.settle(subject(), { ready: true, reason: 'Connected', message: 'up', requeueAfterMs: 60_000 }), { requeueAfterMs: 60_000 });
    assert.equal(await writer.settle(subject(), { ready: true, reason: 'Connected', message: 'up' }), undefined);
  });
});
