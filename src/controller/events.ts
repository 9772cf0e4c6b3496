import { hostname } from 'node:os';
import { ApiException, CoreV1Api, type CoreV1Event, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../observability/logger.ts';
import { silentLogger } from '../observability/logger.ts';
import { realClock, sleep, type Clock } from '../time/clock.ts';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorderOptions {
  kubeConfig: KubeConfig;
  /** `source.component` and `reportingComponent`, e.g. `mailwarden-operator`. */
  component: string;
  /** `source.host` and `reportingInstance`; default the host name (the pod name in a pod). */
  instance?: string;
  /** Distinct (object, type, reason, message) kept for aggregation; default 4096. */
  cacheSize?: number;
  /**
   * Events waiting to be posted at most; more are dropped (counted and logged), like client-go's
   * recorder (1000), so a burst of thousands of reconciles does not spend the API server's
   * capacity on Events before the writes that matter. Default 1000.
   */
  maxQueued?: number;
  /**
   * Events posted per second at most, after a burst of `burst` (a token bucket; client-go's
   * recorder is bounded by its client's rate limit the same way). Default 20/s after 100.
   */
  qps?: number;
  burst?: number;
  /** Counts Events dropped because the queue was full (a metric). */
  onDropped?: () => void;
  logger?: Logger;
  clock?: Clock;
}

/** The object an Event is about; any Kubernetes object with apiVersion and kind set. */
export type InvolvedObject = KubernetesObject & { apiVersion?: string; kind?: string };

interface Recorded {
  event: CoreV1Event;
}

interface Queued {
  readonly key: string;
  readonly obj: InvolvedObject;
  readonly type: EventType;
  readonly reason: string;
  readonly message: string;
  readonly resolve: () => void;
}

/** How often at most a warning about dropped Events is logged. */
const DROP_LOG_INTERVAL_MS = 30_000;

/** Server limits: message at most 1 KiB in practice, reason is a CamelCase word. */
const MAX_MESSAGE = 1024;

/**
 * Posts core/v1 Events about objects, like client-go's EventRecorder. The same (object, type,
 * reason, message) recorded again bumps `count` and `lastTimestamp` on the Event already posted
 * rather than creating another, so a reconcile failing in a loop shows one Event with a count.
 *
 * Events are posted one at a time, in order, at a bounded rate, from a bounded queue (client-go's
 * design): Events are best effort, and under a burst of thousands of changes they must not take
 * the API server's capacity from the writes that matter. When the queue is full an Event is
 * dropped, counted and logged — a Normal one first: an arriving Warning displaces the oldest
 * queued Normal.
 *
 * Recording never throws into the caller: a failure is logged, and the returned promise (which
 * callers may ignore) always resolves, once the Event is posted, failed or dropped.
 */
export class EventRecorder {
  readonly #api: CoreV1Api;
  readonly #component: string;
  readonly #instance: string;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #recorded: LRUCache<string, Recorded>;
  readonly #queue: Queued[] = [];
  readonly #maxQueued: number;
  readonly #onDropped: (() => void) | undefined;
  readonly #qps: number;
  readonly #burst: number;
  #tokens: number;
  #refilledAt: number;
  #posting = false;
  #dropped = 0;
  #lastDropLog = -Infinity;
  #seq = 0;

  constructor(options: EventRecorderOptions) {
    this.#api = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#component = options.component;
    this.#instance = options.instance ?? hostname();
    this.#log = (options.logger ?? silentLogger).child({ component: 'events' });
    this.#clock = options.clock ?? realClock;
    this.#recorded = new LRUCache({ max: options.cacheSize ?? 4096 });
    this.#maxQueued = options.maxQueued ?? 1000;
    this.#qps = options.qps ?? 20;
    this.#burst = options.burst ?? 100;
    this.#tokens = this.#burst;
    this.#refilledAt = this.#clock.now();
    this.#onDropped = options.onDropped;
  }

  /** Records a Normal event. */
  normal(obj: InvolvedObject, reason: string, message: string): Promise<void> {
    return this.record(obj, 'Normal', reason, message);
  }

  /** Records a Warning event. */
  warning(obj: InvolvedObject, reason: string, message: string): Promise<void> {
    return this.record(obj, 'Warning', reason, message);
  }

  /** Records an event about `obj`; resolves when posted (or failed, which is logged). */
  record(obj: InvolvedObject, type: EventType, reason: string, message: string): Promise<void> {
    const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
    const m = obj.metadata ?? {};
    if (this.#queue.length >= this.#maxQueued) {
      const normal = type === 'Warning' ? this.#queue.findIndex((q) => q.type === 'Normal') : -1;
      if (normal < 0) {
        this.#drop(obj, reason);
        return Promise.resolve();
      }
      const [displaced] = this.#queue.splice(normal, 1);
      this.#drop(displaced!.obj, displaced!.reason);
      displaced!.resolve();
    }
    const key = JSON.stringify([obj.apiVersion, obj.kind, m.namespace, m.name, m.uid, type, reason, text]);
    return new Promise((resolve) => {
      this.#queue.push({ key, obj, type, reason, message: text, resolve });
      if (!this.#posting) void this.#postQueued();
    });
  }

  /** The one poster: one request at a time, so repeats of one aggregate also count correctly. */
  async #postQueued(): Promise<void> {
    this.#posting = true;
    while (this.#queue.length > 0) {
      const wait = this.#takeToken();
      if (wait > 0) {
        await sleep(this.#clock, wait);
        continue;
      }
      const next = this.#queue.shift()!;
      try {
        await this.#post(next.key, next.obj, next.type, next.reason, next.message);
      } catch (err) {
        const m = next.obj.metadata ?? {};
        this.#log.warn({ err: describe(err), kind: next.obj.kind, name: m.name, namespace: m.namespace, reason: next.reason }, 'could not record event');
      }
      next.resolve();
    }
    this.#posting = false;
  }

  /** Takes a token from the bucket and returns 0, or returns how long until there is one. */
  #takeToken(): number {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#refilledAt) / 1000) * this.#qps);
    this.#refilledAt = now;
    if (this.#tokens < 1) return Math.ceil(((1 - this.#tokens) / this.#qps) * 1000);
    this.#tokens -= 1;
    return 0;
  }

  #drop(obj: InvolvedObject, reason: string): void {
    this.#dropped++;
    this.#onDropped?.();
    const now = this.#clock.now();
    if (now - this.#lastDropLog < DROP_LOG_INTERVAL_MS) return;
    this.#lastDropLog = now;
    const m = obj.metadata ?? {};
    this.#log.warn({ dropped: this.#dropped, queued: this.#queue.length, kind: obj.kind, name: m.name, namespace: m.namespace, reason }, 'event queue full: dropping events');
  }

  async #post(key: string, obj: InvolvedObject, type: EventType, reason: string, message: string): Promise<void> {
    const now = new Date(this.#clock.epochMs());
    const seen = this.#recorded.get(key);
    if (seen) {
      const event = seen.event;
      const body: CoreV1Event = { ...event, count: (event.count ?? 1) + 1, lastTimestamp: now };
      try {
        const updated = await this.#api.replaceNamespacedEvent({ namespace: event.metadata.namespace ?? 'default', name: event.metadata.name ?? '', body });
        this.#recorded.set(key, { event: kept(updated) });
        return;
      } catch (err) {
        // Gone (events expire after an hour) or changed behind our back: start a new one.
        if (!(err instanceof ApiException && (err.code === 404 || err.code === 409))) throw err;
        this.#recorded.delete(key);
      }
    }
    const created = await this.#api.createNamespacedEvent({ namespace: namespaceOf(obj), body: this.#newEvent(obj, type, reason, message, now) });
    this.#recorded.set(key, { event: kept(created) });
  }

  #newEvent(obj: InvolvedObject, type: EventType, reason: string, message: string, now: Date): CoreV1Event {
    const m = obj.metadata ?? {};
    // client-go's naming: the object's name and a unique hexadecimal suffix.
    const suffix = (this.#clock.epochMs() * 1000 + (this.#seq++ % 1000)).toString(16);
    return {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${m.name ?? 'unknown'}.${suffix}`, namespace: namespaceOf(obj) },
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resourceVersion: m.resourceVersion,
      },
      reason,
      message,
      type,
      count: 1,
      firstTimestamp: now,
      lastTimestamp: now,
      source: { component: this.#component, host: this.#instance },
      reportingComponent: this.#component,
      reportingInstance: this.#instance,
    };
  }
}

/** What aggregation needs of a posted Event: not its managedFields, most of its size. */
function kept(event: CoreV1Event): CoreV1Event {
  if (event.metadata?.managedFields !== undefined) event.metadata.managedFields = undefined;
  return event;
}

/** Events live in the object's namespace; those about cluster-scoped objects in `default`. */
function namespaceOf(obj: InvolvedObject): string {
  return obj.metadata?.namespace || 'default';
}

function describe(err: unknown): string {
  if (err instanceof ApiException) return `HTTP ${err.code}: ${typeof err.body === 'string' ? err.body.slice(0, 300) : JSON.stringify(err.body).slice(0, 300)}`;
  return err instanceof Error ? err.message : String(err);
}
