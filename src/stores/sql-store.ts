/**
 * A mailbox table behind a driver: the read and write paths common to PostgreSQL and
 * MySQL/MariaDB. The driver owns the pool and knows its error codes; this class owns the
 * statements, the key mapping and the write protocol (read under lock, compare, one UPDATE of
 * the changed columns).
 */
import { EMPTY_LISTS, LIST_NAMES, type MailboxRecord, type RestrictionLists } from '../restrictions/lists.ts';
import type { Semantics } from '../restrictions/options.ts';
import { Health, mailboxKey, signalOrTimeout } from './common.ts';
import {
  entriesToWrite,
  lookupKeys,
  observedLists,
  recordsFromRows,
  rowChanges,
  rowsForKey,
  rowUsername,
  storedMailbox,
  type SqlDialect,
  SqlStatements,
  type SqlRow,
} from './sql-common.ts';
import { AMAVISD_HINT, missingSchemaPart } from './sql-errors.ts';
import type { SqlStoreSettings } from '../api/store-settings.ts';
import { type ApplyResult, type MailboxReader, type MailboxWriter, StoreError, type StoredMailbox } from './store.ts';
import type { Logger } from '../observability/logger.ts';

/** One checked-out connection. */
export interface SqlSession {
  /** Runs one statement with bound values; returns its rows (none for an UPDATE). */
  query(sql: string, params: readonly unknown[]): Promise<SqlRow[]>;
  /** Runs a statement without values (BEGIN, COMMIT, ROLLBACK). */
  command(sql: string): Promise<void>;
}

/** What a dialect's driver provides: a pool, sessions that die with the signal, its error codes. */
export interface SqlDriver {
  readonly dialect: SqlDialect;
  /**
   * Runs `work` on one pooled connection. When `signal` aborts, the call rejects at once with
   * `Unavailable` and the connection is destroyed rather than returned to the pool.
   */
  session<T>(work: (session: SqlSession) => Promise<T>, signal: AbortSignal): Promise<T>;
  /** Maps any error of the driver (or a StoreError, passed through) to a StoreError. */
  classify(err: unknown): StoreError;
  close(): Promise<void>;
}

export interface SqlStoreOptions {
  readonly semantics: Semantics;
  readonly logger: Logger;
  /** Where the store points, without secrets (`postgres://vmail@db:5432/vmail`). */
  readonly target: string;
}

export class SqlMailboxStore implements MailboxReader, MailboxWriter {
  readonly kind: 'postgres' | 'mysql';
  readonly #driver: SqlDriver;
  readonly #statements: SqlStatements;
  readonly #settings: SqlStoreSettings;
  readonly #semantics: Semantics;
  readonly #health: Health;
  readonly #target: string;
  readonly lookupConcurrency: number;
  #closed = false;

  constructor(driver: SqlDriver, settings: SqlStoreSettings, options: SqlStoreOptions) {
    this.kind = driver.dialect.name;
    this.lookupConcurrency = settings.poolSize;
    this.#driver = driver;
    this.#settings = settings;
    this.#statements = new SqlStatements(driver.dialect, settings);
    this.#semantics = options.semantics;
    this.#health = new Health(options.logger, options.target);
    this.#target = options.target;
    this.#target = options.target;
  }

