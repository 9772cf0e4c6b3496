/**
 * What the policy server reports to metrics, as a small interface so prom-client is wired by the
 * daemon without the server importing it. (It logs through observability's Logger.)
 */
import type { ProtocolErrorReason } from './codec.ts';

/** Why a connection was closed by the server; stable, usable as a metric label. */
export type DisconnectReason = ProtocolErrorReason | 'request-timeout' | 'write-timeout';

/**
 * Why a connection was shed to keep slots for others; stable, a metric label. `evicted`: an open
 * connection with nothing in flight gave its slot to a new one; `refused`: a new connection found
 * every slot busy with a request in flight.
 */
export type ShedReason = 'evicted' | 'refused';

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
  /** A connection was closed or refused to bound the connections (see `maxConnections`). */
  onConnectionShed?(reason: ShedReason): void;
}
