import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1ContainerState, V1Pod } from '@kubernetes/client-node';
import { MAX_NAMED_PODS, sidecarHealth, sidecarMessage, sidecarProblem, sidecarReport } from '../../../src/reconcilers/sidecar-health.ts';

const pod = (name: string, state: V1ContainerState | undefined, extra: { daemon?: string; phase?: string; deleting?: boolean; init?: boolean } = {}): V1Pod => {
  const statuses = state === undefined ? [] : [{ name: 'mailwarden-policyd', state, ready: false, restartCount: 0, image: 'i', imageID: '' }];
  return {
    metadata: { name, labels: { 'mailwarden.io/policy-daemon': extra.daemon ?? 'mx' }, ...(extra.deleting ? { deletionTimestamp: new Date() } : {}) },
    status: {
      phase: extra.phase ?? 'Running',
      containerStatuses: [{ name: 'postfix', state: { running: {} }, ready: true, restartCount: 0, image: 'p', imageID: '' }, ...(extra.init ? [] : statuses)],
      ...(extra.init ? { initContainerStatuses: statuses } : {}),
    },
  };
};

describe('sidecar health', () => {
  test('the kubelet\'s reason for a daemon that does not run; nothing for one running or still starting', () => {
    assert.equal(sidecarProblem(pod('a', { waiting: { reason: 'ErrImageNeverPull' } })), 'ErrImageNeverPull');
    assert.equal(sidecarProblem(pod('a', { waiting: { reason: 'CrashLoopBackOff' } })), 'CrashLoopBackOff');
    assert.equal(sidecarProblem(pod('a', { terminated: { exitCode: 1, reason: 'Error' } })), 'Error');
    assert.equal(sidecarProblem(pod('a', { running: {} })), undefined);
    assert.equal(sidecarProblem(pod('a', { waiting: { reason: 'ContainerCreating' } })), undefined);
    assert.equal(sidecarProblem(pod('a', undefined)), undefined);
    // Restarted after a crash and not yet listening: still failing (a crash loop between back-offs).
    const restarting = (started: boolean, restartCount: number): V1Pod => {
      const p = pod('a', { running: {} });
      p.status!.containerStatuses![1] = { ...p.status!.containerStatuses![1]!, started, restartCount, lastState: { terminated: { exitCode: 1, reason: 'Error' } } };
      return p;
    };
    assert.equal(sidecarProblem(restarting(false, 3)), 'Error');
    assert.equal(sidecarProblem(restarting(true, 3)), undefined, 'listening again: recovered');
    assert.equal(sidecarProblem(restarting(false, 0)), undefined, 'a first start in progress');
    // A pod injected as a native sidecar by an earlier version.
    assert.equal(sidecarProblem(pod('a', { waiting: { reason: 'ImagePullBackOff' } }, { init: true })), 'ImagePullBackOff');
  });

  test('counts the live injected pods of this daemon and names those without it, sorted', () => {
    const health = sidecarHealth(
      [
        pod('c', { waiting: { reason: 'CrashLoopBackOff' } }),
        pod('a', { waiting: { reason: 'ImagePullBackOff' } }),
        pod('b', { running: {} }),
        pod('other', { waiting: { reason: 'ImagePullBackOff' } }, { daemon: 'other' }),
        pod('gone', { waiting: { reason: 'ImagePullBackOff' } }, { deleting: true }),
        pod('done', { terminated: { exitCode: 0 } }, { phase: 'Succeeded' }),
      ],
      'mx',
    );
    assert.equal(health.injected, 3);
    assert.deepEqual(health.notRunning, [
      { pod: 'a', reason: 'ImagePullBackOff' },
      { pod: 'c', reason: 'CrashLoopBackOff' },
    ]);
    assert.match(sidecarMessage(health), /^2 of 3 injected pods run without the policy daemon .*: a \(ImagePullBackOff\), c \(CrashLoopBackOff\)$/);
  });

  test('counts the live injected pods whose daemon container the kubelet reports ready (the Postfix container\'s readiness is not the daemon\'s)', () => {
    const ready = (name: string, extra: { deleting?: boolean; daemon?: string } = {}): V1Pod => {
      const p = pod(name, { running: {} }, extra);
      p.status!.containerStatuses![1] = { ...p.status!.containerStatuses![1]!, ready: true };
      return p;
    };
    const health = sidecarHealth([ready('a'), pod('b', { running: {} }), ready('gone', { deleting: true }), ready('other', { daemon: 'other' })], 'mx');
    assert.deepEqual([health.injected, health.ready], [2, 1]);
    assert.equal(sidecarHealth([pod('b', { running: {} })], 'mx').ready, 0);
  });

  test('the message names at most MAX_NAMED_PODS pods and says how many more', () => {
    const pods = Array.from({ length: MAX_NAMED_PODS + 3 }, (_, i) => pod(`p${String(i).padStart(2, '0')}`, { waiting: { reason: 'ErrImagePull' } }));
    const message = sidecarMessage(sidecarHealth(pods, 'mx'));
    assert.match(message, /and 3 more$/);
    assert.equal(message.match(/ErrImagePull/g)?.length, MAX_NAMED_PODS);
  });
});

describe('sidecar report', () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const failing = sidecarHealth([pod('a', { waiting: { reason: 'ImagePullBackOff' } }), pod('b', { running: {} })], 'mx');
  const healthy = sidecarHealth([pod('b', { running: {} })], 'mx');

  test('pods without their daemon: condition False, the count and names, a Warning naming them', () => {
    const report = sidecarReport(undefined, undefined, failing, 3, now);
    const condition = report.conditions.find((c) => c.type === 'SidecarsRunning');
    assert.equal(condition?.status, 'False');
    assert.equal(condition?.reason, 'SidecarNotRunning');
    assert.deepEqual(report.fields, { sidecarsNotRunning: 1, sidecarsNotRunningPods: ['a'] });
    assert.equal(report.event?.type, 'Warning');
    assert.match(report.event!.message, /a \(ImagePullBackOff\)/);
  });

  test('the same pods again: no second Event; recovered: True and a Normal Event; Service mode: all of it removed', () => {
    const first = sidecarReport(undefined, undefined, failing, 3, now);
    assert.equal(sidecarReport(first.conditions, ['a'], failing, 3, now).event, undefined);
    const recovered = sidecarReport(first.conditions, ['a'], healthy, 3, now);
    assert.equal(recovered.conditions.find((c) => c.type === 'SidecarsRunning')?.status, 'True');
    assert.deepEqual(recovered.fields, { sidecarsNotRunning: 0, sidecarsNotRunningPods: [] });
    assert.equal(recovered.event?.type, 'Normal');
    const gone = sidecarReport(first.conditions, ['a'], undefined, 3, now);
    assert.equal(gone.conditions.some((c) => c.type === 'SidecarsRunning'), false);
    assert.deepEqual(gone.fields, { sidecarsNotRunning: null, sidecarsNotRunningPods: null });
  });
});
