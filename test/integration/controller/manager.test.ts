// ControllerManager against a real kube-apiserver: informers built from a table of kinds, changes
// mapped to keys through an informer index, a predicate, keys only while leading, and the
// callback when leadership is lost (the lease taken by someone else).
// Run: source .ci/controlplane.sh && node --test test/integration/controller/manager.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinationV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, V1MicroTime, type KubeConfig, type V1ConfigMap, type V1Secret } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { ControllerManager, type Change } from '../../../src/controller/manager.ts';
import { capturingLogger, eventually } from './support.ts';

const NS = 'manager';
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** ConfigMaps reconciled; a ConfigMap names the Secret it reads in data.secret (an index). */
function manager(kc: KubeConfig, options: { leaderElection?: { name: string; identity: string }; onLostLeadership?: () => void } = {}) {
  const reconciled: string[] = [];
  const { logger } = capturingLogger('warn');
  const m = new ControllerManager<'ConfigMap' | 'Secret'>({
    kubeConfig: kc,
    namespaces: [NS],
    kinds: {
      ConfigMap: { resource: { group: '', version: 'v1', plural: 'configmaps' }, indexes: { secret: (c: V1ConfigMap) => (c.data?.secret ? [`${NS}/${c.data.secret}`] : []) } },
      Secret: { resource: { group: '', version: 'v1', plural: 'secrets' } },
    },
    leaderElection: options.leaderElection && { namespace: NS, ...options.leaderElection, leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 },
    onLostLeadership: options.onLostLeadership,
    logger,
    listPageSize: 2,
  });
  const configMaps = m.reader<V1ConfigMap>('ConfigMap');
  m.add({
    name: `configmaps-${options.leaderElection?.identity ?? 'solo'}`,
    kind: 'ConfigMap',
    reconcile: async (key) => void reconciled.push(key),
    watches: [
      // Label changes only: a data change alone is filtered out by the predicate.
      { kind: 'ConfigMap', predicate: (c: V1ConfigMap, change: Change, old: V1ConfigMap | undefined) => change !== 'update' || JSON.stringify(c.metadata?.labels) !== JSON.stringify(old?.metadata?.labels) },
      { kind: 'Secret', map: (s: V1Secret) => configMaps.byIndex('secret', `${NS}/${s.metadata?.name}`).map((c) => ({ namespace: c.metadata?.namespace, name: c.metadata!.name! })) },
    ],
  });
  return { m, reconciled };
}

describe('ControllerManager (real API server)', () => {
  let cp: ControlPlane;
  let kc: KubeConfig;
  let core: CoreV1Api;
  const stops: (() => Promise<void>)[] = [];

  before(async () => {
    cp = await startControlPlane();
    kc = cp.kubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
  });
  after(async () => {
    for (const stop of stops) await stop();
    await cp?.stop();
  });

  test('queues every key at leadership, maps a Secret change through the index, and honours the predicate', async () => {
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'a' }, data: { secret: 's1' } } });
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'b' }, data: { secret: 's2' } } });
    const { m, reconciled } = manager(kc);
    stops.push(() => m.stop());
    await m.sync();
    assert.equal(m.ready, true);
    assert.equal(reconciled.length, 0, 'nothing reconciled before leading');
    m.campaign();
    await eventually('both reconciled at leadership', () => reconciled.includes(`${NS}/a`) && reconciled.includes(`${NS}/b`));

    reconciled.length = 0;
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 's2' }, stringData: { k: 'v' } } });
    await eventually('the ConfigMap reading s2 reconciled', () => reconciled.includes(`${NS}/b`));
    assert.deepEqual(reconciled, [`${NS}/b`], 'only the ConfigMap that names the Secret');

    // A re-pointed ConfigMap is found under its new Secret only.
    reconciled.length = 0;
    await core.patchNamespacedConfigMap({ namespace: NS, name: 'b', body: { data: { secret: 's3' } } }, MERGE);
    await core.patchNamespacedConfigMap({ namespace: NS, name: 'a', body: { metadata: { labels: { touched: 'yes' } } } }, MERGE);
    await eventually('the label change reconciled', () => reconciled.includes(`${NS}/a`));
    assert.deepEqual(reconciled, [`${NS}/a`], 'the data-only change of b was filtered out by the predicate');
    reconciled.length = 0;
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 's3' } } });
    await eventually('b reconciled for its new Secret', () => reconciled.includes(`${NS}/b`));
    await core.deleteNamespacedSecret({ namespace: NS, name: 's2' });
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'marker' } } });
    await eventually('a later change seen', () => reconciled.includes(`${NS}/marker`));
    assert.equal(reconciled.filter((k) => k === `${NS}/b`).length, 1, 'the old Secret no longer maps to b');
  });

  test('a list of several pages is read to its end (the wire name of the token is `continue`)', async () => {
    const before = (await core.listNamespacedConfigMap({ namespace: NS })).items.length;
    for (let i = 0; i < 5; i++) await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: `page-${i}` } } });
    const { m } = manager(kc);
    stops.push(() => m.stop());
    await m.sync();
    assert.equal(m.reader<V1ConfigMap>('ConfigMap').list().length, before + 5, 'every ConfigMap cached, over pages of 2');
  });

  test('a lease taken by someone else stops the controllers and calls back once', async () => {
    let lost = 0;
    const { m, reconciled } = manager(kc, { leaderElection: { name: 'manager-lease', identity: 'me' }, onLostLeadership: () => lost++ });
    stops.push(() => m.stop());
    await m.sync();
    m.campaign();
    await eventually('leading', () => m.isLeader);
    await eventually('keys queued at leadership', () => reconciled.length > 0);

    // Another holder takes the lease (as a replica would after a partition), so renewals fail.
    const leases = kc.makeApiClient(CoordinationV1Api);
    const lease = await leases.readNamespacedLease({ namespace: NS, name: 'manager-lease' });
    lease.spec = { ...lease.spec, holderIdentity: 'someone-else', renewTime: new V1MicroTime(), leaseDurationSeconds: 3600 };
    await leases.replaceNamespacedLease({ namespace: NS, name: 'manager-lease', body: lease });

    await eventually('the loss called back', () => lost === 1, 10_000);
    assert.equal(m.isLeader, false);
    reconciled.length = 0;
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'after-loss' } } });
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'seen' } } });
    await eventually('the cache follows', () => m.reader<V1ConfigMap>('ConfigMap').get(NS, 'seen') !== undefined);
    assert.equal(reconciled.length, 0, 'no reconcile after leadership was lost');
    assert.equal(lost, 1);
  });
});
