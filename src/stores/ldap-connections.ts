/**
 * A few bound `ldapts` clients used round-robin. LDAP multiplexes requests on one connection,
 * so a handful is plenty. A client whose connection closed (a server restart) or that was
 * abandoned when a caller's deadline passed (a hung server) is dropped, and the next use of its
 * slot connects and binds anew: the store recovers by itself when the server is back.
 */
import { Client, type ClientOptions } from 'ldapts';
import { abortable } from './common.ts';
import { isResultCode } from './ldap-errors.ts';
import type { Logger } from '../observability/logger.ts';

export interface LdapConnectionOptions {
  readonly url: string;
  /** For logs and messages: the URL as given (LDAP URLs carry no password). */
  readonly target: string;
  readonly bindDn: string;
  /** No password: the clients stay anonymous. */
  readonly password: string | undefined;
  readonly poolSize: number;
  readonly connectTimeoutMs: number;
  /** A backstop on every operation; callers' signals are normally shorter. */
  readonly operationTimeoutMs: number;
  readonly tlsOptions: ClientOptions['tlsOptions'];
  readonly startTls: boolean;
  readonly logger: Logger;
}

interface Slot {
  readonly client: Client;
  /** Connected and bound (or failed doing so). */
  readonly ready: Promise<void>;
  /** Whether `ready` has finished, one way or the other. */
  settled: boolean;
}

export class LdapConnections {
  readonly #options: LdapConnectionOptions;
  readonly #slots: (Slot | undefined)[];
  #next = 0;
  #closed = false;

  constructor(options: LdapConnectionOptions) {
    this.#options = options;
    this.#slots = Array.from({ length: options.poolSize }, () => undefined);
  }

  /**
   * Runs `work` with a bound client. When `signal` aborts, rejects at once with `Unavailable` and
   * drops the client; when the work fails for any reason but an LDAP result code, drops it too.
   */
  async use<T>(work: (client: Client) => Promise<T>, signal: AbortSignal): Promise<T> {
    const index = this.#next;
    this.#next = (this.#next + 1) % this.#slots.length;
    const what = `LDAP ${this.#options.target}`;
    const slot = this.#slot(index);
    // A hung connect or bind is left to its own timeouts; the caller just stops waiting.
    await abortable(slot.ready, signal, () => {}, what);
    try {
      return await abortable(work(slot.client), signal, () => this.#drop(index, slot), what);
    } catch (err) {
      if (!isResultCode(err)) this.#drop(index, slot);
      throw err;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const slots = this.#slots.splice(0);
    await Promise.all(slots.map((slot) => slot?.client.unbind().catch(() => {})));
  }

  /** The slot's client, replaced when its connection is gone (closed by the server, or unbound). */
  #slot(index: number): Slot {
    const slot = this.#slots[index];
    if (slot !== undefined && (!slot.settled || this.#usable(slot))) return slot;
    if (slot !== undefined) this.#drop(index, slot);
    const fresh = this.#open();
    this.#slots[index] = fresh;
    fresh.ready.then(
      () => {
        fresh.settled = true;
      },
      (err: unknown) => {
        fresh.settled = true;
        this.#drop(index, fresh);
        this.#options.logger.debug({ store: this.#options.target, err: String(err) }, 'LDAP connect failed');
      },
    );
    return fresh;
  }

  #usable(slot: Slot): boolean {
    // An anonymous client reconnects by itself on its next operation; a bound one would come
    // back unauthenticated, so it is replaced.
    if (this.#options.password === undefined) return true;
    return slot.client.isConnected && slot.client.isBound;
  }

  #open(): Slot {
    if (this.#closed) throw new Error('LDAP store is closed');
    const o = this.#options;
    const client = new Client({
      url: o.url,
      connectTimeout: o.connectTimeoutMs,
      timeout: o.operationTimeoutMs,
      // ldapts speaks TLS from the first byte whenever it is given TLS options: for ldaps:// only.
      tlsOptions: o.startTls ? undefined : o.tlsOptions,
      strictDN: true,
    });
    const ready = (async () => {
      if (o.startTls) await client.startTLS(o.tlsOptions);
      if (o.password !== undefined) await client.bind(o.bindDn, o.password);
    })();
    return { client, ready, settled: false };
  }

  #drop(index: number, slot: Slot): void {
    if (this.#slots[index] === slot) this.#slots[index] = undefined;
    // unbind() destroys the socket even when the server never answers.
    slot.client.unbind().catch(() => {});
  }
}
