// Adopting the amavisd white/blacklist tables (iRedMail since 2015) as iRedAdmin and hands left
// them: export → apply writes 0 rows → diff exits 0, on a real PostgreSQL and MariaDB. Writes are
// counted by triggers on the four tables (every INSERT, UPDATE and DELETE), so a delete and
// re-insert of the same pair is seen too.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { main } from '../../../src/cli/main.ts';
import { startMariadb, startPostgres, type SqlServer } from '../../harness/containers.ts';
import { loadAmavisdTables } from '../stores/helpers.ts';

const TABLES = ['users', 'mailaddr', 'wblist', 'outbound_wblist'] as const;

/** Counts every row written to the four tables in mw_table_writes (as the superuser, so the store's account needs no grant). */
async function countTableWrites(db: SqlServer): Promise<void> {
  const pg = db.dialect === 'postgres';
  await db.query(pg ? 'CREATE TABLE mw_table_writes (t text NOT NULL)' : 'CREATE TABLE mw_table_writes (t VARCHAR(32) NOT NULL)', [], db.admin);
  if (pg) await db.query("CREATE FUNCTION mw_count_table() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN INSERT INTO mw_table_writes VALUES (TG_TABLE_NAME); RETURN NULL; END $$", [], db.admin);
  for (const table of TABLES) {
    if (pg) await db.query(`CREATE TRIGGER mw_count AFTER INSERT OR UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION mw_count_table()`, [], db.admin);
    else for (const op of ['INSERT', 'UPDATE', 'DELETE']) await db.query(`CREATE TRIGGER mw_${table}_${op.toLowerCase()} AFTER ${op} ON ${table} FOR EACH ROW INSERT INTO mw_table_writes VALUES ('${table}')`, [], db.admin);
  }
}

async function tableWrites(db: SqlServer): Promise<number> {
  const [row] = await db.query<{ n: string | number }>('SELECT COUNT(*) AS n FROM mw_table_writes', [], db.admin);
  return Number(row?.n ?? 0);
}

/** One account's pairs as an admin panel (or a hand) left them: party email, W/B as stored, priorities. */
interface SeedAccount {
  readonly email: string;
  readonly priority: number;
  readonly inbound?: readonly (readonly [party: string, wb: string])[];
  readonly outbound?: readonly (readonly [party: string, wb: string])[];
}

async function seed(db: SqlServer, accounts: readonly SeedAccount[]): Promise<void> {
  const p = (i: number) => (db.dialect === 'postgres' ? `$${i}` : '?');
  const bytes = (s: string) => Buffer.from(s, 'utf8');
  const idOf = async (table: 'users' | 'mailaddr', email: string, priority: number): Promise<number> => {
    const found = await db.query<{ id: number }>(`SELECT id FROM ${table} WHERE email = ${p(1)}`, [bytes(email)], db.admin);
    if (found[0] !== undefined) return Number(found[0].id);
    await db.query(`INSERT INTO ${table} (priority, email) VALUES (${p(1)}, ${p(2)})`, [priority, bytes(email)], db.admin);
    return idOf(table, email, priority);
  };
  for (const account of accounts) {
    const user = await idOf('users', account.email, account.priority);
    for (const [party, wb] of account.inbound ?? []) await db.query(`INSERT INTO wblist (rid, sid, wb) VALUES (${p(1)}, ${p(2)}, ${p(3)})`, [user, await idOf('mailaddr', party, 5), wb], db.admin);
    for (const [party, wb] of account.outbound ?? []) await db.query(`INSERT INTO outbound_wblist (rid, sid, wb) VALUES (${p(1)}, ${p(2)}, ${p(3)})`, [await idOf('mailaddr', party, 5), user, wb], db.admin);
  }
}

