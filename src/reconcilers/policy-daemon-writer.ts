import { ApiException, KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { FIELD_MANAGER } from './policy-daemon-objects.ts';

/** The objects the PolicyDaemon reconciler writes (its status goes through the StatusWriter). */
export interface PolicyDaemonWriter {
  /** Server-side apply: creates or updates the fields mailwarden owns; a no-op when equal. */
  apply(object: KubernetesObject): Promise<void>;
  /** Deletes if present and owned by the object with uid `ownerUid` (never someone else's of the same name). */
  removeOwned(object: { apiVersion: string; kind: string; metadata: { name: string; namespace: string } }, ownerUid: string): Promise<void>;
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

  async remove(object: { apiVersion: string; kind: string; metadata: { name: string; namespace: string } }): Promise<void> {
    try {
      await this.#objects.delete(object, undefined, undefined, undefined, undefined, 'Background');
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return;
      throw error;
    }
  }

  async removeOwned(object: { apiVersion: string; kind: string; metadata: { name: string; namespace: string } }, ownerUid: string): Promise<void> {
    let current: KubernetesObject;
    try {
      current = await this.#objects.read(object);
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return;
      throw error;
    }
    if (!(current.metadata?.ownerReferences ?? []).some((owner) => owner.uid === ownerUid)) return;
    // The uid precondition: a namesake created since the read is left alone.
    try {
      await this.#objects.delete(object, undefined, undefined, undefined, undefined, 'Background', { preconditions: { uid: current.metadata!.uid } });
    } catch (error) {
      if (error instanceof ApiException && (error.code === 404 || error.code === 409)) return;
      throw error;
    }
  }
}
