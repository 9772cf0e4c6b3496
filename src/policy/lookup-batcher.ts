/**
 * Coalesces store lookups. Keys asked for in one turn of the event loop, or while every store
 * connection is busy, go out together in one round trip (`WHERE username IN (…)`, one LDAP OR
 * filter), at most `concurrency` round trips at a time. Under load this turns one query per
 * policy request into one query per handful of requests, for the store and for us; at rest a
 * key still leaves in the same turn it was asked for.
 *
 * Each batch has its deadline from its first key: a key never waits longer than the timeout,
 * whether queued here or at the store. Concurrent asks for one key share its batch.
 */
import { realClock, type Clock } from '../time/clock.ts';

export interface LookupBatcherOptions<T = void> {
  /** Round trips at once (the store's pool size). */
  readonly concurrency: number;
  /** Keys per round trip at most (statement and filter size). */
  readonly maxKeys: number;
  /** From a batch's first key to its answer, at most. */
  readonly timeoutMs: number;
  /** Times the batches (default: real time). */
  readonly clock?: Clock;
  /**
   * One round trip for `keys`; stops work when `signal` aborts. Resolves with what every key of
   * the batch is answered (the caller's choice); rejects with the error to report.
   */
  readonly fetch: (keys: string[], signal: AbortSignal) => Promise<T>;
  /** The error a batch that ran out of time rejects with. */
  readonly timeoutError: () => Error;
  /** Called once per failed batch (the fetch's error or the timeout), for metrics and logs. */
  readonly onFailure?: (error: Error, keys: readonly string[]) => void;
}

class Batch<T> {
  readonly keys: string[] = [];
  readonly controller = new AbortController();
  readonly createdAt: number;
  readonly done: Promise<T>;
  settled = false;
  sent = false;
  timer: unknown;
  resolve!: (value: T) => void;
  reject!: (error: Error) => void;

  constructor(now: number) {
    this.createdAt = now;
    this.done = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Every waiter handles the rejection; this keeps an unobserved one from crashing the process.
    this.done.catch(() => {});
  }
}

export class LookupBatcher<T = void> {
  readonly #options: LookupBatcherOptions<T>;
  readonly #clock: Clock;
  /** Batches not yet sent, oldest first; the last one takes new keys while it has room. */
  readonly #queue: Batch<T>[] = [];
  readonly #inflight = new Map<string, Batch<T>>();
  #running = 0;
  #flushScheduled = false;
  readonly #flush = (): void => {
    this.#flushScheduled = false;
    while (this.#running < this.#options.concurrency && this.#queue.length > 0) this.#send(this.#queue.shift() as Batch<T>);
  };

  constructor(options: LookupBatcherOptions<T>) {
    if (!(options.concurrency >= 1) || !(options.maxKeys >= 1)) throw new RangeError('LookupBatcher: concurrency and maxKeys must be at least 1');
    this.#options = options;
    this.#clock = options.clock ?? realClock;
  }

  /** Resolves with the result of the round trip that fetched `key`, or rejects with its batch's error. */
  request(key: string): Promise<T> {
    const pending = this.#inflight.get(key);
    if (pending !== undefined) return pending.done;
    const batch = this.#openBatch();
    batch.keys.push(key);
    this.#inflight.set(key, batch);
    return batch.done;
  }

  /** Round trips running and batches waiting, for tests and metrics. */
  get load(): { running: number; queued: number } {
    return { running: this.#running, queued: this.#queue.length };
  }

  #openBatch(): Batch<T> {
    const now = this.#clock.now();
    const last = this.#queue[this.#queue.length - 1];
    // A batch old enough to have spent half its time waiting takes no more keys: a key that
    // joins it should still get most of the timeout.
    if (last !== undefined && last.keys.length < this.#options.maxKeys && now - last.createdAt < this.#options.timeoutMs / 2) return last;
    const batch = new Batch<T>(now);
    batch.timer = this.#clock.setTimeout(() => this.#expire(batch), this.#options.timeoutMs);
    this.#queue.push(batch);
    this.#scheduleFlush();
    return batch;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#running >= this.#options.concurrency) return;
    this.#flushScheduled = true;
    // After this turn's I/O callbacks: every key asked for in this turn joins the batch.
    setImmediate(this.#flush);
  }

  #send(batch: Batch<T>): void {
    batch.sent = true;
    this.#running++;
    let work: Promise<T>;
    try {
      work = this.#options.fetch(batch.keys, batch.controller.signal);
    } catch (error) {
      work = Promise.reject(error as Error);
    }
    work.then(
      (value) => this.#finish(batch, undefined, value),
      (error: unknown) => this.#finish(batch, error instanceof Error ? error : new Error(String(error)), undefined),
    );
  }

  #finish(batch: Batch<T>, error: Error | undefined, value: T | undefined): void {
    this.#running--;
    this.#settle(batch, error, value);
    if (this.#queue.length > 0) this.#scheduleFlush();
  }

  #expire(batch: Batch<T>): void {
    if (batch.settled) return;
    batch.controller.abort();
    if (!batch.sent) this.#queue.splice(this.#queue.indexOf(batch), 1);
    // A sent batch keeps its slot until the store lets go (it stops on the abort).
    this.#settle(batch, this.#options.timeoutError(), undefined);
  }

  #settle(batch: Batch<T>, error: Error | undefined, value: T | undefined): void {
    if (batch.settled) return;
    batch.settled = true;
    this.#clock.clearTimeout(batch.timer);
    for (const key of batch.keys) if (this.#inflight.get(key) === batch) this.#inflight.delete(key);
    if (error === undefined) {
      batch.resolve(value as T);
    } else {
      this.#options.onFailure?.(error, batch.keys);
      batch.reject(error);
    }
  }
}
