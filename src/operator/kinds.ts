import type { KubernetesObject } from '@kubernetes/client-node';
import { API_VERSION_NAME, PLURALS } from '../api/kinds.ts';
import { API_GROUP } from '../api/mail-user-restriction.ts';
import { slim, slimShared, StringPool } from '../controller/cached-object.ts';
import type { KindDefinition } from '../controller/manager.ts';
import { mailboxName, targetKey } from '../api/restriction-owner.ts';
import { POLICY_DAEMON_LABEL } from '../reconcilers/policy-daemon-objects.ts';
import type { PolicyDaemonObject } from '../reconcilers/policy-daemon.ts';
import { keyOf } from '../api/object-key.ts';
import type { BackendObject, RestrictionObject } from '../reconcilers/types.ts';

/** The kinds the operator caches. */
export type OperatorKind = 'MailUserRestriction' | 'MailBackend' | 'Secret' | 'PolicyDaemon' | 'Pod' | 'Deployment';

/** Index names; each index's values carry the namespace, so one all-namespaces cache stays exact. */
export const Index = {
  /** Restrictions by the mailbox they write (targetKey): owner and conflicts without a scan. */
  Target: 'target',
  /** Restrictions by mailbox (mailboxName) across namespaces: conflicts through other MailBackends of the same store or an LDAP alias. */
  Mailbox: 'mailbox',
  /** Restrictions and PolicyDaemons by `namespace/backendRef.name`. */
  Backend: 'backend',
  /** MailBackends by `namespace/secret` for each Secret they read. */
  Secret: 'secret',
} as const;

const mailwarden = (plural: string) => ({ group: API_GROUP, version: API_VERSION_NAME, plural });
const present = (...values: (string | undefined)[]): string[] => values.filter((v): v is string => v !== undefined);

/** `namespace/backendRef.name` of a restriction or PolicyDaemon (undefined without a backendRef). */
export function backendRefKey(obj: { metadata: { namespace?: string }; spec?: { backendRef?: { name?: unknown } } }): string | undefined {
  const name = obj.spec?.backendRef?.name;
  return typeof name === 'string' ? keyOf(obj.metadata.namespace, name) : undefined;
}

/** The Secrets a MailBackend reads, as `namespace/name`. */
export function backendSecretKeys(backend: BackendObject): string[] {
  const ns = backend.metadata.namespace;
  const named = (ref: { name?: unknown } | undefined) => (typeof ref?.name === 'string' ? keyOf(ns, ref.name) : undefined);
  return present(named(backend.spec?.credentialsSecretRef), named(backend.spec?.caSecretRef));
}

/** Whether the Secret `namespace/name` is one the operator may read (no list: any). */
function readable(key: string, names: readonly string[] | undefined): boolean {
  return names === undefined || names.includes(key.slice(key.indexOf('/') + 1));
}

/**
 * The table of kinds: what the manager lists and watches, and the indexes the controllers'
 * mappings and the reconcilers look things up by. PolicyDaemon, Pod and Deployment are cached
 * only with PolicyDaemon support on (Pods and Deployments only mailwarden's, by label).
 */
export function operatorKinds(options: { policyDaemons: boolean; secretNames?: readonly string[] }): Partial<Record<OperatorKind, KindDefinition>> {
  // Strings many restrictions repeat are kept once (see StringPool); one pool for the custom kinds.
  const strings = new StringPool();
  const shared = (obj: KubernetesObject) => slimShared(obj, strings);
  const kinds: Partial<Record<OperatorKind, KindDefinition>> = {
    MailUserRestriction: {
      resource: mailwarden(PLURALS.MailUserRestriction),
      transform: shared,
      indexes: {
        [Index.Target]: (r: RestrictionObject) => present(targetKey(r)),
        [Index.Mailbox]: (r: RestrictionObject) => (typeof r.spec?.mailbox === 'string' && r.spec.backendRef !== undefined ? [mailboxName(r.spec.mailbox)] : []),
        [Index.Backend]: (r: RestrictionObject) => present(backendRefKey(r)),
      },
    },
    MailBackend: {
      resource: mailwarden(PLURALS.MailBackend),
      transform: shared,
      indexes: { [Index.Secret]: backendSecretKeys },
    },
    // Only the Secrets MailBackends name, each watched by name: never every Secret's data.
    Secret: { resource: { group: '', version: 'v1', plural: 'secrets' }, transform: slim, namedBy: { kind: 'MailBackend', keys: (b: BackendObject) => backendSecretKeys(b).filter((key) => readable(key, options.secretNames)) } },
  };
  if (options.policyDaemons) {
    kinds.PolicyDaemon = {
      resource: mailwarden(PLURALS.PolicyDaemon),
      transform: slim,
      indexes: { [Index.Backend]: (d: PolicyDaemonObject) => present(backendRefKey(d)) },
    };
    kinds.Pod = { resource: { group: '', version: 'v1', plural: 'pods' }, labelSelector: POLICY_DAEMON_LABEL, transform: slim };
    kinds.Deployment = { resource: { group: 'apps', version: 'v1', plural: 'deployments' }, labelSelector: POLICY_DAEMON_LABEL, transform: slim };
  }
  return kinds;
}
