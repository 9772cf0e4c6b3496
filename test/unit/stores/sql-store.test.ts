import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EMPTY_LISTS } from '../../../src/restrictions/lists.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import { SqlStoreSettingsSchema } from '../../../src/api/store-settings.ts';
import { POSTGRES_DIALECT, type SqlRow } from '../../../src/stores/sql-common.ts';
import { type SqlDriver, SqlMailboxStore, type SqlSession } from '../../../src/stores/sql-store.ts';
import { StoreError } from '../../../src/stores/store.ts';

/**
 * The statements SqlMailboxStore sends, recorded by a driver that answers from a table in memory.
 * (The real drivers run against real servers in test/integration/stores/.)
 */
function recordingDriver(rows: SqlRow[], failures: unknown[] = []) {
  const statements: { sql: string; params: readonly unknown[] }[] = [];
  let sessions = 0;
  const driver: SqlDriver = {
    dialect: POSTGRES_DIALECT,
    async session(work, signal) {
      sessions++;
      if (signal.aborted) throw new StoreError('Unavailable', 'aborted');
      const failure = failures.shift();
      if (failure !== undefined) throw failure;
      const session: SqlSession = {
        async query(sql, params) {
          statements.push({ sql, params });
          if (sql.startsWith('UPDATE')) return [];
          return rows.filter((r) => params.includes(r.mw_username));
        },
        async command(sql) {
          statements.push({ sql, params: [] });
        },
      };
      return work(session);
    },
    classify: (err) => (err instanceof StoreError ? err : new StoreError('Unavailable', String(err))),
    async close() {},
  };
  return { driver, statements, sessions: () => sessions };
}

const row = (u: string, rs = '') => ({ mw_username: u, mw_allowed_senders: '', mw_rejected_senders: rs, mw_allowed_recipients: '', mw_rejected_recipients: '' });
const settings = SqlStoreSettingsSchema.parse({});
const open = (driver: SqlDriver) => new SqlMailboxStore(driver, settings, { semantics: 'default', logger: silentLogger, target: 'postgres://x' });

describe('SqlMailboxStore', () => {
  test('a lookup of several keys is one statement with every key bound', async () => {
    const { driver, statements } = recordingDriver([row('a@x.test', '@.'), row('b@x.test')]);
    const found = await open(driver).lookup(['A@x.test', 'b@x.test', 'c@x.test', 'a@x.test'], AbortSignal.timeout(1000));
    assert.equal(statements.length, 1);
    assert.deepEqual(statements[0]?.params, ['a@x.test', 'b@x.test', 'c@x.test']);
    assert.deepEqual([...found.keys()], ['a@x.test', 'b@x.test']);
  });

  test('no keys, no statement', async () => {
    const { driver, statements } = recordingDriver([]);
    assert.equal((await open(driver).lookup(['', 'a\u0000'], AbortSignal.timeout(1000))).size, 0);
    assert.equal(statements.length, 0);
  });

  test('apply reads under lock, writes the changed columns in one UPDATE, commits', async () => {
    const { driver, statements } = recordingDriver([row('a@x.test')]);
    assert.deepEqual(await open(driver).apply('a@x.test', { ...EMPTY_LISTS, rejectedSenders: ['@.'] }), { changed: ['rejectedSenders'], written: true });
    assert.deepEqual(
      statements.map((s) => s.sql.split(' ')[0]),
      ['BEGIN', 'SELECT', 'UPDATE', 'COMMIT'],
    );
    assert.match(statements[1]?.sql ?? '', /FOR UPDATE$/);
    assert.match(statements[2]?.sql ?? '', /^UPDATE "mailbox" SET "rejectedsenders" = \$1 WHERE "username" = \$2$/);
    assert.deepEqual(statements[2]?.params, ['@.', 'a@x.test']);
  });

  test('apply with nothing to change writes nothing', async () => {
    const { driver, statements } = recordingDriver([row('a@x.test', '@.')]);
    assert.deepEqual(await open(driver).apply('a@x.test', { ...EMPTY_LISTS, rejectedSenders: ['@.'] }), { changed: [], written: false });
    assert.ok(!statements.some((s) => s.sql.startsWith('UPDATE')));
  });

  test('apply over stored text in another form with the same entries writes nothing', async () => {
    const { driver, statements } = recordingDriver([row('a@x.test', ' @. , ,@.')]);
    assert.deepEqual(await open(driver).apply('a@x.test', { ...EMPTY_LISTS, rejectedSenders: ['@.'] }), { changed: [], written: false });
    assert.ok(!statements.some((s) => s.sql.startsWith('UPDATE')));
  });

  test('ping is one statement that reads no row', async () => {
    const { driver, statements } = recordingDriver([row('a@x.test', '@.')]);
    await open(driver).ping(AbortSignal.timeout(1000));
    assert.deepEqual(statements.map((s) => s.sql.split(' ')[0]), ['SELECT']);
    assert.match(statements[0]?.sql ?? '', /WHERE 1 = 0$/);
  });

  test('a missing mailbox rolls back and is MailboxNotFound', async () => {
    const { driver, statements } = recordingDriver([]);
    await assert.rejects(open(driver).apply('a@x.test', EMPTY_LISTS), (e: unknown) => e instanceof StoreError && e.kind === 'MailboxNotFound');
    assert.equal(statements.at(-1)?.sql, 'ROLLBACK');
  });

  test('a connection lost once is retried on a fresh session; twice is Unavailable', async () => {
    const lost = Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
    const once = recordingDriver([row('a@x.test')], [lost]);
    assert.equal((await open(once.driver).lookup(['a@x.test'], AbortSignal.timeout(1000))).size, 1);
    assert.equal(once.sessions(), 2);
    const twice = recordingDriver([row('a@x.test')], [lost, lost]);
    const store = open(twice.driver);
    await assert.rejects(store.lookup(['a@x.test'], AbortSignal.timeout(1000)), (e: unknown) => e instanceof StoreError && e.kind === 'Unavailable');
    assert.equal(store.ready(), false);
  });

  test('misconfiguration is not retried', async () => {
    const bad = recordingDriver([], [new StoreError('Misconfigured', 'no table')]);
    await assert.rejects(open(bad.driver).lookup(['a@x.test'], AbortSignal.timeout(1000)));
    assert.equal(bad.sessions(), 1);
  });

  test('a closed store refuses work', async () => {
    const { driver } = recordingDriver([]);
    const store = open(driver);
    await store.close();
    await assert.rejects(store.lookup(['a@x.test'], AbortSignal.timeout(1000)), (e: unknown) => e instanceof StoreError && e.kind === 'Unavailable');
    assert.equal(store.ready(), false);
  });
});
