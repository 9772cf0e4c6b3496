/**
 * What the policy server needs from logging and metrics, as small interfaces so the owner of each
 * (pino, prom-client) wires them without the server importing either.
 */
import type { ProtocolErrorReason } from './codec.ts';

/** pino-compatible: a context object, then the message. */
export interface PolicyLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Why a connection was closed by the server; stable, usable as a metric label. */
export type DisconnectReason = ProtocolErrorReason | 'request-timeout';

/** Every callback is optional; the hot path skips timing when `onRequest` is absent. */
export interface PolicyServerMetrics {
  /** One request answered; latency from its last byte read to its answer written. */
  onRequest?(latencyMs: number): void;
  /** A client was disconnected for its input (garbage, over a limit, stalled mid-request). */
  onProtocolError?(reason: DisconnectReason): void;
  /** The handler threw, rejected or returned something that is not an action: the failure action was sent. */
  onHandlerFailure?(): void;
  /** Open connections changed (a gauge). */
  onConnections?(open: number): void;
  /** A connection was refused because `maxConnections` were open. */
  onConnectionRefused?(): void;
}

export const silentLogger: PolicyLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
