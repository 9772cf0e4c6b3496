/**
 * The time and the randomness the policy side reads, handed in rather than read from globals,
 * so that tests drive time (advance a fake clock) instead of sleeping and asserting wide windows.
 */
export interface Clock {
  /** Milliseconds on a monotonic clock: for durations and deadlines, not a date. */
  now(): number;
  /** Runs `fn` once after `ms`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels what {@link setTimeout} returned; a timer that already ran is ignored. */
  clearTimeout(timer: unknown): void;
}

/** A number in [0, 1), as Math.random gives. */
export type Random = () => number;

/**
 * Real time. Timers are unref'd: each guards work that keeps the process alive by itself (a
 * socket, a store round trip), and a forgotten one must not hold up an exit.
 */
export const realClock: Clock = {
  now: () => performance.now(),
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
