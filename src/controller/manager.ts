import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import type { Logger } from '../observability/logger.ts';
import { Controller, type Reconcile } from './controller.ts';
import { keyOf, keyOfObject } from '../api/object-key.ts';
import { ResourceInformer } from './informer.ts';
import { NamedInformers } from './named-informers.ts';
import { LeaderElector } from './leader-election.ts';
import { collectionLister, collectionPath, type ResourceType } from './resource.ts';
import type { Clock } from '../time/clock.ts';
import { WorkQueue } from './work-queue.ts';

/** One kind the manager caches: what to list and watch, and how to index it. */
export interface KindDefinition {
  readonly resource: ResourceType;
  /** Server-side filter, e.g. only the Pods that carry mailwarden's label. */
  readonly labelSelector?: string;
  /** Applied before caching (drop what no reconciler reads). */
  readonly transform?: (obj: KubernetesObject) => KubernetesObject;
  /** Named indexes: the values each object is filed under (see ResourceInformer's indexers). */
  readonly indexes?: Readonly<Record<string, (obj: any) => readonly string[]>>;
  /**
   * Cache only the objects that objects of another kind name (`namespace/name` keys), each
   * watched by name (NamedInformers) — e.g. only the Secrets MailBackends name, never every
   * Secret of a namespace. The set follows that kind's cache.
   */
  readonly namedBy?: { readonly kind: string; readonly keys: (obj: any) => readonly string[] };
}

/** What the manager needs of a cache: a ResourceInformer, or a NamedInformers set. */
type Informer = Pick<ResourceInformer<KubernetesObject>, 'start' | 'stop' | 'waitForSync' | 'hasSynced' | 'get' | 'list' | 'byIndex' | 'onAdd' | 'onUpdate' | 'onDelete'>;

export type Change = 'add' | 'update' | 'delete';

/** Names an object of the controller's kind: what a change maps to. */
export interface ObjectRef {
  readonly namespace?: string;
  readonly name: string;
}

/** Which changes of one kind reach a controller, and which of its keys they queue. */
export interface WatchDefinition<K extends string, T = never> {
  readonly kind: K;
  /**
   * Whether the change is worth a reconcile (controller-runtime's predicates); default every
   * change. `old` is the cached object an update replaces.
   */
  readonly predicate?: (obj: T, change: Change, old: T | undefined) => boolean;
  /** The objects of the controller's kind the change touches; default the object itself. */
  readonly map?: (obj: T, change: Change, old: T | undefined) => Iterable<ObjectRef>;
}

/** A controller as data: its kind, the changes it watches, its reconciler. */
export interface ControllerDefinition<K extends string> {
  /** Names it in logs and in the `controller` metric label. */
  readonly name: string;
  /** The kind it reconciles: its keys are queued at leadership and by each resync. */
  readonly kind: K;
  readonly watches: readonly WatchDefinition<K, any>[];
  readonly reconcile: Reconcile;
  /** Keys reconciled at once; default 1. */
  readonly concurrency?: number;
}

/** The informer caches of one kind, across the watched namespaces, read as one. */
export interface CacheReader<T> {
  get(namespace: string, name: string): T | undefined;
  list(namespace?: string): T[];
  /** The objects filed under `value` in the kind's index `index`. */
  byIndex(index: string, value: string): T[];
}

export interface LeaderElectionSettings {
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationMs?: number;
  readonly renewDeadlineMs?: number;
  readonly retryPeriodMs?: number;
}

