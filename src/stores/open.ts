import type { Semantics } from '../restrictions/options.ts';
import type { Logger } from '../observability/logger.ts';
import { ManifestsStore } from './manifests.ts';
import type { MailboxWriter, StoreReader } from './store.ts';
import type { AnyUrlStore } from './url-store.ts';

export interface OpenStoreParams {
  /**
   * A manifests file or directory, a store URL (postgres://, mysql://, ldap://, ldaps://), or
   * kubernetes://. An SQL URL with settings `schema: amavisd` opens the amavisd tables.
   */
  readonly store: string;
  readonly settings?: unknown;
  readonly semantics: Semantics;
  readonly password?: string | undefined;
  /** PEM CA certificates already read (instead of reading settings' tls.caFile again). */
  readonly ca?: string | undefined;
  readonly logger?: Logger;
  /** Manifests only: reload on change (default true). */
  readonly watch?: boolean;
}

/** True when `store` names a server by URL rather than manifest files. */
export function isStoreUrl(store: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(store);
}

/** True for `kubernetes://`: the MailUserRestriction resources themselves (read-only). */
export function isKubernetesStore(store: string): boolean {
  return /^kubernetes:\/\/\/?$/i.test(store);
}

/** Opens the store a `--store` value names; the SQL and LDAP drivers load only when used. */
export async function openStore(params: OpenStoreParams): Promise<StoreReader> {
  if (isKubernetesStore(params.store)) {
    // Loaded only here: the other daemons never load the Kubernetes client (docs/architecture.md).
    const { openKubernetesStore } = await import('./kubernetes.ts');
    return openKubernetesStore(params.settings, params.logger);
  }
  if (isStoreUrl(params.store)) return openUrlStoreOf(params);
  const store = new ManifestsStore({ paths: [params.store], logger: params.logger, watch: params.watch });
  await store.start();
  return store;
}

/** Opens a SQL or LDAP store for writing (the operator and `mailwarden apply`). */
export async function openWritableStore(params: OpenStoreParams): Promise<MailboxWriter> {
  return openUrlStoreOf(params);
}

async function openUrlStoreOf(params: OpenStoreParams): Promise<AnyUrlStore> {
  const { openAnyUrlStore } = await import('./url-store.ts');
  return openAnyUrlStore(params.store, params.settings ?? {}, {
    semantics: params.semantics,
    password: params.password,
    ca: params.ca,
    logger: params.logger,
  });
}
