import { realClock, type Clock } from '../time/clock.ts';

export interface RepeatingCheckOptions {
  readonly check: () => Promise<unknown>;
  readonly intervalMs: number;
  /** A failed run: said here, and the next run tries again. */
  readonly onError: (error: unknown) => void;
  readonly clock?: Clock;
}

/**
 * Runs a check every `intervalMs` until stopped, the webhook certificate's loop whether the
 * operator issues the certificate or reads a mounted one. The next run is timed from the end of
 * the last, so a slow run (an API server that does not answer) never overlaps the next.
 */
export class RepeatingCheck {
  readonly #o: RepeatingCheckOptions;
  readonly #clock: Clock;
  #timer: unknown;
  #running = false;

  constructor(options: RepeatingCheckOptions) {
    this.#o = options;
    this.#clock = options.clock ?? realClock;
  }

  start(): void {
    this.#running = true;
    this.#schedule();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#o.check().catch(this.#o.onError).finally(() => {
        if (this.#running) this.#schedule();
      });
    }, this.#o.intervalMs);
  }
}
