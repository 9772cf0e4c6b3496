import { hostname } from 'node:os';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, type KubernetesListObject, type KubernetesObject, type V1Deployment, type V1Pod, type V1Secret } from '@kubernetes/client-node';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { API_VERSION_NAME, PLURALS, type MailwardenKind } from '../api/kinds.ts';
import { MailwardenKubeClient } from '../kube/kube-client.ts';
import { slim, slimShared, StringPool } from '../controller/cached-object.ts';
import { reuseConnections } from '../kube/kube-config.ts';
import { MAIL_BACKEND_KIND } from '../api/mail-backend.ts';
import { API_GROUP, API_VERSION, MAIL_USER_RESTRICTION_KIND } from '../api/mail-user-restriction.ts';
import { Controller } from '../controller/controller.ts';
import { EventRecorder } from '../controller/events.ts';
import { ResourceInformer, type ListOptions } from '../controller/informer.ts';
import { LeaderElector } from '../controller/leader-election.ts';
import { WorkQueue } from '../controller/work-queue.ts';
import type { Logger } from '../observability/logger.ts';
import { BackendConnections, type StoreOpener } from '../reconcilers/backend-connections.ts';
import { MailBackendReconciler } from '../reconcilers/mail-backend.ts';
import { FINALIZER, MailUserRestrictionReconciler } from '../reconcilers/mail-user-restriction.ts';
import { PolicyDaemonReconciler, type PolicyDaemonObject } from '../reconcilers/policy-daemon.ts';
import { POLICY_DAEMON_LABEL } from '../reconcilers/policy-daemon-objects.ts';
import { KubePolicyDaemonWriter } from '../reconcilers/policy-daemon-writer.ts';
import { SidecarWebhook, type SidecarWebhookOptions } from '../webhook/sidecar-webhook.ts';
import { keyOf } from '../api/object-key.ts';
import { targetKey } from '../api/restriction-owner.ts';
import { TargetIndex } from '../reconcilers/ownership.ts';
import type { BackendObject, EventSink, EventTarget, Lister, RestrictionObject } from '../reconcilers/types.ts';

export interface OperatorOptions {
  readonly kubeConfig: KubeConfig;
  /** Namespaces to watch; empty or undefined watches all (needs cluster-wide read of Secrets). */
  readonly namespaces?: readonly string[];
  /** Concurrent MailUserRestriction reconciles (default 4). */
  readonly workers?: number;
  /** Periodic resync that doubles as drift correction (default 5 min). */
  readonly resyncMs?: number;
  readonly leaderElection?: {
    readonly namespace: string;
    readonly name?: string;
    readonly identity?: string;
    readonly leaseDurationMs?: number;
    readonly renewDeadlineMs?: number;
    readonly retryPeriodMs?: number;
  };
  /** Called when leadership is lost: the process should exit and be restarted. */
  readonly onLostLeadership?: () => void;
  readonly logger: Logger;
  readonly registry?: Registry;
  /** Opens stores (tests may count writes); default the real SQL and LDAP stores. */
  readonly openStore?: StoreOpener;
  readonly mailboxRetryMs?: number;
  readonly backendProbeIntervalMs?: number;
  /** PolicyDaemon support (controller, and the sidecar webhook when `webhook` is given). */
  readonly policyDaemons?: {
    /** The daemon image when a PolicyDaemon names none. */
    readonly image: string;
    /** Pull secrets for that image, in each watched namespace. */
    readonly imagePullSecrets?: readonly string[];
    readonly webhook?: Omit<SidecarWebhookOptions, 'kubeConfig' | 'daemons' | 'backends' | 'image' | 'imagePullSecrets' | 'logger'>;
  };
}

/**
 * The operator assembled: informers for MailUserRestriction, MailBackend and Secret, a
 * controller per kind on its work queue, leader election, and the wiring that turns a change
 * of one object into the keys it affects. Watch → queue → reconciler → store → status.
 */
export class Operator {
  readonly registry: Registry;
  readonly #options: OperatorOptions;
  readonly #log: Logger;
  readonly #restrictions: Scoped<RestrictionObject>;
  readonly #backends: Scoped<BackendObject>;
  readonly #secrets: Scoped<V1Secret>;
  /** Restrictions by the mailbox they write: conflicts and owners without scanning them all. */
  readonly #byTarget = new TargetIndex<RestrictionObject>();
  readonly #restrictionQueue = new WorkQueue();
  readonly #backendQueue = new WorkQueue();
  readonly #controllers: Controller[];
  readonly #connections: BackendConnections;
  readonly #elector: LeaderElector | undefined;
  readonly #daemons: PolicyDaemonParts | undefined;
  #leading = false;
  #stopped = false;

