import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { formatIssues } from '../api/issues.ts';
import { policyDaemonSpecSchema, type PolicyDaemonResource } from '../api/policy-daemon.ts';
import type { Logger } from '../observability/logger.ts';
import type { MailBackendSpec } from '../api/mail-backend.ts';
import {
  configHash,
  configMapFor,
  daemonIdentityObjects,
  daemonReaders,
  deploymentFor,
  legacyServiceAccountName,
  mountsLegacyToken,
  objectName,
  networkPolicyFor,
  podDisruptionBudgetFor,
  POLICY_DAEMON_LABEL,
  policydConfigYaml,
  serviceFor,
  type PolicyDaemonRef,
} from './policy-daemon-objects.ts';
import { parseBackendSpec } from './backend-spec.ts';
import { daemonRefusal, type DaemonAllowance } from './daemon-allowance.ts';
import type { PolicyDaemonWriter } from './policy-daemon-writer.ts';
import { sidecarHealth, sidecarReport, type SidecarHealth } from './sidecar-health.ts';
import type { Outcome, StatusNow, StatusWriter } from './status.ts';
import { splitKey } from '../api/object-key.ts';
import type { BackendObject, KubeMeta, Lister } from './types.ts';

/** A PolicyDaemon as the informer holds it. */
export type PolicyDaemonObject = PolicyDaemonResource & { metadata: PolicyDaemonResource['metadata'] & KubeMeta };

/**
 * Whether a PolicyDaemon decides mail now, from its status: a daemon that has listed what it
 * reads (a ready sidecar; a ready replica in Service mode) and that Postfix can reach. A
 * Service-mode daemon whose NetworkPolicy admits no pod (Ready False, NoClientsAdmitted) answers
 * nobody, however many replicas are ready.
 */
export function daemonServes(d: PolicyDaemonObject): boolean {
  const status = d.status;
  if (d.spec?.mode !== 'Service') return (status?.readySidecars ?? 0) > 0;
  if (status?.conditions?.some((c) => c.type === 'Ready' && c.reason === DaemonReason.NoClientsAdmitted)) return false;
  return (status?.readyReplicas ?? 0) > 0;
}

export interface PolicyDaemonReconcilerDeps {
  readonly daemons: Lister<PolicyDaemonObject>;
  readonly backends: Lister<BackendObject>;
  /** Pods labelled mailwarden.io/policy-daemon (the injected ones). */
  readonly pods: Lister<V1Pod>;
  /** Deployments labelled mailwarden.io/policy-daemon (Service mode). */
  readonly deployments: Lister<V1Deployment>;
  readonly writer: PolicyDaemonWriter;
  /** Writes the outcome to status (kind PolicyDaemon). */
  readonly status: StatusWriter;
  readonly logger: Logger;
  /** The daemon image when a PolicyDaemon names none. */
  readonly image: string;
  /** Pull secrets for that image (names, in the PolicyDaemon's namespace). */
  readonly imagePullSecrets?: readonly string[];
  /** Further images and restricted actions the cluster admin allows (default: none). */
  readonly allowance?: Omit<DaemonAllowance, 'defaultImage'>;
  /** Namespaces whose pods may scrape a Service-mode daemon's metrics (its NetworkPolicy). */
  readonly metricsNamespaces?: readonly string[];
}

/** Condition reasons of a PolicyDaemon. */
export const DaemonReason = {
  InvalidSpec: 'InvalidSpec',
  /** An image or action the cluster admin does not allow (docs/tenancy.md): nothing applied. */
  NotAllowed: 'NotAllowed',
  BackendNotFound: 'BackendNotFound',
  BackendInvalid: 'BackendInvalid',
  Injecting: 'Injecting',
  Available: 'Available',
  Progressing: 'Progressing',
  /** Service mode without podSelector: its NetworkPolicy admits no pod to the policy port. */
  NoClientsAdmitted: 'NoClientsAdmitted',
} as const;

