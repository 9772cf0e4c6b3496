// The SQL store specification, run against a real PostgreSQL 15 and a real MariaDB 10.11
// (postgres.test.ts, mariadb.test.ts). Each case says what iRedMail data looks like and what the
// store must make of it.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { decide, planDecision, skipped } from '../../../src/restrictions/decide.ts';
import { LIST_NAMES, type MailboxRecord } from '../../../src/restrictions/lists.ts';
import { compileMailbox, type CompiledMailbox } from '../../../src/restrictions/mailbox.ts';
import { resolveOptions } from '../../../src/restrictions/options.ts';
import { joinSqlList, splitSqlList } from '../../../src/restrictions/sql-list.ts';
import type { Logger } from '../../../src/observability/logger.ts';
import type { UrlStore } from '../../../src/stores/url-store.ts';
import { openUrlStore } from '../../../src/stores/url-store.ts';
import { type SqlServer, startMariadb, startPostgres } from '../../harness/containers.ts';
import { loadVectors } from '../../helpers/vectors.ts';
import { HOSTILE_ADDRESSES, lists, median, NON_ASCII_ADDRESSES, note, percentile, storeError, timed, timedFailure } from './helpers.ts';

const COLUMN_OF = {
  allowedSenders: 'allowedsenders',
  rejectedSenders: 'rejectedsenders',
  allowedRecipients: 'allowedrecipients',
  rejectedRecipients: 'rejectedrecipients',
} as const;

/** A logger that remembers every line, to check no secret is ever logged. */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const push = (obj: object, msg: string) => lines.push(`${msg} ${JSON.stringify(obj)}`);
  const logger = { lines, debug: push, info: push, warn: push, error: push, child: () => logger };
  return logger;
}

