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

export interface LookupBatcherOptions {
  /** Round trips at once (the store's pool size). */
  readonly concurrency: number;
  /** Keys per round trip at most (statement and filter size). */
  readonly maxKeys: number;
  /** From a batch's first key to its answer, at most. */
  readonly timeoutMs: number;
  /** One round trip for `keys`; stops work when `signal` aborts. Rejects with the error to report. */
  readonly fetch: (keys: string[], signal: AbortSignal) => Promise<void>;
  /** The error a batch that ran out of time rejects with. */
  readonly timeoutError: () => Error;
  /** Called once per failed batch (the fetch's error or the timeout), for metrics and logs. */
  readonly onFailure?: (error: Error, keys: readonly string[]) => void;
}

class Batch {
  readonly keys: string[] = [];
  readonly controller = new AbortController();
  readonly createdAt: number;
  readonly done: Promise<void>;
  settled = false;
  sent = false;
  timer: NodeJS.Timeout | undefined;
  resolve!: () => void;
  reject!: (error: Error) => void;

  constructor(now: number) {
    this.createdAt = now;
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Every waiter handles the rejection; this keeps an unobserved one from crashing the process.
    this.done.catch(() => {});
  }
}

export class LookupBatcher {
  readonly #options: LookupBatcherOptions;
  /** Batches not yet sent, oldest first; the last one takes new keys while it has room. */
  readonly #queue: Batch[] = [];
  readonly #inflight = new Map<string, Batch>();
  #running = 0;
  #flushScheduled = false;
  readonly #flush = (): void => {
    this.#flushScheduled = false;
    while (this.#running < this.#options.concurrency && this.#queue.length > 0) this.#send(this.#queue.shift() as Batch);
  };

  constructor(options: LookupBatcherOptions) {
    if (!(options.concurrency >= 1) || !(options.maxKeys >= 1)) throw new RangeError('LookupBatcher: concurrency and maxKeys must be at least 1');
    this.#options = options;
  }

  /** Settles when `key` was fetched into the caller's cache, or rejects with the batch's error. */
  request(key: string): Promise<void> {
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

  #openBatch(): Batch {
    const now = performance.now();
    const last = this.#queue[this.#queue.length - 1];
    // A batch old enough to have spent half its time waiting takes no more keys: a key that
    // joins it should still get most of the timeout.
    if (last !== undefined && last.keys.length < this.#options.maxKeys && now - last.createdAt < this.#options.timeoutMs / 2) return last;
    const batch = new Batch(now);
    batch.timer = setTimeout(() => this.#expire(batch), this.#options.timeoutMs);
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

  #send(batch: Batch): void {
    batch.sent = true;
    this.#running++;
    let work: Promise<void>;
    try {
      work = this.#options.fetch(batch.keys, batch.controller.signal);
    } catch (error) {
      work = Promise.reject(error as Error);
    }
    work.then(
      () => this.#finish(batch, undefined),
      (error: unknown) => this.#finish(batch, error instanceof Error ? error : new Error(String(error))),
    );
  }

  #finish(batch: Batch, error: Error | undefined): void {
    this.#running--;
    this.#settle(batch, error);
    if (this.#queue.length > 0) this.#scheduleFlush();
  }

  #expire(batch: Batch): void {
    if (batch.settled) return;
    batch.controller.abort();
    if (!batch.sent) this.#queue.splice(this.#queue.indexOf(batch), 1);
    // A sent batch keeps its slot until the store lets go (it stops on the abort).
    this.#settle(batch, this.#options.timeoutError());
  }

  #settle(batch: Batch, error: Error | undefined): void {
    if (batch.settled) return;
    batch.settled = true;
    clearTimeout(batch.timer);
    for (const key of batch.keys) if (this.#inflight.get(key) === batch) this.#inflight.delete(key);
    if (error === undefined) {
      batch.resolve();
    } else {
      this.#options.onFailure?.(error, batch.keys);
      batch.reject(error);
    }
  }
}