export interface ManagerOptions<K extends string> {
  readonly kubeConfig: KubeConfig;
  /** Namespaces to watch; empty watches all of them (one informer per kind instead of per namespace). */
  readonly namespaces: readonly string[];
  /** The table of kinds; a kind left out is not cached, and naming it in a watch is an error. */
  readonly kinds: Readonly<Partial<Record<K, KindDefinition>>>;
  /** Periodic resync of every controller (default 5 min; 0 turns it off). */
  readonly resyncMs?: number;
  /** Campaign for a Lease so that one replica reconciles; without it this replica leads at once. */
  readonly leaderElection?: LeaderElectionSettings;
  /** Leadership was lost (not given up by stop()): controllers are already stopped. */
  readonly onLostLeadership?: () => void;
  readonly registry?: Registry;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Objects per list page (default the informer's, 500); tests page through a few objects. */
  readonly listPageSize?: number;
}

/**
 * Runs controllers declared as data: builds one informer per kind (and namespace) from the table
 * of kinds, turns every change into keys on the queues of the controllers that watch it (only
 * while leading), and leads through a Lease. Informers and indexes follow the cluster whether or
 * not this replica leads, so a standby takes over with warm caches; the controllers run only
 * while it leads, and start by queuing every key (level-triggered: nothing assumed from before).
 */
export class ControllerManager<K extends string> {
  readonly #options: ManagerOptions<K>;
  readonly #log: Logger;
  readonly #registry: Registry;
  readonly #informers = new Map<K, Informer[]>();
  /** The kinds cached by name, synced once the kinds that name them are. */
  readonly #named: NamedInformers[] = [];
  readonly #controllers: { readonly definition: ControllerDefinition<K>; readonly queue: WorkQueue; readonly controller: Controller }[] = [];
  readonly #elector: LeaderElector | undefined;
  #leading = false;
  #stopped = false;

  constructor(options: ManagerOptions<K>) {
    this.#options = options;
    this.#log = options.logger;
    this.#registry = options.registry ?? new Registry();
    const namespaces = options.namespaces.length > 0 ? options.namespaces : [undefined];
    for (const [kind, definition] of Object.entries(options.kinds) as [K, KindDefinition][]) {
      if (definition === undefined || definition.namedBy !== undefined) continue;
      this.#informers.set(
        kind,
        namespaces.map((ns) => {
          const path = collectionPath(definition.resource, ns);
          return new ResourceInformer<KubernetesObject>({
            kubeConfig: options.kubeConfig,
            name: `${definition.resource.plural}${ns ? `/${ns}` : ''}`,
            path,
            list: collectionLister(options.kubeConfig, path),
            labelSelector: definition.labelSelector,
            transform: definition.transform,
            indexers: definition.indexes,
            pageSize: options.listPageSize,
            logger: this.#log,
            clock: options.clock,
          });
        }),
      );
    }
    for (const [kind, definition] of Object.entries(options.kinds) as [K, KindDefinition][]) {
      if (definition?.namedBy === undefined) continue;
      const named = new NamedInformers({ kubeConfig: options.kubeConfig, resource: definition.resource, transform: definition.transform, logger: this.#log, clock: options.clock });
      const source = this.reader<KubernetesObject>(definition.namedBy.kind as K);
      const keys = definition.namedBy.keys;
      const follow = () => named.setKeys(source.list().flatMap((o) => keys(o)));
      for (const informer of this.#informersOf(definition.namedBy.kind as K)) {
        informer.onAdd(follow);
        informer.onUpdate(follow);
        informer.onDelete(follow);
      }
      this.#named.push(named);
      this.#informers.set(kind, [named]);
    }
    const le = options.leaderElection;
    if (le !== undefined) {
      this.#elector = new LeaderElector({
        ...le,
        kubeConfig: options.kubeConfig,
        logger: this.#log,
        clock: options.clock,
        onStartedLeading: () => this.#lead(),
        onStoppedLeading: () => {
          if (this.#stopped) return;
          this.#log.error({}, 'leadership lost: stopping so that exactly one replica writes');
          void this.stopControllers().finally(() => options.onLostLeadership?.());
        },
      });
    }
  }

