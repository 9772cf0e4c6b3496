import { ApiException, CustomObjectsApi, KubernetesObjectApi, PatchStrategy, setHeaderOptions, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { API_VERSION_NAME } from '../api/kinds.ts';
import { API_GROUP } from '../api/mail-user-restriction.ts';
import { FIELD_MANAGER } from './policy-daemon-objects.ts';

/** The writes the PolicyDaemon reconciler makes, behind a small interface tests can count. */
export interface PolicyDaemonWriter {
  /** Server-side apply: creates or updates the fields mailwarden owns; a no-op when equal. */
  apply(object: KubernetesObject): Promise<void>;
  /** Deletes if present. */
  remove(object: { apiVersion: string; kind: string; metadata: { name: string; namespace: string } }): Promise<void>;
  patchStatus(namespace: string, name: string, status: unknown): Promise<void>;
}

/**
 * Server-side apply with one field manager: the desired object is stated whole every reconcile
 * and the API server works out the difference, so unchanged objects are not rewritten (no
 * resourceVersion churn, no needless rollout) and fields others own are left alone.
 */
export class KubePolicyDaemonWriter implements PolicyDaemonWriter {
  readonly #objects: KubernetesObjectApi;
  readonly #custom: CustomObjectsApi;

  constructor(kc: KubeConfig) {
    this.#objects = KubernetesObjectApi.makeApiClient(kc);
    this.#custom = kc.makeApiClient(CustomObjectsApi);
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

  async patchStatus(namespace: string, name: string, status: unknown): Promise<void> {
    try {
      await this.#custom.patchNamespacedCustomObjectStatus(
        { group: API_GROUP, version: API_VERSION_NAME, namespace, plural: 'policydaemons', name, body: { status } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (error) {
      // Gone meanwhile: nothing left to report on.
      if (error instanceof ApiException && error.code === 404) return;
      throw error;
    }
  }
}