/** The texts its status carries. */
export const DaemonMessage = {
  backendNotFound: (backend: string, namespace: string) => `MailBackend ${backend} does not exist in ${namespace}`,
  backendInvalid: (backend: string, issues: string) => `MailBackend ${backend} is invalid: ${issues}`,
  injecting: (pods: number) => `pods labelled mailwarden.io/inject: "true" that podSelector matches get the daemon; ${pods} running with it`,
  available: (ready: number, replicas: number, address: string) => `${ready}/${replicas} replicas ready; Postfix: check_policy_service ${address}`,
  progressing: (deployment: string) => `no replica ready yet (Deployment ${deployment})`,
  noClientsAdmitted: (policy: string, port: number, ready: number, replicas: number) =>
    `no podSelector: NetworkPolicy ${policy} admits no pod to port ${port} (where the network plugin enforces NetworkPolicies); set spec.podSelector to the Postfix pods that use this daemon; ${ready}/${replicas} replicas ready`,
} as const;

/** The SidecarsRunning condition, its fields and Event (sidecar-health.ts) as the StatusWriter's extra. */
function sidecarStatus(health: SidecarHealth | undefined): (current: StatusNow) => ReturnType<typeof sidecarReport> {
  return ({ conditions, status, generation, now }) => sidecarReport(conditions, status?.sidecarsNotRunningPods as readonly string[] | undefined, health, generation, now);
}

/** The status fields beside Ready; each mode sets its own count and clears the other's. */
function daemonFields(counts: { injectedPods?: number; readySidecars?: number; readyReplicas?: number; configHash?: string }): Outcome['fields'] {
  return { injectedPods: counts.injectedPods, readySidecars: counts.readySidecars, readyReplicas: counts.readyReplicas, configHash: counts.configHash };
}

/**
 * PolicyDaemon → the daemon's ConfigMap, plus in Service mode its Deployment, Service and
 * PodDisruptionBudget (owned, so garbage-collected with it); in Sidecar mode the webhook does
 * the rest and this counts the pods it injected. One status write per reconcile, when changed.
 */
export class PolicyDaemonReconciler {
  readonly #deps: PolicyDaemonReconcilerDeps;
  /** PolicyDaemons (by uid) whose legacy ServiceAccount this process has deleted (or found gone). */
  readonly #legacyGone = new Set<string>();

  constructor(deps: PolicyDaemonReconcilerDeps) {
    this.#deps = deps;
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = splitKey(key);
    const daemon = this.#deps.daemons.get(namespace, name);
    // Gone: its objects carry ownerReferences, the garbage collector removes them.
    if (daemon === undefined || daemon.metadata.deletionTimestamp !== undefined) {
      this.#deps.logger.debug({ key }, 'policy daemon gone or going: its objects are garbage-collected');
      return;
    }
    const outcome = await this.#converge(daemon, namespace);
    // Outside Sidecar mode (or before it converges) the sidecar condition and fields go away.
    await this.#deps.status.write(daemon, { ...outcome, extra: outcome.extra ?? sidecarStatus(undefined) });
  }

