// The operator writing MailUserRestrictions into the amavisd white/blacklist tables (MailBackend
// sql.schema amavisd), on a real API server, against real PostgreSQL 15 and MariaDB 10.11 with the
// tables written from the spec (bytea / varbinary emails): create, change, drift, conflict, delete
// with Clear and Orphan, two accounts sharing a mailaddr row, and what admission refuses.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FINALIZER } from '../../../src/reconcilers/mail-user-restriction.ts';
import { startMariadb, startPostgres, type SqlServer } from '../../harness/containers.ts';
import { eventually, resources, startOperatorEnv, type OperatorEnv } from '../../harness/operator-env.ts';
import { loadAmavisdTables } from '../stores/helpers.ts';

for (const kind of ['postgres', 'mariadb'] as const) {
  describe(`operator: MailUserRestriction into the amavisd tables (${kind})`, () => {
    let env: OperatorEnv;
    let db: SqlServer;
    let r: ReturnType<typeof resources>;
    const email = (column: string) => (kind === 'postgres' ? `convert_from(${column}, 'UTF8')` : `CAST(${column} AS CHAR)`);
    const lit = (text: string) => (kind === 'postgres' ? `convert_to('${text}', 'UTF8')` : `'${text}'`);
    /** Every pair as `in|out account party W|B`, sorted. */
    const pairs = async (account?: string): Promise<string[]> => {
      const rows = await db.query<{ t: string; account: string; party: string; wb: string }>(
        `SELECT 'in' AS t, ${email('u.email')} AS account, ${email('m.email')} AS party, w.wb FROM wblist w JOIN users u ON u.id = w.rid JOIN mailaddr m ON m.id = w.sid ` +
          `UNION ALL SELECT 'out', ${email('u.email')}, ${email('m.email')}, o.wb FROM outbound_wblist o JOIN users u ON u.id = o.sid JOIN mailaddr m ON m.id = o.rid`,
      );
      return rows
        .map((row) => `${row.t} ${row.account} ${row.party} ${row.wb}`)
        .filter((line) => account === undefined || line.split(' ')[1] === account)
        .sort();
    };
    const table = async (sql: string) => (await db.query<Record<string, unknown>>(sql)).map((row) => Object.values(row).map(String).join(' ')).sort();

    before(async () => {
      env = await startOperatorEnv();
      db = kind === 'postgres' ? await startPostgres() : await startMariadb();
      await loadAmavisdTables(db);
      const ns = await env.namespace(`amavisd-${kind}`);
      r = resources(env, ns);
      await r.createBackend('amavisd', { url: db.url, sql: { schema: 'amavisd' } }, db.password);
      await r.createBackend('vmail', { url: db.url }, db.password);
      await env.operator([ns], { resyncMs: 1_500 });
    });
    after(async () => {
      await env?.stopAll();
      await db?.stop();
    });

    test('create: the users row (priority by form, policy_id 0), shared mailaddr rows with their priorities, the pairs', async () => {
      await r.create('alice', {
        mailbox: 'alice@example.com',
        backendRef: { name: 'amavisd' },
        allowedSenders: ['boss@partner.test', '192.0.2.0/24'],
        rejectedSenders: ['@.', 'spam@*', '198.51.100.7'],
        rejectedRecipients: ['@.xyz'],
      });
      const { obj } = await r.waitReason('alice', 'Applied');
      assert.ok(obj.metadata.finalizers?.includes(FINALIZER));
      await r.create('domain', { mailbox: '@example.com', backendRef: { name: 'amavisd' }, rejectedSenders: ['@.'] });
      await r.create('server', { mailbox: '@.', backendRef: { name: 'amavisd' }, allowedSenders: ['@.'] });
      await r.waitReason('domain', 'Applied');
      await r.waitReason('server', 'Applied');
      assert.deepEqual(await table(`SELECT ${email('email')} AS e, priority, policy_id FROM users`), ['@. 0 0', '@example.com 60 0', 'alice@example.com 100 0']);
      assert.deepEqual(await table(`SELECT ${email('email')} AS e, priority FROM mailaddr`), ['192.0.2.0/24 7', '198.51.100.7 9', '@. 0', '@.xyz 2', 'boss@partner.test 10', 'spam@* 7']);
      assert.deepEqual(await pairs(), [
        'in @. @. W',
        'in @example.com @. B',
        'in alice@example.com 192.0.2.0/24 W',
        'in alice@example.com 198.51.100.7 B',
        'in alice@example.com @. B',
        'in alice@example.com boss@partner.test W',
        'in alice@example.com spam@* B',
        'out alice@example.com @.xyz B',
      ]);
    });

    test('change: only the account\'s own pairs change; drift written in the admin panel is corrected and reported', async () => {
      await r.create('carol', { mailbox: 'carol@example.com', backendRef: { name: 'amavisd' }, rejectedSenders: ['spam@evil.test'] });
      await r.waitReason('carol', 'Applied');
      const others = (await pairs()).filter((line) => !line.includes(' carol@example.com '));
      await r.update('carol', { rejectedSenders: ['@evil.test'], allowedRecipients: ['partner@shop.test'] });
      await eventually('changed pairs', async () => ((await pairs('carol@example.com')).length === 2 ? true : undefined));
      assert.deepEqual(await pairs('carol@example.com'), ['in carol@example.com @evil.test B', 'out carol@example.com partner@shop.test W']);
      assert.deepEqual((await pairs()).filter((line) => !line.includes(' carol@example.com ')), others, 'no other account changed');
      await r.waitReason('carol', 'Applied');

      // Someone whitelists a sender for carol in iRedAdmin (the pair is one statement: one drift).
      const wanted = ['in carol@example.com @evil.test B', 'out carol@example.com partner@shop.test W'].join();
      await db.query(`INSERT INTO mailaddr (priority, email) VALUES (10, ${lit('friend@else.test')})`);
      await db.query(`INSERT INTO wblist (rid, sid, wb) SELECT u.id, m.id, 'W' FROM users u, mailaddr m WHERE u.email = ${lit('carol@example.com')} AND m.email = ${lit('friend@else.test')}`);
      const added = await eventually('DriftCorrected event', async () => (await r.events('carol')).find((e) => e.reason === 'DriftCorrected'));
      assert.match(added.message ?? '', /allowedSenders of carol@example\.com differed/);
      await eventually('drift corrected', async () => ((await pairs('carol@example.com')).join() === wanted ? true : undefined));
      // ... and then flips her outbound pair from W to B.
      await db.query(`UPDATE outbound_wblist SET wb = 'B' WHERE sid = (SELECT id FROM users WHERE email = ${lit('carol@example.com')})`);
      const flipped = await eventually('second DriftCorrected event', async () => (await r.events('carol')).find((e) => e.reason === 'DriftCorrected' && /allowedRecipients, rejectedRecipients/.test(e.message ?? '')));
      assert.match(flipped.message ?? '', /allowedRecipients, rejectedRecipients of carol@example\.com differed/);
      await eventually('flip corrected', async () => ((await pairs('carol@example.com')).join() === wanted ? true : undefined));
      assert.deepEqual((await pairs()).filter((line) => !line.includes(' carol@example.com ')), others, 'no other account changed');
    });

    test('conflict: the oldest restriction of an account wins, the other takes over when it goes', async () => {
      await r.create('first', { mailbox: 'shared@example.com', backendRef: { name: 'amavisd' }, rejectedSenders: ['@first.test'] });
      await r.waitReason('first', 'Applied');
      await r.create('second', { mailbox: 'Shared@Example.com', backendRef: { name: 'amavisd' }, rejectedSenders: ['@second.test'] });
      const { ready } = await r.waitReason('second', 'Conflict');
      assert.match(ready.message, /already managed by MailUserRestriction first/);
      assert.deepEqual(await pairs('shared@example.com'), ['in shared@example.com @first.test B']);
      await r.delete('first');
      await r.waitReason('second', 'Applied');
      assert.deepEqual(await pairs('shared@example.com'), ['in shared@example.com @second.test B']);
    });

    test('two accounts share a mailaddr row; deleting one (Clear) removes its pairs only and keeps the shared row; Orphan keeps its pairs', async () => {
      await r.create('dave', { mailbox: 'dave@example.com', backendRef: { name: 'amavisd' }, rejectedSenders: ['bulk@ads.test'], allowedRecipients: ['@ads.test'] });
      await r.create('erin', { mailbox: 'erin@example.com', backendRef: { name: 'amavisd' }, rejectedSenders: ['bulk@ads.test'], deletionPolicy: 'Orphan' });
      await r.waitReason('dave', 'Applied');
      await r.waitReason('erin', 'Applied');
      assert.deepEqual(await table(`SELECT ${email('email')} AS e FROM mailaddr WHERE email = ${lit('bulk@ads.test')}`), ['bulk@ads.test'], 'one shared row');

      await r.delete('dave');
      await eventually('dave gone', async () => ((await r.get('dave')) === undefined ? true : undefined));
      assert.deepEqual(await pairs('dave@example.com'), []);
      assert.deepEqual(await pairs('erin@example.com'), ['in erin@example.com bulk@ads.test B']);
      assert.deepEqual(await table(`SELECT ${email('email')} AS e FROM mailaddr WHERE email IN (${lit('bulk@ads.test')}, ${lit('@ads.test')})`), ['@ads.test', 'bulk@ads.test'], 'mailaddr rows stay (iRedAPD cleanup_db.py removes unused ones)');
      assert.ok((await r.events('dave')).some((e) => e.reason === 'Cleared'));

      await r.delete('erin');
      await eventually('erin gone', async () => ((await r.get('erin')) === undefined ? true : undefined));
      assert.deepEqual(await pairs('erin@example.com'), ['in erin@example.com bulk@ads.test B'], 'Orphan leaves the pairs');
    });

    test('refused with nothing written: an IP as a recipient, one party in both lists of a direction, amavisd forms on a vmail backend', async () => {
      const before = await pairs();
      await r.create('iprcpt', { mailbox: 'frank@example.com', backendRef: { name: 'amavisd' }, rejectedRecipients: ['192.0.2.1'] });
      assert.match((await r.waitReason('iprcpt', 'InvalidSpec')).ready.message, /rejectedRecipients: "192\.0\.2\.1" is an IP address: a client is a sender, never a recipient/);
      await r.create('both', { mailbox: 'gina@example.com', backendRef: { name: 'amavisd' }, allowedSenders: ['x@y.test'], rejectedSenders: ['X@y.test'] });
      assert.match((await r.waitReason('both', 'InvalidSpec')).ready.message, /"x@y\.test" is in both allowedSenders and rejectedSenders/);
      await r.create('onvmail', { mailbox: '@example.com', backendRef: { name: 'vmail' }, rejectedSenders: ['10.0.0.0/8'] });
      const { ready } = await r.waitReason('onvmail', 'InvalidSpec');
      assert.match(ready.message, /mailbox "@example\.com" is not a full address/);
      assert.match(ready.message, /"10\.0\.0\.0\/8" is a network \(CIDR\): valid only in a MailBackend of schema amavisd/);
      assert.deepEqual(await pairs(), before);
      // What the API server itself refuses: a domain tree as an account, a malformed entry.
      await assert.rejects(r.create('tree', { mailbox: '@.example.com', backendRef: { name: 'amavisd' } }), (e: { code?: number }) => e.code === 422);
      await assert.rejects(r.create('garbage', { mailbox: 'h@example.com', backendRef: { name: 'amavisd' }, rejectedSenders: ['10.0.0.1 /8'] }), (e: { code?: number }) => e.code === 422);
      // Deleting a refused restriction lets go at once (it never wrote anything).
      await r.delete('iprcpt');
      await eventually('iprcpt gone', async () => ((await r.get('iprcpt')) === undefined ? true : undefined));
    });
  });
}
