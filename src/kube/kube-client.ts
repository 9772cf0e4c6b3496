import { ApiException, PatchStrategy, type KubeConfig } from '@kubernetes/client-node';
import { API_VERSION_NAME, PLURALS, type MailwardenKind } from '../api/kinds.ts';
import { API_GROUP } from '../api/mail-user-restriction.ts';
import { KubeRequests } from './kube-requests.ts';

/** An optimistic-concurrency conflict: someone else changed the object; reconcile again. */
export class ConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

/**
 * The writes the operator makes to the API server, in one place: status through the status
 * subresource, finalizers with the object's resourceVersion (so a concurrent change is a
 * conflict, never a lost update); and the one read that must not come from a cache.
 */
export class MailwardenKubeClient {
  readonly #requests: KubeRequests;

  constructor(kc: KubeConfig) {
    this.#requests = new KubeRequests(kc);
  }

  /** Merge-patches `.status`. */
  async patchStatus(kind: MailwardenKind, namespace: string, name: string, status: unknown): Promise<void> {
    await this.#call(() => this.#requests.patch(`${objectPath(kind, namespace, name)}/status`, { status }, PatchStrategy.MergePatch));
  }

  /**
   * Sets `metadata.finalizers`, failing with ConflictError when the object changed since
   * `resourceVersion`; false when the object is gone (deleted meanwhile).
   */
  async setFinalizers(kind: MailwardenKind, namespace: string, name: string, finalizers: string[], resourceVersion: string): Promise<boolean> {
    return this.#call(() => this.#requests.patch(objectPath(kind, namespace, name), { metadata: { finalizers, resourceVersion } }, PatchStrategy.MergePatch));
  }

  /**
   * The object as the API server has it now, not as an informer last saw it; undefined when it
   * is gone (404).
   */
  async read(kind: MailwardenKind, namespace: string, name: string): Promise<unknown> {
    try {
      return await this.#requests.get(objectPath(kind, namespace, name));
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return undefined;
      throw error;
    }
  }

  /** True when the write was made; false when the object is gone (404). */
  async #call(fn: () => Promise<unknown>): Promise<boolean> {
    try {
      await fn();
      return true;
    } catch (error) {
      if (error instanceof ApiException && error.code === 409) throw new ConflictError('the object changed meanwhile');
      // A 404 means the object is gone: nothing left to write.
      if (error instanceof ApiException && error.code === 404) return false;
      throw error;
    }
  }
}

function objectPath(kind: MailwardenKind, namespace: string, name: string): string {
  return `/apis/${API_GROUP}/${API_VERSION_NAME}/namespaces/${encodeURIComponent(namespace)}/${PLURALS[kind]}/${encodeURIComponent(name)}`;
}
