/**
 * The PostgreSQL store: iRedMail's `vmail.mailbox` through a `pg.Pool`. PostgreSQL compares
 * usernames case-sensitively, so a row stored with capitals is not found (spec §5, vector E09).
 */
import pg from 'pg';
import { abortable, parseStoreSettings, type StoreOpenOptions } from './common.ts';
import { parseSqlUrl, type SqlEndpoint, sqlTlsOptions } from './endpoint.ts';
import { POSTGRES_DIALECT, type SqlRow } from './sql-common.ts';
import { classifyPostgresError, type ErrorContext } from './sql-errors.ts';
import { type SqlDriver, SqlMailboxStore, type SqlSession } from './sql-store.ts';
import { SqlStoreSettingsSchema, type SqlStoreSettings } from '../api/store-settings.ts';
import { StoreError } from './store.ts';
import { silentLogger, type Logger } from '../observability/logger.ts';

export const POSTGRES_DEFAULT_PORT = 5432;

/** Opens a PostgreSQL store; no connection is made until the first call. */
export async function openPostgresStore(
  url: string,
  settings: unknown,
  options: StoreOpenOptions,
): Promise<SqlMailboxStore> {
  const parsed = parseStoreSettings(SqlStoreSettingsSchema, settings, 'PostgreSQL store');
  const endpoint = parseSqlUrl(url, POSTGRES_DEFAULT_PORT, options.password);
  const logger = options.logger ?? silentLogger;
  const driver = new PostgresDriver(endpoint, parsed, await sqlTlsOptions(parsed.tls, endpoint.host, options.ca), logger);
  return new SqlMailboxStore(driver, parsed, { semantics: options.semantics, logger, target: endpoint.target });
}

export class PostgresDriver implements SqlDriver {
  readonly dialect = POSTGRES_DIALECT;
  readonly #pool: pg.Pool;
  readonly #context: ErrorContext;
  readonly #logger: Logger;

  constructor(
    endpoint: SqlEndpoint,
    settings: SqlStoreSettings,
    ssl: Awaited<ReturnType<typeof sqlTlsOptions>>,
    logger: Logger,
  ) {
    this.#context = { target: endpoint.target, settings, secrets: [endpoint.password] };
    this.#logger = logger;
    this.#pool = new pg.Pool({
      host: endpoint.host,
      port: endpoint.port,
      user: endpoint.user,
      password: endpoint.password,
      database: endpoint.database,
      ssl,
      max: settings.poolSize,
      connectionTimeoutMillis: settings.connectTimeoutMs,
      // Idle connections are closed before a NAT or firewall silently drops them.
      idleTimeoutMillis: 60_000,
      keepAlive: true,
      application_name: 'mailwarden',
      // A backstop for statements that outlive every caller's deadline.
      query_timeout: settings.operationTimeoutMs * 2,
    });
    // An idle pooled connection that dies (server restart) is reported here; without a listener
    // the process would crash. The pool drops it and opens a new one on demand.
    this.#pool.on('error', (err) => {
      logger.debug({ store: endpoint.target, err: this.classify(err).message }, 'idle connection lost');
    });
  }

  async session<T>(work: (session: SqlSession) => Promise<T>, signal: AbortSignal): Promise<T> {
    let client: pg.PoolClient | undefined;
    let released = false;
    const release = (destroy: boolean): void => {
      if (client === undefined || released) return;
      released = true;
      // A truthy argument makes the pool close the connection instead of reusing it.
      client.release(destroy ? new Error('abandoned') : undefined);
    };
    const checkout = this.#pool.connect().then((c) => {
      client = c;
      // A connection that dies while checked out (between two statements of a session, or after
      // being abandoned) emits 'error' with no pool listener attached: without ours the process
      // would crash when the server restarts. Once per connection, as connections are reused.
      if (!GUARDED.has(c)) {
        GUARDED.add(c);
        c.on('error', (err) => this.#onConnectionError(err));
      }
      // The signal may have fired while we waited for the connection.
      if (signal.aborted) release(true);
      return c;
    });
    await abortable(checkout, signal, () => release(true), `PostgreSQL ${this.#context.target}`);
    const session = postgresSession(client!);
    try {
      const result = await abortable(work(session), signal, () => release(true), `PostgreSQL ${this.#context.target}`);
      release(false);
      return result;
    } catch (err) {
      // Our own refusals come after a clean ROLLBACK; after anything else the connection may be
      // mid-transaction or dead, so it is not reused.
      release(!(err instanceof StoreError));
      throw err;
    }
  }

  classify(err: unknown): StoreError {
    return classifyPostgresError(err, this.#context);
  }

  #onConnectionError(err: unknown): void {
    this.#logger.debug({ store: this.#context.target, err: this.classify(err).message }, 'connection lost');
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}

const GUARDED = new WeakSet<pg.PoolClient>();

function postgresSession(client: pg.PoolClient): SqlSession {
  return {
    async query(sql: string, params: readonly unknown[]): Promise<SqlRow[]> {
      const result = await client.query(sql, params as unknown[]);
      return result.rows as SqlRow[];
    },
    async command(sql: string): Promise<void> {
      await client.query(sql);
    },
  };
}
