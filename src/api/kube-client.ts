import {
  ApiException,
  CoreV1Api,
  PatchStrategy,
  type KubeConfig,
  type V1Secret,
} from '@kubernetes/client-node';
import { KubeRequests } from './kube-requests.ts';
import { API_GROUP } from './mail-user-restriction.ts';

export const API_VERSION_NAME = 'v1alpha1';

/** Plural resource names of mailwarden's kinds. */
export const PLURALS = {
  MailUserRestriction: 'mailuserrestrictions',
  MailBackend: 'mailbackends',
  PolicyDaemon: 'policydaemons',
} as const;
export type MailwardenKind = keyof typeof PLURALS;

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
 * conflict, never a lost update), and Secret reads.
 */
export class MailwardenKubeClient {
  readonly #core: CoreV1Api;
  readonly #requests: KubeRequests;

  constructor(kc: KubeConfig) {
    this.#core = kc.makeApiClient(CoreV1Api);
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

  async readSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    try {
      return await this.#core.readNamespacedSecret({ namespace, name });
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
