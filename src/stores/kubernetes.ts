import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { z } from 'zod';
import { CredentialsError, kubeconfigCredentials, mountedTokenCredentials, type ApiCredentials } from '../kube/api-credentials.ts';
import { CollectionClient } from '../kube/collection-client.ts';
import { formatIssues } from '../api/issues.ts';
import { API_GROUP } from '../api/mail-user-restriction.ts';
import { StringPool } from '../controller/cached-object.ts';
import { InformerError, ResourceInformer, type ListOptions } from '../controller/informer.ts';
import type { Clock } from '../time/clock.ts';
import type { MailboxRecord } from '../restrictions/lists.ts';
import type { Logger } from '../observability/logger.ts';
import { holdRestriction, RestrictionIndex, type HeldRestriction, type HoldPools } from './restriction-index.ts';
import { ListsPool, peekEach } from './in-memory-records.ts';
import { releaseGarbage } from './heap.ts';
import { StoreError, type MailboxReader } from './store.ts';

/** The `--store` value of this store; its namespaces and credentials are settings. */
export const KUBERNETES_STORE_URL = 'kubernetes://';

const namespaceName = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a namespace name').max(63);

export const KubernetesStoreSettingsSchema = z
  .strictObject({
    namespaces: z.array(namespaceName).min(1).max(64).optional().describe("Namespaces whose MailUserRestrictions are served; default the credentials' or kubeconfig's namespace"),
    credentialsDir: z
      .string()
      .min(1)
      .optional()
      .describe('A mounted ServiceAccount token (files token, ca.crt, namespace), used with the in-cluster API server address; default the kubeconfig'),
    kubeconfig: z.string().min(1).optional().describe('A kubeconfig file (a token, token file or client certificate); default $KUBECONFIG, ~/.kube/config or in-cluster'),
  })
  .describe('The Kubernetes store: MailUserRestriction resources read straight from the API server');
export type KubernetesStoreSettings = z.infer<typeof KubernetesStoreSettingsSchema>;

export interface KubernetesStoreOptions {
  readonly credentials: ApiCredentials;
  readonly namespaces: readonly string[];
  readonly logger?: Logger;
  /** List/watch retry backoff (default 500 ms doubling up to 10 s). */
  readonly backoff?: { initialMs?: number; maxMs?: number };
  readonly clock?: Clock;
}

/** Opens the store a `kubernetes://` value names with `settings`; starts listing at once. */
export function openKubernetesStore(settings: unknown, logger?: Logger): KubernetesStore {
  const parsed = KubernetesStoreSettingsSchema.safeParse(settings ?? {});
  if (!parsed.success) throw new StoreError('Misconfigured', `kubernetes store settings: ${formatIssues(parsed.error).join('; ')}`);
  let credentials: ApiCredentials;
  try {
    // A mounted token is the daemon's own identity (see the PolicyDaemon's objects); a token file is
    // read again on each request, so a rotated token is picked up without a restart.
    const dir = parsed.data.credentialsDir;
    credentials = dir !== undefined ? mountedTokenCredentials(dir) : kubeconfigCredentials(parsed.data.kubeconfig);
  } catch (error) {
    if (error instanceof CredentialsError) throw new StoreError('Misconfigured', `kubernetes store: ${error.message}`, { cause: error });
    throw error;
  }
  const namespaces = parsed.data.namespaces ?? (credentials.namespace ? [credentials.namespace] : undefined);
  if (namespaces === undefined) throw new StoreError('Misconfigured', 'kubernetes store: name the namespaces to serve (storeSettings.namespaces); the credentials name none');
  const store = new KubernetesStore({ credentials, namespaces, logger });
  store.start();
  return store;
}

/**
 * The Kubernetes store: the MailUserRestriction resources of some namespaces, held in memory and
 * kept current by a watch (one informer per namespace: a namespaced Role is all it needs).
 * Restrictions with a backendRef belong to a MailBackend and are left out.
 *
 * Until every namespace has been listed once, lookups fail (the daemon answers the failure
 * action) and {@link loaded} is false. After that an API server outage changes nothing: the
 * informers keep their cache, retry with backoff, resume the watch and re-list when the history
 * is gone, and {@link stale} says so meanwhile. An invalid resource is ignored with one log line
 * (the operator reports it InvalidSpec, with an Event).
 */
export class KubernetesStore implements MailboxReader {
  readonly kind = 'kubernetes';
  readonly #index = new RestrictionIndex();
  readonly #informers: ResourceInformer<KubernetesObject>[];
  readonly #listeners: ((changed?: readonly string[]) => void)[] = [];
  readonly #log: Logger | undefined;
  readonly #credentials: ApiCredentials;
  readonly #disconnected = new Set<string>();
  #loaded = false;

