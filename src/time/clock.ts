/**
 * The time and the randomness the code reads, handed in rather than read from globals, so that
 * tests drive time (advance a fake clock) instead of sleeping and asserting wide windows. The
 * policy daemon and the controller runtime share this one clock.
 */
export interface Clock {
  /** Milliseconds on a monotonic clock: for durations and deadlines, not a date. */
  now(): number;
  /** Milliseconds since the epoch: for a time others read (a Lease's renewTime, an Event's time). */
  epochMs(): number;
  /** Runs `fn` once after `ms`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels what {@link setTimeout} returned; a timer that already ran is ignored. */
  clearTimeout(timer: unknown): void;
}

/** A number in [0, 1), as Math.random gives. */
export type Random = () => number;

/**
 * Real time. Timers are unref'd: each guards work that keeps the process alive by itself (a
 * socket, a store round trip, a watch), and a forgotten one must not hold up an exit.
 */
export const realClock: Clock = {
  now: () => performance.now(),
  epochMs: () => Date.now(),
  setTimeout(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return timer;
  },
  clearTimeout(timer) {
    clearTimeout(timer as NodeJS.Timeout);
  },
};

export const realRandom: Random = Math.random;

/** Resolves after `ms` on the given clock, or at once when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      resolve();
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
