/**
 * The amavisd white/blacklist tables (`users`, `mailaddr`, `wblist`, `outbound_wblist`; emails as
 * bytea / varbinary) for PostgreSQL and MySQL/MariaDB: the facts of one policy request in one round
 * trip, and one account's four lists written as iRedAdmin leaves them (users row created with its
 * priority and policy_id 0, shared mailaddr rows, only the account's own pairs changed, one
 * transaction). Alias and local domains (the vmail database) are not read here: see docs.
 */
import { LIST_NAMES, type ListName, type RestrictionLists } from '../restrictions/lists.ts';
import { accountPriority, amavisdForm, partyPriority, type AmavisdForm } from '../restrictions/amavisd-entry.ts';
import { schemaProblems } from '../restrictions/schema-forms.ts';
import { candidateForms, networkPrefix, type WblistFacts, type WblistPlan, type WblistRow } from '../restrictions/amavisd-wblist.ts';
import { asciiAddress } from '../restrictions/idn.ts';
import { trimAscii } from '../restrictions/sql-list.ts';
import type { SqlDialect } from './sql-common.ts';
import type { SqlDriver, SqlSession } from './sql-store.ts';
import { type ApplyResult, type MailboxWriter, StoreError, type StoredMailbox, type WblistReader } from './store.ts';
import { missingSchemaPart } from './sql-errors.ts';
import { SqlStoreSettingsSchema } from '../api/store-settings.ts';
import { urlStoreKind } from '../api/store-url.ts';
import { silentLogger } from '../observability/logger.ts';
import { parseStoreSettings, redactUrl, type StoreOpenOptions } from './common.ts';
import { parseSqlUrl, sqlTlsOptions } from './endpoint.ts';

/** Opens the amavisd tables of a postgres:// or mysql:// URL (pool, TLS and timeouts as the SQL store's settings). */
export async function openAmavisdStore(url: string, settings: unknown, options: StoreOpenOptions): Promise<AmavisdWblistStore> {
  const parsed = parseStoreSettings(SqlStoreSettingsSchema, settings, 'amavisd store');
  const logger = options.logger ?? silentLogger;
  const kind = urlStoreKind(url);
  if (kind === 'postgres') {
    const { PostgresDriver, POSTGRES_DEFAULT_PORT } = await import('./postgres.ts');
    const endpoint = parseSqlUrl(url, POSTGRES_DEFAULT_PORT, options.password);
    return new AmavisdWblistStore(new PostgresDriver(endpoint, parsed, await sqlTlsOptions(parsed.tls, endpoint.host, options.ca), logger), parsed.operationTimeoutMs, endpoint.target, parsed.poolSize);
  }
  if (kind === 'mysql') {
    const { MysqlDriver, MYSQL_DEFAULT_PORT, mysqlSslOptions } = await import('./mysql.ts');
    const endpoint = parseSqlUrl(url, MYSQL_DEFAULT_PORT, options.password);
    return new AmavisdWblistStore(new MysqlDriver(endpoint, parsed, mysqlSslOptions(await sqlTlsOptions(parsed.tls, endpoint.host, options.ca)), logger), parsed.operationTimeoutMs, endpoint.target, parsed.poolSize);
  }
  throw new StoreError('Misconfigured', `store URL ${redactUrl(url)}: the amavisd schema needs a postgres:// or mysql:// URL`);
}

/** Which table and W/B a list is written to. */
const LIST_ROWS: Readonly<Record<ListName, { readonly table: 'wblist' | 'outbound_wblist'; readonly wb: 'W' | 'B' }>> = {
  allowedSenders: { table: 'wblist', wb: 'W' },
  rejectedSenders: { table: 'wblist', wb: 'B' },
  allowedRecipients: { table: 'outbound_wblist', wb: 'W' },
  rejectedRecipients: { table: 'outbound_wblist', wb: 'B' },
};

/** The tables and columns the reader and the writer use, for the schema check. */
const TABLES: readonly (readonly [string, string])[] = [
  ['users', 'id, priority, policy_id, email'],
  ['mailaddr', 'id, priority, email'],
  ['wblist', 'rid, sid, wb'],
  ['outbound_wblist', 'rid, sid, wb'],
];

export class AmavisdWblistStore implements WblistReader, MailboxWriter {
  readonly kind: string;
  readonly lookupConcurrency: number;
  readonly #driver: SqlDriver;
  readonly #timeoutMs: number;
  readonly #target: string;

