import { findCondition, sameConditions, setCondition } from '../api/conditions.ts';
import type { MailwardenKubeClient } from '../kube/kube-client.ts';
import type { Logger } from '../observability/logger.ts';
import { StoreError } from '../stores/store.ts';
import type { BackendConnections } from './backend-connections.ts';
import { parseBackendSpec } from './backend-spec.ts';
import { backendSecretsOf, CredentialsError } from './credentials.ts';
import type { BackendObject, EventSink, Lister, SecretLister } from './types.ts';
import { splitKey } from '../api/object-key.ts';

export interface BackendReconcilerDeps {
  readonly backends: Lister<BackendObject>;
  readonly secrets: SecretLister;
  readonly connections: BackendConnections;
  readonly client: Pick<MailwardenKubeClient, 'patchStatus'>;
  readonly events: EventSink;
  readonly logger: Logger;
  readonly now?: () => Date;
  /** How often a backend is probed again (default 60 s). */
  readonly probeIntervalMs?: number;
  /** Probe timeout (default 5 s). */
  readonly probeTimeoutMs?: number;
}

/**
 * MailBackend → status: can the operator reach the store with the configured credentials? The
 * probe is the store's ping; failures are reported, never thrown, and probed again on an interval.
 */
export class MailBackendReconciler {
  readonly #deps: BackendReconcilerDeps;

  constructor(deps: BackendReconcilerDeps) {
    this.#deps = deps;
  }

  async reconcile(key: string): Promise<{ requeueAfterMs?: number } | void> {
    const [namespace, name] = splitKey(key);
    const backend = this.#deps.backends.get(namespace, name);
    if (backend === undefined) {
      await this.#deps.connections.forget(namespace, name);
      return;
    }
    const interval = this.#deps.probeIntervalMs ?? 60_000;
    const { spec, problems } = parseBackendSpec(backend);
    if (spec === undefined) {
      await this.#report(backend, false, 'InvalidSpec', problems);
      return;
    }
    try {
      const store = await this.#deps.connections.get({ ...backend, spec }, backendSecretsOf(backend, this.#deps.secrets));
      await store.ping(AbortSignal.timeout(this.#deps.probeTimeoutMs ?? 5_000));
      await this.#report(backend, true, 'Connected', `${store.kind} store reachable`);
    } catch (error) {
      const reason = error instanceof CredentialsError ? error.reason : error instanceof StoreError && error.kind === 'Misconfigured' ? 'Misconfigured' : 'Unavailable';
      await this.#report(backend, false, reason, (error as Error).message);
    }
    return { requeueAfterMs: interval };
  }

  async #report(backend: BackendObject, ready: boolean, reason: string, message: string): Promise<void> {
    const now = (this.#deps.now ?? (() => new Date()))();
    const generation = backend.metadata.generation;
    const previous = backend.status?.conditions;
    const conditions = setCondition(previous, { type: 'Ready', status: ready ? 'True' : 'False', reason, message, observedGeneration: generation }, now);
    if (sameConditions(previous, conditions) && backend.status?.observedGeneration === generation) return;
    if (findCondition(previous, 'Ready')?.reason !== reason) {
      if (ready) this.#deps.events.normal(backend, reason, message);
      else this.#deps.events.warning(backend, reason, message);
    }
    await this.#deps.client.patchStatus('MailBackend', backend.metadata.namespace ?? '', backend.metadata.name, { observedGeneration: generation, conditions });
  }
}