  /** The cache of `kind`, for reconcilers and for the mapping functions of watches. */
  reader<T>(kind: K): CacheReader<T> {
    const informers = this.#informersOf(kind);
    return {
      get: (namespace, name) => {
        for (const i of informers) {
          const found = i.get(namespace, name);
          if (found !== undefined) return found as T;
        }
        return undefined;
      },
      list: (namespace) => informers.flatMap((i) => i.list(namespace)) as T[],
      byIndex: (index, value) => informers.flatMap((i) => i.byIndex(index, value)) as T[],
    };
  }

  /** Adds a controller; its watches are wired at once, its workers start when this replica leads. */
  add(definition: ControllerDefinition<K>): void {
    const queue = new WorkQueue();
    const primary = this.reader<KubernetesObject>(definition.kind);
    const controller = new Controller({
      name: definition.name,
      queue,
      reconcile: definition.reconcile,
      concurrency: definition.concurrency,
      resyncMs: this.#options.resyncMs ?? 300_000,
      keys: () => primary.list().map(keyOfObject),
      registry: this.#registry,
      logger: this.#log,
      clock: this.#options.clock,
    });
    this.#controllers.push({ definition, queue, controller });
    for (const watch of definition.watches) {
      const self = (obj: KubernetesObject): ObjectRef[] => [{ namespace: obj.metadata?.namespace, name: obj.metadata?.name ?? '' }];
      const handle = (obj: KubernetesObject, change: Change, old: KubernetesObject | undefined): void => {
        // Predicates and mappings read indexes that follow the cache on every replica, but keys
        // are queued only by the leader: a standby's queue would hold stale work at takeover.
        if (!this.#leading) return;
        if (watch.predicate !== undefined && !watch.predicate(obj as never, change, old as never)) return;
        for (const ref of watch.map?.(obj as never, change, old as never) ?? self(obj)) queue.add(keyOf(ref.namespace, ref.name));
      };
      for (const informer of this.#informersOf(watch.kind)) {
        informer.onAdd((obj) => handle(obj, 'add', undefined));
        informer.onUpdate((obj, old) => handle(obj, 'update', old));
        informer.onDelete((obj) => handle(obj, 'delete', undefined));
      }
    }
  }

  /** Starts every informer and resolves once all their caches are filled. */
  async sync(timeoutMs?: number): Promise<void> {
    const named = new Set<Informer>(this.#named);
    const plain = this.#allInformers().filter((i) => !named.has(i));
    for (const informer of plain) informer.start();
    await Promise.all(plain.map((i) => i.waitForSync(timeoutMs)));
    // The names are known once the kinds naming them are listed.
    for (const named of this.#named) named.start();
    await Promise.all(this.#named.map((i) => i.waitForSync(timeoutMs)));
  }

  /** Leads at once without leader election, or campaigns for the Lease. */
  campaign(): void {
    if (this.#elector !== undefined) this.#elector.start();
    else this.#lead();
  }

  /** Caches synced and not stopped: a leader or a healthy standby. */
  get ready(): boolean {
    return !this.#stopped && this.#allInformers().every((i) => i.hasSynced);
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** Stops the controllers (reconciles in flight finish); informers and the lease stay. */
  async stopControllers(): Promise<void> {
    if (!this.#leading) return;
    this.#leading = false;
    await Promise.all(this.#controllers.map((c) => c.controller.stop()));
  }

  /** Stops reconciling, releases the lease, stops watching. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.stopControllers();
    await this.#elector?.stop();
    await Promise.all(this.#allInformers().map((i) => i.stop()));
  }

  #lead(): void {
    if (this.#leading || this.#stopped) return;
    this.#leading = true;
    this.#log.info({}, 'leading: reconciling');
    for (const { definition, queue, controller } of this.#controllers) {
      controller.start();
      for (const o of this.reader<KubernetesObject>(definition.kind).list()) queue.add(keyOfObject(o));
    }
  }

  #informersOf(kind: K): Informer[] {
    const informers = this.#informers.get(kind);
    if (informers === undefined) throw new Error(`kind ${kind} is not in the manager's table of kinds`);
    return informers;
  }

  #allInformers(): Informer[] {
    return [...this.#informers.values()].flat();
  }
}
