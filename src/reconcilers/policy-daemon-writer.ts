import { ApiException, KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { FIELD_MANAGER } from './policy-daemon-objects.ts';

/** The objects the PolicyDaemon reconciler writes (its status goes through the StatusWriter). */
export interface PolicyDaemonWriter {
  /** Server-side apply: creates or updates the fields mailwarden owns; a no-op when equal. */
  apply(object: KubernetesObject): Promise<void>;
  /**
   * Creates the object unless it exists; never reads, changes or deletes it (the operator's
   * Role may create Secrets but not touch one: the daemon's token Secret).
   */
  create(object: KubernetesObject): Promise<void>;
  /** Deletes if present. */
  remove(object: { apiVersion: string; kind: string; metadata: { name: string; namespace: string } }): Promise<void>;
}

/**
 * Server-side apply with one field manager: the desired object is stated whole every reconcile
 * and the API server works out the difference, so unchanged objects are not rewritten (no
 * resourceVersion churn, no needless rollout) and fields others own are left alone.
 */
export class KubePolicyDaemonWriter implements PolicyDaemonWriter {
  readonly #objects: KubernetesObjectApi;

  constructor(kc: KubeConfig) {
    this.#objects = KubernetesObjectApi.makeApiClient(kc);
  }

  async apply(object: KubernetesObject): Promise<void> {
    await this.#objects.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }

  async create(object: KubernetesObject): Promise<void> {
    try {
      await this.#objects.create(object, undefined, undefined, FIELD_MANAGER);
    } catch (error) {
      if (error instanceof ApiException && error.code === 409) return;
      throw error;
    }
  }

  async remove(object: { apiVersion: string; kind: string; metadata: { name: string; namespace: string } }): Promise<void> {
    try {
      await this.#objects.delete(object, undefined, undefined, undefined, undefined, 'Background');
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return;
      throw error;
    }
  }
}
