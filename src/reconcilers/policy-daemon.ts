import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { findCondition, sameConditions, setCondition } from '../api/conditions.ts';
import type { MailBackendSpec } from '../api/mail-backend.ts';
import { formatIssues } from '../api/issues.ts';
import { policyDaemonSpecSchema, type PolicyDaemonResource } from '../api/policy-daemon.ts';
import type { Logger } from '../observability/logger.ts';
import {
  configHash,
  configMapFor,
  daemonIdentityObjects,
  deploymentFor,
  objectName,
  podDisruptionBudgetFor,
  policydConfigYaml,
  serviceFor,
  type PolicyDaemonRef,
} from './policy-daemon-objects.ts';
import { parseBackendSpec } from './backend-spec.ts';
import { sidecarHealth, sidecarReport, type SidecarHealth } from './sidecar-health.ts';
import type { PolicyDaemonWriter } from './policy-daemon-writer.ts';
import { splitKey } from '../api/object-key.ts';
import type { BackendObject, EventSink, KubeMeta, Lister } from './types.ts';

/** A PolicyDaemon as the informer holds it. */
export type PolicyDaemonObject = PolicyDaemonResource & { metadata: PolicyDaemonResource['metadata'] & KubeMeta };

export interface PolicyDaemonReconcilerDeps {
  readonly daemons: Lister<PolicyDaemonObject>;
  readonly backends: Lister<BackendObject>;
  /** Pods labelled mailwarden.io/policy-daemon (the injected ones). */
  readonly pods: Lister<V1Pod>;
  /** Deployments labelled mailwarden.io/policy-daemon (Service mode). */
  readonly deployments: Lister<V1Deployment>;
  readonly writer: PolicyDaemonWriter;
  readonly events: EventSink;
  readonly logger: Logger;
  /** The daemon image when a PolicyDaemon names none. */
  readonly image: string;
  /** Pull secrets for that image (names, in the PolicyDaemon's namespace). */
  readonly imagePullSecrets?: readonly string[];
  readonly now?: () => Date;
}

interface Outcome {
  readonly ready: boolean;
  readonly reason: string;
  readonly message: string;
  readonly injectedPods?: number;
  readonly readyReplicas?: number;
  readonly configHash?: string;
  /** Sidecar mode: the injected pods and which of them run without the daemon. */
  readonly sidecars?: SidecarHealth;
}

/**
 * PolicyDaemon → the daemon's ConfigMap, plus in Service mode its Deployment, Service and
 * PodDisruptionBudget (owned, so garbage-collected with it); in Sidecar mode the webhook does
 * the rest and this counts the pods it injected. One status write per reconcile, when changed.
 */
export class PolicyDaemonReconciler {
  readonly #deps: PolicyDaemonReconcilerDeps;

  constructor(deps: PolicyDaemonReconcilerDeps) {
    this.#deps = deps;
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = splitKey(key);
    const daemon = this.#deps.daemons.get(namespace, name);
    // Gone: its objects carry ownerReferences, the garbage collector removes them.
    if (daemon === undefined || daemon.metadata.deletionTimestamp !== undefined) return;
    await this.#report(daemon, await this.#converge(daemon, namespace));
  }

  async #converge(daemon: PolicyDaemonObject, namespace: string): Promise<Outcome> {
    const parsed = policyDaemonSpecSchema.safeParse(daemon.spec);
    if (!parsed.success) return { ready: false, reason: 'InvalidSpec', message: formatIssues(parsed.error).join('; ') };
    const ref: PolicyDaemonRef = { name: daemon.metadata.name, namespace, uid: daemon.metadata.uid, spec: parsed.data };
    let backend: MailBackendSpec | undefined;
    if (ref.spec.backendRef !== undefined) {
      const backendName = ref.spec.backendRef.name;
      const found = this.#deps.backends.get(namespace, backendName);
      if (found === undefined) return { ready: false, reason: 'BackendNotFound', message: `MailBackend ${backendName} does not exist in ${namespace}` };
      const { spec: backendSpec, problems } = parseBackendSpec(found);
      if (backendSpec === undefined) return { ready: false, reason: 'BackendInvalid', message: `MailBackend ${backendName} is invalid: ${problems}` };
      backend = backendSpec;
    } else {
      // store Kubernetes: the daemon reads the restrictions as its own, read-only ServiceAccount.
      for (const object of daemonIdentityObjects(ref)) await this.#deps.writer.apply(object);
    }

