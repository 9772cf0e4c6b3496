// ResourceInformer against a real kube-apiserver: events, cache, selectors, and an API server outage.
// Run: source .ci/controlplane.sh && node --test test/integration/controller/informer.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { keyOfObject } from '../../../src/api/object-key.ts';
import { ResourceInformer } from '../../../src/controller/informer.ts';
import { Controller } from '../../../src/controller/controller.ts';
import { WorkQueue } from '../../../src/controller/work-queue.ts';
import { capturingLogger, eventually } from './support.ts';

type Change = `${'add' | 'update' | 'delete'} ${string}`;

function configMapInformer(kc: KubeConfig, namespace: string, extra: Partial<ConstructorParameters<typeof ResourceInformer<V1ConfigMap>>[0]> = {}) {
  const core = kc.makeApiClient(CoreV1Api);
  const informer = new ResourceInformer<V1ConfigMap>({
    kubeConfig: kc,
    path: `/api/v1/namespaces/${namespace}/configmaps`,
    list: (o) => core.listNamespacedConfigMap({ namespace, ...o }),
    backoff: { initialMs: 200, maxMs: 1000 },
    ...extra,
  });
  const changes: Change[] = [];
  informer.onChange((obj, type) => changes.push(`${type} ${obj.metadata?.name}`));
  return { informer, changes };
}

/** Names (sorted) the server lists, and the informer caches, for one namespace. */
async function serverNames(core: CoreV1Api, namespace: string, labelSelector?: string): Promise<string[]> {
  return (await core.listNamespacedConfigMap({ namespace, labelSelector })).items.map((c) => c.metadata!.name!).sort();
}
const cachedNames = (i: ResourceInformer<V1ConfigMap>, ns?: string): string[] => i.list(ns).map((c) => c.metadata!.name!).sort();