  async lookup(keys: readonly string[], signal: AbortSignal): Promise<ReadonlyMap<string, MailboxRecord>> {
    const bound = lookupKeys(keys);
    if (bound.length === 0) return new Map();
    const rows = await this.#run((s) => s.query(this.#statements.lookup(bound.length), bound), signal);
    return recordsFromRows(bound, rows, this.#semantics);
  }

  async observe(mailbox: string, signal?: AbortSignal): Promise<RestrictionLists> {
    const key = mailboxKey(mailbox);
    const rows = await this.#run((s) => s.query(this.#statements.selectOne(), [key]), this.#signal(signal));
    const row = rowsForKey(key, rows)[0];
    if (row === undefined) throw notFound(key, this.#settings);
    return observedLists(row);
  }

  async apply(mailbox: string, lists: RestrictionLists, signal?: AbortSignal): Promise<ApplyResult> {
    const key = mailboxKey(mailbox);
    const entries = entriesToWrite(lists);
    return this.#run(async (s) => {
      await s.command('BEGIN');
      try {
        const row = rowsForKey(key, await s.query(this.#statements.selectForUpdate(), [key]))[0];
        if (row === undefined) throw notFound(key, this.#settings);
        const { changed, columns } = rowChanges(row, entries);
        if (changed.length === 0) {
          await s.command('COMMIT');
          return { changed: [], written: false };
        }
        // Only the changed columns, and the stored username, so the statement addresses exactly
        // the row just read and locked and changes nothing but the difference.
        await s.query(this.#statements.update(changed), [...changed.map((name) => columns[name]), rowUsername(row)]);
        await s.command('COMMIT');
        return { changed, written: true };
      } catch (err) {
        await s.command('ROLLBACK').catch(() => {});
        throw err;
      }
    }, this.#signal(signal));
  }

  clear(mailbox: string, signal?: AbortSignal): Promise<ApplyResult> {
    return this.apply(mailbox, EMPTY_LISTS, signal);
  }

  async mailboxesWithLists(signal?: AbortSignal): Promise<StoredMailbox[]> {
    const rows = await this.#run((s) => s.query(this.#statements.withLists(), []), this.#signal(signal));
    return rows.map(storedMailbox);
  }

  async ping(signal?: AbortSignal): Promise<void> {
    const deadline = this.#signal(signal);
    try {
      await this.#run((s) => s.query(this.#statements.probe(), []), deadline);
    } catch (err) {
      // Which column is missing, rather than the list of all of them.
      if (err instanceof StoreError && missingSchemaPart(err.cause) !== undefined) await this.verifySchema(deadline);
      throw err;
    }
  }

  /** One probe per configured column; the first missing one is named (see AMAVISD_HINT). */
  async verifySchema(signal: AbortSignal): Promise<void> {
    const { table, columns } = this.#settings;
    const product = this.kind === 'postgres' ? 'PostgreSQL' : 'MySQL';
    const configured: [string, string][] = [['username', columns.username], ...LIST_NAMES.map((name): [string, string] => [name, columns[name]])];
    await this.#run(async (s) => {
      for (const [setting, column] of configured) {
        try {
          await s.query(this.#statements.probeColumn(column), []);
        } catch (err) {
          const missing = missingSchemaPart(err);
          if (missing === undefined) throw err;
          const what = missing === 'table' ? `table ${table} does not exist` : `table ${table} has no column ${column} (columns.${setting})`;
          throw new StoreError('Misconfigured', `${product} ${this.#target}: ${what}. ${AMAVISD_HINT}`, { cause: err });
        }
      }
    }, signal);
  }

  ready(): boolean {
    return !this.#closed && this.#health.healthy;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#driver.close();
  }

  #signal(signal: AbortSignal | undefined): AbortSignal {
    return signalOrTimeout(signal, this.#settings.operationTimeoutMs);
  }

  /**
   * Runs `work` in a session. A connection the server dropped while it sat in the pool (a restart)
   * fails the first statement; one retry on a fresh connection hides that from the caller, within
   * the same deadline. A server that is still down fails the retry quickly too.
   */
  async #run<T>(work: (session: SqlSession) => Promise<T>, signal: AbortSignal): Promise<T> {
    if (this.#closed) throw new StoreError('Unavailable', `${this.kind} store is closed`);
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.#driver.session(work, signal);
        this.#health.succeeded();
        return result;
      } catch (err) {
        const error = this.#driver.classify(err);
        if (error.kind === 'Unavailable' && attempt === 1 && !signal.aborted && !this.#closed) continue;
        this.#health.failed(error);
        throw error;
      }
    }
  }
}

function notFound(key: string, settings: SqlStoreSettings): StoreError {
  return new StoreError(
    'MailboxNotFound',
    `mailbox ${JSON.stringify(key)} has no row in table ${settings.table} (${settings.columns.username}); mailwarden never creates mailboxes`,
  );
}