  constructor(options: OperatorOptions) {
    // One connection pool for all the operator's requests (client-node opens one per request).
    this.#options = { ...options, kubeConfig: reuseConnections(options.kubeConfig) };
    this.#log = options.logger;
    this.registry = options.registry ?? new Registry();
    if (options.registry === undefined) collectDefaultMetrics({ register: this.registry, prefix: 'mailwarden_operator_' });
    const kc = this.#options.kubeConfig;
    const namespaces = options.namespaces && options.namespaces.length > 0 ? options.namespaces : [undefined];
    const objects = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    const strings = new StringPool();
    const custom = <T,>(kind: MailwardenKind) =>
      new Scoped<T>(
        namespaces.map(
          (ns) =>
            new ResourceInformer<KubernetesObject>({
              kubeConfig: kc,
              transform: (obj) => slimShared(obj, strings),
              name: `${PLURALS[kind]}${ns ? `/${ns}` : ''}`,
              path: `/apis/${API_GROUP}/${API_VERSION_NAME}/${ns ? `namespaces/${ns}/` : ''}${PLURALS[kind]}`,
              list: (o: ListOptions) =>
                (ns
                  ? objects.listNamespacedCustomObject({ group: API_GROUP, version: API_VERSION_NAME, namespace: ns, plural: PLURALS[kind], ...o })
                  : objects.listClusterCustomObject({ group: API_GROUP, version: API_VERSION_NAME, plural: PLURALS[kind], ...o })) as Promise<KubernetesListObject<KubernetesObject>>,
              logger: this.#log,
            }),
        ),
      );
    this.#restrictions = custom<RestrictionObject>('MailUserRestriction');
    this.#backends = custom<BackendObject>('MailBackend');
    this.#secrets = new Scoped<V1Secret>(
      namespaces.map(
        (ns) =>
          new ResourceInformer<KubernetesObject>({
            kubeConfig: kc,
            transform: slim,
            name: `secrets${ns ? `/${ns}` : ''}`,
            path: ns ? `/api/v1/namespaces/${ns}/secrets` : '/api/v1/secrets',
            list: (o: ListOptions) => (ns ? core.listNamespacedSecret({ namespace: ns, ...o }) : core.listSecretForAllNamespaces(o)),
            logger: this.#log,
          }),
      ),
    );

