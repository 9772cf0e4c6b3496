// The stores the Postfix suite runs against, seen the same way: what the policy daemon is given
// (--store, config file, environment) and a way to write a mailbox's lists directly, as an admin
// editing the store by hand would.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { CoreV1Api, CustomObjectsApi, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { policyDaemonSpecSchema } from '../../../src/api/policy-daemon.ts';
import { daemonIdentityObjects, daemonReaders, serviceAccountName } from '../../../src/reconcilers/policy-daemon-objects.ts';
import { startMariadb, startOpenldap, startPostgres, type SqlServer } from '../../harness/containers.ts';
import { startControlPlane } from '../../harness/controlplane.ts';
import { installCrds } from '../../harness/crds.ts';

export type StoreKind = 'postgres' | 'mariadb' | 'openldap' | 'manifests' | 'kubernetes';

/** A mailbox's four lists; a missing list is unset. */
export interface Lists {
  readonly allowedSenders?: readonly string[];
  readonly rejectedSenders?: readonly string[];
  readonly allowedRecipients?: readonly string[];
  readonly rejectedRecipients?: readonly string[];
}

export interface StoreUnderTest {
  readonly kind: StoreKind;
  /** How the daemon reaches it: --store, the config file's contents, the container environment. */
  readonly daemon: { readonly store: string; readonly config?: Record<string, unknown>; readonly env?: Record<string, string>; readonly mounts?: Record<string, string> };
  /** Creates the mailbox, or replaces all four of its lists. */
  put(address: string, lists: Lists): Promise<void>;
  /** An outage: the server stops (data kept); undefined for stores without a server. */
  readonly stopServer?: () => Promise<void>;
  readonly startServer?: () => Promise<void>;
  stop(): Promise<void>;
}

export async function startStore(kind: StoreKind): Promise<StoreUnderTest> {
  switch (kind) {
    case 'postgres':
      return sqlStore(kind, await startPostgres());
    case 'mariadb':
      return sqlStore(kind, await startMariadb());
    case 'openldap':
      return ldapStore();
    case 'manifests':
      return manifestsStore();
    case 'kubernetes':
      return kubernetesStore();
  }
}

/** iRedMail's SQL mailbox table; the daemon reads as the read-only account vmail. */
function sqlStore(kind: 'postgres' | 'mariadb', server: SqlServer): StoreUnderTest {
  const mark = (i: number): string => (server.dialect === 'postgres' ? `$${i}` : '?');
  return {
    kind,
    daemon: { store: server.urlFor(server.readOnly), env: { MAILWARDEN_STORE_PASSWORD: server.readOnly.password } },
    async put(address, lists) {
      await server.query(`DELETE FROM mailbox WHERE username = ${mark(1)}`, [address]);
      await server.insertMailboxes([
        {
          username: address,
          allowedsenders: (lists.allowedSenders ?? []).join(','),
          rejectedsenders: (lists.rejectedSenders ?? []).join(','),
          allowedrecipients: (lists.allowedRecipients ?? []).join(','),
          rejectedrecipients: (lists.rejectedRecipients ?? []).join(','),
        },
      ]);
    },
    stopServer: () => server.stopServer(),
    startServer: () => server.startServer(),
    stop: () => server.stop(),
  };
}

/** iRedMail user entries under o=domains; the daemon binds as the read-only cn=vmail. */
async function ldapStore(): Promise<StoreUnderTest> {
  const server = await startOpenldap();
  return {
    kind: 'openldap',
    daemon: {
      store: server.url,
      config: { storeSettings: { baseDn: server.domainsDn, bindDn: server.readOnly.bindDn } },
      env: { MAILWARDEN_STORE_PASSWORD: server.readOnly.password },
    },
    async put(address, lists) {
      await server.withClient(async (c) => {
        await c.del(server.userDn(address)).catch((err: Error) => {
          if (err.name !== 'NoSuchObjectError') throw err;
        });
      });
      await server.addLdapUser({
        mail: address,
        amavisWhitelistSender: [...(lists.allowedSenders ?? [])],
        amavisBlacklistSender: [...(lists.rejectedSenders ?? [])],
        mailWhitelistRecipient: [...(lists.allowedRecipients ?? [])],
        mailBlacklistRecipient: [...(lists.rejectedRecipients ?? [])],
      });
    },
    stopServer: () => server.stopServer(),
    startServer: () => server.startServer(),
    stop: () => server.stop(),
  };
}

