/**
 * The SQL both dialects share: statement text built from the configured table and column names
 * (identifiers quoted per dialect, values always bound as parameters), the checks a value passes
 * before it is written, and the mapping from rows back to the requested keys.
 */
import { LIST_NAMES, type ListName, type MailboxRecord, type RestrictionLists } from '../restrictions/lists.ts';
import type { Semantics } from '../restrictions/options.ts';
import { asciiAddress } from '../restrictions/idn.ts';
import { diffList, mergeList } from '../restrictions/list-diff.ts';
import { joinSqlList, splitSqlList, trimAscii } from '../restrictions/sql-list.ts';
import type { SqlStoreSettings } from '../api/store-settings.ts';
import { StoreError, type StoredMailbox } from './store.ts';

export interface SqlDialect {
  /** `postgres` or `mysql`, as in logs and metrics. */
  readonly name: 'postgres' | 'mysql';
  /** Quotes one identifier part. */
  quoteIdent(part: string): string;
  /** The placeholder for the `index`-th (1-based) bound value. */
  placeholder(index: number): string;
}

export const POSTGRES_DIALECT: SqlDialect = Object.freeze({
  name: 'postgres',
  quoteIdent: (part: string) => `"${part.replaceAll('"', '""')}"`,
  placeholder: (index: number) => `$${index}`,
});

export const MYSQL_DIALECT: SqlDialect = Object.freeze({
  name: 'mysql',
  quoteIdent: (part: string) => `\`${part.replaceAll('`', '``')}\``,
  placeholder: () => '?',
});

/**
 * Fixed aliases for the selected columns, so rows read the same whatever the site named its
 * columns (and whatever case PostgreSQL folds unquoted names to).
 */
const USERNAME_ALIAS = 'mw_username';
const LIST_ALIASES: { readonly [K in ListName]: string } = Object.freeze({
  allowedSenders: 'mw_allowed_senders',
  rejectedSenders: 'mw_rejected_senders',
  allowedRecipients: 'mw_allowed_recipients',
  rejectedRecipients: 'mw_rejected_recipients',
});

export type SqlRow = Readonly<Record<string, unknown>>;

/** The statements a SQL store runs, built once from the settings. */
export class SqlStatements {
  readonly #dialect: SqlDialect;
  readonly #table: string;
  readonly #username: string;
  readonly #selectList: string;
  readonly #columns: { readonly [K in ListName]: string };

  constructor(dialect: SqlDialect, settings: SqlStoreSettings) {
    this.#dialect = dialect;
    const q = dialect.quoteIdent;
    this.#table = settings.table.split('.').map(q).join('.');
    this.#username = q(settings.columns.username);
    const columns = {} as Record<ListName, string>;
    for (const name of LIST_NAMES) columns[name] = q(settings.columns[name]);
    this.#columns = columns;
    this.#selectList = [
      `${this.#username} AS ${q(USERNAME_ALIAS)}`,
      ...LIST_NAMES.map((name) => `${columns[name]} AS ${q(LIST_ALIASES[name])}`),
    ].join(', ');
  }

  /** One SELECT for all `count` keys of a policy request. */
  lookup(count: number): string {
    const placeholders = Array.from({ length: count }, (_, i) => this.#dialect.placeholder(i + 1)).join(', ');
    return `SELECT ${this.#selectList} FROM ${this.#table} WHERE ${this.#username} IN (${placeholders})`;
  }

  /** Reads no row, but needs the table, its columns and the right to read them. */
  probe(): string {
    return `SELECT ${this.#selectList} FROM ${this.#table} WHERE 1 = 0`;
  }

  /** The row of one mailbox, locked until the transaction ends so a concurrent writer waits. */
  selectForUpdate(): string {
    return `SELECT ${this.#selectList} FROM ${this.#table} WHERE ${this.#username} = ${this.#dialect.placeholder(1)} FOR UPDATE`;
  }

  /** The row of one mailbox, without a lock (observe). */
  selectOne(): string {
    return `SELECT ${this.#selectList} FROM ${this.#table} WHERE ${this.#username} = ${this.#dialect.placeholder(1)}`;
  }

  /** A statement that reads nothing and fails when the table or `column` is missing. */
  probeColumn(column: string): string {
    return `SELECT ${this.#dialect.quoteIdent(column)} FROM ${this.#table} WHERE 1 = 0`;
  }


  /** Every row with something in any list column (NULL and '' are unset). */
  withLists(): string {
    // CHAR_LENGTH, not <> '': MySQL's PAD SPACE collations take a column of blanks for ''.
    const set = LIST_NAMES.map((name) => `CHAR_LENGTH(${this.#columns[name]}) > 0`).join(' OR ');
    return `SELECT ${this.#selectList} FROM ${this.#table} WHERE ${set}`;
  }

  /** The `lists` columns (default all four) in one statement; parameters in that order, then the stored username. */
  update(lists: readonly ListName[] = LIST_NAMES): string {
    const p = this.#dialect.placeholder;
    const sets = lists.map((name, i) => `${this.#columns[name]} = ${p(i + 1)}`).join(', ');
    return `UPDATE ${this.#table} SET ${sets} WHERE ${this.#username} = ${p(lists.length + 1)}`;
  }
}

/** The stored username of a row (always text in a sane schema). */
export function rowUsername(row: SqlRow): string {
  return columnText(row[USERNAME_ALIAS]) ?? '';
}

/** One list column of a row as stored: text, or null for SQL NULL. */
export function rowColumn(row: SqlRow, name: ListName): string | null {
  return columnText(row[LIST_ALIASES[name]]);
}