    const dropped = new Counter({ name: 'mailwarden_operator_events_dropped_total', help: 'Events not posted because the event queue was full (a burst of changes).', registers: [this.registry] });
    const recorder = new EventRecorder({ kubeConfig: kc, component: 'mailwarden-operator', logger: this.#log, onDropped: () => dropped.inc() });
    const events = eventSink(recorder);
    const client = new MailwardenKubeClient(kc);
    this.#connections = new BackendConnections({ open: options.openStore, logger: this.#log });
    const drift = new Counter({ name: 'mailwarden_operator_drift_corrections_total', help: 'Store contents rewritten because they had drifted from the spec.', registers: [this.registry] });

    const restrictionReconciler = new MailUserRestrictionReconciler({
      restrictions: this.#restrictions,
      backends: this.#backends,
      secrets: this.#secrets,
      connections: this.#connections,
      client,
      events,
      logger: this.#log,
      mailboxRetryMs: options.mailboxRetryMs,
      onDriftCorrected: () => drift.inc(),
      sameTarget: (target) => this.#byTarget.get(target),
      kubernetesDaemons: options.policyDaemons === undefined ? undefined : (namespace) => this.#kubernetesDaemons(namespace),
    });
    const backendReconciler = new MailBackendReconciler({
      backends: this.#backends,
      secrets: this.#secrets,
      connections: this.#connections,
      client,
      events,
      logger: this.#log,
      probeIntervalMs: options.backendProbeIntervalMs,
    });
    this.#controllers = [
      new Controller({
        name: 'mailuserrestriction',
        queue: this.#restrictionQueue,
        reconcile: (key) => restrictionReconciler.reconcile(key),
        concurrency: options.workers ?? 4,
        resyncMs: options.resyncMs ?? 300_000,
        keys: () => this.#restrictions.list().map((r) => keyOf(r.metadata.namespace, r.metadata.name)),
        registry: this.registry,
        logger: this.#log,
      }),
      new Controller({
        name: 'mailbackend',
        queue: this.#backendQueue,
        reconcile: (key) => backendReconciler.reconcile(key),
        concurrency: 2,
        resyncMs: options.resyncMs ?? 300_000,
        keys: () => this.#backends.list().map((b) => keyOf(b.metadata.namespace, b.metadata.name)),
        registry: this.registry,
        logger: this.#log,
      }),
    ];
    if (options.policyDaemons !== undefined) {
      this.#daemons = this.#policyDaemonParts(options.policyDaemons, namespaces, events);
      this.#controllers.push(this.#daemons.controller);
    }
    this.#wire();

    const le = options.leaderElection;
    if (le !== undefined) {
      this.#elector = new LeaderElector({
        kubeConfig: kc,
        namespace: le.namespace,
        name: le.name ?? 'mailwarden-operator',
        identity: le.identity ?? `${hostname()}-${process.pid}`,
        leaseDurationMs: le.leaseDurationMs,
        renewDeadlineMs: le.renewDeadlineMs,
        retryPeriodMs: le.retryPeriodMs,
        logger: this.#log,
        onStartedLeading: () => this.#lead(),
        onStoppedLeading: () => {
          if (this.#stopped) return;
          this.#log.error({}, 'leadership lost: stopping so that exactly one replica writes');
          void this.#stopControllers().finally(() => options.onLostLeadership?.());
        },
      });
    }
  }

  /** Starts the informers, waits for their caches, then leads (or campaigns for the lease). */
  async start(): Promise<void> {
    for (const informer of this.#informers()) informer.start();
    await Promise.all(this.#informers().map((i) => i.waitForSync()));
    this.#log.info({ restrictions: this.#restrictions.list().length, backends: this.#backends.list().length }, 'operator caches synced');
    // Every replica serves admission, leader or not; it decides from the synced caches.
    await this.#daemons?.webhook?.start();
    if (this.#elector !== undefined) this.#elector.start();
    else this.#lead();
  }

  /** Synced and either leading or a healthy standby. */
  ready(): boolean {
    return !this.#stopped && this.#informers().every((i) => i.hasSynced);
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** SIGTERM: stop reconciling (in-flight ones finish), release the lease, close stores. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#stopControllers();
    await this.#daemons?.webhook?.stop();
    await this.#elector?.stop();
    await Promise.all(this.#informers().map((i) => i.stop()));
    await this.#connections.closeAll();
  }

  #lead(): void {
    if (this.#leading || this.#stopped) return;
    this.#leading = true;
    this.#log.info({}, 'leading: reconciling');
    for (const c of this.#controllers) c.start();
    // Everything once at the start: level-triggered, nothing assumed from before.
    for (const r of this.#restrictions.list()) this.#restrictionQueue.add(keyOf(r.metadata.namespace, r.metadata.name));
    for (const b of this.#backends.list()) this.#backendQueue.add(keyOf(b.metadata.namespace, b.metadata.name));
    for (const d of this.#daemons?.daemons.list() ?? []) this.#daemons?.queue.add(keyOf(d.metadata.namespace, d.metadata.name));
  }

  async #stopControllers(): Promise<void> {
    if (!this.#leading) return;
    this.#leading = false;
    await Promise.all(this.#controllers.map((c) => c.stop()));
  }

  #informers(): ResourceInformer<KubernetesObject>[] {
    const daemons = this.#daemons === undefined ? [] : [...this.#daemons.daemons.informers, ...this.#daemons.pods.informers, ...this.#daemons.deployments.informers];
    return [...this.#restrictions.informers, ...this.#backends.informers, ...this.#secrets.informers, ...daemons];
  }

  /** The PolicyDaemons with store Kubernetes in `namespace` (not being deleted). */
  #kubernetesDaemons(namespace: string): string[] {
    return (this.#daemons?.daemons.list(namespace) ?? []).filter((d) => d.spec?.store === 'Kubernetes' && d.metadata.deletionTimestamp === undefined).map((d) => d.metadata.name);
  }

  /** The webhook's certificates (tests rotate them); undefined without a webhook. */
  get webhook(): SidecarWebhook | undefined {
    return this.#daemons?.webhook;
  }

  /**
   * PolicyDaemon: its informer, the injected pods and Service-mode Deployments (both found by
   * the mailwarden.io/policy-daemon label, so only mailwarden's are watched), the controller and
   * the webhook.
   */
  #policyDaemonParts(options: NonNullable<OperatorOptions['policyDaemons']>, namespaces: readonly (string | undefined)[], events: EventSink): PolicyDaemonParts {
    const kc = this.#options.kubeConfig;
    const objects = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    const labelSelector = POLICY_DAEMON_LABEL;
    const informer = (name: string, path: string, list: (o: ListOptions) => Promise<KubernetesListObject<KubernetesObject>>, selector?: string) =>
      new ResourceInformer<KubernetesObject>({ kubeConfig: kc, name, path, list, labelSelector: selector, transform: slim, logger: this.#log });
    const daemons = new Scoped<PolicyDaemonObject>(
      namespaces.map((ns) =>
        informer(`policydaemons${ns ? `/${ns}` : ''}`, `/apis/${API_GROUP}/${API_VERSION_NAME}/${ns ? `namespaces/${ns}/` : ''}policydaemons`, (o) =>
          (ns
            ? objects.listNamespacedCustomObject({ group: API_GROUP, version: API_VERSION_NAME, namespace: ns, plural: 'policydaemons', ...o })
            : objects.listClusterCustomObject({ group: API_GROUP, version: API_VERSION_NAME, plural: 'policydaemons', ...o })) as Promise<KubernetesListObject<KubernetesObject>>,
        ),
      ),
    );
    const pods = new Scoped<V1Pod>(
      namespaces.map((ns) =>
        informer(`pods${ns ? `/${ns}` : ''}`, ns ? `/api/v1/namespaces/${ns}/pods` : '/api/v1/pods', (o) => (ns ? core.listNamespacedPod({ namespace: ns, ...o }) : core.listPodForAllNamespaces(o)), labelSelector),
      ),
    );
    const deployments = new Scoped<V1Deployment>(
      namespaces.map((ns) =>
        informer(`deployments${ns ? `/${ns}` : ''}`, ns ? `/apis/apps/v1/namespaces/${ns}/deployments` : '/apis/apps/v1/deployments', (o) => (ns ? apps.listNamespacedDeployment({ namespace: ns, ...o }) : apps.listDeploymentForAllNamespaces(o)), labelSelector),
      ),
    );
    const queue = new WorkQueue();
    const reconciler = new PolicyDaemonReconciler({ daemons, backends: this.#backends, pods, deployments, writer: new KubePolicyDaemonWriter(kc), events, logger: this.#log, image: options.image, imagePullSecrets: options.imagePullSecrets });
    const controller = new Controller({
      name: 'policydaemon',
      queue,
      reconcile: (key) => reconciler.reconcile(key),
      concurrency: 2,
      resyncMs: this.#options.resyncMs ?? 300_000,
      keys: () => daemons.list().map((d) => keyOf(d.metadata.namespace, d.metadata.name)),
      registry: this.registry,
      logger: this.#log,
    });
    const webhook = options.webhook === undefined ? undefined : new SidecarWebhook({ ...options.webhook, kubeConfig: kc, daemons, backends: this.#backends, image: options.image, imagePullSecrets: options.imagePullSecrets, logger: this.#log });
    const enqueue = (namespace: string | undefined, name: string | undefined) => this.#leading && name !== undefined && queue.add(keyOf(namespace, name));
    daemons.onChange((d) => enqueue(d.metadata.namespace, d.metadata.name));
    // Restrictions without backendRef report whether a store-Kubernetes daemon serves them:
    // looked at again when one comes, goes or changes store (not on its status writes).
    const serving = new Map<string, boolean>();
    daemons.onChange((d, type) => {
      const key = keyOf(d.metadata.namespace, d.metadata.name);
      const now = type !== 'delete' && d.spec?.store === 'Kubernetes' && d.metadata.deletionTimestamp === undefined;
      if ((serving.get(key) ?? false) === now) return;
      if (now) serving.set(key, true);
      else serving.delete(key);
      if (!this.#leading) return;
      for (const r of this.#restrictions.list(d.metadata.namespace)) {
        if (r.spec?.backendRef === undefined) this.#restrictionQueue.add(keyOf(r.metadata.namespace, r.metadata.name));
      }
    });
    pods.onChange((p) => enqueue(p.metadata?.namespace, p.metadata?.labels?.[POLICY_DAEMON_LABEL]));
    deployments.onChange((d) => enqueue(d.metadata?.namespace, d.metadata?.labels?.[POLICY_DAEMON_LABEL]));
    this.#backends.onChange((b) => {
      for (const d of daemons.list(b.metadata.namespace)) if (d.spec?.backendRef?.name === b.metadata.name) enqueue(d.metadata.namespace, d.metadata.name);
    });
    return { daemons, pods, deployments, queue, controller, webhook };
  }

  /** Which keys a change touches. Queues de-duplicate, so generous is cheap. */
  #wire(): void {
    const enqueueRestriction = (r: RestrictionObject, previousTarget: string | undefined) => {
      this.#restrictionQueue.add(keyOf(r.metadata.namespace, r.metadata.name));
      // Others on the same mailbox (and on the one it left): a conflict may resolve, or the owner may have gone.
      for (const target of [targetKey(r), previousTarget]) {
        if (target === undefined) continue;
        for (const other of this.#byTarget.get(target)) {
          if (other.metadata.name !== r.metadata.name) this.#restrictionQueue.add(keyOf(other.metadata.namespace, other.metadata.name));
        }
      }
    };
    const enqueueBackend = (namespace: string | undefined, name: string) => {
      this.#backendQueue.add(keyOf(namespace, name));
      for (const r of this.#restrictions.list(namespace)) {
        if (r.spec?.backendRef?.name === name) this.#restrictionQueue.add(keyOf(r.metadata.namespace, r.metadata.name));
      }
    };
    // What a reconcile acts on, per restriction: an update that changes none of it is a status
    // write or our own finalizer going on (both written by a reconcile that goes on to sync) and
    // needs no reconcile — controller-runtime's GenerationChangedPredicate, plus deletion and a
    // live object missing our finalizer (someone removed it: put it back). Drift is caught by
    // the resync. Halves the reconciles of a burst of creates.
    const acted = new Map<string, string>();
    const actedOn = (r: RestrictionObject) => `${r.metadata.generation ?? ''}|${String(r.metadata.deletionTimestamp ?? '')}`;
    // Restrictions without backendRef write nothing and get no finalizer.
    const unfinalized = (r: RestrictionObject) => r.spec?.backendRef !== undefined && r.metadata.deletionTimestamp === undefined && !(r.metadata.finalizers ?? []).includes(FINALIZER);
    this.#restrictions.onChange((r, type) => {
      // The index follows the cache whether or not this replica leads.
      let previousTarget: string | undefined;
      const key = keyOf(r.metadata.namespace, r.metadata.name);
      if (type === 'delete') {
        this.#byTarget.delete(r);
        acted.delete(key);
      } else {
        previousTarget = this.#byTarget.set(r);
        const fingerprint = actedOn(r);
        const unchanged = type === 'update' && acted.get(key) === fingerprint && !unfinalized(r);
        acted.set(key, fingerprint);
        if (unchanged) return;
      }
      if (this.#leading) enqueueRestriction(r, previousTarget);
    });
    this.#backends.onChange((b) => this.#leading && enqueueBackend(b.metadata.namespace, b.metadata.name));
    this.#secrets.onChange((s) => {
      if (!this.#leading) return;
      for (const b of this.#backends.list(s.metadata?.namespace)) {
        const name = s.metadata?.name;
        if (b.spec?.credentialsSecretRef?.name === name || b.spec?.caSecretRef?.name === name) enqueueBackend(b.metadata.namespace, b.metadata.name);
      }
    });
  }
}

interface PolicyDaemonParts {
  readonly daemons: Scoped<PolicyDaemonObject>;
  readonly pods: Scoped<V1Pod>;
  readonly deployments: Scoped<V1Deployment>;
  readonly queue: WorkQueue;
  readonly controller: Controller;
  readonly webhook: SidecarWebhook | undefined;
}


/**
 * Several per-namespace informers seen as one lister of `T`. The informers hold the API server's
 * JSON; `T` is the shape the reconcilers validate it into (timestamps stay strings).
 */
class Scoped<T> implements Lister<T> {
  readonly informers: ResourceInformer<KubernetesObject>[];
  constructor(informers: ResourceInformer<KubernetesObject>[]) {
    this.informers = informers;
  }
  get(namespace: string, name: string): T | undefined {
    for (const i of this.informers) {
      const found = i.get(namespace, name);
      if (found !== undefined) return found as T;
    }
    return undefined;
  }
  list(namespace?: string): T[] {
    return this.informers.flatMap((i) => i.list(namespace)) as T[];
  }
  onChange(fn: (obj: T, type: 'add' | 'update' | 'delete') => void): void {
    for (const i of this.informers) i.onChange((obj, type) => fn(obj as T, type));
  }
}

const KINDS: Record<string, string> = { [MAIL_USER_RESTRICTION_KIND]: API_VERSION, [MAIL_BACKEND_KIND]: API_VERSION, PolicyDaemon: API_VERSION };

function eventSink(recorder: EventRecorder): EventSink {
  // Objects from a list may lack apiVersion/kind; Events need both.
  const involved = (t: EventTarget) => ({ ...t, apiVersion: t.apiVersion ?? KINDS[t.kind], kind: t.kind }) as never;
  return {
    normal: (t, reason, message) => void recorder.normal(involved(t), reason, message),
    warning: (t, reason, message) => void recorder.warning(involved(t), reason, message),
  };
}
