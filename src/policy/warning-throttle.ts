/**
 * Warnings that a client can cause at will (every refused or evicted connection) are logged at
 * most once per interval per kind, with the count of those left out, so an attack cannot turn the
 * log into a second denial of service.
 */
import type { Clock } from '../time/clock.ts';
import type { Logger } from '../observability/logger.ts';

export class WarningThrottle {
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #state = new Map<string, { nextAt: number; suppressed: number }>();

  constructor(logger: Logger, clock: Clock, intervalMs = 10_000) {
    this.#logger = logger;
    this.#clock = clock;
    this.#intervalMs = intervalMs;
  }

  /** Logs `msg` at warn unless a warning of this `kind` was logged less than an interval ago. */
  warn(kind: string, context: object, msg: string): void {
    const now = this.#clock.now();
    const state = this.#state.get(kind);
    if (state !== undefined && now < state.nextAt) {
      state.suppressed++;
      return;
    }
    const suppressed = state?.suppressed ?? 0;
    this.#state.set(kind, { nextAt: now + this.#intervalMs, suppressed: 0 });
    this.#logger.warn(suppressed > 0 ? { ...context, suppressed } : context, msg);
  }
}
