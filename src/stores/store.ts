import type { ListName, MailboxRecord, RestrictionLists } from '../restrictions/lists.ts';
import type { WblistFacts, WblistPlan } from '../restrictions/amavisd-wblist.ts';

/**
 * The reader of the amavisd white/blacklist tables: the rows one request's decision reads
 * (restrictions/amavisd-wblist.ts), fetched in one round trip. The daemon decides over them as
 * iRedAPD's amavisd_wblist does, instead of over mailbox records.
 */
export interface WblistReader {
  /** `amavisd-postgres`, `amavisd-mysql`. */
  readonly kind: string;
  facts(plan: WblistPlan, signal: AbortSignal): Promise<WblistFacts>;
  /** As {@link MailboxReader.verifySchema}: the four tables exist and can be read. */
  verifySchema?(signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** What the daemon reads: mailbox records, or the amavisd tables' facts. */
export type StoreReader = MailboxReader | WblistReader;

/** True for a reader of the amavisd tables. */
export function isWblistReader(reader: StoreReader): reader is WblistReader {
  return typeof (reader as Partial<WblistReader>).facts === 'function';
}

/**
 * The reader: the policy daemon's lookups, implemented by every store the daemon reads.
 *
 * `lookup` fetches every requested address in one round trip (the sending identity and the
 * recipient of one policy request, plus their recipient-delimiter variants). Keys are
 * lower-cased addresses; the result maps each requested key that has a mailbox to its record
 * and omits the others. A store rejects with a {@link StoreError} when it cannot answer, and
 * stops work when `signal` aborts (the caller's lookup timeout).
 */
export interface MailboxReader {
  /** Short name for logs and metrics: `manifests`, `postgres`, `mysql`, `ldap`. */
  readonly kind: string;
  lookup(keys: readonly string[], signal: AbortSignal): Promise<ReadonlyMap<string, MailboxRecord>>;
  /**
   * In-memory stores answer synchronously: the record for `key`, or undefined when there is no
   * such mailbox. Records are immutable and replaced on reload, so callers may memoise work
   * per record. Network stores leave this out and are cached by the caller.
   */
  peek?(key: string): MailboxRecord | undefined;
  /**
   * Called when the store knows its data changed: with the mailbox keys whose records changed,
   * or with none when anything may have (the manifests store on reload).
   */
  onChange?(listener: (changed?: readonly string[]) => void): void;
  /** True when the store can answer (for `/readyz`). */
  ready?(): boolean;
  /**
   * In-memory stores that fill in the background (the Kubernetes store): false until the first
   * full set of data is in. Until then the daemon answers the failure action and is not ready;
   * once true it stays true, whatever happens to the source.
   */
  loaded?(): boolean;
  /** Resolves once {@link loaded}; rejects after `timeoutMs` or when the store is closed first. */
  whenLoaded?(timeoutMs?: number): Promise<void>;
  /**
   * True while the store answers from data its source can no longer confirm (the API server is
   * unreachable): a metric and an alert, not a reason to stop answering.
   */
  stale?(): boolean;
  /**
   * Checks once that the configured table and columns (SQL) or attributes (LDAP) exist, so a
   * schema without them is one clear `Misconfigured` error at start naming what is missing,
   * rather than a failure answer per request. `Unavailable` when the server cannot be asked.
   */
  verifySchema?(signal: AbortSignal): Promise<void>;
  /**
   * How many lookups are worth running at once (a network store's pool size). The caller keeps
   * further lookups back and merges their keys into one, instead of queueing them in the pool.
   */
  readonly lookupConcurrency?: number;
  close(): Promise<void>;
}

/** What a write found and did. */
export interface ApplyResult {
  /**
   * The lists whose entries differed from the desired ones by meaning (restrictions/list-diff.ts)
   * and were written: the entries that stay keep their stored text, so a write changes exactly
   * the difference, and text stored by hand in another form is no difference.
   */
  readonly changed: readonly ListName[];
  /** Whether anything was sent to the store (exactly when a list `changed`). */
  readonly written: boolean;
}

/** A mailbox and its lists exactly as stored: each value as it is (SQL: each piece between commas). */
export interface StoredMailbox {
  /** The address as the store keys it (SQL username, LDAP primary address), lower-cased. */
  readonly mailbox: string;
  /**
   * The stored spelling, when it is not lower-case (a row PostgreSQL cannot find by its address;
   * amavisd tables: also a domain stored in Unicode rather than its ASCII form).
   */
  readonly storedAs?: string;
  /**
   * Why a write for `mailbox` never reaches these lists (another stored spelling of the same
   * account is the one written: amavisd users rows), when that is so.
   */
  readonly unaddressed?: string;
  /** Further addresses the store finds this mailbox by (LDAP shadowAddress), lower-cased. */
  readonly aliases?: readonly string[];
  readonly lists: RestrictionLists;
}

/** The stored entry an address reaches, in a store where several addresses reach one entry. */
export interface ReachedEntry {
  /** Which entry (LDAP: its DN, lower-case): two addresses with the same id write the same lists. */
  readonly id: string;
  /** Every address the entry is found by (LDAP: mail and shadowAddress), lower-case. */
  readonly addresses: readonly string[];
  /** The entry's own address (LDAP: its first `mail`), lower-case: whose account the lists are. */
  readonly primary: string;
}

/**
 * The writer: what the operator and `mailwarden apply` need of a store. Independent of the
 * reader, so a store kind implements the half it supports. Writes never create mailboxes: a
 * missing one is a `MailboxNotFound` StoreError.
 */
export interface MailboxWriter {
  /** Short name for logs and statuses: `postgres`, `mysql`, `ldap`. */
  readonly kind: string;
  /** What is stored for the mailbox now, in canonical form (for drift detection and dry runs). */
  observe(mailbox: string, signal?: AbortSignal): Promise<RestrictionLists>;
  /**
   * Makes the four lists equal `lists`: reads what is stored and compares it under the store's
   * lock where it has one (SQL: the row, read FOR UPDATE in the write's transaction), then
   * writes all four in one statement or modify only on a difference. The comparison happens
   * once, here: callers do not observe first.
   */
  apply(mailbox: string, lists: RestrictionLists, signal?: AbortSignal): Promise<ApplyResult>;
  /** Empties the four lists (as `apply` with empty lists). */
  clear(mailbox: string, signal?: AbortSignal): Promise<ApplyResult>;
  /**
   * Stores where one entry has several addresses (LDAP: `mail` and `shadowAddress`): the entry
   * `mailbox` writes, so that restrictions naming two of its addresses are seen as one target.
   * `MailboxNotFound` when there is none. Stores keyed by one address leave it out.
   */
  entryOf?(mailbox: string, signal?: AbortSignal): Promise<ReachedEntry>;
  /** Every mailbox that has a value in any list, in one read (`mailwarden export`, `--prune`). */
  mailboxesWithLists(signal?: AbortSignal): Promise<StoredMailbox[]>;
  /**
   * One round trip that reads no mailbox: resolves when the store answers with these settings
   * and credentials (the table and columns, or the base DN and filter, are usable).
   */
  ping(signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export type StoreErrorKind =
  /** The server could not be reached, refused us, or timed out: retry later. */
  | 'Unavailable'
  /** The mailbox does not exist in the store (writes never create one). */
  | 'MailboxNotFound'
  /** The value cannot be stored as given (bad characters, too long). */
  | 'InvalidValue'
  /** The store's configuration is wrong (bad URL, missing table): retrying will not help. */
  | 'Misconfigured';

/** The one error type stores throw; `message` is for a mail admin and never holds a secret. */
export class StoreError extends Error {
  readonly kind: StoreErrorKind;
  constructor(kind: StoreErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.kind = kind;
  }
}