  constructor(driver: SqlDriver, operationTimeoutMs = 5_000, target = 'the amavisd database', poolSize = 4) {
    this.#driver = driver;
    this.kind = `amavisd-${driver.dialect.name}`;
    this.#timeoutMs = operationTimeoutMs;
    this.#target = target;
    this.lookupConcurrency = poolSize;
  }

  /**
   * The rows one request's decision reads, in one statement: the users and mailaddr rows of every
   * candidate form, the mailaddr rows a client network may match, and the wblist and
   * outbound_wblist pairs between them. Alias and local domains are unknown here (none).
   */
  async facts(plan: WblistPlan, signal: AbortSignal): Promise<WblistFacts> {
    const prefix = networkPrefix(plan.clientAddress);
    const { sql, params } = factsStatement(plan, this.#driver.dialect);
    const rows = await this.#run((s) => s.query(sql, params), signal);
    const users = new Map<string, WblistRow>();
    const mailaddr = new Map<string, WblistRow>();
    const networks: WblistRow[] = [];
    const inbound = new Map<string, 'W' | 'B'>();
    const outbound = new Map<string, 'W' | 'B'>();
    for (const row of rows) {
      const kind = text(row.k);
      if (kind === 'i' || kind === 'o') {
        const wb = text(row.email).toUpperCase();
        if (wb !== 'W' && wb !== 'B') continue;
        (kind === 'i' ? inbound : outbound).set(`${Number(row.a)}/${Number(row.b)}`, wb);
        continue;
      }
      const entry: WblistRow = { id: Number(row.a), priority: Number(row.b), email: text(row.email).toLowerCase() };
      if (kind === 'u') users.set(entry.email, entry);
      else {
        mailaddr.set(entry.email, entry);
        if (prefix !== undefined && entry.email.startsWith(prefix)) networks.push(entry);
      }
    }
    return { users, mailaddr, networks, inbound, outbound, aliasTarget: () => undefined, isLocalDomain: () => false };
  }

  /** The account's four lists as stored (sorted). */
  async observe(account: string, signal?: AbortSignal): Promise<RestrictionLists> {
    const key = accountKey(account);
    return this.#run((s) => this.#observe(s, key), signal ?? AbortSignal.timeout(this.#timeoutMs));
  }

  /**
   * Makes the account's pairs equal `lists` in one transaction: the users row created when missing
   * (its priority by form, policy_id 0), mailaddr rows created when missing and shared otherwise,
   * pairs added, changed or removed; no other account's rows are touched.
   */
  async apply(account: string, lists: RestrictionLists, signal?: AbortSignal): Promise<ApplyResult> {
    const key = accountKey(account);
    const problems = schemaProblems(key, lists, 'amavisd');
    if (problems.length > 0) throw new StoreError('InvalidValue', problems.join('; '));
    const desired = desiredPairs(lists);
    const accountForm = amavisdForm(key) as AmavisdForm;
    return this.#run(async (s) => {
      await s.command('BEGIN');
      try {
        const p = this.#placeholders();
        let [user] = await s.query(`SELECT id FROM users WHERE email = ${p(1)} FOR UPDATE`, [bytes(key)]);
        const before = await this.#observe(s, key);
        const changed = LIST_NAMES.filter((name) => !sameSet(before[name], lists[name].map(canonical)));
        if (changed.length === 0) {
          await s.command('COMMIT');
          return { changed, written: false };
        }
        if (user === undefined) {
          await s.query(`INSERT INTO users (priority, policy_id, email) VALUES (${p(1)}, 0, ${p(2)})`, [accountPriority(accountForm), bytes(key)]);
          [user] = await s.query(`SELECT id FROM users WHERE email = ${p(1)}`, [bytes(key)]);
        }
        const uid = Number(user!.id);
        for (const table of ['wblist', 'outbound_wblist'] as const) {
          const own = table === 'wblist' ? 'rid' : 'sid';
          await s.query(`DELETE FROM ${table} WHERE ${own} = ${p(1)}`, [uid]);
        }
        for (const { entry, table, wb, priority } of desired) {
          let [party] = await s.query(`SELECT id FROM mailaddr WHERE email = ${p(1)}`, [bytes(entry)]);
          if (party === undefined) {
            await s.query(`INSERT INTO mailaddr (priority, email) VALUES (${p(1)}, ${p(2)})`, [priority, bytes(entry)]);
            [party] = await s.query(`SELECT id FROM mailaddr WHERE email = ${p(1)}`, [bytes(entry)]);
          }
          const [rid, sid] = table === 'wblist' ? [uid, Number(party!.id)] : [Number(party!.id), uid];
          await s.query(`INSERT INTO ${table} (rid, sid, wb) VALUES (${p(1)}, ${p(2)}, ${p(3)})`, [rid, sid, wb]);
        }
        await s.command('COMMIT');
        return { changed, written: true };
      } catch (err) {
        await s.command('ROLLBACK').catch(() => {});
        throw err;
      }
    }, signal ?? AbortSignal.timeout(this.#timeoutMs));
  }

  /** Removes the account's pairs; its users row and every mailaddr row stay (shared, cleaned up by iRedAPD's cleanup_db.py). */
  clear(account: string, signal?: AbortSignal): Promise<ApplyResult> {
    return this.apply(account, { allowedSenders: [], rejectedSenders: [], allowedRecipients: [], rejectedRecipients: [] }, signal);
  }

  /** Every account (users row) with a pair, its four lists as stored, in one read. */
  async mailboxesWithLists(signal?: AbortSignal): Promise<StoredMailbox[]> {
    const rows = await this.#run(
      (s) =>
        s.query(
          `SELECT 'i' AS t, u.email AS account, m.email, w.wb FROM wblist w JOIN users u ON u.id = w.rid JOIN mailaddr m ON m.id = w.sid ` +
            `UNION ALL SELECT 'o', u.email, m.email, o.wb FROM outbound_wblist o JOIN users u ON u.id = o.sid JOIN mailaddr m ON m.id = o.rid`,
          [],
        ),
      signal ?? AbortSignal.timeout(this.#timeoutMs),
    );
    const byAccount = new Map<string, Record<ListName, string[]>>();
    for (const row of rows) {
      const account = text(row.account).toLowerCase();
      let lists = byAccount.get(account);
      if (lists === undefined) byAccount.set(account, (lists = { allowedSenders: [], rejectedSenders: [], allowedRecipients: [], rejectedRecipients: [] }));
      lists[listOf(text(row.t) === 'i', text(row.wb))].push(text(row.email).toLowerCase());
    }
    return [...byAccount].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([mailbox, lists]) => {
      for (const name of LIST_NAMES) lists[name].sort();
      return { mailbox, lists };
    });
  }

