import { hostname } from 'node:os';
import type { KubeConfig, V1Deployment, V1Pod, V1Secret } from '@kubernetes/client-node';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import type { MailwardenKind } from '../api/kinds.ts';
import { MailwardenKubeClient } from '../kube/kube-client.ts';
import { reuseConnections } from '../kube/kube-config.ts';
import { EventRecorder } from '../controller/events.ts';
import { ControllerManager, type CacheReader, type Change, type ControllerDefinition, type ObjectRef, type WatchDefinition } from '../controller/manager.ts';
import type { Logger } from '../observability/logger.ts';
import { BackendConnections, type StoreOpener } from '../reconcilers/backend-connections.ts';
import { MailBackendReconciler } from '../reconcilers/mail-backend.ts';
import { FINALIZER, MailUserRestrictionReconciler, type ServingDaemon } from '../reconcilers/mail-user-restriction.ts';
import { targetKey } from '../api/restriction-owner.ts';
import { daemonServes, PolicyDaemonReconciler, type PolicyDaemonObject } from '../reconcilers/policy-daemon.ts';
import { POLICY_DAEMON_LABEL } from '../reconcilers/policy-daemon-objects.ts';
import { KubePolicyDaemonWriter } from '../reconcilers/policy-daemon-writer.ts';
import { StatusWriter } from '../reconcilers/status.ts';
import { keyOf } from '../api/object-key.ts';
import type { BackendObject, EventSink, RestrictionObject } from '../reconcilers/types.ts';
import { API_VERSION } from '../api/mail-user-restriction.ts';
import { SidecarWebhook, type SidecarWebhookOptions } from '../webhook/sidecar-webhook.ts';
import { Index, operatorKinds, type OperatorKind } from './kinds.ts';

export interface OperatorOptions {
  readonly kubeConfig: KubeConfig;
  /** Namespaces to watch; empty or undefined watches all (needs cluster-wide read of Secrets). */
  readonly namespaces?: readonly string[];
  /**
   * The only Secret names MailBackends may use (the chart's rbac.backendSecretNames, which its
   * Role grants by resourceNames); others are refused and never watched. Default: any.
   */
  readonly backendSecretNames?: readonly string[];
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
    /** Further images and restricted actions (REDIRECT, BCC…) a PolicyDaemon may use (the chart's values). */
    readonly allowance?: { readonly images?: readonly string[]; readonly actions?: readonly string[] };
    /** Namespaces whose pods may scrape Service-mode daemons' metrics (their NetworkPolicy). */
    readonly metricsNamespaces?: readonly string[];
    readonly webhook?: Omit<SidecarWebhookOptions, 'kubeConfig' | 'daemons' | 'backends' | 'image' | 'imagePullSecrets' | 'allowance' | 'logger'>;
  };
}

/**
 * The operator assembled: the table of kinds (./kinds.ts) and one controller per reconciled kind,
 * declared below as data — which changes queue which keys, through which predicate — run by the
 * generic ControllerManager. Watch → queue → reconciler → store → status.
 */
export class Operator {
  readonly registry: Registry;
  readonly #log: Logger;
  readonly #manager: ControllerManager<OperatorKind>;
  readonly #connections: BackendConnections;
  readonly #restrictions: CacheReader<RestrictionObject>;
  readonly #backends: CacheReader<BackendObject>;
  readonly #webhook: SidecarWebhook | undefined;
  #stopped = false;

