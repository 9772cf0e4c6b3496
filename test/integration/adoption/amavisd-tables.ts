// The amavisd white/blacklist tables as an admin panel and hands left them, seen directly (not
// through mailwarden): seeding, the pairs of an account as stored, and a count of every row
// written to the four tables (triggers on INSERT, UPDATE and DELETE, so a delete and re-insert of
// the same pair is seen too).
import type { SqlServer } from '../../harness/containers.ts';

const TABLES = ['users', 'mailaddr', 'wblist', 'outbound_wblist'] as const;

/** Counts every row written to the four tables in mw_table_writes (as the superuser, so the store's account needs no grant). */
export async function countTableWrites(db: SqlServer): Promise<void> {
  const pg = db.dialect === 'postgres';
  await db.query(pg ? 'CREATE TABLE mw_table_writes (t text NOT NULL)' : 'CREATE TABLE mw_table_writes (t VARCHAR(32) NOT NULL)', [], db.admin);
  if (pg) await db.query("CREATE FUNCTION mw_count_table() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN INSERT INTO mw_table_writes VALUES (TG_TABLE_NAME); RETURN NULL; END $$", [], db.admin);
  for (const table of TABLES) {
    if (pg) await db.query(`CREATE TRIGGER mw_count AFTER INSERT OR UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION mw_count_table()`, [], db.admin);
    else for (const op of ['INSERT', 'UPDATE', 'DELETE']) await db.query(`CREATE TRIGGER mw_${table}_${op.toLowerCase()} AFTER ${op} ON ${table} FOR EACH ROW INSERT INTO mw_table_writes VALUES ('${table}')`, [], db.admin);
  }
}

export async function tableWrites(db: SqlServer): Promise<number> {
  const [row] = await db.query<{ n: string | number }>('SELECT COUNT(*) AS n FROM mw_table_writes', [], db.admin);
  return Number(row?.n ?? 0);
}

/** One account's pairs as an admin panel (or a hand) left them: party email, W/B as stored, priorities. */
export interface SeedAccount {
  readonly email: string;
  readonly priority: number;
  readonly inbound?: readonly (readonly [party: string, wb: string])[];
  readonly outbound?: readonly (readonly [party: string, wb: string])[];
}

export async function seed(db: SqlServer, accounts: readonly SeedAccount[]): Promise<void> {
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

/** An account's pairs as stored: "party wb", inbound (wblist) and outbound (outbound_wblist), sorted. */
export async function pairsOf(db: SqlServer, account: string): Promise<{ inbound: string[]; outbound: string[] }> {
  const p = db.dialect === 'postgres' ? '$1' : '?';
  const text = (v: unknown) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));
  const read = async (sql: string) => (await db.query<{ email: unknown; wb: string }>(sql, [Buffer.from(account)], db.admin)).map((r) => `${text(r.email)} ${r.wb}`).sort();
  return {
    inbound: await read(`SELECT m.email, w.wb FROM wblist w JOIN users u ON u.id = w.rid JOIN mailaddr m ON m.id = w.sid WHERE u.email = ${p}`),
    outbound: await read(`SELECT m.email, o.wb FROM outbound_wblist o JOIN users u ON u.id = o.sid JOIN mailaddr m ON m.id = o.rid WHERE u.email = ${p}`),
  };
}

/** The users rows that spell `account` in any case. */
export async function accountsLike(db: SqlServer, account: string): Promise<string[]> {
  const rows = await db.query<{ email: unknown }>('SELECT email FROM users', [], db.admin);
  return rows.map((r) => (Buffer.isBuffer(r.email) ? r.email.toString('utf8') : String(r.email))).filter((e) => e.toLowerCase() === account);
}

/**
 * Replaces the tables' contents with `count` accounts `u<i>@bulk.test`, each with two inbound
 * pairs (its own party and one shared by all) and one outbound pair, in a few statements.
 */
export async function seedBulk(db: SqlServer, count: number): Promise<void> {
  const pg = db.dialect === 'postgres';
  for (const table of ['wblist', 'outbound_wblist', 'users', 'mailaddr']) await db.query(`DELETE FROM ${table}`, [], db.admin);
  const series = pg ? `FROM generate_series(1, ${count}) AS i` : `FROM (WITH RECURSIVE seq AS (SELECT 1 AS i UNION ALL SELECT i + 1 FROM seq WHERE i < ${count}) SELECT i FROM seq) AS s`;
  const options = pg ? '' : `SET STATEMENT max_recursive_iterations = ${count} FOR `;
  const email = (...parts: string[]) => (pg ? `convert_to(${parts.join(' || ')}, 'UTF8')` : `CONCAT(${parts.join(', ')})`);
  // Explicit ids: accounts and their own parties are i, the shared parties above count.
  await db.query(`${options}INSERT INTO users (id, priority, policy_id, email) SELECT i, 100, 0, ${email(`'u'`, 'i', `'@bulk.test'`)} ${series}`, [], db.admin);
  await db.query(`${options}INSERT INTO mailaddr (id, priority, email) SELECT i, 5, ${email(`'@a'`, 'i', `'.test'`)} ${series}`, [], db.admin);
  await db.query(`INSERT INTO mailaddr (id, priority, email) VALUES (${count + 1}, 5, ${email(`'@B.test'`)}), (${count + 2}, 0, ${email(`'@.'`)})`, [], db.admin);
  await db.query(`${options}INSERT INTO wblist (rid, sid, wb) SELECT i, i, 'B' ${series}`, [], db.admin);
  await db.query(`${options}INSERT INTO wblist (rid, sid, wb) SELECT i, ${count + 1}, 'B' ${series}`, [], db.admin);
  await db.query(`${options}INSERT INTO outbound_wblist (rid, sid, wb) SELECT ${count + 2}, i, 'B' ${series}`, [], db.admin);
}
