/**
 * The amavisd white/blacklist tables (`users`, `mailaddr`, `wblist`, `outbound_wblist`; emails as
 * bytea / varbinary) for PostgreSQL and MySQL/MariaDB: the facts of one policy request in one round
 * trip, and one account's four lists written as iRedAdmin leaves them (users row created with its
 * priority and policy_id 0, shared mailaddr rows, only the account's own pairs changed, one
 * transaction). Alias and local domains (the vmail database) are not read here: see docs.
 */
import { LIST_NAMES, type RestrictionLists } from '../restrictions/lists.ts';
import { accountFormProblem, accountPriority, amavisdForm, partyPriority, type AmavisdForm } from '../restrictions/amavisd-entry.ts';
import { pairLists, planPairs, type PairTable, type StoredPair } from '../restrictions/amavisd-pair-plan.ts';
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
   * Makes the account's pairs equal `lists` in one transaction, writing only the difference
   * (amavisd-pair-plan.ts): the users row created when missing (its priority by form, policy_id
   * 0), mailaddr rows created when missing and shared otherwise; stored pairs that stay keep
   * their party as stored; no other account's rows are touched.
   */
  async apply(account: string, lists: RestrictionLists, signal?: AbortSignal): Promise<ApplyResult> {
    const key = accountKey(account);
    const accountForm = amavisdForm(key);
    const accountProblem = typeof accountForm === 'string' ? accountFormProblem(key, accountForm) : `mailbox ${accountForm.problem}`;
    if (accountProblem !== undefined) throw new StoreError('InvalidValue', accountProblem);
    return this.#run(async (s) => {
      await s.command('BEGIN');
      try {
        const p = this.#placeholders();
        const user = await this.#account(s, key, true);
        const plan = planPairs(user === undefined ? [] : await this.#pairs(s, user), lists);
        if (plan.problems.length > 0) throw new StoreError('InvalidValue', plan.problems.join('; '));
        if (plan.changed.length === 0) {
          await s.command('COMMIT');
          return { changed: plan.changed, written: false };
        }
        const uid = user ?? (await this.#createAccount(s, key, accountForm as AmavisdForm));
        const ends = (table: PairTable, party: number): [number, number] => (table === 'wblist' ? [uid, party] : [party, uid]);
        for (const pair of plan.remove) await s.query(`DELETE FROM ${pair.table} WHERE rid = ${p(1)} AND sid = ${p(2)}`, ends(pair.table, pair.party));
        for (const pair of plan.rewb) await s.query(`UPDATE ${pair.table} SET wb = ${p(1)} WHERE rid = ${p(2)} AND sid = ${p(3)}`, [pair.to, ...ends(pair.table, pair.party)]);
        for (const { email, table, wb } of plan.add) {
          let [party] = await s.query(`SELECT id FROM mailaddr WHERE email = ${p(1)}`, [bytes(email)]);
          if (party === undefined) {
            await s.query(`INSERT INTO mailaddr (priority, email) VALUES (${p(1)}, ${p(2)})`, [partyPriority(amavisdForm(email) as AmavisdForm), bytes(email)]);
            [party] = await s.query(`SELECT id FROM mailaddr WHERE email = ${p(1)}`, [bytes(email)]);
          }
          await s.query(`INSERT INTO ${table} (rid, sid, wb) VALUES (${p(1)}, ${p(2)}, ${p(3)})`, [...ends(table, Number(party!.id)), wb]);
        }
        await s.command('COMMIT');
        return { changed: plan.changed, written: true };
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

  /**
   * Every account (users row) with a pair, its four lists as stored (each party's email as it is),
   * in one read. An account stored with capitals reports its spelling (storedAs); one the writer
   * never addresses, since another users row spells the same account (#account), says so.
   */
  async mailboxesWithLists(signal?: AbortSignal): Promise<StoredMailbox[]> {
    const deadline = signal ?? AbortSignal.timeout(this.#timeoutMs);
    const rows = await this.#run(
      (s) =>
        s.query(
          `SELECT 'wblist' AS t, u.id AS uid, u.email AS account, m.id AS pid, m.email, w.wb FROM wblist w JOIN users u ON u.id = w.rid JOIN mailaddr m ON m.id = w.sid ` +
            `UNION ALL SELECT 'outbound_wblist', u.id, u.email, m.id, m.email, o.wb FROM outbound_wblist o JOIN users u ON u.id = o.sid JOIN mailaddr m ON m.id = o.rid`,
          [],
        ),
      deadline,
    );
    const byUser = new Map<number, { account: string; pairs: StoredPair[] }>();
    for (const row of rows) {
      const uid = Number(row.uid);
      let user = byUser.get(uid);
      if (user === undefined) byUser.set(uid, (user = { account: text(row.account), pairs: [] }));
      user.pairs.push({ table: text(row.t) === 'wblist' ? 'wblist' : 'outbound_wblist', party: Number(row.pid), email: text(row.email), wb: text(row.wb) });
    }
    // Which row the writer addresses for an account not stored as its key: needs every users row of that account.
    const addressed = new Map<string, { id: number; email: string }>();
    if ([...byUser.values()].some((u) => accountFold(u.account) !== u.account)) {
      const users = await this.#run((s) => s.query('SELECT id, email FROM users', []), deadline);
      for (const row of users) {
        const candidate = { id: Number(row.id), email: text(row.email) };
        const key = accountFold(candidate.email);
        const held = addressed.get(key);
        if (held === undefined || preferredAccountRow(key, candidate, held) === candidate) addressed.set(key, candidate);
      }
    }
    const out: StoredMailbox[] = [];
    for (const [uid, { account, pairs }] of byUser) {
      const mailbox = account.toLowerCase();
      const lists = pairLists(pairs);
      for (const name of LIST_NAMES) lists[name].sort();
      const writes = addressed.get(canonical(mailbox));
      out.push({
        mailbox,
        ...(accountFold(account) === account ? {} : { storedAs: account }),
        ...(writes === undefined || writes.id === uid ? {} : { unaddressed: `another users row, ${JSON.stringify(writes.email)}, is the one mailwarden writes for ${mailbox}` }),
        lists,
      });
    }
    return out.sort((a, b) => (a.mailbox < b.mailbox ? -1 : a.mailbox > b.mailbox ? 1 : Number(a.unaddressed !== undefined) - Number(b.unaddressed !== undefined)));
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
    const user = await this.#account(s, key, false);
    const lists = pairLists(user === undefined ? [] : await this.#pairs(s, user));
    for (const name of LIST_NAMES) lists[name] = lists[name].map((email) => email.toLowerCase()).sort();
    return lists;
  }

  /**
   * The users row of an account: the one spelled exactly as its key, else the oldest one that
   * spells it otherwise (capitals, a Unicode domain: accountFold), as `mailwarden export` reports
   * it, so a write of an export reaches the row it came from and never creates a second one.
   * `lock`: FOR UPDATE.
   */
  async #account(s: SqlSession, key: string, lock: boolean): Promise<number | undefined> {
    const p = this.#placeholders();
    const forUpdate = lock ? ' FOR UPDATE' : '';
    const [exact] = await s.query(`SELECT id FROM users WHERE email = ${p(1)}${forUpdate}`, [bytes(key)]);
    if (exact !== undefined) return Number(exact.id);
    // A scan, but only for an account without its own row (a new one, or one stored with capitals
    // or a Unicode domain). The SQL narrows to rows equal in ASCII case, and every row with a
    // non-ASCII byte; accountFold decides.
    const folded =
      this.#driver.dialect.name === 'postgres'
        ? `SELECT id, email FROM users WHERE lower(encode(email, 'escape')) = encode(${p(1)}, 'escape') OR position('\\' in encode(email, 'escape')) > 0`
        : `SELECT id, email FROM users WHERE LOWER(CONVERT(email USING utf8mb4)) = CONVERT(${p(1)} USING utf8mb4) OR LENGTH(email) <> CHAR_LENGTH(CONVERT(email USING utf8mb4))`;
    let found: { id: number; email: string } | undefined;
    for (const row of await s.query(folded, [bytes(key)])) {
      const candidate = { id: Number(row.id), email: text(row.email) };
      if (accountFold(candidate.email) === key && (found === undefined || preferredAccountRow(key, candidate, found) === candidate)) found = candidate;
    }
    if (found !== undefined && lock) await s.query(`SELECT id FROM users WHERE id = ${p(1)} FOR UPDATE`, [found.id]);
    return found?.id;
  }

  /** A new users row for the account (its priority by form, policy_id 0, as iRedAdmin writes it); its id. */
  async #createAccount(s: SqlSession, key: string, form: AmavisdForm): Promise<number> {
    const p = this.#placeholders();
    await s.query(`INSERT INTO users (priority, policy_id, email) VALUES (${p(1)}, 0, ${p(2)})`, [accountPriority(form), bytes(key)]);
    const [row] = await s.query(`SELECT id FROM users WHERE email = ${p(1)}`, [bytes(key)]);
    return Number(row!.id);
  }

  /** The pairs of the users row `uid`, each party's email as stored. */
  async #pairs(s: SqlSession, uid: number): Promise<StoredPair[]> {
    const p = this.#placeholders();
    const rows = await s.query(
      `SELECT 'wblist' AS t, m.id, m.email, w.wb FROM wblist w JOIN mailaddr m ON m.id = w.sid WHERE w.rid = ${p(1)} ` +
        `UNION ALL SELECT 'outbound_wblist', m.id, m.email, o.wb FROM outbound_wblist o JOIN mailaddr m ON m.id = o.rid WHERE o.sid = ${p(2)}`,
      [uid, uid],
    );
    return rows.map((row): StoredPair => ({ table: text(row.t) === 'wblist' ? 'wblist' : 'outbound_wblist', party: Number(row.id), email: text(row.email), wb: text(row.wb) }));
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

/**
 * Which of two users rows spelling the account `key` (in any case) the writer addresses: the one
 * spelled exactly as the key, else the older (lower id).
 */
function preferredAccountRow<T extends { readonly id: number; readonly email: string }>(key: string, a: T, b: T): T {
  if ((a.email === key) !== (b.email === key)) return a.email === key ? a : b;
  return a.id <= b.id ? a : b;
}

/** The key a stored users.email is found by: lower case, the domain in ASCII (white space kept: such a row is no account). */
function accountFold(stored: string): string {
  return asciiAddress(stored.toLowerCase());
}

function canonical(entry: string): string {
  return asciiAddress(trimAscii(entry).toLowerCase());
}

function accountKey(account: string): string {
  const key = canonical(account);
  if (key === '') throw new StoreError('InvalidValue', 'the account is empty');
  return key;
}

function bytes(value: string): Buffer {
  return Buffer.from(value, 'utf8');
}

function text(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return String(value);
}

