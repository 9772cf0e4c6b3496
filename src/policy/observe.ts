/**
 * What the policy server reports to metrics, as a small interface so prom-client is wired by the
 * daemon without the server importing it. (It logs through observability's Logger.)
 */
import type { ProtocolErrorReason } from './codec.ts';

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