/** MailUserRestriction documents in a directory (one file per mailbox), mounted into the daemon. */
function manifestsStore(): StoreUnderTest {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailwarden-postfix-manifests-'));
  chmodSync(dir, 0o755); // readable by the image's user 65532
  return {
    kind: 'manifests',
    daemon: { store: dir },
    async put(address, lists) {
      const name = address.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
      const doc = {
        apiVersion: 'mailwarden.io/v1alpha1',
        kind: 'MailUserRestriction',
        metadata: { name, namespace: 'mail' },
        spec: { mailbox: address, ...Object.fromEntries(Object.entries(lists).filter(([, v]) => v !== undefined && v.length > 0)) },
      };
      writeFileSync(path.join(dir, `${name}.yaml`), toYaml(doc), { mode: 0o644 });
    },
    async stop() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * MailUserRestriction resources on a real API server, and no SQL or LDAP server at all. The
 * daemon runs as a sidecar of store Kubernetes does: its own ServiceAccount (the identity the
 * operator provisions: read-only on MailUserRestrictions) with a TokenRequest token, the CA and
 * the namespace mounted as credentialsDir, the API server's address in the environment. The API
 * server stopping is an outage the daemon answers through from memory.
 */
async function kubernetesStore(): Promise<StoreUnderTest> {
  const namespace = 'mail';
  const cp = await startControlPlane();
  const kc = cp.kubeConfig();
  await installCrds(kc);
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  // The identity of a Service-mode daemon (its own ServiceAccount), without its owner: no PolicyDaemon here.
  const ref = { name: 'postfix', namespace, spec: policyDaemonSpecSchema.parse({ store: 'Kubernetes', mode: 'Service' }) };
  const objects = KubernetesObjectApi.makeApiClient(kc);
  for (const object of daemonIdentityObjects(ref, daemonReaders(ref, []))) {
    await objects.create({ ...object, metadata: { ...object.metadata, ownerReferences: undefined } } as KubernetesObject);
  }
  const account = serviceAccountName(ref.name);
  const token = await cp.serviceAccountToken(namespace, account, { create: false });
  const dir = mkdtempSync(path.join(tmpdir(), 'mailwarden-postfix-kube-'));
  chmodSync(dir, 0o755); // readable by the image's user 65532
  writeFileSync(path.join(dir, 'token'), token.token, { mode: 0o644 });
  writeFileSync(path.join(dir, 'ca.crt'), readFileSync(cp.caPath), { mode: 0o644 });
  writeFileSync(path.join(dir, 'namespace'), namespace, { mode: 0o644 });
  const custom = kc.makeApiClient(CustomObjectsApi);
  const base = { group: 'mailwarden.io', version: 'v1alpha1', namespace, plural: 'mailuserrestrictions' };
  return {
    kind: 'kubernetes',
    daemon: {
      store: 'kubernetes://',
      config: { storeSettings: { credentialsDir: '/etc/mailwarden/kube' } },
      env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(cp.port) },
      mounts: { [dir]: '/etc/mailwarden/kube' },
    },
    async put(address, lists) {
      const name = address.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
      const spec = { mailbox: address, ...Object.fromEntries(Object.entries(lists).filter(([, v]) => v !== undefined && v.length > 0)) };
      const body = { apiVersion: 'mailwarden.io/v1alpha1', kind: 'MailUserRestriction', metadata: { name }, spec };
      try {
        const current = (await custom.getNamespacedCustomObject({ ...base, name })) as { metadata: { resourceVersion: string } };
        await custom.replaceNamespacedCustomObject({ ...base, name, body: { ...body, metadata: { name, resourceVersion: current.metadata.resourceVersion } } });
      } catch (error) {
        if ((error as { code?: number }).code !== 404) throw error;
        await custom.createNamespacedCustomObject({ ...base, body });
      }
    },
    stopServer: () => cp.stopApiServer(),
    startServer: () => cp.startApiServer(),
    async stop() {
      await cp.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