  /** One statement over the four tables; a missing table or column is named (verifySchema). */
  async ping(signal?: AbortSignal): Promise<void> {
    const deadline = signal ?? AbortSignal.timeout(this.#timeoutMs);
    try {
      await this.#run((s) => s.query(TABLES.map(([table]) => `SELECT 1 AS one FROM ${table} WHERE 1 = 0`).join(' UNION ALL '), []), deadline);
    } catch (err) {
      if (err instanceof StoreError && missingSchemaPart(err.cause) !== undefined) await this.verifySchema(deadline);
      throw err;
    }
  }

  /** One probe per table with the columns mailwarden reads and writes; the first missing one is named. */
  async verifySchema(signal: AbortSignal): Promise<void> {
    const product = this.#driver.dialect.name === 'postgres' ? 'PostgreSQL' : 'MySQL';
    await this.#run(async (s) => {
      for (const [table, columns] of TABLES) {
        try {
          await s.query(`SELECT ${columns} FROM ${table} WHERE 1 = 0`, []);
        } catch (err) {
          const missing = missingSchemaPart(err);
          if (missing === undefined) throw err;
          const what = missing === 'table' ? `table ${table} does not exist` : `table ${table} lacks one of the columns ${columns}`;
          throw new StoreError('Misconfigured', `${product} ${this.#target}: ${what}; the amavisd schema needs iRedMail's amavisd database (tables users, mailaddr, wblist, outbound_wblist): is the URL's database the amavisd one?`, { cause: err });
        }
      }
    }, signal);
  }

  close(): Promise<void> {
    return this.#driver.close();
  }

  async #observe(s: SqlSession, key: string): Promise<RestrictionLists> {
    const p = this.#placeholders();
    const rows = await s.query(
      `SELECT 'i' AS t, m.email, w.wb FROM wblist w JOIN users u ON u.id = w.rid JOIN mailaddr m ON m.id = w.sid WHERE u.email = ${p(1)} ` +
        `UNION ALL SELECT 'o', m.email, o.wb FROM outbound_wblist o JOIN users u ON u.id = o.sid JOIN mailaddr m ON m.id = o.rid WHERE u.email = ${p(2)}`,
      [bytes(key), bytes(key)],
    );
    const lists: Record<ListName, string[]> = { allowedSenders: [], rejectedSenders: [], allowedRecipients: [], rejectedRecipients: [] };
    for (const row of rows) lists[listOf(text(row.t) === 'i', text(row.wb))].push(text(row.email).toLowerCase());
    for (const name of LIST_NAMES) lists[name].sort();
    return lists;
  }

  #placeholders(): (index: number) => string {
    return this.#driver.dialect.placeholder;
  }

  async #run<T>(work: (session: SqlSession) => Promise<T>, signal: AbortSignal): Promise<T> {
    try {
      return await this.#driver.session(work, signal);
    } catch (err) {
      throw this.#driver.classify(err);
    }
  }
}

