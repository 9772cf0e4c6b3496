import { realClock, type Clock } from '../time/clock.ts';

/** Per-key exponential backoff settings for {@link WorkQueue.addRateLimited}. */
export interface BackoffOptions {
  /** Delay after the first failure; default 200 ms. */
  baseMs?: number;
  /** Upper bound of the delay; default 5 minutes. */
  capMs?: number;
  /**
   * Fraction of the delay taken off at random (0 ≤ jitter < 1; default 0.2), so keys that failed
   * together do not retry in lock-step against a recovering server.
   */
  jitter?: number;
}

export interface WorkQueueOptions {
  backoff?: BackoffOptions;
  clock?: Clock;
  /** Source of randomness in [0, 1) for the jitter; injectable for tests. */
  random?: () => number;
}

/**
 * A queue of string keys with client-go's rate-limited work queue semantics:
 *
 * - a key waiting in the queue is held once, however often it is added;
 * - a key handed out by {@link get} and added again is queued only after {@link done}, so one
 *   key is never processed by two workers at the same time (and the change that arrived during
 *   processing is not lost);
 * - {@link addAfter} delays an add (keeping the earliest of several pending delays);
 * - {@link addRateLimited} delays by a per-key exponential backoff until {@link forget};
 * - {@link addLowPriority} queues behind every normal add (controller-runtime's priority queue):
 *   a periodic resync of thousands of keys does not delay the change a user just made, and a
 *   key waiting at low priority moves up when a normal add of it comes.
 *
 * After {@link shutDown}, adds are ignored and {@link get} resolves `undefined`; keys still
 * queued are dropped (a restarted controller re-lists everything anyway).
 */
export class WorkQueue {
  readonly #queue: string[] = [];
  /** Low-priority keys in order; an entry no longer in #low was promoted or handed out (skipped). */
  readonly #lowQueue: string[] = [];
  readonly #low = new Set<string>();
  /** Keys that need processing: queued, or added again while being processed. */
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #waiting = new Map<string, { at: number; handle: unknown }>();
  readonly #failures = new Map<string, number>();
  readonly #getters: Array<(key: string | undefined) => void> = [];
  readonly #drained: Array<() => void> = [];
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #baseMs: number;
  readonly #capMs: number;
  readonly #jitter: number;
  #shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.#clock = options.clock ?? realClock;
    this.#random = options.random ?? Math.random;
    this.#baseMs = options.backoff?.baseMs ?? 200;
    this.#capMs = options.backoff?.capMs ?? 5 * 60_000;
    this.#jitter = Math.min(Math.max(options.backoff?.jitter ?? 0.2, 0), 0.99);
  }

  /** Keys waiting to be handed out (not counting delayed adds or keys being processed). */
  get length(): number {
    return this.#queue.length + this.#low.size;
  }

  /** Keys handed out and not yet `done`. */
  get processing(): ReadonlySet<string> {
    return this.#processing;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Queues `key` unless it is already waiting; a key being processed is queued again at `done`. */
  add(key: string): void {
    if (this.#shuttingDown) return;
    if (this.#dirty.has(key)) {
      if (this.#low.delete(key)) this.#push(key); // promoted: its stale #lowQueue entry is skipped
      return;
    }
    this.#dirty.add(key);
    if (this.#processing.has(key)) return;
    this.#push(key);
  }

  /**
   * Like {@link add}, but the key is handed out only when no normally added key is waiting. A key
   * already waiting (at either priority) or being processed keeps its place.
   */
  addLowPriority(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return;
    const getter = this.#getters.shift();
    if (getter) return getter(this.#handOut(key));
    this.#low.add(key);
    this.#lowQueue.push(key);
  }

  /** Adds `key` after `ms`; of several pending delays for one key the earliest wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const at = this.#clock.now() + ms;
    const pending = this.#waiting.get(key);
    if (pending) {
      if (pending.at <= at) return;
      this.#clock.clearTimeout(pending.handle);
    }
    const handle = this.#clock.setTimeout(() => {
      this.#waiting.delete(key);
      this.add(key);
    }, ms);
    this.#waiting.set(key, { at, handle });
  }

  /** Adds `key` after its backoff delay, which doubles with each call until {@link forget}. */
  addRateLimited(key: string): void {
    if (this.#shuttingDown) return;
    this.addAfter(key, this.nextBackoff(key));
  }

  /**
   * The delay the next {@link addRateLimited} of `key` will use, counting it as a failure:
   * min(cap, base · 2^failures) less up to `jitter` of it.
   */
  nextBackoff(key: string): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    // 2 ** 1024 is Infinity, which min() caps correctly; no overflow to worry about.
    const ceiling = Math.min(this.#capMs, this.#baseMs * 2 ** failures);
    return Math.round(ceiling * (1 - this.#jitter * this.#random()));
  }

  /** Resets the backoff of `key` (after it was processed successfully). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** How many times `key` was rate-limited since the last {@link forget}. */
  numRequeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /**
   * The next key, waiting for one when the queue is empty; `undefined` once the queue is shut
   * down. The caller must call {@link done} with the key when finished with it.
   */
  get(): Promise<string | undefined> {
    if (this.#shuttingDown) return Promise.resolve(undefined);
    const key = this.#queue.shift() ?? this.#nextLow();
    if (key !== undefined) return Promise.resolve(this.#handOut(key));
    return new Promise((resolve) => this.#getters.push(resolve));
  }

  /** Marks `key` as processed; if it was added meanwhile it is queued again now. */
  done(key: string): void {
    if (!this.#processing.delete(key)) return;
    if (this.#dirty.has(key) && !this.#shuttingDown) this.#push(key);
    if (this.#processing.size === 0) for (const resolve of this.#drained.splice(0)) resolve();
  }

  /** Stops the queue: adds are ignored, pending delays dropped, waiting `get()`s get `undefined`. */
  shutDown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    for (const { handle } of this.#waiting.values()) this.#clock.clearTimeout(handle);
    this.#waiting.clear();
    this.#queue.length = 0;
    this.#lowQueue.length = 0;
    this.#low.clear();
    this.#dirty.clear();
    for (const resolve of this.#getters.splice(0)) resolve(undefined);
  }

  /** {@link shutDown}, then resolves once every key handed out has been marked `done`. */
  shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.#processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  #push(key: string): void {
    const getter = this.#getters.shift();
    if (getter) getter(this.#handOut(key));
    else this.#queue.push(key);
  }

  #nextLow(): string | undefined {
    for (let key = this.#lowQueue.shift(); key !== undefined; key = this.#lowQueue.shift()) {
      if (this.#low.delete(key)) return key;
    }
    return undefined;
  }

  #handOut(key: string): string {
    this.#dirty.delete(key);
    this.#processing.add(key);
    return key;
  }
}