    const yaml = policydConfigYaml(ref, backend);
    const hash = configHash(yaml, backend);
    await this.#deps.writer.apply(configMapFor(ref, yaml));
    const deployment = this.#deps.deployments.get(namespace, objectName(ref.name));

    if (ref.spec.mode === 'Sidecar') {
      // Switched from Service mode: the network service goes, the injected sidecars take over.
      if (deployment !== undefined) {
        for (const object of [deploymentFor(ref, backend, this.#deps.image, hash, this.#deps.imagePullSecrets), serviceFor(ref), podDisruptionBudgetFor(ref)]) {
          await this.#deps.writer.remove(object as never);
        }
      }
      const sidecars = sidecarHealth(this.#deps.pods.list(namespace), ref.name);
      const injected = sidecars.injected;
      return { ready: true, reason: 'Injecting', message: `pods labelled mailwarden.io/inject: "true" that podSelector matches get the daemon; ${injected} running with it`, injectedPods: injected, configHash: hash, sidecars };
    }

    await this.#deps.writer.apply(deploymentFor(ref, backend, this.#deps.image, hash, this.#deps.imagePullSecrets));
    await this.#deps.writer.apply(serviceFor(ref));
    await this.#deps.writer.apply(podDisruptionBudgetFor(ref));
    const readyReplicas = deployment?.status?.readyReplicas ?? 0;
    const address = `inet:${objectName(ref.name)}.${namespace}.svc:${ref.spec.port}`;
    if (readyReplicas > 0) return { ready: true, reason: 'Available', message: `${readyReplicas}/${ref.spec.replicas} replicas ready; Postfix: check_policy_service ${address}`, readyReplicas, configHash: hash };
    return { ready: false, reason: 'Progressing', message: `no replica ready yet (Deployment ${objectName(ref.name)})`, readyReplicas, configHash: hash };
  }

  async #report(daemon: PolicyDaemonObject, outcome: Outcome): Promise<void> {
    const now = (this.#deps.now ?? (() => new Date()))();
    const generation = daemon.metadata.generation;
    const previous = daemon.status?.conditions;
    const ready = setCondition(previous, { type: 'Ready', status: outcome.ready ? 'True' : 'False', reason: outcome.reason, message: outcome.message, observedGeneration: generation }, now);
    const old = daemon.status;
    const sidecars = sidecarReport(ready, old?.sidecarsNotRunningPods, outcome.sidecars, generation, now);
    const conditions = sidecars.conditions;
    const status = { observedGeneration: generation, conditions, injectedPods: outcome.injectedPods, readyReplicas: outcome.readyReplicas, configHash: outcome.configHash };
    if (sidecars.event !== undefined) {
      const target = { ...daemon, apiVersion: daemon.apiVersion ?? 'mailwarden.io/v1alpha1', kind: 'PolicyDaemon' };
      if (sidecars.event.type === 'Warning') this.#deps.events.warning(target, sidecars.event.reason, sidecars.event.message);
      else this.#deps.events.normal(target, sidecars.event.reason, sidecars.event.message);
    }
    if (
      sameConditions(previous, conditions) &&
      (old?.sidecarsNotRunning ?? null) === sidecars.fields.sidecarsNotRunning &&
      JSON.stringify(old?.sidecarsNotRunningPods ?? null) === JSON.stringify(sidecars.fields.sidecarsNotRunningPods) &&
      old?.observedGeneration === generation &&
      old?.injectedPods === outcome.injectedPods &&
      old?.readyReplicas === outcome.readyReplicas &&
      old?.configHash === outcome.configHash
    ) {
      this.#deps.logger.debug({ policyDaemon: daemon.metadata.name }, 'status unchanged');
      return;
    }
    if (findCondition(previous, 'Ready')?.reason !== outcome.reason) {
      const target = { ...daemon, apiVersion: daemon.apiVersion ?? 'mailwarden.io/v1alpha1', kind: 'PolicyDaemon' };
      if (outcome.ready) this.#deps.events.normal(target, outcome.reason, outcome.message);
      else this.#deps.events.warning(target, outcome.reason, outcome.message);
    }
    // Merge patch: null clears the count that does not apply to the current mode.
    await this.#deps.writer.patchStatus(daemon.metadata.namespace ?? '', daemon.metadata.name, { ...status, injectedPods: status.injectedPods ?? null, readyReplicas: status.readyReplicas ?? null, configHash: status.configHash ?? null, ...sidecars.fields });
  }
}