export function amavisdAdoptionSuite(kind: 'postgres' | 'mariadb'): void {
  describe(`adopting the amavisd tables on ${kind}`, () => {
    let db: SqlServer;
    let work: string;
    const run = async (args: string[]) => {
      let stdout = '';
      let stderr = '';
      const code = await main([...args, '--store', db.url, '--store-schema', 'amavisd'], {
        stdout: { write: (t: string) => (stdout += t) },
        stderr: { write: (t: string) => (stderr += t) },
        stdin: Readable.from([]),
        env: { MAILWARDEN_STORE_PASSWORD: db.password },
      });
      return { code, stdout, stderr };
    };

    before(async () => {
      db = kind === 'postgres' ? await startPostgres() : await startMariadb();
      await loadAmavisdTables(db);
      await countTableWrites(db);
      work = await mkdtemp(path.join(tmpdir(), 'mw-adopt-amavisd-'));
      await seed(db, [
        // As iRedAdmin writes them: every form of party, both directions.
        {
          email: 'alice@example.com',
          priority: 100,
          inbound: [['boss@partner.test', 'W'], ['@.', 'B'], ['10.0.0.0/8', 'B'], ['192.168.*.*', 'B'], ['spam@*', 'B'], ['172.16.1.1', 'W']],
          outbound: [['@.xyz', 'B'], ['@example.com', 'W']],
        },
        // A domain's and the server's own lists.
        { email: '@example.com', priority: 60, inbound: [['@evil.test', 'B']] },
        { email: '@.', priority: 0, inbound: [['@.spam.test', 'B']] },
        // Typed by hand: capitals in a party's email, a lower-case w.
        { email: 'bob@example.com', priority: 100, inbound: [['Friend@Partner.TEST', 'w']] },
        // An account with no pairs is no restriction.
        { email: 'carol@example.com', priority: 100 },
      ]);
    });
    after(async () => {
      await db?.stop();
      if (work !== undefined) await rm(work, { recursive: true, force: true });
    });

    test('export writes one document per account with pairs, every form as stored; apply of it writes 0 rows; diff exits 0', async () => {
      const dir = path.join(work, 'restrictions');
      const exported = await run(['export', '--namespace', 'mail', '--backend', 'amavisd', '--output-dir', dir]);
      assert.equal(exported.code, 0, exported.stderr);
      assert.match(exported.stderr, /4 mailbox\(es\) exported/);
      assert.doesNotMatch(exported.stderr, /carol/);
      const alice = parseYaml(await readFile(path.join(dir, 'alice-at-example.com.yaml'), 'utf8'));
      assert.deepEqual(alice.spec, {
        mailbox: 'alice@example.com',
        backendRef: { name: 'amavisd' },
        allowedSenders: ['172.16.1.1', 'boss@partner.test'],
        rejectedSenders: ['10.0.0.0/8', '192.168.*.*', '@.', 'spam@*'],
        allowedRecipients: ['@example.com'],
        rejectedRecipients: ['@.xyz'],
      });

      const before = await tableWrites(db);
      const applied = await run(['apply', '-f', dir]);
      assert.equal(applied.code, 0, applied.stderr + applied.stdout);
      assert.ok(applied.stdout.trim().split('\n').every((line) => line.endsWith(': unchanged')), applied.stdout);
      assert.equal(await tableWrites(db), before, 'apply of the export writes 0 rows');

      const diff = await run(['diff', '-f', dir]);
      assert.deepEqual([diff.code, diff.stdout], [0, 'no changes: 4 mailbox(es) match the store\n']);

      // The counter sees writes: an edit is shown by diff and written by apply.
      const aliceFile = path.join(dir, 'alice-at-example.com.yaml');
      await writeFile(aliceFile, JSON.stringify({ ...alice, spec: { ...alice.spec, rejectedRecipients: ['@.xyz', '@new.test'] } }));
      const edited = await run(['diff', '-f', dir]);
      assert.equal(edited.code, 1);
      assert.match(edited.stdout, /^~ alice@example\.com .*\n {4}rejectedRecipients {2}\+ @new\.test\n1 to change, 3 unchanged\n$/);
      await run(['apply', '-f', dir]);
      assert.ok((await tableWrites(db)) > before, 'the edit was written');
    });
  });
}
