// The amavisd white/blacklist store against real PostgreSQL 15 and MariaDB 10.11, with the tables
// written from the spec's facts (test/fixtures/amavisd-*.sql: bytea / varbinary emails). Lists are
// written through the store's writer and read back for the decision (one statement a request).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { DEFAULT_WBLIST_OPTIONS, decideWblist, planWblist } from '../../../src/restrictions/amavisd-wblist.ts';
import { openAmavisdStore, type AmavisdWblistStore } from '../../../src/stores/amavisd-sql.ts';
import { FIXTURES_DIR, type SqlServer, startMariadb, startPostgres } from '../../harness/containers.ts';
import { lists, storeError } from './helpers.ts';

export function amavisdStoreSuite(kind: 'postgres' | 'mariadb'): void {
  describe(`amavisd store on ${kind === 'postgres' ? 'PostgreSQL 15' : 'MariaDB 10.11'}`, () => {
    let db: SqlServer;
    let store: AmavisdWblistStore;
    const text = (v: unknown) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));
    const rows = async (sql: string) => (await db.query<Record<string, unknown>>(sql)).map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'number' || typeof v === 'string' ? v : text(v)])));

    before(async () => {
      db = kind === 'postgres' ? await startPostgres() : await startMariadb();
      const file = path.join(FIXTURES_DIR, kind === 'postgres' ? 'amavisd-postgres.sql' : 'amavisd-mysql.sql');
      for (const stmt of (await readFile(file, 'utf8')).split('\n').filter((l) => !l.startsWith('--')).join('\n').split(/;\s*\n/).map((s) => s.trim()).filter(Boolean)) await db.query(stmt);
      store = await openAmavisdStore(db.url, {}, { semantics: 'default', password: db.password });
    });
    after(async () => {
      await store?.close();
      await db?.stop();
    });
    beforeEach(async () => {
      for (const t of ['wblist', 'outbound_wblist', 'users', 'mailaddr']) await db.query(`DELETE FROM ${t}`);
    });

    test('apply creates the users row (priority by form, policy_id 0), shared mailaddr rows with priorities, and the pairs; once', async () => {
      const wanted = lists({ allowedSenders: ['boss@partner.test'], rejectedSenders: ['@.', '10.0.0.0/8', 'spam@*'], rejectedRecipients: ['@.xyz'] });
      assert.deepEqual((await store.apply('alice@example.com', wanted)).changed, ['allowedSenders', 'rejectedSenders', 'rejectedRecipients']);
      assert.deepEqual(await rows('SELECT email, priority, policy_id FROM users'), [{ email: 'alice@example.com', priority: 100, policy_id: 0 }]);
      const parties = Object.fromEntries((await rows('SELECT email, priority FROM mailaddr')).map((r) => [r.email, r.priority]));
      assert.deepEqual(parties, { 'boss@partner.test': 10, '@.': 0, '10.0.0.0/8': 7, 'spam@*': 7, '@.xyz': 2 });
      assert.equal((await rows('SELECT * FROM wblist')).length, 4);
      assert.deepEqual((await rows('SELECT wb FROM outbound_wblist')).map((r) => r.wb), ['B']);
      assert.deepEqual((await store.apply('alice@example.com', wanted)).changed, []);
      assert.deepEqual(await store.observe('alice@example.com'), { allowedSenders: ['boss@partner.test'], rejectedSenders: ['10.0.0.0/8', '@.', 'spam@*'], allowedRecipients: [], rejectedRecipients: ['@.xyz'] });
    });

    test('domain-wide and server-wide accounts get their priorities', async () => {
      await store.apply('@example.com', lists({ rejectedSenders: ['@evil.test'] }));
      await store.apply('@.', lists({ rejectedSenders: ['@evil.test'] }));
      assert.deepEqual(Object.fromEntries((await rows('SELECT email, priority FROM users')).map((r) => [r.email, r.priority])), { '@example.com': 60, '@.': 0 });
      assert.equal((await rows('SELECT * FROM mailaddr')).length, 1, 'one shared mailaddr row');
    });

    test("two accounts share a mailaddr row; clearing one keeps the row and the other's pair; drift of one account is corrected alone", async () => {
      await store.apply('alice@example.com', lists({ rejectedSenders: ['spam@evil.test'] }));
      await store.apply('bob@example.com', lists({ rejectedSenders: ['spam@evil.test'] }));
      assert.equal((await rows('SELECT * FROM mailaddr')).length, 1);
      // Someone adds a pair for bob in the admin panel.
      await db.query(kind === 'postgres' ? "INSERT INTO mailaddr (priority, email) VALUES (5, convert_to('@extra.test', 'UTF8'))" : "INSERT INTO mailaddr (priority, email) VALUES (5, '@extra.test')");
      await db.query("INSERT INTO wblist (rid, sid, wb) SELECT u.id, m.id, 'W' FROM users u, mailaddr m WHERE u.email = " + (kind === 'postgres' ? "convert_to('bob@example.com', 'UTF8') AND m.email = convert_to('@extra.test', 'UTF8')" : "'bob@example.com' AND m.email = '@extra.test'"));
      assert.deepEqual((await store.apply('bob@example.com', lists({ rejectedSenders: ['spam@evil.test'] }))).changed, ['allowedSenders']);
      assert.deepEqual(await store.observe('bob@example.com'), lists({ rejectedSenders: ['spam@evil.test'] }));
      assert.deepEqual((await store.clear('alice@example.com')).changed, ['rejectedSenders']);
      assert.deepEqual(await store.observe('alice@example.com'), lists({}));
      assert.deepEqual(await store.observe('bob@example.com'), lists({ rejectedSenders: ['spam@evil.test'] }));
      assert.equal((await rows('SELECT * FROM mailaddr')).length, 2, 'mailaddr rows stay (cleanup_db.py removes unused ones)');
    });

    test('refused with nothing written: an IP as a recipient, an entry in both lists of one direction', async () => {
      await store.apply('alice@example.com', lists({ rejectedSenders: ['@.'] }));
      await assert.rejects(store.apply('alice@example.com', lists({ rejectedRecipients: ['192.0.2.1'] })), storeError('InvalidValue', /sender, never a recipient/));
      await assert.rejects(store.apply('alice@example.com', lists({ allowedSenders: ['@x.test'], rejectedSenders: ['@X.test'] })), storeError('InvalidValue', /both allowedSenders and rejectedSenders/));
      assert.deepEqual(await store.observe('alice@example.com'), lists({ rejectedSenders: ['@.'] }));
    });

    test('an internationalised domain is stored in its ASCII form, and a request in either form meets the same pair', async () => {
      assert.deepEqual((await store.apply('Anna@Bücher.example', lists({ rejectedSenders: ['@Spam.例え.test'] }))).changed, ['rejectedSenders']);
      assert.deepEqual(await rows('SELECT email FROM users'), [{ email: 'anna@xn--bcher-kva.example' }]);
      assert.deepEqual(await rows('SELECT email FROM mailaddr'), [{ email: '@spam.xn--r8jz45g.test' }]);
      assert.deepEqual((await store.apply('anna@xn--bcher-kva.example', lists({ rejectedSenders: ['@spam.xn--r8jz45g.test'] }))).changed, [], 'the ASCII form is what the spec meant');
      for (const [sender, recipient] of [
        ['x@spam.例え.test', 'anna@bücher.example'],
        ['x@spam.xn--r8jz45g.test', 'anna@xn--bcher-kva.example'],
        ['x@SPAM.例え.test', 'Anna@BÜCHER.example'],
      ] as const) {
        const plan = planWblist({ protocolState: 'RCPT', sender, recipient, saslUsername: undefined, clientAddress: '203.0.113.9' }, DEFAULT_WBLIST_OPTIONS);
        assert.ok(typeof plan !== 'string', String(plan));
        const decision = decideWblist(plan, await store.facts(plan, AbortSignal.timeout(2000)), DEFAULT_WBLIST_OPTIONS);
        assert.equal(`${decision.action}: ${decision.account} ${decision.party} ${decision.wb}`, 'REJECT Blacklisted: anna@xn--bcher-kva.example @spam.xn--r8jz45g.test B', `${sender} -> ${recipient}`);
      }
    });

    describe('decisions from what the writer wrote, read back in one statement', () => {
      const cases: { sender: string; recipient: string; sasl?: string; client?: string; action: string; pair?: string }[] = [
        { sender: 'spam@evil.test', recipient: 'alice@example.com', action: 'REJECT Blacklisted', pair: 'alice@example.com spam@evil.test B' },
        { sender: 'friend@evil.test', recipient: 'alice@example.com', action: 'OK', pair: 'alice@example.com @. W' },
        { sender: 'x@evil.test', recipient: 'bob@example.com', action: 'REJECT Blacklisted', pair: '@example.com @.evil.test B' },
        { sender: 'x@a.b.evil.test', recipient: 'bob+tag@example.com', action: 'REJECT Blacklisted' },
        { sender: 'news@shop.test', recipient: 'carol@example.org', action: 'REJECT Blacklisted', pair: '@. news@* B' },
        { sender: 'x@y.test', recipient: 'bob@example.com', client: '10.1.2.3', action: 'REJECT Blacklisted', pair: '@example.com 10.0.0.0/8 B' },
        { sender: 'x@y.test', recipient: 'bob@example.com', client: '2001:db8::7', action: 'REJECT Blacklisted' },
        { sender: 'x@y.test', recipient: 'bob@example.com', client: '192.0.2.1', action: 'DUNNO' },
        { sender: 'alice@example.com', sasl: 'alice@example.com', recipient: 'x@gmail.com', action: 'REJECT Blacklisted', pair: 'alice@example.com @gmail.com B' },
        { sender: 'alice@example.com', sasl: 'alice@example.com', recipient: 'ok@gmail.com', action: 'DUNNO' },
      ];
      for (const c of cases) {
        test(`${c.sasl ? `sasl ${c.sasl} ` : ''}${c.sender || '<>'} -> ${c.recipient}${c.client ? ` from ${c.client}` : ''}: ${c.action}`, async () => {
          await store.apply('alice@example.com', lists({ allowedSenders: ['@.'], rejectedSenders: ['spam@evil.test'], allowedRecipients: ['ok@gmail.com'], rejectedRecipients: ['@gmail.com'] }));
          await store.apply('@example.com', lists({ rejectedSenders: ['@.evil.test', '10.0.0.0/8', '2001:db8::7'] }));
          await store.apply('@.', lists({ rejectedSenders: ['news@*'] }));
          const plan = planWblist({ protocolState: 'RCPT', sender: c.sender, recipient: c.recipient, saslUsername: c.sasl, clientAddress: c.client ?? '203.0.113.9' }, DEFAULT_WBLIST_OPTIONS);
          assert.ok(typeof plan !== 'string');
          const decision = decideWblist(plan, await store.facts(plan, AbortSignal.timeout(2000)), DEFAULT_WBLIST_OPTIONS);
          assert.equal(decision.action, c.action);
          if (c.pair !== undefined) assert.equal(`${decision.account} ${decision.party} ${decision.wb}`, c.pair);
        });
      }
    });
  });
}
