// KubeRequests (the operator's direct PATCHes and GETs) against a real kube-apiserver: the write
// lands, a read is the server's current object, and errors are client-node's ApiException with the
// server's code, as the callers expect.
// Run: source .ci/controlplane.sh && node --test test/integration/kube/kube-requests.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiException, CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { reuseConnections } from '../../../src/kube/kube-config.ts';
import { KubeRequests } from '../../../src/kube/kube-requests.ts';

const NS = 'requests';
const path = (name: string) => `/api/v1/namespaces/${NS}/configmaps/${name}`;

describe('KubeRequests (real API server)', () => {
  let cp: ControlPlane;
  let kc: KubeConfig;
  let core: CoreV1Api;

  before(async () => {
    cp = await startControlPlane();
    kc = cp.kubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'target' }, data: { a: '1' } } });
  });
  after(async () => {
    await cp?.stop();
  });

  for (const [label, config] of [
    ['pooled connections', () => reuseConnections(kc)],
    ['a connection per request (a KubeConfig that does not pool)', () => kc],
  ] as const) {
    test(`a merge patch lands and returns the object — ${label}`, async () => {
      const requests = new KubeRequests(config());
      const value = label.startsWith('pooled') ? '2' : '3';
      const result = (await requests.patch(path('target'), { data: { a: value } }, PatchStrategy.MergePatch)) as { data?: Record<string, string> };
      assert.equal(result.data?.a, value);
      assert.equal((await core.readNamespacedConfigMap({ namespace: NS, name: 'target' })).data?.a, value);
    });
  }

  test('a stale resourceVersion is ApiException 409, a missing object 404, and neither writes', async () => {
    const requests = new KubeRequests(reuseConnections(kc));
    const before = await core.readNamespacedConfigMap({ namespace: NS, name: 'target' });
    await assert.rejects(
      requests.patch(path('target'), { metadata: { resourceVersion: '1' }, data: { a: 'stale' } }, PatchStrategy.MergePatch),
      (err: unknown) => err instanceof ApiException && err.code === 409 && /the object has been modified/.test(err.message),
    );
    await assert.rejects(requests.patch(path('absent'), { data: { a: 'x' } }, PatchStrategy.MergePatch), (err: unknown) => err instanceof ApiException && err.code === 404);
    const afterwards = await core.readNamespacedConfigMap({ namespace: NS, name: 'target' });
    assert.equal(afterwards.metadata?.resourceVersion, before.metadata?.resourceVersion);
  });

  test('a GET returns the object as the server has it now; a missing one is ApiException 404', async () => {
    const requests = new KubeRequests(reuseConnections(kc));
    await core.patchNamespacedConfigMap({ namespace: NS, name: 'target', body: { data: { a: 'read' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    const current = await core.readNamespacedConfigMap({ namespace: NS, name: 'target' });
    const read = (await requests.get(path('target'))) as { data?: Record<string, string>; metadata?: { resourceVersion?: string } };
    assert.equal(read.data?.a, 'read');
    assert.equal(read.metadata?.resourceVersion, current.metadata?.resourceVersion);
    await assert.rejects(requests.get(path('absent')), (err: unknown) => err instanceof ApiException && err.code === 404);
  });
});
