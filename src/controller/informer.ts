import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { keyOf, keyOfObject } from '../api/object-key.ts';
import type { Logger } from '../observability/logger.ts';
import { silentLogger } from '../observability/logger.ts';
import { realClock, sleep, type Clock } from '../time/clock.ts';

/** Options passed to the list function; spread them into a generated client's list call. */
export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  _continue?: string;
}

export type ListFunction<T extends KubernetesObject> = (options: ListOptions) => Promise<KubernetesListObject<T>>;

/**
 * Starts a watch request (client-node's `Watch.watch`): `onEvent` per event, `done` once when the
 * stream ends (null) or fails; resolves once the response has begun, with a handle to abort it.
 */
export type WatchFunction = (
  path: string,
  query: Record<string, string | boolean>,
  onEvent: (type: string, object: unknown) => void,
  done: (err: unknown) => void,
) => Promise<{ abort(): void }>;

export interface ResourceInformerOptions<T extends KubernetesObject> {
  /** Watched through client-node's Watch with this, unless `watch` is given. */
  kubeConfig?: KubeConfig;
  /**
   * Starts the watch requests instead of client-node's Watch (the policy daemon's store, which
   * must not load that library: see kube/api-credentials.ts).
   */
  watch?: WatchFunction;
  /** Collection path to watch, e.g. `/api/v1/namespaces/mail/secrets` or `/api/v1/configmaps`. */
  path: string;
  /**
   * Lists the same collection, e.g.
   * `(o) => core.listNamespacedSecret({ namespace: 'mail', ...o })`; it must pass the options on
   * so the list and the watch see the same objects.
   */
  list: ListFunction<T>;
  /**
   * The one namespace `path` lists, when it is a namespaced collection: the cache is then keyed
   * by the objects' names, strings they hold already, instead of a new `namespace/name` string
   * per object (tens of thousands of them in the policy daemon's store). Keys still read
   * `namespace/name` outside (see {@link ResourceInformer.keys}).
   */
  namespace?: string;
  /** Server-side filters for both list and watch, e.g. `mailwarden.io/backend` or `metadata.name=x`. */
  labelSelector?: string;
  fieldSelector?: string;
  /**
   * Applied to every object before it is cached (client-go's SetTransform): drop what no
   * handler reads, such as managedFields, so thousands of cached objects stay small.
   */
  transform?: (obj: T) => T;
  /**
   * Told when list/watch starts failing (the cache is kept and still served) and when it works
   * again, once each per outage: for a metric or a readiness signal.
   */
  onConnectionChange?: (connected: boolean, error?: unknown) => void;
  /**
   * Named indexes over the cache (client-go's Indexers): each function gives the values an object
   * is filed under, so a lookup such as "the restrictions that name this backend" costs the few
   * that match instead of a scan of every cached object per event.
   */
  indexers?: Readonly<Record<string, (obj: T) => readonly string[]>>;
  /** Names the informer in logs; default the path. */
  name?: string;
  /** Page size of the list; default 500. */
  pageSize?: number;
  /** Backoff between failed list/watch attempts; default 500 ms doubling up to 30 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  logger?: Logger;
  clock?: Clock;
}

/** The informer was stopped, or did not sync in time. */
export class InformerError extends Error {
  readonly kind: 'Stopped' | 'SyncTimeout';
  constructor(kind: 'Stopped' | 'SyncTimeout', message: string) {
    super(message);
    this.name = 'InformerError';
    this.kind = kind;
  }
}

type Handler<T> = (obj: T) => void;
type UpdateHandler<T> = (obj: T, old: T) => void;

/** Why a watch ended without an error. */
type WatchEnd = 'closed' | 'expired' | 'stopped';

const MIN_WATCH_LIFETIME_MS = 1000;

/**
 * A list-and-watch cache of one collection, as client-go's reflector and shared informer:
 * list (paged), then watch from the list's resourceVersion, applying every event to a local
 * cache and telling the handlers. A watch that ends is resumed from the last resourceVersion
 * seen; one that fails (API server gone, 429, 5xx, 403) is resumed the same way with exponential
 * backoff. When the server says that history is gone (410 Gone: compacted, or a restarted API
 * server's fresh watch cache), or ends watches at once, the informer re-lists, and the
 * re-list is compared with the cache so that objects deleted meanwhile are delivered as deletes.
 * The cache is kept across failures.
 *
 * Handlers run synchronously in event order and should only queue work. Objects are those the
 * API returned: from the list they come through the generated client's deserialiser (dates as
 * `Date`), from the watch as JSON (dates as strings) — compare resourceVersions, not timestamps.
 *
 * client-node's `makeInformer` has the same list+watch core, but gives up for good on the first
 * connection error and cannot re-list with the cache kept, so this class drives `Watch` itself.
 */
export class ResourceInformer<T extends KubernetesObject> {
  readonly name: string;
  readonly #opts: ResourceInformerOptions<T>;
  #watch: WatchFunction | undefined;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #cache = new Map<string, T>();
  /** Index name → indexed value → cache keys. */
  readonly #indices = new Map<string, Map<string, Set<string>>>();
  readonly #adds = new Set<Handler<T>>();
  readonly #updates = new Set<UpdateHandler<T>>();
  readonly #deletes = new Set<Handler<T>>();
  readonly #synced: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  #resourceVersion = '';
  #hasSynced = false;
  #abort: AbortController | undefined;
  #running: Promise<void> | undefined;