function columnText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  // A BLOB/BINARY column (some MySQL schemas) arrives as bytes.
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return String(value);
}

/**
 * Lookup keys as the query binds them: lower-cased, without duplicates, and without keys no
 * row can have (empty, or holding NUL, which PostgreSQL cannot even receive as text).
 */
export function lookupKeys(keys: readonly string[]): string[] {
  const out = new Set<string>();
  for (const key of keys) {
    const k = key.toLowerCase();
    if (k === '' || k.includes('\u0000')) continue;
    out.add(k);
  }
  return [...out];
}

/**
 * Maps rows back to the requested keys. The database decided equality (MySQL/MariaDB collations
 * ignore case, PostgreSQL does not, spec §5); a row belongs to the requested key whose lower case
 * equals the row's username lower-cased, so a row a collation found for some other reason
 * (trailing blanks, accents) is not taken for the key.
 */
export function recordsFromRows(
  keys: readonly string[],
  rows: readonly SqlRow[],
  semantics: Semantics,
): Map<string, MailboxRecord> {
  const wanted = new Set(keys);
  const found = new Map<string, { row: SqlRow; exact: boolean }>();
  for (const row of rows) {
    const username = rowUsername(row);
    const key = username.toLowerCase();
    if (!wanted.has(key)) continue;
    const exact = username === key;
    const seen = found.get(key);
    // Two rows for one key only happen without a unique index; prefer the one stored lower-case.
    if (seen !== undefined && (seen.exact || !exact)) continue;
    found.set(key, { row, exact });
  }
  const out = new Map<string, MailboxRecord>();
  for (const [key, { row }] of found) out.set(key, recordFromRow(key, row, semantics));
  return out;
}

function recordFromRow(key: string, row: SqlRow, semantics: Semantics): MailboxRecord {
  const lists = {} as Record<ListName, readonly string[] | null>;
  for (const name of LIST_NAMES) {
    const split = splitSqlList(rowColumn(row, name), semantics);
    lists[name] = split === null ? null : Object.freeze(split);
  }
  return Object.freeze({ address: key, lists: Object.freeze(lists) });
}

/** What `observe` reports for a row: the default split, an unset list as empty. */
export function observedLists(row: SqlRow): RestrictionLists {
  const lists = {} as Record<ListName, readonly string[]>;
  for (const name of LIST_NAMES) lists[name] = Object.freeze(splitSqlList(rowColumn(row, name), 'default') ?? []);
  return Object.freeze(lists);
}

/** A row's lists exactly as stored: each column split on commas, nothing trimmed or dropped. */
export function storedMailbox(row: SqlRow): StoredMailbox {
  const lists = {} as Record<ListName, readonly string[]>;
  for (const name of LIST_NAMES) {
    const column = rowColumn(row, name);
    lists[name] = column === null || column === '' ? [] : column.split(',');
  }
  const username = rowUsername(row);
  const mailbox = username.toLowerCase();
  return mailbox === username ? { mailbox, lists } : { mailbox, storedAs: username, lists };
}

/** Each list's entries as a write stores them, after checking every one (see sqlEntryProblem). */
export function entriesToWrite(lists: RestrictionLists): { readonly [K in ListName]: readonly string[] } {
  const out = {} as Record<ListName, string[]>;
  for (const name of LIST_NAMES) {
    for (const entry of lists[name]) {
      const problem = sqlEntryProblem(entry);
      if (problem !== undefined) {
        throw new StoreError('InvalidValue', `${name}: entry ${JSON.stringify(entry)} cannot be stored: ${problem}`);
      }
    }
    out[name] = lists[name].map((entry) => asciiAddress(trimAscii(entry).toLowerCase()));
  }
  return out;
}

/**
 * The column texts a write stores, after checking every entry: one that is empty, holds the list
 * separator `,` or a NUL could not be read back as the same entry, so it is refused, never cut.
 */
export function columnsToWrite(lists: RestrictionLists): { readonly [K in ListName]: string } {
  const entries = entriesToWrite(lists);
  const out = {} as Record<ListName, string>;
  for (const name of LIST_NAMES) out[name] = joinSqlList(entries[name]);
  return out;
}

/**
 * What a write changes in a stored row: the lists whose entries differ by meaning (list-diff.ts),
 * and for each the column text to store, which keeps the stored text of entries that stay. A
 * column that already means `entries` is not written, however it is spelled.
 */
export function rowChanges(row: SqlRow, entries: { readonly [K in ListName]: readonly string[] }): { changed: ListName[]; columns: Partial<Record<ListName, string>> } {
  const changed: ListName[] = [];
  const columns: Partial<Record<ListName, string>> = {};
  for (const name of LIST_NAMES) {
    const column = rowColumn(row, name);
    const stored = column === null || column === '' ? [] : column.split(',');
    const { added, removed } = diffList(stored, entries[name]);
    if (added.length === 0 && removed.length === 0) continue;
    changed.push(name);
    columns[name] = mergeList(stored, entries[name]).join(',');
  }
  return { changed, columns };
}

export function sqlEntryProblem(entry: string): string | undefined {
  if (trimAscii(entry) === '') return 'it is empty';
  if (entry.includes(',')) return 'it contains a comma, which separates entries in the SQL column';
  if (entry.includes('\u0000')) return 'it contains a NUL character';
  return undefined;
}

/** The rows of `rows` that belong to `key` (see {@link recordsFromRows}), exact matches first. */
export function rowsForKey(key: string, rows: readonly SqlRow[]): SqlRow[] {
  const mine = rows.filter((row) => rowUsername(row).toLowerCase() === key);
  return mine.sort((a, b) => Number(rowUsername(b) === key) - Number(rowUsername(a) === key));
}
