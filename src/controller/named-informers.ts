import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { keyOf, splitKey } from '../api/object-key.ts';
import type { Logger } from '../observability/logger.ts';
import { ResourceInformer } from './informer.ts';
import { collectionLister, collectionPath, type ResourceType } from './resource.ts';
import type { Clock } from '../time/clock.ts';

type Handler = (obj: KubernetesObject) => void;
type UpdateHandler = (obj: KubernetesObject, old: KubernetesObject) => void;

export interface NamedInformersOptions {
  readonly kubeConfig: KubeConfig;
  readonly resource: ResourceType;
  readonly transform?: (obj: KubernetesObject) => KubernetesObject;
  readonly logger: Logger;
  readonly clock?: Clock;
}

/**
 * A cache of only the objects named by others (the Secrets MailBackends name), not of the whole
 * collection: one list-and-watch per `namespace/name`, selected with `metadata.name=NAME`, which
 * RBAC authorizes against a Role's resourceNames. The set of names is replaced whole by
 * {@link setKeys}; an informer is started for each new name and stopped for each dropped one
 * (its object leaves the cache, told to the delete handlers). Reads and handlers are those of
 * one informer, so the manager treats this like any other kind.
 */
export class NamedInformers {
  readonly #o: NamedInformersOptions;
  readonly #informers = new Map<string, ResourceInformer<KubernetesObject>>();
  readonly #adds = new Set<Handler>();
  readonly #updates = new Set<UpdateHandler>();
  readonly #deletes = new Set<Handler>();
  #started = false;
  #stopped = false;

  constructor(options: NamedInformersOptions) {
    this.#o = options;
  }

  /** The names cached, as `namespace/name`. */
  get keys(): string[] {
    return [...this.#informers.keys()].sort();
  }

  /** Caches exactly these `namespace/name` keys from now on. */
  setKeys(keys: Iterable<string>): void {
    if (this.#stopped) return;
    const wanted = new Set(keys);
    for (const [key, informer] of this.#informers) {
      if (wanted.has(key)) continue;
      this.#informers.delete(key);
      const [namespace, name] = splitKey(key);
      const gone = informer.get(namespace, name);
      void informer.stop();
      if (gone !== undefined) for (const fn of this.#deletes) fn(gone);
    }
    for (const key of wanted) {
      if (this.#informers.has(key)) continue;
      const informer = this.#informer(key);
      this.#informers.set(key, informer);
      if (this.#started) informer.start();
    }
  }

  start(): void {
    this.#started = true;
    for (const informer of this.#informers.values()) informer.start();
  }

  /** Resolves once every name currently cached has been listed. */
  async waitForSync(timeoutMs?: number): Promise<void> {
    await Promise.all([...this.#informers.values()].map((i) => i.waitForSync(timeoutMs)));
  }

  get hasSynced(): boolean {
    return [...this.#informers.values()].every((i) => i.hasSynced);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#informers.values()].map((i) => i.stop()));
  }

  get(namespace: string | undefined, name: string): KubernetesObject | undefined {
    return this.#informers.get(keyOf(namespace, name))?.get(namespace, name);
  }

  list(namespace?: string): KubernetesObject[] {
    return [...this.#informers.values()].flatMap((i) => i.list(namespace));
  }

  byIndex(): KubernetesObject[] {
    return [];
  }

  /** Registers a handler for every name's informer; returns a function that removes it. */
  onAdd(fn: Handler): () => void {
    this.#adds.add(fn);
    return () => this.#adds.delete(fn);
  }

  onUpdate(fn: UpdateHandler): () => void {
    this.#updates.add(fn);
    return () => this.#updates.delete(fn);
  }

  onDelete(fn: Handler): () => void {
    this.#deletes.add(fn);
    return () => this.#deletes.delete(fn);
  }

  #informer(key: string): ResourceInformer<KubernetesObject> {
    const [namespace, name] = splitKey(key);
    const path = collectionPath(this.#o.resource, namespace);
    const informer = new ResourceInformer<KubernetesObject>({
      kubeConfig: this.#o.kubeConfig,
      name: `${this.#o.resource.plural}/${key}`,
      path,
      list: collectionLister(this.#o.kubeConfig, path),
      fieldSelector: `metadata.name=${name}`,
      transform: this.#o.transform,
      logger: this.#o.logger,
      clock: this.#o.clock,
    });
    informer.onAdd((obj) => this.#adds.forEach((fn) => fn(obj)));
    informer.onUpdate((obj, old) => this.#updates.forEach((fn) => fn(obj, old)));
    informer.onDelete((obj) => this.#deletes.forEach((fn) => fn(obj)));
    return informer;
  }
}
