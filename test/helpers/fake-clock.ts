import type { Clock } from '../../src/time/clock.ts';

/**
 * A clock the test drives: time stands still until `advance(ms)`, which runs every timer that
 * falls due, in order, each at its own time. Timers set by a timer that runs within the advance
 * run too when they fall due before its end.
 */
export class FakeClock implements Clock {
  #now: number;
  readonly #start: number;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  /** Starts at an arbitrary time well above 0, as a monotonic clock reads in a running process. */
  constructor(start = 1_000_000) {
    this.#now = start;
    this.#start = start;
  }

  now(): number {
    return this.#now;
  }

  /** A fixed date (2026-01-01T00:00:00Z) when the clock was made, moving with {@link advance}. */
  epochMs(): number {
    return Date.UTC(2026, 0, 1) + (this.#now - this.#start);
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(timer: unknown): void {
    this.#timers.delete(timer as number);
  }

  /** Timers set and not yet run or cleared. */
  get pending(): number {
    return this.#timers.size;
  }

  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const timer of this.#timers) if (timer[1].at <= until && (next === undefined || timer[1].at < next[1].at)) next = timer;
      if (next === undefined) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].fn();
    }
    this.#now = until;
  }
}

/** Lets promise callbacks and setImmediate work that is ready run (one turn of the event loop). */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
