import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from '../observability/logger.ts';
import { silentLogger } from '../observability/logger.ts';
import { realClock, sleep, type Clock } from '../time/clock.ts';
import type { WorkQueue } from './work-queue.ts';

/** What a reconcile asks for besides success: look again after a while even if nothing changes. */
export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** Reconciles the object named by `key`; a thrown error retries the key with backoff. */
export type Reconcile = (key: string) => Promise<ReconcileResult | void>;

export interface ControllerOptions {
  /** Names the controller in logs and in the `controller` metric label. */
  name: string;
  queue: WorkQueue;
  reconcile: Reconcile;
  /** Workers reconciling different keys at once; default 1. */
  concurrency?: number;
  /**
   * Every `resyncMs` (default 5 minutes; 0 turns it off) every key from `keys()` is queued, so
   * drift the watches did not report is corrected.
   */
  resyncMs?: number;
  keys?: () => Iterable<string> | Promise<Iterable<string>>;
  /** How long `stop()` waits for reconciles in flight; default 30 s. */
  stopTimeoutMs?: number;
  registry?: Registry;
  logger?: Logger;
  clock?: Clock;
}

/** Outcome label of the reconciles counter. */
export type ReconcileOutcome = 'success' | 'error' | 'requeue';

/**
 * The controller metrics, shared by every controller on one registry (prom-client refuses the
 * same name twice) and told apart by the `controller` label.
 */
class ControllerMetrics {
  static readonly #byRegistry = new WeakMap<Registry, ControllerMetrics>();

  static for(registry: Registry): ControllerMetrics {
    let metrics = ControllerMetrics.#byRegistry.get(registry);
    if (!metrics) {
      metrics = new ControllerMetrics(registry);
      ControllerMetrics.#byRegistry.set(registry, metrics);
    }
    return metrics;
  }

  readonly reconciles: Counter<'controller' | 'result'>;
  readonly duration: Histogram<'controller'>;
  readonly retries: Counter<'controller'>;
  /** Queue depth is read at scrape time from each controller's queue. */
  readonly depthSources = new Map<string, () => number>();

  private constructor(registry: Registry) {
    const sources = this.depthSources;
    this.reconciles = new Counter({
      name: 'mailwarden_controller_reconciles_total',
      help: 'Reconciles by controller and result (success, error, requeue).',
      labelNames: ['controller', 'result'] as const,
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'mailwarden_controller_reconcile_duration_seconds',
      help: 'Duration of one reconcile.',
      labelNames: ['controller'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    });
    this.retries = new Counter({
      name: 'mailwarden_controller_retries_total',
      help: 'Keys requeued with backoff after a failed reconcile.',
      labelNames: ['controller'] as const,
      registers: [registry],
    });
    new Gauge({
      name: 'mailwarden_controller_queue_depth',
      help: 'Keys waiting in the work queue.',
      labelNames: ['controller'] as const,
      registers: [registry],
      collect() {
        for (const [controller, depth] of sources) this.set({ controller }, depth());
      },
    });
  }
}

/**
 * The reconcile loop: N workers take keys from the queue and reconcile them, one reconcile per key
 * at a time. A failure requeues the key with per-key exponential backoff; a success forgets the
 * backoff and honours `requeueAfterMs`. A periodic resync queues every key from `keys()`.
 *
 * Something else (an informer's handlers) adds keys to the queue; the controller only drains it.
 */
export class Controller {
  readonly name: string;
  readonly #queue: WorkQueue;
  readonly #reconcile: Reconcile;
  readonly #concurrency: number;
  readonly #resyncMs: number;
  readonly #keys: ControllerOptions['keys'];
  readonly #stopTimeoutMs: number;
  readonly #metrics: ControllerMetrics;
  readonly #log: Logger;
  readonly #clock: Clock;
  #workers: Promise<void>[] = [];
  /** When each key last reconciled successfully (what the periodic resync may skip). */
  #syncedAt = new Map<string, number>();
  #resyncTimer: unknown;
  #started = false;
  #stopping: Promise<void> | undefined;

