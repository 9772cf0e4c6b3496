import { hostname } from 'node:os';
import { ApiException, CoreV1Api, type CoreV1Event, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../observability/logger.ts';
import { silentLogger } from '../observability/logger.ts';
import { realTimers, type Timers } from './timers.ts';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorderOptions {
  kubeConfig: KubeConfig;
  /** `source.component` and `reportingComponent`, e.g. `mailwarden-operator`. */
  component: string;
  /** `source.host` and `reportingInstance`; default the host name (the pod name in a pod). */
  instance?: string;
  /** Distinct (object, type, reason, message) kept for aggregation; default 4096. */
  cacheSize?: number;
  logger?: Logger;
  timers?: Timers;
}

/** The object an Event is about; any Kubernetes object with apiVersion and kind set. */
export type InvolvedObject = KubernetesObject & { apiVersion?: string; kind?: string };

interface Recorded {
  event: CoreV1Event;
}

/** Server limits: message at most 1 KiB in practice, reason is a CamelCase word. */
const MAX_MESSAGE = 1024;

/**
 * Posts core/v1 Events about objects, like client-go's EventRecorder. The same (object, type,
 * reason, message) recorded again bumps `count` and `lastTimestamp` on the Event already posted
 * rather than creating another, so a reconcile failing in a loop shows one Event with a count.
 *
 * Recording never throws into the caller: a failure is logged, and the returned promise (which
 * callers may ignore) always resolves. Recordings of one aggregate are serialised so concurrent
 * repeats count correctly.
 */
export class EventRecorder {
  readonly #api: CoreV1Api;
  readonly #component: string;
  readonly #instance: string;
  readonly #log: Logger;
  readonly #timers: Timers;
  readonly #recorded: LRUCache<string, Recorded>;
  readonly #chains = new Map<string, Promise<void>>();
  #seq = 0;

  constructor(options: EventRecorderOptions) {
    this.#api = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#component = options.component;
    this.#instance = options.instance ?? hostname();
    this.#log = (options.logger ?? silentLogger).child({ component: 'events' });
    this.#timers = options.timers ?? realTimers;
    this.#recorded = new LRUCache({ max: options.cacheSize ?? 4096 });
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
    const key = JSON.stringify([obj.apiVersion, obj.kind, m.namespace, m.name, m.uid, type, reason, text]);
    const previous = this.#chains.get(key) ?? Promise.resolve();
    const next = previous
      .then(() => this.#post(key, obj, type, reason, text))
      .catch((err: unknown) => {
        this.#log.warn({ err: describe(err), kind: obj.kind, name: m.name, namespace: m.namespace, reason }, 'could not record event');
      })
      .finally(() => {
        if (this.#chains.get(key) === next) this.#chains.delete(key);
      });
    this.#chains.set(key, next);
    return next;
  }

  async #post(key: string, obj: InvolvedObject, type: EventType, reason: string, message: string): Promise<void> {
    const now = new Date(this.#timers.now());
    const seen = this.#recorded.get(key);
    if (seen) {
      const event = seen.event;
      const body: CoreV1Event = { ...event, count: (event.count ?? 1) + 1, lastTimestamp: now };
      try {
        const updated = await this.#api.replaceNamespacedEvent({ namespace: event.metadata.namespace ?? 'default', name: event.metadata.name ?? '', body });
        this.#recorded.set(key, { event: updated });
        return;
      } catch (err) {
        // Gone (events expire after an hour) or changed behind our back: start a new one.
        if (!(err instanceof ApiException && (err.code === 404 || err.code === 409))) throw err;
        this.#recorded.delete(key);
      }
    }
    const created = await this.#api.createNamespacedEvent({ namespace: namespaceOf(obj), body: this.#newEvent(obj, type, reason, message, now) });
    this.#recorded.set(key, { event: created });
  }

  #newEvent(obj: InvolvedObject, type: EventType, reason: string, message: string, now: Date): CoreV1Event {
    const m = obj.metadata ?? {};
    // client-go's naming: the object's name and a unique hexadecimal suffix.
    const suffix = (this.#timers.now() * 1000 + (this.#seq++ % 1000)).toString(16);
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

/** Events live in the object's namespace; those about cluster-scoped objects in `default`. */
function namespaceOf(obj: InvolvedObject): string {
  return obj.metadata?.namespace || 'default';
}

function describe(err: unknown): string {
  if (err instanceof ApiException) return `HTTP ${err.code}: ${typeof err.body === 'string' ? err.body.slice(0, 300) : JSON.stringify(err.body).slice(0, 300)}`;
  return err instanceof Error ? err.message : String(err);
}
