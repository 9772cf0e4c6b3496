/**
 * Every bound the policy server puts on a client, in one place with safe defaults.
 *
 * The client is Postfix's smtpd on a trusted network, but the port is reachable by anything that
 * can reach the pod, so nothing here trusts the peer: each value bounds memory or time per
 * connection, and `maxConnections` bounds the product.
 */
export interface PolicyServerLimits {
  /**
   * Longest attribute line, in bytes, not counting the LF or a trailing CR. Postfix's longest
   * values are X.509 subjects/issuers (`ccert_subject`, `ccert_issuer`) and a HELO name, which
   * smtpd itself caps at `line_length_limit` (2048); 8 KiB leaves room without letting a client
   * make us buffer much.
   */
  readonly maxLineBytes: number;
  /**
   * Largest request, in bytes, counting every attribute line with its terminator (not the final
   * empty line). A Postfix 3.7 RCPT request is about 1 KiB; 64 KiB is a generous ceiling.
   */
  readonly maxRequestBytes: number;
  /** Most attribute lines in one request. smtpd sends about 35. */
  readonly maxAttributes: number;
  /**
   * Most open connections. Postfix keeps one per smtpd process. When full, a new connection takes
   * the slot of the connection that has waited longest without a request in flight (idle, stalled
   * mid-request or not reading its answers); only when every open connection has an answer in
   * flight is the new one refused. Postfix reconnects when it finds an idle connection closed, so
   * this costs a legitimate client a reconnect at worst, while a client that opens connections and
   * sends nothing can never lock others out.
   */
  readonly maxConnections: number;
  /**
   * Most open TCP connections from one client address; past it, the same rule as `maxConnections`
   * applies among that address's own connections, so one address cannot take every slot. Above
   * Postfix's default `default_process_limit` (100) with room to spare. Unix-socket clients share
   * one local address and are bounded by `maxConnections` alone.
   */
  readonly maxConnectionsPerClient: number;
  /**
   * Most requests decoded but not yet answered on one connection. smtpd never pipelines; when a
   * client does, reading stops at this depth (backpressure) until answers catch up, so a client
   * that pipelines thousands of requests costs bounded memory and still gets every answer.
   */
  readonly maxPendingPerConnection: number;
  /** A request started but not finished within this time gets the client disconnected (slow clients). */
  readonly requestTimeoutMs: number;
  /**
   * An idle connection (between requests) is closed after this long. Postfix reuses a connection
   * for up to `smtpd_policy_service_max_idle` (300 s), and closing it first costs the next request
   * a reconnect, so the default is above that.
   */
  readonly idleTimeoutMs: number;
  /**
   * After a protocol error the server half-closes and keeps draining (and discarding) the
   * client's input for at most this long before closing: closing a socket with unread input
   * sends a TCP reset, which can destroy the answers the client has not read yet.
   */
  readonly lingerMs: number;
  /**
   * A connection whose answers the peer has not read for this long (our writes are blocked) is
   * destroyed. Without it a client that pipelines until our socket buffer fills and then stops
   * reading would keep its slot forever: neither the request nor the idle timeout runs while
   * output is held back.
   */
  readonly writeTimeoutMs: number;
}

export const DEFAULT_POLICY_SERVER_LIMITS: PolicyServerLimits = Object.freeze({
  maxLineBytes: 8 * 1024,
  maxRequestBytes: 64 * 1024,
  maxAttributes: 128,
  maxConnections: 1024,
  maxConnectionsPerClient: 256,
  maxPendingPerConnection: 64,
  requestTimeoutMs: 10_000,
  idleTimeoutMs: 330_000,
  lingerMs: 2_000,
  writeTimeoutMs: 10_000,
});

/** A limit that is not a positive integer: a configuration mistake, reported before listening. */
export class InvalidLimitError extends Error {
  readonly limit: keyof PolicyServerLimits;
  constructor(limit: keyof PolicyServerLimits, value: unknown) {
    super(`policy server limit ${limit} must be a positive integer, got ${String(value)}`);
    this.name = 'InvalidLimitError';
    this.limit = limit;
  }
}

/** The defaults overridden by `overrides`, each checked to be a positive integer. */
export function resolveLimits(overrides: Partial<PolicyServerLimits> = {}): PolicyServerLimits {
  const limits: PolicyServerLimits = { ...DEFAULT_POLICY_SERVER_LIMITS, ...withoutUndefined(overrides) };
  for (const key of Object.keys(DEFAULT_POLICY_SERVER_LIMITS) as (keyof PolicyServerLimits)[]) {
    const value = limits[key];
    if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidLimitError(key, value);
  }
  return Object.freeze(limits);
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