describe('ResourceInformer (real API server)', () => {
  let cp: ControlPlane;
  let kc: KubeConfig;
  let core: CoreV1Api;
  const cm = (name: string, data: Record<string, string> = {}, labels?: Record<string, string>): V1ConfigMap => ({ metadata: { name, labels }, data });

  before(async () => {
    cp = await startControlPlane();
    kc = cp.kubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    for (const name of ['inf-a', 'inf-b', 'inf-c', 'inf-d']) await core.createNamespace({ body: { metadata: { name } } });
  });
  after(async () => {
    await cp?.stop();
  });

  test('lists what exists, then sees adds, updates and deletes; the cache matches the server', async () => {
    const ns = 'inf-a';
    await core.createNamespacedConfigMap({ namespace: ns, body: cm('before', { v: '1' }) });
    const { informer, changes } = configMapInformer(kc, ns);
    assert.equal(informer.hasSynced, false);
    informer.start();
    await informer.waitForSync(10_000);
    assert.deepEqual(changes, ['add before']);
    assert.equal(informer.get(ns, 'before')?.data?.v, '1');

    await core.createNamespacedConfigMap({ namespace: ns, body: cm('x', { v: '1' }) });
    await eventually('add x', () => changes.includes('add x'));
    await core.replaceNamespacedConfigMap({ namespace: ns, name: 'x', body: { ...informer.get(ns, 'x')!, data: { v: '2' } } });
    await eventually('update x', () => informer.get(ns, 'x')?.data?.v === '2');
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'before' });
    await eventually('delete before', () => changes.includes('delete before'));
    assert.deepEqual(changes, ['add before', 'add x', 'update x', 'delete before']);
    assert.equal(informer.get(ns, 'before'), undefined);
    assert.deepEqual(cachedNames(informer), await serverNames(core, ns));
    assert.deepEqual(informer.keys().sort(), (await serverNames(core, ns)).map((n) => `${ns}/${n}`));
    await informer.stop();
  });

  test('a label selector limits the cache; an object losing the label is delivered as a delete', async () => {
    const ns = 'inf-b';
    const { informer, changes } = configMapInformer(kc, ns, { labelSelector: 'mailwarden.io/watched=true' });
    informer.start();
    await informer.waitForSync(10_000);
    await core.createNamespacedConfigMap({ namespace: ns, body: cm('plain') });
    await core.createNamespacedConfigMap({ namespace: ns, body: cm('labelled', {}, { 'mailwarden.io/watched': 'true' }) });
    await eventually('add labelled', () => changes.includes('add labelled'));
    const obj = await core.readNamespacedConfigMap({ namespace: ns, name: 'labelled' });
    await core.replaceNamespacedConfigMap({ namespace: ns, name: 'labelled', body: { ...obj, metadata: { ...obj.metadata, labels: {} } } });
    await eventually('delete labelled', () => changes.includes('delete labelled'));
    assert.deepEqual(changes, ['add labelled', 'delete labelled']);
    assert.deepEqual(cachedNames(informer), []);
    await informer.stop();
  });

  test('a field selector watches one object by name', async () => {
    const ns = 'inf-b';
    const { informer, changes } = configMapInformer(kc, ns, { fieldSelector: 'metadata.name=only-me' });
    informer.start();
    await informer.waitForSync(10_000);
    await core.createNamespacedConfigMap({ namespace: ns, body: cm('not-me') });
    await core.createNamespacedConfigMap({ namespace: ns, body: cm('only-me') });
    await eventually('add only-me', () => changes.includes('add only-me'));
    assert.deepEqual(cachedNames(informer), ['only-me']);
    await informer.stop();
  });

  test('waitForSync rejects on timeout while the server is unreachable', async () => {
    const { informer } = configMapInformer(kc, 'inf-b', { path: '/api/v1/namespaces/inf-b/configmaps', list: () => Promise.reject(new Error('unreachable')) });
    informer.start();
    await assert.rejects(informer.waitForSync(300), { name: 'InformerError', kind: 'SyncTimeout' });
    await informer.stop();
  });

  test('drives a Controller: watch → queue → reconcile reading the cache', async () => {
    const ns = 'inf-d';
    const { informer } = configMapInformer(kc, ns);
    const queue = new WorkQueue();
    const enqueue = (o: V1ConfigMap): void => queue.add(keyOfObject(o));
    informer.onChange(enqueue);
    const seen = new Map<string, string | undefined>();
    const controller = new Controller({
      name: 'configmaps',
      queue,
      concurrency: 2,
      keys: () => informer.keys(),
      reconcile: async (key) => {
        const [namespace, name] = key.split('/') as [string, string];
        seen.set(key, informer.get(namespace, name)?.data?.v ?? 'gone');
      },
    });
    informer.start();
    await informer.waitForSync(10_000);
    controller.start();
    await core.createNamespacedConfigMap({ namespace: ns, body: cm('r', { v: '1' }) });
    await eventually('reconciled r', () => seen.get(`${ns}/r`) === '1');
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'r' });
    await eventually('reconciled the deletion', () => seen.get(`${ns}/r`) === 'gone');
    await controller.stop();
    await informer.stop();
  });

  test('survives an API server restart: keeps its cache, delivers a delete made while it was down, sees later changes', async () => {
    const ns = 'inf-c';
    for (const name of ['keep', 'doomed']) await core.createNamespacedConfigMap({ namespace: ns, body: cm(name) });
    const { logger, lines } = capturingLogger();
    const { informer, changes } = configMapInformer(kc, ns, { logger, name: 'outage' });
    informer.start();
    await informer.waitForSync(10_000);
    assert.deepEqual(cachedNames(informer), ['doomed', 'keep']);

    await cp.stopApiServer();
    // Delete straight from etcd (its JSON gateway) while no API server runs: the informer can only
    // learn of it by listing again once the server is back.
    const key = Buffer.from(`/registry/configmaps/${ns}/doomed`).toString('base64');
    const res = await fetch(`${cp.etcdUrl}/v3/kv/deleterange`, { method: 'POST', body: JSON.stringify({ key }) });
    assert.equal(((await res.json()) as { deleted?: string }).deleted, '1');
    // Several failed attempts while it is down (the first is logged at warn, the retries at debug).
    await eventually('three failed attempts', () => lines.some((l) => l.msg === 'list/watch still failing' && Number(l.failures) >= 3), 10_000);
    assert.deepEqual(cachedNames(informer), ['doomed', 'keep'], 'the cache is kept during the outage');
    await cp.startApiServer();

    await eventually('delete doomed after re-list', () => changes.includes('delete doomed'), 20_000);
    await core.createNamespacedConfigMap({ namespace: ns, body: cm('after') });
    await eventually('add after', () => changes.includes('add after'), 10_000);
    assert.deepEqual(changes, ['add doomed', 'add keep', 'delete doomed', 'add after'].filter((c) => changes.includes(c as (typeof changes)[number])));
    assert.deepEqual(changes.filter((c) => c.startsWith('add')).sort(), ['add after', 'add doomed', 'add keep']);
    assert.deepEqual(cachedNames(informer), await serverNames(core, ns));

    const warnings = lines.filter((l) => l.level === 'warn');
    assert.equal(warnings.length, 1, `one warning per outage, got ${JSON.stringify(warnings)}`);
    assert.ok(lines.some((l) => l.msg === 'list and watch recovered'));
    // The watch was resumed, and the restarted server's fresh history had no room for it: 410, re-list.
    assert.ok(lines.some((l) => l.msg === 'watch history expired (410 Gone): re-listing'), 'the delete came from a re-list told by 410 Gone');
    await informer.stop();
    assert.ok(keyOfObject(informer.get(ns, 'keep')!) === `${ns}/keep`, 'the cache stays readable after stop');
  });
});
