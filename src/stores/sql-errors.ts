/**
 * How driver errors become StoreErrors, for both SQL dialects. The question is always the same:
 * will retrying help (`Unavailable`), is the configuration wrong (`Misconfigured`), or was the value
 * refused (`InvalidValue`)? Messages name the table and columns, never a password.
 */
import { describeError, scrubSecrets, TLS_CONFIG_CODES } from './common.ts';
import type { SqlStoreSettings } from '../api/store-settings.ts';
import { StoreError } from './store.ts';


/** MySQL/MariaDB server error codes that mean the configuration is wrong. */
const MYSQL_MISCONFIGURED = new Set([
  'ER_NO_SUCH_TABLE',
  'ER_BAD_FIELD_ERROR',
  'ER_BAD_DB_ERROR',
  'ER_NO_DB_ERROR',
  'ER_ACCESS_DENIED_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
  'ER_TABLEACCESS_DENIED_ERROR',
  'ER_COLUMNACCESS_DENIED_ERROR',
  'ER_SPECIFIC_ACCESS_DENIED_ERROR',
  'ER_ACCESS_DENIED_NO_PASSWORD_ERROR',
  'ER_NOT_SUPPORTED_AUTH_MODE',
  'ER_PARSE_ERROR',
  'HANDSHAKE_NO_SSL_SUPPORT',
  'HANDSHAKE_SSL_ERROR',
]);

/** MySQL/MariaDB server error codes that refuse a value. */
const MYSQL_INVALID_VALUE = new Set([
  'ER_DATA_TOO_LONG',
  'ER_TRUNCATED_WRONG_VALUE_FOR_FIELD',
  'ER_INVALID_CHARACTER_STRING',
  'ER_CANNOT_CONVERT_STRING',
  'WARN_DATA_TRUNCATED',
]);

/**
 * What a missing list column most likely means, said where it is reported: iRedMail dropped the
 * four `vmail.mailbox` columns in 1.4.0 and keeps the lists in the `amavisd` database since 2015.
 */
export const AMAVISD_HINT =
  'iRedMail 1.4.0 (2021) dropped the four list columns from vmail.mailbox; since 2015 iRedMail keeps these lists in the amavisd database (tables users, mailaddr, wblist, outbound_wblist): see "Which store" in docs/install.md';

/** Which part of the configured schema an error says is missing, or undefined for any other error. */
export function missingSchemaPart(err: unknown): 'table' | 'column' | undefined {
  const code = errorCode(err);
  // PostgreSQL undefined_table / undefined_column; MySQL/MariaDB.
  if (code === '42P01' || code === 'ER_NO_SUCH_TABLE' || code === '3F000') return 'table';
  if (code === '42703' || code === 'ER_BAD_FIELD_ERROR') return 'column';
  return undefined;
}

export interface ErrorContext {
  /** Where the store points, already without secrets. */
  readonly target: string;
  readonly settings: SqlStoreSettings;
  /** Removed from every message, in case a driver echoes one. */
  readonly secrets: readonly (string | undefined)[];
}

type Kind = StoreError['kind'];

/** Classifies a `pg` error by its SQLSTATE or socket code. */
export function classifyPostgresError(err: unknown, context: ErrorContext): StoreError {
  if (err instanceof StoreError) return err;
  const code = errorCode(err);
  let kind: Kind = 'Unavailable';
  let schemaProblem = false;
  if (code !== undefined && /^[0-9A-Z]{5}$/.test(code)) {
    const cls = code.slice(0, 2);
    if (cls === '28' || code === '3D000') kind = 'Misconfigured';
    else if (cls === '42') {
      kind = 'Misconfigured';
      schemaProblem = true;
    } else if (cls === '22' || cls === '23') kind = 'InvalidValue';
    // 08 connection, 53 resources, 57 operator intervention (shutdown), 40 rollback, and socket
    // errors (ECONNREFUSED, ECONNRESET, timeouts): retry later.
  } else if (code !== undefined && TLS_CONFIG_CODES.has(code)) kind = 'Misconfigured';
  else if (/does not support SSL/i.test(describeError(err))) kind = 'Misconfigured';
  return build(kind, 'PostgreSQL', err, context, schemaProblem);
}

/** Classifies a `mysql2` error by its server or protocol code. */
export function classifyMysqlError(err: unknown, context: ErrorContext): StoreError {
  if (err instanceof StoreError) return err;
  const code = errorCode(err);
  let kind: Kind = 'Unavailable';
  let schemaProblem = false;
  if (code !== undefined && MYSQL_MISCONFIGURED.has(code)) {
    kind = 'Misconfigured';
    schemaProblem = code === 'ER_NO_SUCH_TABLE' || code === 'ER_BAD_FIELD_ERROR' || code.includes('ACCESS_DENIED');
  } else if (code !== undefined && MYSQL_INVALID_VALUE.has(code)) kind = 'InvalidValue';
  else if (code !== undefined && TLS_CONFIG_CODES.has(code)) kind = 'Misconfigured';
  return build(kind, 'MySQL', err, context, schemaProblem);
}

function build(kind: Kind, product: string, err: unknown, context: ErrorContext, schemaProblem: boolean): StoreError {
  const detail = scrubSecrets(describeError(err), context.secrets);
  let message: string;
  if (schemaProblem) {
    const { table, columns } = context.settings;
    const names = [columns.username, columns.allowedSenders, columns.rejectedSenders, columns.allowedRecipients, columns.rejectedRecipients];
    message = `${product} ${context.target}: table ${table} or one of its columns (${names.join(', ')}) is missing or not accessible: ${detail}`;
  } else if (kind === 'Misconfigured') {
    message = `${product} ${context.target}: ${detail} (check the user, password, database and TLS settings)`;
  } else if (kind === 'InvalidValue') {
    message = `${product} ${context.target} refused a value, nothing was written: ${detail}`;
  } else {
    message = `${product} ${context.target} unavailable: ${detail}`;
  }
  return new StoreError(kind, message, { cause: err });
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  if (err instanceof AggregateError) return errorCode(err.errors[0]);
  return undefined;
}
