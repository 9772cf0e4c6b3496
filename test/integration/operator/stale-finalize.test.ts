// Finalizing a MailUserRestriction from a stale cache, on a real API server (the chart's RBAC)
// and real stores: vmail columns on PostgreSQL and MariaDB, OpenLDAP, the amavisd tables on
// PostgreSQL. The reconciler runs with the real Kubernetes client and the real store connections;
// only its cache is a list of objects this test took from the API server earlier, so the copy it
// reconciles is exactly as stale as an informer's can be when a reconcile is queued while the
// previous one lets go (amavisd.test.ts's conflict case lost the new owner's lists about 1 run
// in 5 that way; here it happens every run).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { V1Secret } from '@kubernetes/client-node';
import { MailwardenKubeClient } from '../../../src/kube/kube-client.ts';
import { BackendConnections } from '../../../src/reconcilers/backend-connections.ts';
import { MailUserRestrictionReconciler } from '../../../src/reconcilers/mail-user-restriction.ts';
import type { BackendObject, RestrictionObject } from '../../../src/reconcilers/types.ts';
import { BACKEND_KINDS, startBackend, type BackendFixture } from '../../harness/backends.ts';
import { startPostgres, type SqlServer } from '../../harness/containers.ts';
import { GROUP, resources, startOperatorEnv, VERSION, type OperatorEnv } from '../../harness/operator-env.ts';
import { lister, Recorder } from '../../unit/reconcilers/fakes.ts';
import { loadAmavisdTables } from '../stores/helpers.ts';

type Kind = (typeof BACKEND_KINDS)[number] | 'amavisd-postgres';

describe('operator: a restriction finalized from a stale cached copy', () => {
  let env: OperatorEnv;
  before(async () => {
    env = await startOperatorEnv();
  });
  after(async () => env?.stopAll());

  for (const kind of [...BACKEND_KINDS, 'amavisd-postgres'] as Kind[]) {
    describe(kind, () => {
      let backend: BackendFixture | undefined;
      let amavisd: SqlServer | undefined;
      let r: ReturnType<typeof resources>;
      let namespace: string;
      let client: MailwardenKubeClient;
      let connections: BackendConnections;
      let backendObject: BackendObject;
      let secret: V1Secret;

      /** The rejected senders of `mailbox` as the store holds them, read around mailwarden. */
      const rejectedSenders = async (mailbox: string): Promise<readonly string[]> => {
        if (backend !== undefined) return (await backend.readLists(mailbox))?.rejectedSenders ?? [];
        const rows = await amavisd!.query<{ party: string }>(
          "SELECT convert_from(m.email, 'UTF8') AS party FROM wblist w JOIN users u ON u.id = w.rid JOIN mailaddr m ON m.id = w.sid " +
            `WHERE u.email = convert_to('${mailbox}', 'UTF8') AND w.wb = 'B'`,
        );
        return rows.map((row) => row.party).sort();
      };
      /** The restriction as the API server has it now (undefined: gone). */
      const live = async (name: string) => (await r.get(name)) as RestrictionObject | undefined;
      /** One reconcile of `name` with these objects as the cache. */
      const reconcile = async (name: string, cache: RestrictionObject[], recorder = new Recorder()) => {
        const reconciler = new MailUserRestrictionReconciler({
          restrictions: lister(...cache),
          backends: lister(backendObject),
          secrets: lister(secret),
          connections,
          client,
          status: recorder.statusWriter('MailUserRestriction'),
          logger: recorder.logger,
        });
        await reconciler.reconcile(`${namespace}/${name}`);
        return recorder;
      };

      before(async () => {
        namespace = await env.namespace(`stale-${kind}`);
        r = resources(env, namespace);
        if (kind === 'amavisd-postgres') {
          amavisd = await startPostgres();
          await loadAmavisdTables(amavisd);
          await r.createBackend('store', { url: amavisd.url, sql: { schema: 'amavisd' } }, amavisd.password);
        } else {
          backend = await startBackend(kind);
          await r.createBackend('store', backend.spec, backend.password);
        }
        backendObject = (await env.objects.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'mailbackends', name: 'store' })) as BackendObject;
        secret = await env.core.readNamespacedSecret({ namespace, name: 'store-credentials' });
        client = new MailwardenKubeClient((await env.chartServiceAccount([namespace])).kubeConfig());
        connections = new BackendConnections();
      });
      after(async () => {
        await connections?.closeAll();
        await backend?.stop();
        await amavisd?.stop();
      });

      test('the old owner, reconciled again from its copy from before it let go, leaves the new owner\'s lists alone', async () => {
        await backend?.addMailbox('shared@example.com');
        await r.create('first', { mailbox: 'shared@example.com', backendRef: { name: 'store' }, deletionPolicy: 'Clear', rejectedSenders: ['@first.test'] });
        await reconcile('first', [(await live('first'))!]);
        assert.deepEqual(await rejectedSenders('shared@example.com'), ['@first.test']);
        await r.create('second', { mailbox: 'Shared@Example.com', backendRef: { name: 'store' }, deletionPolicy: 'Clear', rejectedSenders: ['@second.test'] });

        await r.delete('first');
        const stale = (await live('first'))!;
        assert.ok(stale.metadata.deletionTimestamp !== undefined && stale.metadata.finalizers?.length === 1, 'the finalizer holds the delete');
        const second = (await live('second'))!;
        // The owner's own finalize: it clears and lets go; the object is gone.
        await reconcile('first', [stale, second]);
        assert.equal(await live('first'), undefined);
        assert.deepEqual(await rejectedSenders('shared@example.com'), []);
        // The younger one, its cache without the old owner, takes over and writes.
        await reconcile('second', [second]);
        assert.deepEqual(await rejectedSenders('shared@example.com'), ['@second.test']);

        // A reconcile of the old owner queued meanwhile, on the copy the cache still holds.
        const recorder = await reconcile('first', [stale, (await live('second'))!]);
        assert.deepEqual(await rejectedSenders('shared@example.com'), ['@second.test'], 'the new owner\'s lists stay');
        assert.ok(recorder.debugLines().some((line) => /already finalized/.test(line)), recorder.debugLines().join(' | '));
      });

      test('deletionPolicy changed to Orphan while the delete waits: the cached copy still says Clear, the lists stay', async () => {
        await backend?.addMailbox('keep@example.com');
        await r.create('keep', { mailbox: 'keep@example.com', backendRef: { name: 'store' }, deletionPolicy: 'Clear', rejectedSenders: ['@keep.test'] });
        await reconcile('keep', [(await live('keep'))!]);
        assert.deepEqual(await rejectedSenders('keep@example.com'), ['@keep.test']);

        await r.delete('keep');
        const stale = (await live('keep'))!;
        await r.update('keep', { deletionPolicy: 'Orphan' });
        assert.equal((await live('keep'))?.spec.deletionPolicy, 'Orphan');
        await reconcile('keep', [stale]);
        assert.equal(await live('keep'), undefined, 'the finalizer went');
        assert.deepEqual(await rejectedSenders('keep@example.com'), ['@keep.test']);
      });
    });
  }
});