  constructor(options: ResourceInformerOptions<T>) {
    this.#opts = options;
    this.name = options.name ?? options.path;
    if (options.watch === undefined && options.kubeConfig === undefined) throw new TypeError('ResourceInformer needs a kubeConfig or a watch function');
    this.#watch = options.watch;
    this.#log = (options.logger ?? silentLogger).child({ informer: this.name });
    this.#clock = options.clock ?? realClock;
  }

  /** True once the first list has been applied to the cache and told to the handlers. */
  get hasSynced(): boolean {
    return this.#hasSynced;
  }

  /** The resourceVersion the cache reflects. */
  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  /** Registers a handler; returns a function that removes it. */
  onAdd(fn: Handler<T>): () => void {
    this.#adds.add(fn);
    return () => this.#adds.delete(fn);
  }

  onUpdate(fn: UpdateHandler<T>): () => void {
    this.#updates.add(fn);
    return () => this.#updates.delete(fn);
  }

  /** Called with the last state the informer knew of the object. */
  onDelete(fn: Handler<T>): () => void {
    this.#deletes.add(fn);
    return () => this.#deletes.delete(fn);
  }

  /** One handler for all three kinds of change. */
  onChange(fn: (obj: T, type: 'add' | 'update' | 'delete') => void): () => void {
    const offs = [this.onAdd((o) => fn(o, 'add')), this.onUpdate((o) => fn(o, 'update')), this.onDelete((o) => fn(o, 'delete'))];
    return () => offs.forEach((off) => off());
  }

  get(namespace: string | undefined, name: string): T | undefined {
    const only = this.#opts.namespace;
    if (only === undefined) return this.#cache.get(keyOf(namespace, name));
    return (namespace ?? '') === only ? this.#cache.get(name) : undefined;
  }

