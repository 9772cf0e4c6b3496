import type { Logger } from '../observability/logger.ts';
import { StoreError } from '../stores/store.ts';
import type { BackendConnections } from './backend-connections.ts';
import { parseBackendSpec } from './backend-spec.ts';
import { backendSecretsOf, CredentialsError } from './credentials.ts';
import type { Outcome, StatusWriter } from './status.ts';
import type { BackendObject, Lister, SecretLister } from './types.ts';
import { splitKey } from '../api/object-key.ts';
import { statusText } from './status-text.ts';

/** Condition reasons of a MailBackend (docs/troubleshooting.md lists them). */
export const BackendReason = {
  Connected: 'Connected',
  InvalidSpec: 'InvalidSpec',
  Misconfigured: 'Misconfigured',
  Unavailable: 'Unavailable',
  SecretNotFound: 'SecretNotFound',
  SecretInvalid: 'SecretInvalid',
} as const;

/** The texts status carries beside the store's and the Secrets' own error messages. */
export const BackendMessage = {
  reachable: (storeKind: string) => `${storeKind} store reachable`,
} as const;

export interface BackendReconcilerDeps {
  readonly backends: Lister<BackendObject>;
  readonly secrets: SecretLister;
  readonly connections: Pick<BackendConnections, 'get' | 'forget'>;
  /** Writes the outcome to status (kind MailBackend). */
  readonly status: StatusWriter;
  readonly logger: Logger;
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
      this.#deps.logger.debug({ key }, 'backend gone: its store connection is closed');
      await this.#deps.connections.forget(namespace, name);
      return;
    }
    return this.#deps.status.settle(backend, await this.#outcome(backend));
  }

  async #outcome(backend: BackendObject): Promise<Outcome> {
    const { spec, problems } = parseBackendSpec(backend);
    if (spec === undefined) {
      // Not probed again: only a new spec can fix it, and that queues the backend anyway.
      this.#deps.logger.debug({ namespace: backend.metadata.namespace, name: backend.metadata.name }, `backend not probed: ${problems}`);
      return { ready: false, reason: BackendReason.InvalidSpec, message: problems };
    }
    const requeueAfterMs = this.#deps.probeIntervalMs ?? 60_000;
    try {
      const store = await this.#deps.connections.get({ ...backend, spec }, backendSecretsOf(backend, this.#deps.secrets));
      await store.ping(AbortSignal.timeout(this.#deps.probeTimeoutMs ?? 5_000));
      return { ready: true, reason: BackendReason.Connected, message: BackendMessage.reachable(store.kind), requeueAfterMs };
    } catch (error) {
      const reason =
        error instanceof CredentialsError ? error.reason : error instanceof StoreError && error.kind === 'Misconfigured' ? BackendReason.Misconfigured : BackendReason.Unavailable;
      return { ready: false, reason, message: statusText(error, this.#deps.logger, backend), requeueAfterMs };
    }
  }
}
