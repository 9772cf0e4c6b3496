/**
 * What every network store shares: secret-free descriptions of where a store
 * points, and the one way an in-flight call is abandoned when the caller's signal aborts.
 */
import type { z } from 'zod';
import type { Logger } from '../observability/logger.ts';
import type { Semantics } from '../restrictions/options.ts';
import { asciiAddress } from '../restrictions/idn.ts';
import { trimAscii } from '../restrictions/sql-list.ts';
import { StoreError } from './store.ts';

/** What the caller passes to open a store: the semantics for SQL lists and the secret. */
export interface StoreOpenOptions {
  readonly semantics: Semantics;
  /** From an environment variable or a mounted file; never from a log line or a URL we print. */
  readonly password?: string;
  /**
   * PEM CA certificates to check the server's certificate against, instead of reading
   * `tls.caFile` (the operator's, from the Secret a MailBackend's caSecretRef names).
   */
  readonly ca?: string;
  /** Stores log state transitions (unavailable / available again), never every failed lookup, and never a secret. */
  readonly logger?: Logger;
}

/**
 * `url` with any password replaced by `***`, for logs and error messages. Works on text that
 * does not parse as a URL too (the password between `:` and `@` of the authority is masked).
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/:@]*):[^@/]*@/i, '$1:***@');
  }
}

/**
 * Removes every occurrence of the given secrets from `text`: a driver may echo a connection
 * string or a failed credential in its message, and that message reaches logs and statuses.
 */
export function scrubSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret === undefined || secret.length < 3) continue;
    out = out.split(secret).join('***');
  }
  return out;
}

/** The text of an unknown thrown value, for a message (drivers throw plain Errors and strings). */
export function describeError(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return describeError(err.errors[0]);
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

/**
 * Races `work` against `signal`. When the signal aborts first the call rejects at once with
 * `Unavailable` and `onAbort` runs (the driver destroys the connection the work runs on, so a hung
 * server does not keep it). A later settlement of `work` is swallowed.
 */
export function abortable<T>(work: Promise<T>, signal: AbortSignal, onAbort: () => void, what: string): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    onAbort();
    return Promise.reject(timeoutError(what));
  }
  return new Promise<T>((resolve, reject) => {
    const abort = (): void => {
      work.catch(() => {});
      try {
        onAbort();
      } finally {
        reject(timeoutError(what));
      }
    };
    signal.addEventListener('abort', abort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', abort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(err);
      },
    );
  });
}

function timeoutError(what: string): StoreError {
  return new StoreError('Unavailable', `${what}: no answer before the lookup timeout`);
}

/** The caller's signal, or a timeout of our own for calls without one (writes from the operator). */
export function signalOrTimeout(signal: AbortSignal | undefined, timeoutMs: number): AbortSignal {
  return signal ?? AbortSignal.timeout(timeoutMs);
}

/**
 * Tracks whether the store last worked, so `ready()` can answer and the log gets one line when
 * the backend goes away and one when it is back, instead of one per failed lookup.
 */
export class Health {
  #healthy = true;
  readonly #logger: Logger;
  readonly #target: string;

  constructor(logger: Logger, target: string) {
    this.#logger = logger;
    this.#target = target;
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  succeeded(): void {
    if (this.#healthy) return;
    this.#healthy = true;
    this.#logger.info({ store: this.#target }, 'store available again');
  }

  failed(error: StoreError): void {
    // Refused values and missing mailboxes say nothing about the backend's health.
    if (error.kind !== 'Unavailable' && error.kind !== 'Misconfigured') return;
    if (!this.#healthy) return;
    this.#healthy = false;
    this.#logger.warn({ store: this.#target, kind: error.kind, err: error.message }, 'store unavailable');
  }
}

/** The mailbox key a write addresses: trimmed, lower-cased, and not empty or holding NUL. */
export function mailboxKey(mailbox: string): string {
  // An internationalised domain in its ASCII form, as stores hold it.
  const key = asciiAddress(trimAscii(mailbox).toLowerCase());
  if (key === '') throw new StoreError('InvalidValue', 'the mailbox address is empty');
  if (key.includes('\u0000')) throw new StoreError('InvalidValue', `mailbox ${JSON.stringify(key)} contains a NUL character`);
  return key;
}

/** Certificate problems: the TLS settings (or the server's certificate) need fixing, not a retry. */
export const TLS_CONFIG_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * Validates a store's settings, reporting every problem in one `Misconfigured` error
 * (`columns.username: an SQL identifier…`), so a bad MailBackend spec or flag says what to fix.
 */
export function parseStoreSettings<S extends z.ZodType>(schema: S, settings: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(settings ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `${issue.path.join('.') || '(settings)'}: ${issue.message}`);
  throw new StoreError('Misconfigured', `${what} settings are not valid: ${problems.join('; ')}`, { cause: result.error });
}
