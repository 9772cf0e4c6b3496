import type { V1Secret } from '@kubernetes/client-node';
import type { MailBackend } from '../api/mail-backend.ts';
import type { MailUserRestriction } from '../api/mail-user-restriction.ts';

/** Read access to an informer's cache. */
export interface Lister<T> {
  get(namespace: string, name: string): T | undefined;
  list(namespace?: string): T[];
}

/** The object an Event is about. */
export interface EventTarget {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly uid?: string; readonly resourceVersion?: string };
}

/** Records Kubernetes Events; never throws. */
export interface EventSink {
  normal(target: EventTarget, reason: string, message: string): void;
  warning(target: EventTarget, reason: string, message: string): void;
}

/** Objects as the informers hold them: the API server's JSON, validated by the reconcilers. */
export type RestrictionObject = MailUserRestriction & { metadata: MailUserRestriction['metadata'] & KubeMeta };
export type BackendObject = MailBackend & { metadata: MailBackend['metadata'] & KubeMeta };

export interface KubeMeta {
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string | Date;
  deletionTimestamp?: string | Date;
  finalizers?: string[];
}

/**
 * The Secrets a MailBackend may name. `readable` false: the cluster admin did not let the
 * operator read that Secret (the chart's rbac.backendSecretNames), so it is never looked up.
 */
export type SecretLister = Lister<V1Secret> & { readonly readable?: (name: string) => boolean };