  constructor(options: ControllerOptions) {
    this.name = options.name;
    this.#queue = options.queue;
    this.#reconcile = options.reconcile;
    this.#concurrency = Math.max(1, options.concurrency ?? 1);
    this.#resyncMs = options.resyncMs ?? 5 * 60_000;
    this.#keys = options.keys;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 30_000;
    this.#metrics = ControllerMetrics.for(options.registry ?? new Registry());
    this.#log = (options.logger ?? silentLogger).child({ controller: this.name });
    this.#clock = options.clock ?? realClock;
  }

  /** Starts the workers and the resync timer. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#metrics.depthSources.set(this.name, () => this.#queue.length);
    for (let i = 0; i < this.#concurrency; i++) this.#workers.push(this.#work());
    this.#scheduleResync();
    this.#log.info({ concurrency: this.#concurrency, resyncMs: this.#resyncMs }, 'controller started');
  }

  /**
   * Stops taking keys and waits up to `stopTimeoutMs` for reconciles in flight to finish; keys
   * still queued are dropped. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /**
   * Queues every key from `keys()` now, behind any other work. The periodic resync passes
   * `skipRecent`: a key reconciled successfully within the last half period was just checked
   * against the store, so each key is still checked at least every 1.5 periods, and a resync
   * that lands in a burst of thousands of new objects does not check them all a second time.
   */
  async resync(options: { skipRecent?: boolean } = {}): Promise<void> {
    if (!this.#keys) return;
    const recent = this.#clock.now() - this.#resyncMs / 2;
    const syncedAt = new Map<string, number>(); // only keys that still exist
    let count = 0;
    let skipped = 0;
    for (const key of await this.#keys()) {
      const at = this.#syncedAt.get(key);
      if (at !== undefined) syncedAt.set(key, at);
      if (options.skipRecent && at !== undefined && at > recent) {
        skipped++;
        continue;
      }
      this.#queue.addLowPriority(key);
      count++;
    }
    this.#syncedAt = syncedAt;
    this.#log.debug({ keys: count, skipped }, 'resync queued the keys');
  }

  async #stop(): Promise<void> {
    if (this.#resyncTimer !== undefined) this.#clock.clearTimeout(this.#resyncTimer);
    this.#resyncTimer = undefined;
    const abort = new AbortController();
    const drained = this.#queue.shutDownWithDrain().then(() => true);
    const timedOut = sleep(this.#clock, this.#stopTimeoutMs, abort.signal).then(() => false);
    const finished = await Promise.race([drained, timedOut]);
    abort.abort();
    if (finished) await Promise.all(this.#workers);
    else this.#log.warn({ inFlight: [...this.#queue.processing], timeoutMs: this.#stopTimeoutMs }, 'stopped before reconciles in flight finished');
    this.#metrics.depthSources.delete(this.name);
    this.#log.info('controller stopped');
  }

  #scheduleResync(): void {
    if (this.#resyncMs <= 0 || !this.#keys || this.#stopping) return;
    this.#resyncTimer = this.#clock.setTimeout(() => {
      this.resync({ skipRecent: true })
        .catch((err: unknown) => this.#log.warn({ err }, 'resync could not list the keys'))
        .finally(() => this.#scheduleResync());
    }, this.#resyncMs);
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.#queue.get();
      if (key === undefined) return;
      try {
        await this.#process(key);
      } finally {
        this.#queue.done(key);
      }
    }
  }

  async #process(key: string): Promise<void> {
    const end = this.#metrics.duration.startTimer({ controller: this.name });
    let outcome: ReconcileOutcome;
    try {
      const result = await this.#reconcile(key);
      this.#queue.forget(key);
      this.#syncedAt.set(key, this.#clock.now());
      const after = result?.requeueAfterMs ?? 0;
      if (after > 0) {
        this.#queue.addAfter(key, after);
        outcome = 'requeue';
      } else {
        outcome = 'success';
      }
    } catch (err) {
      outcome = 'error';
      this.#syncedAt.delete(key);
      // addRateLimited counts the failure, so numRequeues below numbers this retry.
      this.#queue.addRateLimited(key);
      this.#metrics.retries.inc({ controller: this.name });
      this.#log.warn({ err, key, retries: this.#queue.numRequeues(key) }, 'reconcile failed; retrying with backoff');
    }
    end();
    this.#metrics.reconciles.inc({ controller: this.name, result: outcome });
  }
}
