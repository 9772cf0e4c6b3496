import type { MailboxRecord, RestrictionLists } from '../restrictions/lists.ts';

/**
 * The read side every store implements: the policy daemon's lookups.
 *
 * `lookup` fetches every requested address in one round trip (the sending identity and the
 * recipient of one policy request, plus their recipient-delimiter variants). Keys are
 * lower-cased addresses; the result maps each requested key that has a mailbox to its record
 * and omits the others. A store rejects with a {@link StoreError} when it cannot answer, and
 * stops work when `signal` aborts (the caller's lookup timeout).
 */
export interface MailboxStore {
  /** Short name for logs and metrics: `manifests`, `postgres`, `mysql`, `ldap`. */
  readonly kind: string;
  lookup(keys: readonly string[], signal: AbortSignal): Promise<ReadonlyMap<string, MailboxRecord>>;
  /**
   * In-memory stores answer synchronously: the record for `key`, or undefined when there is no
   * such mailbox. Records are immutable and replaced on reload, so callers may memoise work
   * per record. Network stores leave this out and are cached by the caller.
   */
  peek?(key: string): MailboxRecord | undefined;
  /** Called when the store knows its data changed (the manifests store on reload). */
  onChange?(listener: () => void): void;
  /** True when the store can answer (for `/readyz`). */
  ready?(): boolean;
  /**
   * How many lookups are worth running at once (a network store's pool size). The caller keeps
   * further lookups back and merges their keys into one, instead of queueing them in the pool.
   */
  readonly lookupConcurrency?: number;
  close(): Promise<void>;
}

/** Outcome of a write: whether anything differed and was written. */
export interface ApplyResult {
  readonly changed: boolean;
}

/**
 * The write side, used by the operator and `mailwarden apply`.
 * Writes never create mailboxes: a missing one is a `MailboxNotFound` StoreError.
 */
export interface WritableMailboxStore extends MailboxStore {
  /** What is stored for the mailbox now, in canonical form (for drift detection). */
  observe(mailbox: string, signal?: AbortSignal): Promise<RestrictionLists>;
  /** Make the four lists equal `lists`, in one statement or modify; no write when equal. */
  apply(mailbox: string, lists: RestrictionLists, signal?: AbortSignal): Promise<ApplyResult>;
  /** Empty the four lists. */
  clear(mailbox: string, signal?: AbortSignal): Promise<ApplyResult>;
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
