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
});