export function sqlStoreSuite(kind: 'postgres' | 'mariadb'): void {
  const product = kind === 'postgres' ? 'PostgreSQL 15' : 'MariaDB 10.11';
  const caseInsensitive = kind === 'mariadb';

  describe(`${product} store`, () => {
    let db: SqlServer;
    let store: UrlStore;
    let preset: UrlStore;
    const logger = recordingLogger();
    const open = (semantics: 'default' | 'iredapd', settings: unknown = {}, password = db.password, url = db.url) =>
      openUrlStore(url, settings, { semantics, password, logger });

    before(async () => {
      db = kind === 'postgres' ? await startPostgres() : await startMariadb();
      note(`${product} started in ${db.startupMs} ms`);
      // Old servers may hold NULL in the restriction columns; the vectors use it.
      await db.allowNullRestrictions();
      store = await open('default');
      preset = await open('iredapd');
    });
    after(async () => {
      await store?.close();
      await preset?.close();
      await db?.stop();
    });
    beforeEach(async () => {
      await db.clearMailboxes();
    });

    describe('every vector of vectors-iredapd.json through the store', () => {
      const options = resolveOptions('iredapd');
      const storeName = kind === 'postgres' ? 'postgresql' : 'mysql';
      for (const vector of loadVectors()) {
        test(vector.id, async () => {
          await db.clearMailboxes();
          await db.insertMailboxes(vector.mailbox_rows.map((row) => ({ ...row, username: String(row.username) })));
          const r = vector.request;
          const plan = planDecision(
            { protocolState: r.protocol_state, sender: r.sender, recipient: r.recipient, saslUsername: r.sasl_username },
            options,
          );
          const keys =
            typeof plan === 'string'
              ? [r.sender, r.recipient].filter((a): a is string => a !== undefined).map((a) => a.trim().toLowerCase())
              : [...plan.keys];
          const found = await preset.lookup(keys, AbortSignal.timeout(2000));

          // What the store must return: each key's row under the server's own equality, split as iRedAPD did.
          const expected = new Map<string, MailboxRecord>();
          for (const key of new Set(keys)) {
            if (key === '') continue;
            const row = vector.mailbox_rows.find((row) =>
              caseInsensitive ? String(row.username).toLowerCase() === key : row.username === key,
            );
            if (row === undefined) continue;
            const split = (c: string) => splitSqlList(row[c] as string | null, 'iredapd');
            expected.set(key, {
              address: key,
              lists: {
                allowedSenders: split('allowedsenders'),
                rejectedSenders: split('rejectedsenders'),
                allowedRecipients: split('allowedrecipients'),
                rejectedRecipients: split('rejectedrecipients'),
              },
            });
          }
          assert.deepEqual(new Map(found), expected);

          // And the whole decision, from what the store returned.
          const action =
            typeof plan === 'string'
              ? skipped(plan).action
              : (() => {
                  const compiled = new Map<string, CompiledMailbox>();
                  for (const [key, record] of found) compiled.set(key, compileMailbox(record, options));
                  return decide(plan, (key) => compiled.get(key), options).action;
                })();
          assert.equal(action, vector.expected_by_store?.[storeName] ?? vector.expected_action, vector.why);
        });
      }
    });

    describe('lookup', () => {
      test('all requested addresses in one call; keys without a mailbox are left out', async () => {
        await db.insertMailboxes([
          { username: 'alice@example.com', rejectedrecipients: '@.' },
          { username: 'bob@example.com', allowedsenders: '@partner.test', rejectedsenders: '@.' },
        ]);
        const found = await store.lookup(['alice@example.com', 'bob@example.com', 'nobody@example.com'], AbortSignal.timeout(2000));
        assert.deepEqual([...found.keys()].sort(), ['alice@example.com', 'bob@example.com']);
        assert.deepEqual(found.get('bob@example.com')?.lists, {
          allowedSenders: ['@partner.test'],
          rejectedSenders: ['@.'],
          allowedRecipients: null,
          rejectedRecipients: null,
        });
      });

      test(`a username stored with capitals is ${caseInsensitive ? '' : 'not '}found by its lower-case key (E09)`, async () => {
        await db.insertMailboxes([{ username: 'Bob@Example.com', rejectedsenders: '@.' }]);
        const found = await store.lookup(['bob@example.com'], AbortSignal.timeout(2000));
        assert.equal(found.has('bob@example.com'), caseInsensitive);
        if (caseInsensitive) assert.equal(found.get('bob@example.com')?.address, 'bob@example.com');
      });

      test('renamed table and columns are honoured', async () => {
        await db.query(
          kind === 'postgres'
            ? 'CREATE TABLE IF NOT EXISTS users2 (email VARCHAR(255) PRIMARY KEY, wl TEXT, bl TEXT, wr TEXT, br TEXT)'
            : 'CREATE TABLE IF NOT EXISTS users2 (email VARCHAR(255) PRIMARY KEY, wl TEXT, bl TEXT, wr TEXT, br TEXT) DEFAULT CHARSET=utf8mb4',
        );
        await db.query('DELETE FROM users2');
        await db.query(
          `INSERT INTO users2 (email, wl, bl, wr, br) VALUES (${kind === 'postgres' ? '$1, $2, $3, $4, $5' : '?, ?, ?, ?, ?'})`,
          ['carol@example.com', '@a.test', null, '', '@.'],
        );
        const renamed = await open('default', {
          table: 'users2',
          columns: { username: 'email', allowedSenders: 'wl', rejectedSenders: 'bl', allowedRecipients: 'wr', rejectedRecipients: 'br' },
        });
        try {
          const found = await renamed.lookup(['carol@example.com'], AbortSignal.timeout(2000));
          assert.deepEqual(found.get('carol@example.com')?.lists, {
            allowedSenders: ['@a.test'],
            rejectedSenders: null,
            allowedRecipients: null,
            rejectedRecipients: ['@.'],
          });
          assert.deepEqual(await renamed.apply('carol@example.com', lists({ allowedSenders: ['@b.test'] })), { changed: ['allowedSenders', 'rejectedRecipients'], written: true });
        } finally {
          await renamed.close();
        }
      });
    });

    describe('apply, observe, clear', () => {
      const wanted = lists({ allowedSenders: ['@partner.test', 'boss@example.com'], rejectedSenders: ['@.'], rejectedRecipients: ['@gmail.com'] });

      test('apply writes all four lists as canonical text, once', async () => {
        await db.insertMailboxes([{ username: 'alice@example.com', allowedrecipients: '@old.test' }]);
        assert.deepEqual(await store.apply('alice@example.com', wanted), { changed: [...LIST_NAMES], written: true });
        const row = await db.getMailbox('alice@example.com');
        for (const name of LIST_NAMES) assert.equal(row?.[COLUMN_OF[name]], joinSqlList(wanted[name]));
        assert.equal(row?.allowedrecipients, '');
        assert.deepEqual(await store.observe('alice@example.com'), wanted);
        assert.deepEqual(await store.apply('alice@example.com', wanted), { changed: [], written: false }, 'second apply is a no-op');
      });

      test('entries differing only in case and blanks are the same canonical text', async () => {
        await db.insertMailboxes([{ username: 'alice@example.com' }]);
        await store.apply('alice@example.com', wanted);
        const shouted = lists({ allowedSenders: [' @Partner.TEST', 'Boss@Example.com '], rejectedSenders: ['@.'], rejectedRecipients: ['@GMAIL.com'] });
        assert.deepEqual(await store.apply('alice@example.com', shouted), { changed: [], written: false });
      });

      test('text stored by hand in another form is left as it is; a change writes only the difference', async () => {
        await db.insertMailboxes([{ username: 'alice@example.com', rejectedsenders: ' @. , ', allowedsenders: ' @A.test,@a.test' }]);
        assert.deepEqual(await store.observe('alice@example.com'), lists({ rejectedSenders: ['@.'], allowedSenders: ['@a.test', '@a.test'] }));
        // The same entries: nothing written, so adopting a server typed by hand writes nothing.
        assert.deepEqual(await store.apply('alice@example.com', lists({ rejectedSenders: ['@.'], allowedSenders: ['@a.test'] })), { changed: [], written: false });
        assert.equal((await db.getMailbox('alice@example.com'))?.rejectedsenders, ' @. , ');
        // One entry more: that column only, the stored text of what stays kept.
        assert.deepEqual(await store.apply('alice@example.com', lists({ rejectedSenders: ['@.', '@b.test'], allowedSenders: ['@a.test'] })), { changed: ['rejectedSenders'], written: true });
        const row = await db.getMailbox('alice@example.com');
        assert.deepEqual([row?.rejectedsenders, row?.allowedsenders], [' @. ,@b.test', ' @A.test,@a.test']);
      });

      test('clear empties the four lists; NULL columns count as empty', async () => {
        await db.insertMailboxes([
          { username: 'alice@example.com', allowedsenders: '@a.test', rejectedsenders: '@.', allowedrecipients: 'x@y.test', rejectedrecipients: '@.' },
          { username: 'old@example.com', allowedsenders: null, rejectedsenders: null, allowedrecipients: null, rejectedrecipients: null },
        ]);
        assert.deepEqual(await store.clear('alice@example.com'), { changed: [...LIST_NAMES], written: true });
        const row = await db.getMailbox('alice@example.com');
        for (const name of LIST_NAMES) assert.equal(row?.[COLUMN_OF[name]], '');
        assert.deepEqual(await store.clear('alice@example.com'), { changed: [], written: false });
        assert.deepEqual(await store.observe('old@example.com'), lists({}));
        assert.deepEqual(await store.clear('old@example.com'), { changed: [], written: false });
      });

      test('a missing mailbox is MailboxNotFound and nothing is created', async () => {
        await assert.rejects(store.apply('ghost@example.com', wanted), storeError('MailboxNotFound', /ghost@example\.com.*never creates/));
        await assert.rejects(store.observe('ghost@example.com'), storeError('MailboxNotFound'));
        await assert.rejects(store.clear('ghost@example.com'), storeError('MailboxNotFound'));
        assert.equal(await db.getMailbox('ghost@example.com'), undefined);
      });

      test(`a mailbox stored with capitals is ${caseInsensitive ? 'written' : 'not found'} for its lower-case address`, async () => {
        await db.insertMailboxes([{ username: 'Bob@Example.com' }]);
        if (caseInsensitive) {
          assert.deepEqual(await store.apply('bob@example.com', wanted), { changed: ['allowedSenders', 'rejectedSenders', 'rejectedRecipients'], written: true });
          assert.equal((await db.getMailbox('Bob@Example.com'))?.rejectedsenders, '@.');
        } else {
          await assert.rejects(store.apply('bob@example.com', wanted), storeError('MailboxNotFound'));
        }
      });

      test('the read-only account cannot write: Misconfigured', async () => {
        await db.insertMailboxes([{ username: 'alice@example.com' }]);
        const readOnly = await open('default', {}, db.readOnly.password, db.urlFor(db.readOnly));
        try {
          assert.equal((await readOnly.lookup(['alice@example.com'], AbortSignal.timeout(2000))).size, 1);
          await assert.rejects(readOnly.apply('alice@example.com', wanted), storeError('Misconfigured'));
        } finally {
          await readOnly.close();
        }
      });
    });

    if (kind === 'mariadb') {
      describe('a list longer than a TEXT column holds (65,535 bytes)', () => {
        // 340 valid entries of 198 bytes (a 190-character domain): 67,659 bytes joined; a document
        // may hold 500 entries of up to 254 characters.
        const domain = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.example`;
        const long = Array.from({ length: 340 }, (_, i) => `u${String(i).padStart(3, '0')}@${domain}`);
        for (const sqlMode of ['STRICT_TRANS_TABLES', '']) {
          test(`sql_mode '${sqlMode}': refused as InvalidValue naming the column, and nothing is written`, async () => {
            await db.insertMailboxes([{ username: 'alice@example.com', allowedsenders: '@before.test' }]);
            await db.query(`SET GLOBAL sql_mode = '${sqlMode}'`, [], db.admin);
            // A store opened now: its connections take the global sql_mode.
            const s = await open('default');
            try {
              await assert.rejects(
                s.apply('alice@example.com', lists({ allowedSenders: long, rejectedSenders: ['@.'] })),
                storeError('InvalidValue', /allowedsenders.*nothing was written|nothing was written.*allowedsenders/),
              );
              const row = await db.getMailbox('alice@example.com');
              assert.equal(row?.allowedsenders, '@before.test', 'the old list is kept whole');
              assert.equal(row?.rejectedsenders, '', 'no other column was written either');
              await assert.rejects(s.apply('alice@example.com', lists({ allowedSenders: long })), storeError('InvalidValue'), 'every retry is refused too');
            } finally {
              await s.close();
              await db.query("SET GLOBAL sql_mode = DEFAULT", [], db.admin);
            }
          });
        }
      });
    }

    describe('hostile values are data', () => {
      test('addresses with quotes, backslashes, wildcards and parentheses find exactly their own row', async () => {
        const all = [...HOSTILE_ADDRESSES, ...NON_ASCII_ADDRESSES];
        await db.insertMailboxes(all.map((username, i) => ({ username, rejectedsenders: `n${i}@x.test` })));
        // Decoys a LIKE or an unescaped quote would match.
        await db.insertMailboxes([{ username: 'pctX@x.test' }, { username: 'underXscore@x.test' }, { username: 'o@x.test' }]);
        for (const [i, address] of all.entries()) {
          const found = await store.lookup([address], AbortSignal.timeout(2000));
          assert.deepEqual([...found.keys()], [address]);
          assert.deepEqual(found.get(address)?.lists.rejectedSenders, [`n${i}@x.test`]);
        }
        const together = await store.lookup([...all], AbortSignal.timeout(2000));
        assert.equal(together.size, all.length);
      });

      test('injection attempts as keys match nothing and break nothing', async () => {
        await db.insertMailboxes([{ username: 'alice@example.com', rejectedrecipients: '@.' }]);
        const attempts = ["' OR '1'='1", "alice@example.com' --", 'alice@example.com\\', '%', '_lice@example.com', '*', ')(mail=*', 'a\u0000@x.test', "'); DROP TABLE mailbox; --"];
        const found = await store.lookup(attempts, AbortSignal.timeout(2000));
        assert.equal(found.size, 0);
        assert.ok(await db.getMailbox('alice@example.com'), 'the table is intact');
      });

      test('entries with special characters are stored and read back exactly', async () => {
        await db.insertMailboxes([{ username: 'alice@example.com' }]);
        const entries = [...HOSTILE_ADDRESSES, 'jösé@xn--exmple-cua.test', 'ünïcode@xn--r8jz45g.test', '@xn--exmple-cua.test', 'emoji😀@x.test'];
        assert.deepEqual(await store.apply('alice@example.com', lists({ allowedSenders: entries })), { changed: ['allowedSenders'], written: true });
        assert.equal((await db.getMailbox('alice@example.com'))?.allowedsenders, entries.join(','));
        const found = await store.lookup(['alice@example.com'], AbortSignal.timeout(2000));
        assert.deepEqual(found.get('alice@example.com')?.lists.allowedSenders, entries);
        assert.deepEqual(await store.apply('alice@example.com', lists({ allowedSenders: entries })), { changed: [], written: false });
      });

      test('internationalised domains are stored in ASCII form and matched from either form', async () => {
        await db.insertMailboxes([{ username: 'anna@xn--bcher-kva.example' }]);
        const written = lists({ rejectedSenders: ['@Bücher.example', 'spam@.例え.test'], allowedRecipients: ['@.xn--bcher-kva.example'] });
        assert.deepEqual(await store.apply('Anna@bücher.example', written), { changed: ['rejectedSenders', 'allowedRecipients'], written: true });
        const row = await db.getMailbox('anna@xn--bcher-kva.example');
        assert.equal(row?.rejectedsenders, '@xn--bcher-kva.example,spam@.xn--r8jz45g.test');
        assert.equal(row?.allowedrecipients, '@.xn--bcher-kva.example');
        assert.deepEqual(await store.apply('anna@bücher.example', written), { changed: [], written: false }, 'the ASCII form is what the spec means');
        const options = resolveOptions('default');
        for (const [sender, recipient] of [
          ['x@bücher.example', 'anna@bücher.example'],
          ['x@xn--bcher-kva.example', 'anna@xn--bcher-kva.example'],
          ['x@BÜCHER.example', 'anna@xn--bcher-kva.example'],
        ] as const) {
          const plan = planDecision({ protocolState: 'RCPT', sender, recipient, saslUsername: undefined }, options);
          assert.ok(typeof plan !== 'string');
          const found = await store.lookup(plan.keys, AbortSignal.timeout(2000));
          const decision = decide(plan, (key) => (found.has(key) ? compileMailbox(found.get(key)!, options) : undefined), options);
          assert.equal(decision.verdict, 'reject', `${sender} -> ${recipient}`);
        }
      });

      test('NUL, a comma inside an entry and an empty entry are refused as InvalidValue', async () => {
        await db.insertMailboxes([{ username: 'alice@example.com', rejectedsenders: '@.' }]);
        for (const bad of ['a\u0000b@x.test', 'a@x.test,b@x.test', '  ']) {
          await assert.rejects(store.apply('alice@example.com', lists({ allowedSenders: [bad] })), storeError('InvalidValue', /allowedSenders/));
        }
        await assert.rejects(store.apply('a\u0000@x.test', lists({})), storeError('InvalidValue'));
        assert.equal((await db.getMailbox('alice@example.com'))?.rejectedsenders, '@.', 'nothing was written');
      });
    });

    describe('configuration errors', () => {
      test('verifySchema: the iRedMail fixture passes; iRedMail 1.4+ (list columns dropped) is Misconfigured naming the column and pointing to amavisd', async () => {
        await store.verifySchema!(AbortSignal.timeout(2000));
        // What iRedMail 1.4.0's upgrade script left: the four columns dropped.
        await db.query('CREATE TABLE mailbox14 (username VARCHAR(255) PRIMARY KEY, domain VARCHAR(255))');
        try {
          const s = await open('default', { table: 'mailbox14' });
          try {
            await assert.rejects(s.verifySchema!(AbortSignal.timeout(2000)), storeError('Misconfigured', /mailbox14 has no column allowedsenders \(columns\.allowedSenders\).*amavisd/));
          } finally {
            await s.close();
          }
          const t = await open('default', { table: 'nosuchtable' });
          try {
            await assert.rejects(t.verifySchema!(AbortSignal.timeout(2000)), storeError('Misconfigured', /table nosuchtable does not exist.*amavisd/));
          } finally {
            await t.close();
          }
        } finally {
          await db.query('DROP TABLE mailbox14');
        }
      });

      test('a missing table is Misconfigured and names it', async () => {
        const s = await open('default', { table: 'nosuchtable' });
        try {
          await assert.rejects(s.lookup(['a@x.test'], AbortSignal.timeout(2000)), storeError('Misconfigured', /table nosuchtable/));
        } finally {
          await s.close();
        }
      });

      test('a missing column is Misconfigured and names the columns', async () => {
        const s = await open('default', { columns: { allowedSenders: 'nosuchcolumn' } });
        try {
          await assert.rejects(s.lookup(['a@x.test'], AbortSignal.timeout(2000)), storeError('Misconfigured', /nosuchcolumn/));
        } finally {
          await s.close();
        }
      });

      test('a wrong password is Misconfigured, and neither message nor log holds a password', async () => {
        const s = await open('default', {}, 'wrong-secret-xyz', db.url.replace('vmailadmin@', 'vmailadmin:url-secret-abc@'));
        try {
          await assert.rejects(
            s.lookup(['a@x.test'], AbortSignal.timeout(3000)),
            storeError('Misconfigured', /vmailadmin/, ['wrong-secret-xyz', 'url-secret-abc', db.password]),
          );
        } finally {
          await s.close();
        }
        for (const line of logger.lines) {
          assert.ok(!line.includes('wrong-secret-xyz') && !line.includes('url-secret-abc'), line);
        }
      });

      test('ping reads no row, and fails as a lookup does on a missing table or column or a wrong password', async () => {
        await store.ping(AbortSignal.timeout(2000));
        const cases: [settings: object, password: string, message: RegExp][] = [
          [{ table: 'nosuchtable' }, db.password, /table nosuchtable/],
          [{ columns: { allowedSenders: 'nosuchcolumn' } }, db.password, /nosuchcolumn/],
          [{}, 'wrong-secret-xyz', /vmailadmin/],
        ];
        for (const [settings, password, message] of cases) {
          const s = await open('default', settings, password);
          try {
            await assert.rejects(s.ping(AbortSignal.timeout(3000)), storeError('Misconfigured', message, ['wrong-secret-xyz']));
          } finally {
            await s.close();
          }
        }
      });

      test('a server that refuses connections is Unavailable', async () => {
        const s = await open('default', {}, db.password, db.url.replace(`:${db.port}/`, ':1/'));
        try {
          const { ms, error } = await timedFailure(() => s.lookup(['a@x.test'], AbortSignal.timeout(1000)));
          storeError('Unavailable')(error);
          note(`${product}: refused connection answered Unavailable in ${ms.toFixed(1)} ms`);
        } finally {
          await s.close();
        }
      });
    });

    describe('10,000 mailboxes', () => {
      test('a lookup among them is one indexed query', async () => {
        const t0 = performance.now();
        if (kind === 'postgres') {
          await db.query(
            "INSERT INTO mailbox (username, domain, rejectedsenders) SELECT 'user' || g || '@big.test', 'big.test', CASE WHEN g % 2 = 0 THEN '@.' ELSE '' END FROM generate_series(1, 10000) AS g",
          );
        } else {
          await db.query(
            "INSERT INTO mailbox (username, domain, rejectedsenders) SELECT CONCAT('user', seq, '@big.test'), 'big.test', IF(seq % 2 = 0, '@.', '') FROM seq_1_to_10000",
          );
        }
        const count = await db.query<{ n: unknown }>('SELECT COUNT(*) AS n FROM mailbox');
        assert.equal(Number(count[0]?.n), 10_000);
        note(`${product}: 10,000 rows inserted in ${(performance.now() - t0).toFixed(0)} ms`);

        const found = await store.lookup(['user4242@big.test', 'user7777@big.test', 'user10001@big.test'], AbortSignal.timeout(2000));
        assert.deepEqual([...found.keys()].sort(), ['user4242@big.test', 'user7777@big.test']);
        assert.deepEqual(found.get('user4242@big.test')?.lists.rejectedSenders, ['@.']);
        assert.equal(found.get('user7777@big.test')?.lists.rejectedSenders, null);

        const times: number[] = [];
        for (let i = 0; i < 200; i++) {
          const n = 1 + ((i * 37) % 10_000);
          times.push(await timed(() => store.lookup([`user${n}@big.test`, `x${i}@remote.test`], AbortSignal.timeout(2000))));
        }
        note(`${product}: lookup of 2 keys among 10,000: median ${median(times).toFixed(2)} ms, p99 ${percentile(times, 99).toFixed(2)} ms`);
        assert.ok(median(times) < 50, `median lookup ${median(times)} ms`);
      });
    });

    describe('outages', () => {
      test('a stopped server fails lookups fast with Unavailable; the same store recovers when it is back', async () => {
        await db.insertMailboxes([{ username: 'alice@example.com', rejectedrecipients: '@.' }]);
        const s = await open('default');
        try {
          assert.equal((await s.lookup(['alice@example.com'], AbortSignal.timeout(1000))).size, 1);
          await db.stopServer();
          const failures: number[] = [];
          for (let i = 0; i < 5; i++) {
            const { ms, error } = await timedFailure(() => s.lookup(['alice@example.com'], AbortSignal.timeout(1000)));
            storeError('Unavailable')(error);
            failures.push(ms);
          }
          assert.equal(s.ready?.(), false, 'not ready while the server is down');
          assert.ok(Math.max(...failures) < 1200, `failures took ${failures.map((t) => t.toFixed(0)).join(', ')} ms`);
          note(`${product} stopped: lookups failed in ${failures.map((t) => t.toFixed(1)).join(', ')} ms`);

          await db.startServer();
          const t0 = performance.now();
          // The very first lookup: pooled connections that died are replaced within it (no retry, no wait).
          const found = await s.lookup(['alice@example.com'], AbortSignal.timeout(1000));
          assert.equal(found.size, 1, 'the store answers again without being reopened');
          assert.equal(s.ready?.(), true);
          note(`${product} back: the first lookup succeeded after ${(performance.now() - t0).toFixed(0)} ms`);
        } finally {
          await s.close();
        }
      });

      test('a hung server: the lookup rejects when the signal aborts, and works again once it answers', async () => {
        await db.insertMailboxes([{ username: 'alice@example.com', rejectedrecipients: '@.' }]);
        const s = await open('default', { poolSize: 2 });
        try {
          assert.equal((await s.lookup(['alice@example.com'], AbortSignal.timeout(1000))).size, 1);
          await db.pause();
          try {
            const runs: number[] = [];
            for (let i = 0; i < 4; i++) {
              const { ms, error } = await timedFailure(() => s.lookup(['alice@example.com'], AbortSignal.timeout(300)));
              storeError('Unavailable', /lookup timeout/)(error);
              runs.push(ms);
            }
            note(`${product} paused: lookups with a 300 ms deadline rejected after ${runs.map((t) => t.toFixed(0)).join(', ')} ms`);
            assert.ok(Math.max(...runs) < 450, `took ${runs.join(', ')} ms`);
          } finally {
            await db.unpause();
          }
          const t0 = performance.now();
          let attempts = 0;
          let found: ReadonlyMap<string, MailboxRecord> | undefined;
          while (found === undefined && attempts < 20) {
            attempts++;
            try {
              found = await s.lookup(['alice@example.com'], AbortSignal.timeout(1000));
            } catch (err) {
              storeError('Unavailable')(err);
            }
          }
          assert.equal(found?.size, 1);
          note(`${product} unpaused: lookup succeeded at attempt ${attempts} after ${(performance.now() - t0).toFixed(0)} ms`);
        } finally {
          await s.close();
        }
      });
    });
  });
}