  constructor(options: OperatorOptions) {
    // One connection pool for all the operator's requests (client-node opens one per request).
    const kc = reuseConnections(options.kubeConfig);
    this.#log = options.logger;
    this.registry = options.registry ?? new Registry();
    if (options.registry === undefined) collectDefaultMetrics({ register: this.registry, prefix: 'mailwarden_operator_' });
    const le = options.leaderElection;
    this.#manager = new ControllerManager<OperatorKind>({
      kubeConfig: kc,
      namespaces: options.namespaces ?? [],
      kinds: operatorKinds({ policyDaemons: options.policyDaemons !== undefined, secretNames: options.backendSecretNames }),
      resyncMs: options.resyncMs,
      leaderElection:
        le === undefined
          ? undefined
          : { ...le, name: le.name ?? 'mailwarden-operator', identity: le.identity ?? `${hostname()}-${process.pid}` },
      onLostLeadership: options.onLostLeadership,
      registry: this.registry,
      logger: this.#log,
    });
    const restrictions = this.#manager.reader<RestrictionObject>('MailUserRestriction');
    const backends = this.#manager.reader<BackendObject>('MailBackend');
    const allowedSecrets = options.backendSecretNames;
    const secrets = { ...this.#manager.reader<V1Secret>('Secret'), readable: (name: string) => allowedSecrets === undefined || allowedSecrets.includes(name) };
    this.#restrictions = restrictions;
    this.#backends = backends;

    const dropped = new Counter({ name: 'mailwarden_operator_events_dropped_total', help: 'Events not posted because the event queue was full (a burst of changes).', registers: [this.registry] });
    const recorder = new EventRecorder({ kubeConfig: kc, component: 'mailwarden-operator', logger: this.#log, onDropped: () => dropped.inc() });
    const events = eventSink(recorder);
    const outcomes = new Counter({
      name: 'mailwarden_operator_outcomes_total',
      help: 'What each reconcile concluded (its Ready condition), by kind, Ready and reason, whether or not status changed.',
      labelNames: ['kind', 'ready', 'reason'] as const,
      registers: [this.registry],
    });
    const client = new MailwardenKubeClient(kc);
    // One status writer per kind: the same condition, Event, metric and patch for all three.
    const statusOf = (kind: MailwardenKind) =>
      new StatusWriter({ kind, apiVersion: API_VERSION, patch: (ns, name, status) => client.patchStatus(kind, ns, name, status), events, outcomes, logger: this.#log });
    this.#connections = new BackendConnections({ open: options.openStore, logger: this.#log });
    const drift = new Counter({ name: 'mailwarden_operator_drift_corrections_total', help: 'Store contents rewritten because they had drifted from the spec.', registers: [this.registry] });

    const restrictionReconciler = new MailUserRestrictionReconciler({
      restrictions,
      backends,
      secrets,
      connections: this.#connections,
      client,
      status: statusOf('MailUserRestriction'),
      logger: this.#log,
      mailboxRetryMs: options.mailboxRetryMs,
      onDriftCorrected: () => drift.inc(),
      sameTarget: (target) => restrictions.byIndex(Index.Target, target),
      sameMailbox: (mailbox) => restrictions.byIndex(Index.Mailbox, mailbox),
      kubernetesDaemons: options.policyDaemons === undefined ? undefined : (namespace) => kubernetesDaemons(this.#manager.reader<PolicyDaemonObject>('PolicyDaemon'), namespace),
    });
    const backendReconciler = new MailBackendReconciler({
      backends,
      secrets,
      connections: this.#connections,
      status: statusOf('MailBackend'),
      logger: this.#log,
      probeIntervalMs: options.backendProbeIntervalMs,
    });
    this.#manager.add(restrictionController(restrictions, backends, (key) => restrictionReconciler.reconcile(key), options.workers ?? 4, options.policyDaemons !== undefined));
    this.#manager.add(backendController(backends, (key) => backendReconciler.reconcile(key)));

    const daemonOptions = options.policyDaemons;
    if (daemonOptions !== undefined) {
      const daemons = this.#manager.reader<PolicyDaemonObject>('PolicyDaemon');
      const reconciler = new PolicyDaemonReconciler({
        daemons,
        backends,
        pods: this.#manager.reader<V1Pod>('Pod'),
        deployments: this.#manager.reader<V1Deployment>('Deployment'),
        writer: new KubePolicyDaemonWriter(kc),
        status: statusOf('PolicyDaemon'),
        logger: this.#log,
        image: daemonOptions.image,
        imagePullSecrets: daemonOptions.imagePullSecrets,
        allowance: daemonOptions.allowance,
        metricsNamespaces: daemonOptions.metricsNamespaces,
      });
      this.#manager.add(policyDaemonController(daemons, (key) => reconciler.reconcile(key)));
      this.#webhook =
        daemonOptions.webhook === undefined
          ? undefined
          : new SidecarWebhook({ ...daemonOptions.webhook, kubeConfig: kc, daemons, backends, image: daemonOptions.image, imagePullSecrets: daemonOptions.imagePullSecrets, allowance: daemonOptions.allowance, logger: this.#log });
    }
  }

  /** Starts the informers, waits for their caches, then leads (or campaigns for the lease). */
  async start(): Promise<void> {
    await this.#manager.sync();
    this.#log.info({ restrictions: this.#restrictions.list().length, backends: this.#backends.list().length }, 'operator caches synced');
    // Every replica serves admission, leader or not; it decides from the synced caches.
    await this.#webhook?.start();
    this.#manager.campaign();
  }

  /** Synced and either leading or a healthy standby. */
  ready(): boolean {
    return !this.#stopped && this.#manager.ready;
  }

  get isLeader(): boolean {
    return this.#manager.isLeader;
  }

  /** SIGTERM: stop reconciling (in-flight ones finish), release the lease, close stores. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#manager.stopControllers();
    await this.#webhook?.stop();
    await this.#manager.stop();
    await this.#connections.closeAll();
  }

  /** The Secrets cached (`namespace/name`): only those MailBackends name, that it may read. */
  get cachedSecrets(): string[] {
    return this.#manager
      .reader<V1Secret>('Secret')
      .list()
      .map((s) => keyOf(s.metadata?.namespace, s.metadata?.name ?? ''))
      .sort();
  }

  /** The webhook's certificates (tests rotate them); undefined without a webhook. */
  get webhook(): SidecarWebhook | undefined {
    return this.#webhook;
  }
}

type Reconcile = ControllerDefinition<OperatorKind>['reconcile'];
const ref = (obj: { metadata: { namespace?: string; name: string } }): ObjectRef => ({ namespace: obj.metadata.namespace, name: obj.metadata.name });
const secretKey = (s: V1Secret) => keyOf(s.metadata?.namespace, s.metadata?.name ?? '');

/**
 * What a reconcile acts on, per restriction: an update that changes none of it is a status write
 * or our own finalizer going on (both written by a reconcile that goes on to sync) and needs no
 * reconcile — controller-runtime's GenerationChangedPredicate, plus deletion and a live object
 * missing our finalizer (someone removed it: put it back). Drift is caught by the resync. Halves
 * the reconciles of a burst of creates.
 */
function restrictionActedOn(r: RestrictionObject, change: Change, old: RestrictionObject | undefined): boolean {
  if (change !== 'update' || old === undefined) return true;
  const fingerprint = (o: RestrictionObject) => `${o.metadata.generation ?? ''}|${String(o.metadata.deletionTimestamp ?? '')}`;
  // Restrictions without backendRef write nothing and get no finalizer.
  const unfinalized = r.spec?.backendRef !== undefined && r.metadata.deletionTimestamp === undefined && !(r.metadata.finalizers ?? []).includes(FINALIZER);
  return fingerprint(old) !== fingerprint(r) || unfinalized;
}

/** A PolicyDaemon that decides from the restrictions without backendRef of its namespace. */
function servesUnbound(d: PolicyDaemonObject | undefined): boolean {
  return d !== undefined && d.spec?.store === 'Kubernetes' && d.metadata.deletionTimestamp === undefined;
}

/** What a restriction without backendRef reports from this PolicyDaemon: none, not ready, ready. */
function servingState(d: PolicyDaemonObject | undefined): 'none' | 'waiting' | 'ready' {
  if (!servesUnbound(d)) return 'none';
  return daemonServes(d!) ? 'ready' : 'waiting';
}

/** The PolicyDaemons with store Kubernetes in `namespace` (not being deleted), and whether they are ready. */
function kubernetesDaemons(daemons: CacheReader<PolicyDaemonObject>, namespace: string): ServingDaemon[] {
  return daemons.list(namespace).filter(servesUnbound).map((d) => ({ name: d.metadata.name, ready: daemonServes(d) }));
}

/**
 * MailUserRestriction: a restriction's own change also queues the others on its mailbox (and on
 * the one it left) — a conflict may resolve, or the owner may have gone. A MailBackend's change,
 * or a change of a Secret it reads, queues the restrictions that name it. Restrictions without
 * backendRef report whether a ready store-Kubernetes daemon serves them: looked at again when one
 * comes, goes, changes store or its status turns ready or not ready (not on its other status writes). Queues de-duplicate, so generous is
 * cheap.
 */
function restrictionController(
  restrictions: CacheReader<RestrictionObject>,
  backends: CacheReader<BackendObject>,
  reconcile: Reconcile,
  concurrency: number,
  policyDaemons: boolean,
): ControllerDefinition<OperatorKind> {
  const naming = (b: BackendObject) => restrictions.byIndex(Index.Backend, keyOf(b.metadata.namespace, b.metadata.name)).map(ref);
  const daemonWatch: WatchDefinition<OperatorKind, PolicyDaemonObject> = {
    kind: 'PolicyDaemon',
    predicate: (d, change, old) => (change === 'delete' ? servesUnbound(d) : servingState(d) !== servingState(old)),
    map: (d) => restrictions.list(d.metadata.namespace).filter((r) => r.spec?.backendRef === undefined).map(ref),
  };
  return {
    name: 'mailuserrestriction',
    kind: 'MailUserRestriction',
    reconcile,
    concurrency,
    watches: [
      {
        kind: 'MailUserRestriction',
        predicate: restrictionActedOn,
        map: (r: RestrictionObject, _change: Change, old: RestrictionObject | undefined) => {
          const targets = new Set([targetKey(r), old && targetKey(old)].filter((t) => t !== undefined));
          return [ref(r), ...[...targets].flatMap((t) => restrictions.byIndex(Index.Target, t).map(ref))];
        },
      },
      { kind: 'MailBackend', map: naming },
      { kind: 'Secret', map: (s: V1Secret) => backends.byIndex(Index.Secret, secretKey(s)).flatMap(naming) },
      ...(policyDaemons ? [daemonWatch] : []),
    ],
  };
}

/** MailBackend: its own changes, and those of the Secrets it reads (rotation). */
function backendController(backends: CacheReader<BackendObject>, reconcile: Reconcile): ControllerDefinition<OperatorKind> {
  return {
    name: 'mailbackend',
    kind: 'MailBackend',
    reconcile,
    concurrency: 2,
    watches: [{ kind: 'MailBackend' }, { kind: 'Secret', map: (s: V1Secret) => backends.byIndex(Index.Secret, secretKey(s)).map(ref) }],
  };
}

/**
 * PolicyDaemon: its own changes, the injected Pods and Service-mode Deployments (found by the
 * mailwarden.io/policy-daemon label, which names the PolicyDaemon), and the MailBackend it names.
 */
function policyDaemonController(daemons: CacheReader<PolicyDaemonObject>, reconcile: Reconcile): ControllerDefinition<OperatorKind> {
  const labelled = (o: V1Pod | V1Deployment): ObjectRef[] => {
    const name = o.metadata?.labels?.[POLICY_DAEMON_LABEL];
    return name === undefined ? [] : [{ namespace: o.metadata?.namespace, name }];
  };
  return {
    name: 'policydaemon',
    kind: 'PolicyDaemon',
    reconcile,
    concurrency: 2,
    watches: [
      { kind: 'PolicyDaemon' },
      { kind: 'Pod', map: labelled },
      { kind: 'Deployment', map: labelled },
      { kind: 'MailBackend', map: (b: BackendObject) => daemons.byIndex(Index.Backend, keyOf(b.metadata.namespace, b.metadata.name)).map(ref) },
    ],
  };
}

/** Events through the recorder: best effort, never awaited by a reconcile. */
function eventSink(recorder: EventRecorder): EventSink {
  return {
    normal: (t, reason, message) => void recorder.normal(t, reason, message),
    warning: (t, reason, message) => void recorder.warning(t, reason, message),
  };
}
