import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { ResourceInformer } from '../../../src/controller/informer.ts';

// The informer's own bookkeeping, with list and watch functions in place of a server (its
// behaviour against a real API server: test/integration/controller/informer.test.ts).

describe('ResourceInformer', () => {
  test('stop() right after the first list settles, before the watch has started', async () => {
    let watches = 0;
    const informer = new ResourceInformer<KubernetesObject>({
      path: '/api/v1/namespaces/mail/configmaps',
      list: async () => ({ metadata: { resourceVersion: '7' }, items: [{ metadata: { name: 'a', namespace: 'mail', resourceVersion: '7' } }] }) as KubernetesListObject<KubernetesObject>,
      // A watch that never sends and never ends: only stop() ends it.
      watch: async () => {
        watches++;
        return { abort() {} };
      },
    });
    informer.start();
    await informer.waitForSync();
    // Same tick as the sync: the informer has not begun its watch yet.
    const stopped = informer.stop().then(() => 'stopped');
    const outcome = await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, 2000, 'still running'))]);
    assert.equal(outcome, 'stopped');
    assert.equal(watches, 0);
    assert.deepEqual(informer.keys(), ['mail/a']);
  });

  test('an informer of one namespace keys its cache by name: get, keys, updates and deletes read as with namespace/name keys', async () => {
    const obj = (name: string, resourceVersion: string, data: string) => ({ metadata: { name, namespace: 'mail', resourceVersion }, data: { v: data } });
    let send: ((type: string, object: unknown) => void) | undefined;
    const informer = new ResourceInformer<KubernetesObject & { data?: { v: string } }>({
      path: '/api/v1/namespaces/mail/configmaps',
      namespace: 'mail',
      list: async () => ({ metadata: { resourceVersion: '2' }, items: [obj('a', '1', 'a1'), obj('b', '2', 'b1')] }) as KubernetesListObject<KubernetesObject>,
      watch: async (_path, _query, onEvent) => {
        send = onEvent;
        return { abort() {} };
      },
    });
    const seen: string[] = [];
    informer.onChange((o, type) => seen.push(`${type} ${o.metadata?.name} ${(o as { data?: { v: string } }).data?.v}`));
    informer.start();
    await informer.waitForSync();
    while (send === undefined) await new Promise((resolve) => setImmediate(resolve));
    send('MODIFIED', obj('a', '3', 'a2'));
    send('DELETED', obj('b', '4', 'b1'));
    send('ADDED', obj('c', '5', 'c1'));
    assert.deepEqual(seen, ['add a a1', 'add b b1', 'update a a2', 'delete b b1', 'add c c1']);
    assert.equal(informer.get('mail', 'a')?.data?.v, 'a2');
    assert.equal(informer.get('other', 'a'), undefined);
    assert.equal(informer.get('mail', 'b'), undefined);
    assert.deepEqual(informer.keys().sort(), ['mail/a', 'mail/c']);
    await informer.stop();
  });
});