  async #converge(daemon: PolicyDaemonObject, namespace: string): Promise<Outcome> {
    const parsed = policyDaemonSpecSchema.safeParse(daemon.spec);
    if (!parsed.success) return this.#early(daemon, { ready: false, reason: DaemonReason.InvalidSpec, message: formatIssues(parsed.error).join('; '), fields: daemonFields({}) });
    const refusal = daemonRefusal(parsed.data, { ...this.#deps.allowance, defaultImage: this.#deps.image });
    if (refusal !== undefined) return this.#early(daemon, { ready: false, reason: DaemonReason.NotAllowed, message: refusal, fields: daemonFields({}) });
    const ref: PolicyDaemonRef = { name: daemon.metadata.name, namespace, uid: daemon.metadata.uid, spec: parsed.data };
    let backend: MailBackendSpec | undefined;
    if (ref.spec.backendRef !== undefined) {
      const backendName = ref.spec.backendRef.name;
      const found = this.#deps.backends.get(namespace, backendName);
      if (found === undefined) return this.#early(daemon, { ready: false, reason: DaemonReason.BackendNotFound, message: DaemonMessage.backendNotFound(backendName, namespace), fields: daemonFields({}) });
      const { spec: backendSpec, problems } = parseBackendSpec(found);
      if (backendSpec === undefined) {
        return this.#early(daemon, { ready: false, reason: DaemonReason.BackendInvalid, message: DaemonMessage.backendInvalid(backendName, problems), fields: daemonFields({}) });
      }
      backend = backendSpec;
    } else {
      await this.#applyIdentity(ref);
    }

    const yaml = policydConfigYaml(ref, backend);
    const hash = configHash(yaml, backend);
    await this.#deps.writer.apply(configMapFor(ref, yaml));
    const deployment = this.#deps.deployments.get(namespace, objectName(ref.name));

    if (ref.spec.mode === 'Sidecar') {
      // Switched from Service mode: the network service goes, the injected sidecars take over.
      if (deployment !== undefined) {
        for (const object of [deploymentFor(ref, backend, this.#deps.image, hash, this.#deps.imagePullSecrets), serviceFor(ref), podDisruptionBudgetFor(ref), networkPolicyFor(ref)]) {
          await this.#deps.writer.remove(object as never);
        }
      }
      const sidecars = sidecarHealth(this.#deps.pods.list(namespace), ref.name);
      const injected = sidecars.injected;
      return { ready: true, reason: DaemonReason.Injecting, message: DaemonMessage.injecting(injected), fields: daemonFields({ injectedPods: injected, readySidecars: sidecars.ready, configHash: hash }), extra: sidecarStatus(sidecars) };
    }

    // The policy first: the daemon's port is never open to the whole cluster, not even briefly.
    await this.#deps.writer.apply(networkPolicyFor(ref, this.#deps.metricsNamespaces));
    await this.#deps.writer.apply(deploymentFor(ref, backend, this.#deps.image, hash, this.#deps.imagePullSecrets));
    await this.#deps.writer.apply(serviceFor(ref));
    await this.#deps.writer.apply(podDisruptionBudgetFor(ref));
    const readyReplicas = deployment?.status?.readyReplicas ?? 0;
    const address = `inet:${objectName(ref.name)}.${namespace}.svc:${ref.spec.port}`;
    const fields = daemonFields({ readyReplicas, configHash: hash });
    if (ref.spec.podSelector === undefined) {
      return { ready: false, reason: DaemonReason.NoClientsAdmitted, message: DaemonMessage.noClientsAdmitted(objectName(ref.name), ref.spec.port, readyReplicas, ref.spec.replicas), fields };
    }
    if (readyReplicas > 0) return { ready: true, reason: DaemonReason.Available, message: DaemonMessage.available(readyReplicas, ref.spec.replicas, address), fields };
    return { ready: false, reason: DaemonReason.Progressing, message: DaemonMessage.progressing(objectName(ref.name)), fields };
  }

  /**
   * store Kubernetes: the read-only Role bound to the ServiceAccounts the daemon reads as, before
   * anything that runs it. Then, once no pod still mounts the legacy token Secret, the legacy
   * ServiceAccount goes, and with it (Kubernetes' token controller) that Secret.
   */
  async #applyIdentity(ref: PolicyDaemonRef): Promise<void> {
    const pods = this.#deps.pods.list(ref.namespace).filter((pod) => pod.metadata?.labels?.[POLICY_DAEMON_LABEL] === ref.name);
    for (const object of daemonIdentityObjects(ref, daemonReaders(ref, pods))) await this.#deps.writer.apply(object);
    // Without a uid nothing can be proven ours (the informer always has one).
    if (ref.uid === undefined || this.#legacyGone.has(ref.uid) || mountsLegacyToken(pods, ref.name)) return;
    await this.#deps.writer.removeOwned({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: legacyServiceAccountName(ref.name), namespace: ref.namespace } }, ref.uid);
    this.#legacyGone.add(ref.uid);
  }

  /** An outcome decided before anything is applied, with its debug line. */
  #early(daemon: PolicyDaemonObject, outcome: Outcome): Outcome {
    this.#deps.logger.debug({ namespace: daemon.metadata.namespace, name: daemon.metadata.name, reason: outcome.reason }, `policy daemon not converged: ${outcome.message}`);
    return outcome;
  }
}