  /** Cached objects, all or those of one namespace. */
  list(namespace?: string): T[] {
    const all = [...this.#cache.values()];
    return namespace === undefined ? all : all.filter((o) => (o.metadata?.namespace ?? '') === namespace);
  }

  /** The cached objects filed under `value` in the index `index` (see `indexers`). */
  byIndex(index: string, value: string): T[] {
    const keys = this.#indices.get(index)?.get(value);
    if (keys === undefined) return [];
    const found: T[] = [];
    for (const key of keys) {
      const obj = this.#cache.get(key);
      if (obj !== undefined) found.push(obj);
    }
    return found;
  }

  /** Cache keys (`namespace/name`, or `name` when cluster-scoped), for a controller's resync. */
  keys(): string[] {
    const only = this.#opts.namespace;
    return only === undefined ? [...this.#cache.keys()] : [...this.#cache.keys()].map((name) => keyOf(only, name));
  }

  /** Starts listing and watching in the background; see {@link waitForSync}. */
  start(): void {
    if (this.#running) return;
    this.#abort = new AbortController();
    this.#running = this.#run(this.#abort.signal);
  }

  /** Stops watching; the cache stays readable. Pending {@link waitForSync} calls reject. */
  async stop(): Promise<void> {
    this.#abort?.abort();
    await this.#running;
    this.#running = undefined;
    for (const w of this.#synced.splice(0)) w.reject(new InformerError('Stopped', `informer ${this.name} stopped before it synced`));
  }

  /** Resolves once synced; rejects with {@link InformerError} on timeout or stop. */
  waitForSync(timeoutMs = 60_000): Promise<void> {
    if (this.#hasSynced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const entry = {
        resolve: () => { this.#clock.clearTimeout(timer); resolve(); },
        reject: (err: Error) => { this.#clock.clearTimeout(timer); reject(err); },
      };
      const timer = this.#clock.setTimeout(() => {
        const i = this.#synced.indexOf(entry);
        if (i >= 0) this.#synced.splice(i, 1);
        reject(new InformerError('SyncTimeout', `informer ${this.name} did not sync within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#synced.push(entry);
    });
  }

  async #run(signal: AbortSignal): Promise<void> {
    const initialMs = this.#opts.backoff?.initialMs ?? 500;
    const maxMs = this.#opts.backoff?.maxMs ?? 30_000;
    let failures = 0;
    // After a failure the watch is resumed from the last resourceVersion (client-go's reflector
    // does so for connection failures): an outage of the API server then costs one watch request,
    // not a list of every object, unless the server answers that the history is gone (410),
    // which is when the informer re-lists. A failed list is retried as a list.
    let mustList = true;
    const recovered = (): void => {
      if (failures === 0) return;
      this.#log.info({ failures }, 'list and watch recovered');
      this.#opts.onConnectionChange?.(true);
      failures = 0;
    };
    while (!signal.aborted) {
      try {
        if (mustList) {
          await this.#listAndReplace(signal);
          mustList = false;
          recovered();
        }
        const end = await this.#watchOnce(signal, recovered);
        if (end === 'stopped') return;
        if (end === 'expired') {
          // The resourceVersion is too old (compacted away): re-list, the cache kept meanwhile.
          this.#log.info({ resourceVersion: this.#resourceVersion }, 'watch history expired (410 Gone): re-listing');
          mustList = true;
        }
      } catch (err) {
        if (signal.aborted) return;
        failures++;
        if (!resumable(err)) mustList = true;
        // Once per outage at warn level; the retries of the same outage only at debug.
        const fields = { err: describe(err), failures };
        if (failures === 1) {
          this.#log.warn(fields, 'list/watch failed; retrying with backoff, cache kept');
          this.#opts.onConnectionChange?.(false, err);
        }
        else this.#log.debug(fields, 'list/watch still failing');
        const delay = Math.min(maxMs, initialMs * 2 ** (failures - 1));
        await sleep(this.#clock, delay * (0.8 + 0.2 * Math.random()), signal);
      }
    }
  }

  /** Lists every page, then reconciles the cache with the list, telling handlers the difference. */
  async #listAndReplace(signal: AbortSignal): Promise<void> {
    const items: T[] = [];
    let resourceVersion = '';
    let token: string | undefined;
    do {
      const page = await this.#opts.list({
        labelSelector: this.#opts.labelSelector,
        fieldSelector: this.#opts.fieldSelector,
        limit: this.#opts.pageSize ?? 500,
        _continue: token,
      });
      if (signal.aborted) return;
      // Every page of a paged list is read at the first page's resourceVersion.
      resourceVersion ||= page.metadata?.resourceVersion ?? '';
      // Slimmed page by page: a list of many thousands never holds them all at full size.
      const transform = this.#opts.transform;
      for (const item of page.items) items.push(transform ? transform(item) : item);
      token = page.metadata?._continue || undefined;
    } while (token);

    const fresh = new Map<string, T>();
    for (const obj of items) fresh.set(this.#keyOf(obj), obj);
    for (const [key, old] of this.#cache) {
      if (!fresh.has(key)) {
        this.#cache.delete(key);
        this.#unindex(key, old);
        this.#emit(this.#deletes, old);
      }
    }
    for (const [key, obj] of fresh) this.#apply(key, obj);
    this.#resourceVersion = resourceVersion;
    if (!this.#hasSynced) {
      this.#hasSynced = true;
      this.#log.debug({ objects: this.#cache.size, resourceVersion }, 'synced');
      for (const w of this.#synced.splice(0)) w.resolve();
    }
  }

  /** One watch request from the current resourceVersion; rejects on errors. `established`: the server accepted it. */
  #watchOnce(signal: AbortSignal, established: () => void): Promise<WatchEnd> {
    const params: Record<string, string | boolean> = {
      resourceVersion: this.#resourceVersion,
      allowWatchBookmarks: true,
      // The server ends watches after this; resuming is cheap and keeps connections fresh.
      timeoutSeconds: String(300 + Math.floor(Math.random() * 300)),
    };
    if (this.#opts.labelSelector) params.labelSelector = this.#opts.labelSelector;
    if (this.#opts.fieldSelector) params.fieldSelector = this.#opts.fieldSelector;
    const startedAt = this.#clock.now();
    let expired = false;
    let ended = false;
    let events = 0;
    return new Promise<WatchEnd>((resolve, reject) => {
      let request: { abort(): void } | undefined;
      const onAbort = (): void => {
        request?.abort();
        resolve('stopped');
      };
      // Stopped while the list was being applied: an aborted signal fires no more 'abort' events.
      if (signal.aborted) return resolve('stopped');
      signal.addEventListener('abort', onAbort, { once: true });
      const finish = (err: unknown): void => {
        ended = true;
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) return resolve('stopped');
        if (expired || (err as { statusCode?: number } | null)?.statusCode === 410) return resolve('expired');
        // Watch reports its own inactivity timeout as TimeoutError: nothing wrong, resume.
        if (err && !(err instanceof Error && err.name === 'TimeoutError')) return reject(err);
        // A server that accepts and at once closes watches would otherwise make us spin.
        if (events === 0 && this.#clock.now() - startedAt < MIN_WATCH_LIFETIME_MS) {
          return reject(new WatchClosedImmediately('watch closed immediately by the server'));
        }
        resolve('closed');
      };
      const onEvent = (type: string, obj: unknown): void => {
        events++;
        if (signal.aborted) return;
        try {
          this.#onWatchEvent(type, obj as T, () => { expired = true; });
        } catch (err) {
          this.#log.error({ err }, 'watch event could not be applied');
        }
      };
      this.#watcher().then((watch) => watch(this.#opts.path, params, onEvent, finish)).then(
        (req) => {
          request = req;
          if (signal.aborted) req.abort();
          // Watch resolves after the response's status: not ended yet means a 200 and a stream.
          else if (!ended) established();
        },
        (err: unknown) => finish(err ?? new Error('watch failed')),
      );
    });
  }

  /** client-node's Watch, loaded on first use so that a caller passing `watch` never loads the library. */
  async #watcher(): Promise<WatchFunction> {
    if (this.#watch === undefined) {
      const { Watch } = await import('@kubernetes/client-node');
      const watch = new Watch(this.#opts.kubeConfig!);
      this.#watch = (path, query, onEvent, done) => watch.watch(path, query, onEvent, done);
    }
    return this.#watch;
  }

  #onWatchEvent(type: string, obj: T, markExpired: () => void): void {
    switch (type) {
      case 'ADDED':
      case 'MODIFIED': {
        const transform = this.#opts.transform;
        this.#apply(this.#keyOf(obj), transform ? transform(obj) : obj);
        break;
      }
      case 'DELETED': {
        const key = this.#keyOf(obj);
        const old = this.#cache.get(key);
        if (this.#cache.delete(key)) {
          this.#unindex(key, old!);
          this.#emit(this.#deletes, this.#opts.transform ? this.#opts.transform(obj) : obj);
        }
        break;
      }
      case 'BOOKMARK':
        break;
      case 'ERROR': {
        // A Status; 410 Gone means our resourceVersion was compacted away: re-list.
        const code = (obj as unknown as { code?: number }).code;
        if (code === 410) markExpired();
        else this.#log.warn({ status: obj }, 'watch reported an error');
        return;
      }
      default:
        return;
    }
    const rv = obj.metadata?.resourceVersion;
    if (rv) this.#resourceVersion = rv;
  }

  /** The cache key of `obj`: see the `namespace` option. */
  #keyOf(obj: T): string {
    return this.#opts.namespace === undefined ? keyOfObject(obj) : (obj.metadata?.name ?? '');
  }

  /** Stores `obj` (already transformed), telling add or update handlers (nothing when the resourceVersion is unchanged). */
  #apply(key: string, obj: T): void {
    const old = this.#cache.get(key);
    this.#cache.set(key, obj);
    // Indexed before any handler runs: a handler's lookups see the object where it now is.
    if (old) this.#unindex(key, old);
    this.#index(key, obj);
    if (!old) return this.#emit(this.#adds, obj);
    if (old.metadata?.resourceVersion && old.metadata.resourceVersion === obj.metadata?.resourceVersion) return;
    for (const fn of this.#updates) {
      try {
        fn(obj, old);
      } catch (err) {
        this.#log.error({ err }, 'update handler threw');
      }
    }
  }

  #index(key: string, obj: T): void {
    for (const [name, values] of Object.entries(this.#opts.indexers ?? {})) {
      let index = this.#indices.get(name);
      if (index === undefined) this.#indices.set(name, (index = new Map()));
      for (const value of values(obj)) {
        let keys = index.get(value);
        if (keys === undefined) index.set(value, (keys = new Set()));
        keys.add(key);
      }
    }
  }

  #unindex(key: string, obj: T): void {
    for (const [name, values] of Object.entries(this.#opts.indexers ?? {})) {
      const index = this.#indices.get(name);
      if (index === undefined) continue;
      for (const value of values(obj)) {
        const keys = index.get(value);
        keys?.delete(key);
        if (keys?.size === 0) index.delete(value);
      }
    }
  }

  #emit(handlers: Set<Handler<T>>, obj: T): void {
    for (const fn of handlers) {
      try {
        fn(obj);
      } catch (err) {
        this.#log.error({ err }, 'handler threw');
      }
    }
  }
}

/** A server that accepts watches and ends them at once: re-listed, as something is off with the watch. */
class WatchClosedImmediately extends Error {}

/**
 * Whether the watch can be resumed from the last resourceVersion after `err`: whatever failed (a
 * refused or reset connection, 429, 5xx, even a 403 from a restarted server whose RBAC cache is
 * still filling), the server answers a watch it cannot serve with 410 Gone, and then the
 * informer re-lists. Only a server that ends watches at once is re-listed straight away.
 */
function resumable(err: unknown): boolean {
  return !(err instanceof WatchClosedImmediately);
}

/** A short description of a list/watch failure (a fetch error hides its cause one level down). */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = (err as { code?: number; statusCode?: number }).code ?? (err as { statusCode?: number }).statusCode;
  return [err.message, code, cause?.code ?? cause?.message].filter((x) => x !== undefined && x !== '').join(': ');
}
