/**
 * The MySQL/MariaDB store: iRedMail's `vmail.mailbox` through a `mysql2` pool. Its collations
 * ignore case, so a row stored as `Bob@Example.com` is found for `bob@example.com` (spec §5, E09).
 *
 * Values go through server-side prepared statements (`execute`), not client-side escaping: with
 * the NO_BACKSLASH_ESCAPES SQL mode a client-escaped backslash would mean something else.
 */
import { isIP } from 'node:net';
import mysql from 'mysql2/promise';
import { abortable, parseStoreSettings, type StoreOpenOptions } from './common.ts';
import { type NodeTlsOptions, parseSqlUrl, type SqlEndpoint, sqlTlsOptions } from './endpoint.ts';
import { MYSQL_DIALECT, type SqlRow } from './sql-common.ts';
import { classifyMysqlError, type ErrorContext } from './sql-errors.ts';
import { type SqlDriver, SqlMailboxStore, type SqlSession } from './sql-store.ts';
import { SqlStoreSettingsSchema, type SqlStoreSettings } from '../api/store-settings.ts';
import { StoreError } from './store.ts';
import { silentLogger, type Logger } from '../observability/logger.ts';

export const MYSQL_DEFAULT_PORT = 3306;

/** Opens a MySQL/MariaDB store; no connection is made until the first call. */
export async function openMysqlStore(url: string, settings: unknown, options: StoreOpenOptions): Promise<SqlMailboxStore> {
  const parsed = parseStoreSettings(SqlStoreSettingsSchema, settings, 'MySQL store');
  const endpoint = parseSqlUrl(url, MYSQL_DEFAULT_PORT, options.password);
  const logger = options.logger ?? silentLogger;
  if (parsed.tls.mode === 'verify-full' && parsed.tls.serverName !== undefined && parsed.tls.serverName !== endpoint.host) {
    // mysql2 checks the certificate against the host it connects to and takes no other name.
    throw new StoreError(
      'Misconfigured',
      `MySQL store ${endpoint.target}: tls.serverName is not supported (the certificate is checked against the URL's host); put the certificate's name in the URL`,
    );
  }
  if (parsed.tls.mode === 'verify-full' && isIP(endpoint.host) !== 0) {
    // mysql2 sends no server name for an IP address, and Node then checks the certificate
    // against "localhost" instead: any certificate for localhost from the trusted CA would pass.
    throw new StoreError(
      'Misconfigured',
      `MySQL store ${endpoint.target}: tls.mode verify-full needs a host name in the URL, one the server's certificate carries (mysql2 cannot check a certificate against an IP address); or use tls.mode require`,
    );
  }
  const driver = new MysqlDriver(endpoint, parsed, mysqlSslOptions(await sqlTlsOptions(parsed.tls, endpoint.host, options.ca)), logger);
  return new SqlMailboxStore(driver, parsed, { semantics: options.semantics, logger, target: endpoint.target });
}

/**
 * mysql2's form of the TLS options: it builds Node's options itself, so the identity check is its
 * `verifyIdentity` (against the connected host), not a checkServerIdentity of ours.
 */
export function mysqlSslOptions(tls: false | NodeTlsOptions): false | mysql.SslOptions {
  if (tls === false) return false;
  const ssl: mysql.SslOptions = { rejectUnauthorized: tls.rejectUnauthorized, verifyIdentity: tls.rejectUnauthorized };
  if (tls.ca !== undefined) ssl.ca = tls.ca;
  return ssl;
}

export class MysqlDriver implements SqlDriver {
  readonly dialect = MYSQL_DIALECT;
  readonly #pool: mysql.Pool;
  readonly #context: ErrorContext;

  constructor(
    endpoint: SqlEndpoint,
    settings: SqlStoreSettings,
    ssl: false | mysql.SslOptions,
    logger: Logger,
  ) {
    this.#context = { target: endpoint.target, settings, secrets: [endpoint.password] };
    const options: mysql.PoolOptions = {
      host: endpoint.host,
      port: endpoint.port,
      user: endpoint.user,
      database: endpoint.database,
      connectionLimit: settings.poolSize,
      maxIdle: settings.poolSize,
      idleTimeout: 60_000,
      connectTimeout: settings.connectTimeoutMs,
      enableKeepAlive: true,
      // Lists may hold any address; utf8mb4 carries all of Unicode (a utf8mb3 column refuses
      // four-byte characters, which the server reports and we map to InvalidValue).
      charset: 'utf8mb4',
      // Rows as text, whatever a site's schema declares.
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
    };
    if (endpoint.password !== undefined) options.password = endpoint.password;
    if (ssl !== false) options.ssl = ssl;
    this.#pool = mysql.createPool(options);
    // mysql2 drops a pooled connection that fails; the listener only keeps the event observable.
    this.#pool.pool.on('connection', (connection) => {
      connection.on('error', (err: unknown) => {
        logger.debug({ store: endpoint.target, err: this.classify(err).message }, 'pooled connection lost');
      });
    });
  }

  async session<T>(work: (session: SqlSession) => Promise<T>, signal: AbortSignal): Promise<T> {
    let connection: mysql.PoolConnection | undefined;
    let released = false;
    const release = (destroy: boolean): void => {
      if (connection === undefined || released) return;
      released = true;
      // destroy() closes the socket and removes the connection from the pool.
      if (destroy) connection.destroy();
      else connection.release();
    };
    const what = `MySQL ${this.#context.target}`;
    const checkout = this.#pool.getConnection().then((c) => {
      connection = c;
      if (signal.aborted) release(true);
      return c;
    });
    await abortable(checkout, signal, () => release(true), what);
    const session = mysqlSession(connection!);
    try {
      const result = await abortable(work(session), signal, () => release(true), what);
      release(false);
      return result;
    } catch (err) {
      // Our own refusals come after a clean ROLLBACK; anything else may leave the connection
      // mid-transaction or dead, so it is not reused.
      release(!(err instanceof StoreError));
      throw err;
    }
  }

  classify(err: unknown): StoreError {
    return classifyMysqlError(err, this.#context);
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}

function mysqlSession(connection: mysql.PoolConnection): SqlSession {
  return {
    async query(sql: string, params: readonly unknown[]): Promise<SqlRow[]> {
      const [rows] = await connection.execute(sql, params as unknown[] as (string | null)[]);
      if (Array.isArray(rows)) return rows as SqlRow[];
      // Outside strict sql_mode (the default before MariaDB 10.2.4 / MySQL 5.7) a value too long
      // for its column is cut and the statement succeeds with a warning: refused here, so the
      // caller's transaction rolls back and no list is stored in part.
      if ((rows as mysql.ResultSetHeader).warningStatus > 0) throw await truncationError(connection);
      return [];
    },
    async command(sql: string): Promise<void> {
      // Transaction control cannot be prepared on every server version; it carries no values.
      await connection.query(sql);
    },
  };
}

/** The server's warnings for the last statement, as the InvalidValue that refuses the write. */
async function truncationError(connection: mysql.PoolConnection): Promise<StoreError> {
  const [warnings] = await connection.query('SHOW WARNINGS');
  const messages = (Array.isArray(warnings) ? warnings : [])
    .map((w) => String((w as { Message?: unknown }).Message ?? ''))
    .filter((m) => m !== '');
  return new StoreError(
    'InvalidValue',
    `the server would store the value only in part (${messages.join('; ') || 'warnings without text'}): the list is longer than its column holds; nothing was written`,
  );
}
