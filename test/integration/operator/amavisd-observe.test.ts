// managementPolicy Observe over the amavisd tables (MailBackend sql.schema amavisd), on a real API
// server and a real PostgreSQL 15 and MariaDB 10.11: an account adopted with what export leaves
// in a document (a party and an account stored with capitals, white space, values that are no
// entry under invalidEntries) matches and is never written; a difference is reported, not
// written; the switch to Enforce writes exactly the difference, once. Every row written to the
// four tables is counted by triggers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Operator } from '../../../src/operator/manager.ts';
import { startMariadb, startPostgres, type SqlServer } from '../../harness/containers.ts';
import { eventually, resources, startOperatorEnv, type OperatorEnv } from '../../harness/operator-env.ts';
import { moreReconciles } from '../../harness/operator-outcomes.ts';
import { accountsLike, countTableWrites, pairsOf, seed, tableWrites } from '../adoption/amavisd-tables.ts';
import { loadAmavisdTables } from '../stores/helpers.ts';

const RESYNC_MS = 400;

for (const kind of ['postgres', 'mariadb'] as const) {
  describe(`operator: managementPolicy Observe over the amavisd tables (${kind})`, () => {
    let env: OperatorEnv;
    let db: SqlServer;
    let r: ReturnType<typeof resources>;
    let operator: Operator;

    before(async () => {
      env = await startOperatorEnv();
      db = kind === 'postgres' ? await startPostgres() : await startMariadb();
      await loadAmavisdTables(db);
      await countTableWrites(db);
      await seed(db, [
        {
          email: 'bob@example.com',
          priority: 100,
          inbound: [['Friend@Partner.TEST', 'w'], [' @spam.test', 'B'], ['not an address', 'B']],
          outbound: [['192.168.1.1', 'B'], ['@example.com', 'W']],
        },
        { email: 'Dora@Example.COM', priority: 100, inbound: [['@dora.test', 'B']] },
      ]);
      const ns = await env.namespace(`amavisd-observe-${kind}`);
      r = resources(env, ns);
      await r.createBackend('amavisd', { url: db.url, sql: { schema: 'amavisd' } }, db.password);
      operator = await env.operator([ns], { resyncMs: RESYNC_MS });
    });
    after(async () => {
      await env?.stopAll();
      await db?.stop();
    });

    /** Waits until `n` more reconciles concluded `reason`: the operator has looked at the store that often. */
    const reconciles = (reason: string, n: number): Promise<void> => moreReconciles(operator, reason, n);
    const eventsOf = async (name: string, reason: string) => (await r.events(name)).filter((e) => e.reason === reason);

    test('an adopted account (capitals, white space, invalid values): matches and is never written; a difference is reported, not written; Enforce writes exactly it, once', async () => {
      const base = await tableWrites(db);
      // As mailwarden export writes the account.
      await r.create('bob', {
        mailbox: 'bob@example.com',
        backendRef: { name: 'amavisd' },
        managementPolicy: 'Observe',
        allowedSenders: ['Friend@Partner.TEST'],
        rejectedSenders: ['@spam.test'],
        allowedRecipients: ['@example.com'],
        invalidEntries: { rejectedSenders: ['not an address'], rejectedRecipients: ['192.168.1.1'] },
      });
      const { ready } = await r.waitReason('bob', 'StoreMatches');
      assert.match(ready.message, /the lists of bob@example\.com in amavisd match the spec/);
      const matched = await eventually('StoreMatches Event', async () => (await eventsOf('bob', 'StoreMatches'))[0]);
      assert.equal(matched.type, 'Normal');
      await reconciles('StoreMatches', 3);
      assert.equal(await tableWrites(db), base, 'no write under Observe');

      await r.update('bob', { rejectedSenders: ['@spam.test', '@new.test'] });
      const differs = await r.waitReason('bob', 'StoreDiffers');
      assert.match(differs.ready.message, /differ from the spec \(managementPolicy Observe: nothing is written\): rejectedSenders \+@new\.test$/);
      const warning = await eventually('StoreDiffers Event', async () => (await eventsOf('bob', 'StoreDiffers'))[0]);
      assert.equal(warning.type, 'Warning');
      await reconciles('StoreDiffers', 3);
      assert.equal(await tableWrites(db), base, 'a difference is reported, not written');

      await r.update('bob', { managementPolicy: 'Enforce' });
      await r.waitReason('bob', 'Applied');
      assert.equal(await tableWrites(db), base + 2, 'exactly the difference: the new mailaddr row and its pair');
      await reconciles('Applied', 3);
      assert.equal(await tableWrites(db), base + 2, 'written once');
      assert.deepEqual(await pairsOf(db, 'bob@example.com'), {
        inbound: [' @spam.test B', '@new.test B', 'Friend@Partner.TEST w', 'not an address B'],
        outbound: ['192.168.1.1 B', '@example.com W'],
      });
    });

    test('an account stored with capitals: observed and enforced in its own users row, never a second one', async () => {
      const base = await tableWrites(db);
      await r.create('dora', { mailbox: 'dora@example.com', backendRef: { name: 'amavisd' }, managementPolicy: 'Observe', rejectedSenders: ['@dora.test'] });
      await r.waitReason('dora', 'StoreMatches');
      await r.update('dora', { managementPolicy: 'Enforce' });
      await r.waitReason('dora', 'Applied');
      await reconciles('Applied', 3);
      assert.equal(await tableWrites(db), base, 'the store already matched: nothing written');
      await r.update('dora', { rejectedSenders: ['@dora.test', '@dora2.test'] });
      await eventually('the new pair', async () => (await pairsOf(db, 'Dora@Example.COM')).inbound.length === 2);
      assert.deepEqual(await pairsOf(db, 'Dora@Example.COM'), { inbound: ['@dora.test B', '@dora2.test B'], outbound: [] });
      assert.deepEqual(await accountsLike(db, 'dora@example.com'), ['Dora@Example.COM']);
    });
  });
}