  constructor(options: KubernetesStoreOptions) {
    this.#log = options.logger;
    this.#credentials = options.credentials;
    const client = new CollectionClient(options.credentials);
    const strings = new StringPool();
    const pools: HoldPools = { strings, lists: new ListsPool({ strings }) };
    this.#informers = options.namespaces.map((namespace) => {
      const path = `/apis/${API_GROUP}/v1alpha1/namespaces/${encodeURIComponent(namespace)}/mailuserrestrictions`;
      const informer = new ResourceInformer<KubernetesObject>({
        watch: (p, query, onEvent, done) => client.watch(p, query, onEvent, done),
        name: `mailuserrestrictions/${namespace}`,
        path,
        namespace,
        list: (o: ListOptions) => client.list(path, o) as Promise<KubernetesListObject<KubernetesObject>>,
        transform: (obj) => holdRestriction(obj, pools) as KubernetesObject,
        backoff: { initialMs: options.backoff?.initialMs ?? 500, maxMs: options.backoff?.maxMs ?? 10_000 },
        onConnectionChange: (connected, error) => this.#connection(namespace, connected, error),
        logger: options.logger,
        clock: options.clock,
      });
      informer.onAdd((obj) => this.#changed(this.#index.set(this.#held(obj))));
      informer.onUpdate((obj, old) => this.#changed(this.#index.set(this.#held(obj), old as HeldRestriction)));
      informer.onDelete((obj) => this.#changed(this.#index.delete(obj as HeldRestriction)));
      return informer;
    });
  }

  /** Starts listing and watching every namespace in the background. */
  start(): void {
    for (const informer of this.#informers) informer.start();
    void this.#awaitFirstList();
  }

  async #awaitFirstList(): Promise<void> {
    for (;;) {
      try {
        await this.whenLoaded();
        break;
      } catch (error) {
        // Still no list after a minute (the informer keeps trying): wait on, unless closed.
        if (!(error instanceof InformerError && error.kind === 'SyncTimeout')) return;
      }
    }
    // The list's garbage (every page parsed whole, the maps grown to hold it) would sit in the heap
    // until the old generation fills, which a daemon that keeps what it holds may never do.
    const collected = releaseGarbage();
    this.#loaded = true;
    this.#log?.info({ mailboxes: this.#index.size, namespaces: this.#informers.length }, 'restrictions listed; deciding from them now');
    if (!collected) this.#log?.info("Node.js was started without --expose-gc: the list's garbage stays in the heap until V8 next collects the old generation (the daemon's container starts it with the option)");
    for (const listener of this.#listeners) listener();
  }

  /** Resolves once every namespace has been listed; rejects after `timeoutMs` or on close. */
  async whenLoaded(timeoutMs = 60_000): Promise<void> {
    await Promise.all(this.#informers.map((i) => i.waitForSync(timeoutMs)));
  }

  /** Mailboxes with a restriction (the owner's, when several name one). */
  get size(): number {
    return this.#index.size;
  }

  loaded(): boolean {
    return this.#loaded;
  }

  ready(): boolean {
    return this.#loaded;
  }

  stale(): boolean {
    return this.#disconnected.size > 0;
  }

  onChange(listener: (changed?: readonly string[]) => void): void {
    this.#listeners.push(listener);
  }

  peek(key: string): MailboxRecord | undefined {
    return this.#index.get(key);
  }

  async lookup(keys: readonly string[], _signal?: AbortSignal): Promise<ReadonlyMap<string, MailboxRecord>> {
    if (!this.#loaded) throw new StoreError('Unavailable', 'the MailUserRestrictions have not been listed yet');
    return peekEach(keys, (key) => this.#index.get(key));
  }

  async close(): Promise<void> {
    await Promise.all(this.#informers.map((i) => i.stop()));
    this.#credentials.connections.destroy();
  }

  #held(obj: KubernetesObject): HeldRestriction {
    const held = obj as HeldRestriction;
    if (held.problem !== undefined) {
      this.#log?.warn(
        { restriction: `${held.namespace}/${held.name}`, mailbox: held.address },
        `MailUserRestriction ${held.namespace}/${held.name} is invalid and ignored: ${held.problem}`,
      );
    }
    return held;
  }

  #changed(mailboxes: readonly string[]): void {
    if (mailboxes.length === 0 || !this.#loaded) return;
    for (const listener of this.#listeners) listener(mailboxes);
  }

  #connection(namespace: string, connected: boolean, error: unknown): void {
    const wasStale = this.stale();
    if (connected) this.#disconnected.delete(namespace);
    else this.#disconnected.add(namespace);
    if (!wasStale && this.stale() && !this.#loaded) {
      this.#log?.warn({ namespace, err: (error as Error | undefined)?.message }, 'the API server cannot be reached: answering the failure action until the restrictions are listed');
    } else if (!wasStale && this.stale()) {
      this.#log?.warn({ namespace, err: (error as Error | undefined)?.message }, `the API server cannot be reached: still deciding from the ${this.#index.size} mailboxes last listed`);
    } else if (wasStale && !this.stale()) {
      this.#log?.info({ mailboxes: this.#index.size }, 'the API server is reachable again: watching the restrictions again');
    }
  }
}