/**
 * The one statement of a request's facts (AmavisdWblistStore.facts), with its bound values: also
 * what the benchmark's store ceiling sends.
 */
export function factsStatement(plan: WblistPlan, dialect: SqlDialect): { readonly sql: string; readonly params: unknown[] } {
  const forms = candidateForms(plan, () => undefined);
  const prefix = networkPrefix(plan.clientAddress);
  const p = dialect.placeholder;
  const params: unknown[] = [];
  const list = (values: readonly string[]): string => values.map((v) => p(params.push(bytes(v)))).join(', ');
  const all = [...new Set([...forms.sender, ...forms.recipient])];
  // A parameter per use: MySQL's are positional.
  const network = (): string => (prefix === undefined ? '' : ` OR email LIKE ${p(params.push(bytes(`${prefix}%`)))}`);
  // The pair rows carry wb in the email column: PostgreSQL unions need one type.
  const wb = dialect.name === 'postgres' ? "convert_to(wb, 'UTF8')" : 'wb';
  const sql = [
    `SELECT 'u' AS k, id AS a, priority AS b, email FROM users WHERE email IN (${list(all)})`,
    `SELECT 'm', id, priority, email FROM mailaddr WHERE email IN (${list(all)})${network()}`,
    // Pairs by their primary key (rid, sid), from the few candidate ids of each side: a party many
    // accounts list (`@.`) is never scanned through all of its pairs.
    `SELECT 'i', rid, sid, ${wb} FROM wblist WHERE (rid, sid) IN (SELECT u.id, m.id FROM users u, mailaddr m WHERE u.email IN (${list(forms.recipient)}) AND (m.email IN (${list(forms.sender)})${network().replace(' OR email', ' OR m.email')}))`,
    `SELECT 'o', rid, sid, ${wb} FROM outbound_wblist WHERE (rid, sid) IN (SELECT m.id, u.id FROM mailaddr m, users u WHERE m.email IN (${list(forms.recipient)}) AND u.email IN (${list(forms.sender)}))`,
  ].join(' UNION ALL ');
  return { sql, params };
}

interface DesiredPair {
  readonly entry: string;
  readonly table: 'wblist' | 'outbound_wblist';
  readonly wb: 'W' | 'B';
  readonly priority: number;
}

/** The pairs valid lists stand for (checked first with schemaProblems), one per party and table. */
export function desiredPairs(lists: RestrictionLists): DesiredPair[] {
  const out: DesiredPair[] = [];
  for (const name of LIST_NAMES) {
    for (const raw of lists[name]) {
      const entry = canonical(raw);
      const form = amavisdForm(entry);
      if (typeof form !== 'string') continue;
      if (!out.some((p) => p.entry === entry && p.table === LIST_ROWS[name].table)) out.push({ entry, ...LIST_ROWS[name], priority: partyPriority(form) });
    }
  }
  return out;
}

/** The list a pair stands for: inbound W/B are allowed/rejected senders, outbound W/B recipients. */
function listOf(inbound: boolean, wb: string): ListName {
  const white = wb.trim().toUpperCase() === 'W';
  return inbound ? (white ? 'allowedSenders' : 'rejectedSenders') : white ? 'allowedRecipients' : 'rejectedRecipients';
}

function canonical(entry: string): string {
  return asciiAddress(trimAscii(entry).toLowerCase());
}

function accountKey(account: string): string {
  const key = canonical(account);
  if (key === '') throw new StoreError('InvalidValue', 'the account is empty');
  return key;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(b);
  return a.length === set.size && a.every((v) => set.has(v));
}

function bytes(value: string): Buffer {
  return Buffer.from(value, 'utf8');
}

function text(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return String(value);
}

