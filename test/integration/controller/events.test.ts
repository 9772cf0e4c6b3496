// EventRecorder against a real kube-apiserver: fields, aggregation, failures never thrown.
// Run: source .ci/controlplane.sh && node --test test/integration/controller/events.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, type CoreV1Event, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { EventRecorder } from '../../../src/controller/events.ts';
import { capturingLogger } from './support.ts';

const NS = 'events';

describe('EventRecorder (real API server)', () => {
  let cp: ControlPlane;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let subject: V1ConfigMap;
  const eventsAbout = async (name: string): Promise<CoreV1Event[]> =>
    (await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` })).items;

  before(async () => {
    cp = await startControlPlane();
    kc = cp.kubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    subject = { ...(await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'subject' } } })), apiVersion: 'v1', kind: 'ConfigMap' };
  });
  after(async () => {
    await cp?.stop();
  });

  test('posts an Event with the involved object, source and reporting fields', async () => {
    const rec = new EventRecorder({ kubeConfig: kc, component: 'mailwarden-operator', instance: 'pod-0' });
    const before = Date.now() - 1000;
    await rec.normal(subject, 'Synced', 'restrictions applied');
    const [e, ...rest] = await eventsAbout('subject');
    assert.equal(rest.length, 0);
    assert.ok(e);
    assert.deepEqual(
      { ...e.involvedObject },
      { apiVersion: 'v1', kind: 'ConfigMap', name: 'subject', namespace: NS, uid: subject.metadata!.uid, resourceVersion: subject.metadata!.resourceVersion },
    );
    assert.equal(e.type, 'Normal');
    assert.equal(e.reason, 'Synced');
    assert.equal(e.message, 'restrictions applied');
    assert.equal(e.count, 1);
    assert.deepEqual({ ...e.source }, { component: 'mailwarden-operator', host: 'pod-0' });
    assert.equal(e.reportingComponent, 'mailwarden-operator');
    assert.equal(e.reportingInstance, 'pod-0');
    assert.ok(new Date(e.firstTimestamp!).getTime() >= before);
    assert.equal(new Date(e.lastTimestamp!).getTime(), new Date(e.firstTimestamp!).getTime());
  });

  test('repeats of the same reason and message bump count on one Event, also when concurrent', async () => {
    const rec = new EventRecorder({ kubeConfig: kc, component: 'mailwarden-operator', instance: 'pod-0' });
    const obj = { ...subject, metadata: { ...subject.metadata, name: 'subject-2', uid: 'u-2' } };
    await rec.warning(obj, 'StoreUnavailable', 'postgres: connection refused');
    await rec.warning(obj, 'StoreUnavailable', 'postgres: connection refused');
    await Promise.all([1, 2, 3, 4, 5].map(() => rec.warning(obj, 'StoreUnavailable', 'postgres: connection refused')));
    await rec.warning(obj, 'StoreUnavailable', 'postgres: timeout');
    const events = await eventsAbout('subject-2');
    const counts = Object.fromEntries(events.map((e) => [e.message, e.count]));
    assert.deepEqual(counts, { 'postgres: connection refused': 7, 'postgres: timeout': 1 });
    const refused = events.find((e) => e.message === 'postgres: connection refused')!;
    assert.equal(refused.type, 'Warning');
    assert.ok(new Date(refused.lastTimestamp!).getTime() >= new Date(refused.firstTimestamp!).getTime());
  });

  test('an Event deleted meanwhile is created anew rather than failing', async () => {
    const rec = new EventRecorder({ kubeConfig: kc, component: 'mailwarden-operator' });
    const obj = { ...subject, metadata: { ...subject.metadata, name: 'subject-3', uid: 'u-3' } };
    await rec.normal(obj, 'Synced', 'ok');
    const [e] = await eventsAbout('subject-3');
    await core.deleteNamespacedEvent({ namespace: NS, name: e!.metadata!.name! });
    await rec.normal(obj, 'Synced', 'ok');
    const after = await eventsAbout('subject-3');
    assert.equal(after.length, 1);
    assert.equal(after[0]!.count, 1);
  });

  test('a burst beyond the queue bound is dropped, counted and logged once, and the rest posted in order', async () => {
    const { logger, lines } = capturingLogger();
    let dropped = 0;
    const rec = new EventRecorder({ kubeConfig: kc, component: 'mailwarden-operator', logger, maxQueued: 2, onDropped: () => dropped++ });
    const obj = { ...subject, metadata: { ...subject.metadata, name: 'subject-4', uid: 'u-4' } };
    // The first is being posted at once; two wait; the other seven find the queue full.
    await Promise.all(Array.from({ length: 10 }, (_, i) => rec.normal(obj, `Step${i}`, `step ${i}`)));
    assert.equal(dropped, 7);
    const events = await eventsAbout('subject-4');
    assert.deepEqual(events.map((e) => e.reason).sort(), ['Step0', 'Step1', 'Step2']);
    const warnings = lines.filter((l) => l.msg === 'event queue full: dropping events');
    assert.equal(warnings.length, 1);
    // Room again once posted: nothing is stuck.
    await rec.normal(obj, 'After', 'after the burst');
    assert.ok((await eventsAbout('subject-4')).some((e) => e.reason === 'After'));
  });

  test('posts at most burst, then qps per second; a Warning displaces a queued Normal when full', async () => {
    let dropped = 0;
    const rec = new EventRecorder({ kubeConfig: kc, component: 'mailwarden-operator', maxQueued: 3, qps: 10, burst: 2, onDropped: () => dropped++ });
    const obj = { ...subject, metadata: { ...subject.metadata, name: 'subject-5', uid: 'u-5' } };
    const started = performance.now();
    const all = [
      rec.normal(obj, 'N0', 'n0'), // posted at once
      rec.normal(obj, 'N1', 'n1'), // queued
      rec.normal(obj, 'N2', 'n2'),
      rec.normal(obj, 'N3', 'n3'), // the queue is full (3): N1 N2 N3
      rec.normal(obj, 'N4', 'n4'), // dropped
      rec.warning(obj, 'W0', 'w0'), // displaces N1
    ];
    await Promise.all(all);
    const elapsed = performance.now() - started;
    assert.equal(dropped, 2);
    const reasons = (await eventsAbout('subject-5')).map((e) => e.reason).sort();
    assert.deepEqual(reasons, ['N0', 'N2', 'N3', 'W0']);
    // 4 posted with a burst of 2 at 10/s: the last two waited about 100 ms each.
    assert.ok(elapsed >= 180, `posted too fast for the rate limit: ${elapsed.toFixed(0)} ms`);
  });

  test('failures are logged, never thrown into the caller', async () => {
    const { logger, lines } = capturingLogger();
    const rec = new EventRecorder({ kubeConfig: kc, component: 'mailwarden-operator', logger });
    const nowhere = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'no-such-namespace' } };
    await rec.warning(nowhere, 'Failed', 'boom'); // resolves
    const noRights = new EventRecorder({ kubeConfig: (await cp.userKubeconfig('nobody')).kubeConfig(), component: 'c', logger });
    await noRights.normal(subject, 'Synced', 'ok');
    const warnings = lines.filter((l) => l.msg === 'could not record event');
    assert.equal(warnings.length, 2);
    assert.match(String(warnings[0]!.err), /404/);
    assert.match(String(warnings[1]!.err), /403/);
  });
});
