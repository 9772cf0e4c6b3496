// Mail workloads on the test node: PostgreSQL (the iRedMail store) as a Deployment behind a
// Service, and Postfix Deployments configured as the docker-mailserver chart renders them — the
// main.cf override from a ConfigMap, the opt-in label in the pod template — from the test images.
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import type { V1Pod } from '@kubernetes/client-node';
import { FIXTURES_DIR, TEST_PASSWORD } from '../../harness/containers.ts';
import { clients, GROUP, podReady, VERSION, waitFor, type SharedNode } from './support.ts';

/** Postfix's SMTP port for clients from outside the pod (the image's own listener is loopback-only). */
export const SMTP_PORT = 2525;
export const POLICY_UNAVAILABLE = 'Policy service unavailable';
/** Test PolicyDaemons' lookupTimeout, above the 1 s default: this machine runs several test
 *  suites on 2 cores at once, and a lookup that times out gets the failure action. */
export const LOOKUP_TIMEOUT = '5s';

/** Alice's MailUserRestriction in the backend `vmail`, rejecting mail from `senders`. */
export function restrictionManifest(namespace: string, senders: readonly string[]): string {
  return `
apiVersion: ${GROUP}/${VERSION}
kind: MailUserRestriction
metadata: { name: alice, namespace: ${namespace} }
spec:
  mailbox: alice@example.com
  backendRef: { name: vmail }
  rejectedSenders: ${JSON.stringify(senders)}
`;
}

export interface ClusterPostgres {
  /** The Service's ClusterIP: what a MailBackend URL names (there is no cluster DNS). */
  readonly clusterIp: string;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Sets one mailbox's four restriction columns (as the operator would; for fixtures). */
  close(): Promise<void>;
}

/** PostgreSQL 15 with the iRedMail fixture and `mailboxes` rows, behind Service `postgres`. */
export async function deployPostgres(node: SharedNode, namespace: string, mailboxes: readonly string[]): Promise<ClusterPostgres> {
  const manifest = `
apiVersion: apps/v1
kind: Deployment
metadata: { name: postgres, namespace: ${namespace} }
spec:
  replicas: 1
  selector: { matchLabels: { app: postgres } }
  template:
    metadata: { labels: { app: postgres } }
    spec:
      # Removed mid-file (mail.test.ts, store Kubernetes): gone in seconds, not the default 30.
      terminationGracePeriodSeconds: 2
      containers:
        - name: postgres
          image: ${node.images.postgres}
          imagePullPolicy: Never
          # The test image listens on 127.0.0.1 for host networking; in a pod, on the pod IP.
          command: ["bash", "-c", "echo 'host all all 0.0.0.0/0 scram-sha-256' >> \\"$PGDATA/pg_hba.conf\\" && exec /usr/local/bin/entrypoint.sh -c listen_addresses=*"]
          ports: [{ containerPort: 5432, name: pg }]
          # A CPU request, as a real database has: without one (BestEffort) it gets the least CPU
          # share on a busy node, and lookups time out.
          resources: { requests: { cpu: 100m, memory: 64Mi } }
          readinessProbe: { tcpSocket: { port: 5432 }, periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: postgres, namespace: ${namespace} }
spec:
  selector: { app: postgres }
  ports: [{ port: 5432, targetPort: pg }]
`;
  const applied = await node.kubectl(['apply', '-f', '-'], manifest);
  if (applied.code !== 0) throw new Error(applied.stderr);
  const { core } = clients(node);
  const clusterIp = (await core.readNamespacedService({ namespace, name: 'postgres' })).spec!.clusterIP!;
  await waitFor('PostgreSQL Ready', 120_000, async () => {
    const pods = (await core.listNamespacedPod({ namespace, labelSelector: 'app=postgres' })).items;
    return pods.some(podReady) ? true : undefined;
  });
  const forward = await node.forward(clusterIp, 5432);
  const query = async <T>(sql: string, params: unknown[] = []): Promise<T[]> => {
    const client = new pg.Client({ host: '127.0.0.1', port: forward.port, user: 'vmailadmin', password: TEST_PASSWORD, database: 'vmail' });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as T[];
    } finally {
      await client.end();
    }
  };
  await waitFor('PostgreSQL through its Service', 60_000, () => query('SELECT 1').then(() => true));
  await query(await readFile(`${FIXTURES_DIR}/iredmail-postgres.sql`, 'utf8'));
  for (const m of mailboxes) {
    await query('INSERT INTO mailbox (username, domain) VALUES ($1, $2) ON CONFLICT DO NOTHING', [m, m.slice(m.indexOf('@') + 1)]);
  }
  return { clusterIp, query, close: () => forward.close() };
}

/**
 * PolicyDaemon `shared` in Service mode (backend `vmail`, two replicas) whose clients are the pods
 * labelled `app.kubernetes.io/name: <clientName>` (its NetworkPolicy admits only them), and waits until
 * both replicas are ready.
 */
export async function deployServiceDaemon(node: SharedNode, namespace: string, cacheTTL: string, clientName: string): Promise<void> {
  const applied = await node.kubectl(['apply', '-f', '-'], `
apiVersion: ${GROUP}/${VERSION}
kind: PolicyDaemon
metadata: { name: shared, namespace: ${namespace} }
spec:
  backendRef: { name: vmail }
  mode: Service
  replicas: 2
  podSelector: { matchLabels: { app.kubernetes.io/name: ${clientName} } }
  policy: { cacheTTL: ${cacheTTL}, lookupTimeout: ${LOOKUP_TIMEOUT} }
`);
  if (applied.code !== 0) throw new Error(applied.stderr);
  const { apps } = clients(node);
  await waitFor('two daemon replicas ready', 180_000, async () => ((await apps.readNamespacedDeployment({ namespace, name: 'shared-policyd' }).catch(() => undefined))?.status?.readyReplicas === 2 ? true : undefined));
}

/** The MailBackend (and its Secret) for the in-cluster PostgreSQL. */
export function backendManifest(namespace: string, name: string, url: string, secret: string | undefined): string {
  return `
${secret === undefined ? '' : `apiVersion: v1
kind: Secret
metadata: { name: ${secret}, namespace: ${namespace} }
stringData: { password: ${TEST_PASSWORD} }
---`}
apiVersion: mailwarden.io/v1alpha1
kind: MailBackend
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  url: ${url}
  credentialsSecretRef: { name: ${secret ?? `${name}-credentials`} }
`;
}

export interface PostfixDeployment {
  readonly name: string;
  readonly namespace: string;
}

/**
 * A Postfix Deployment from the test image, wired as docker-mailserver's chart renders it: a
 * ConfigMap with main.cf lines (here /etc/postfix/main.cf.override, which the image appends),
 * and the opt-in label in the pod template. `policy` is check_policy_service's address; the pods
 * run as `serviceAccountName` when given (the namespace's default otherwise).
 */
export async function deployPostfix(node: SharedNode, namespace: string, name: string, policy: string, podLabels: Record<string, string>, serviceAccountName?: string): Promise<PostfixDeployment> {
  const labels = { app: name, ...podLabels };
  const manifest = `
apiVersion: v1
kind: ConfigMap
metadata: { name: ${name}-config, namespace: ${namespace} }
data:
  postfix-main.cf: |
    inet_interfaces = all
    virtual_mailbox_maps = texthash:/etc/postfix/vmailbox
    smtpd_sasl_auth_enable = yes
    smtpd_recipient_restrictions = check_policy_service { ${policy}, timeout=10s, { default_action = DEFER_IF_PERMIT ${POLICY_UNAVAILABLE} } }, permit_sasl_authenticated, permit_mynetworks, reject_unauth_destination
  postfix-master.cf: |
    ${SMTP_PORT}/inet = ${SMTP_PORT} inet n - n - - smtpd
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  replicas: 1
  selector: { matchLabels: { app: ${name} } }
  strategy: { type: RollingUpdate, rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } }
  template:
    metadata:
      labels: ${JSON.stringify(labels)}
    spec:
      terminationGracePeriodSeconds: 5${serviceAccountName === undefined ? '' : `
      serviceAccountName: ${serviceAccountName}`}
      containers:
        - name: postfix
          image: ${node.images.postfix}
          imagePullPolicy: Never
          ports: [{ containerPort: ${SMTP_PORT}, name: smtp }]
          # As the mail charts set: without a CPU request Postfix starts last on a busy node.
          resources: { requests: { cpu: 100m, memory: 64Mi } }
          readinessProbe: { tcpSocket: { port: ${SMTP_PORT} }, periodSeconds: 1 }
          volumeMounts:
            - { name: config, mountPath: /etc/postfix/main.cf.override, subPath: postfix-main.cf }
            - { name: config, mountPath: /etc/postfix/master.cf.override, subPath: postfix-master.cf }
      volumes:
        - name: config
          configMap: { name: ${name}-config }
`;
  const applied = await node.kubectl(['apply', '-f', '-'], manifest);
  if (applied.code !== 0) throw new Error(applied.stderr);
  return { name, namespace };
}

/** The Deployment's pods that are not being deleted. */
export async function postfixPods(node: SharedNode, d: PostfixDeployment): Promise<V1Pod[]> {
  const { core } = clients(node);
  return (await core.listNamespacedPod({ namespace: d.namespace, labelSelector: `app=${d.name}` })).items.filter((p) => p.metadata?.deletionTimestamp === undefined);
}

/** Whether the pod's container `name` passes its readiness probe. */
export function containerReady(pod: V1Pod, name: string): boolean {
  return (pod.status?.containerStatuses ?? []).some((s) => s.name === name && s.ready);
}

/** The pods of `selector` with their containers' states and recent events, for a failure message. */
export async function describePods(node: SharedNode, namespace: string, selector: string): Promise<string> {
  const pods = await node.kubectl(['-n', namespace, 'get', 'pods', '-l', selector, '-o', 'jsonpath={range .items[*]}{.metadata.name} {.status.containerStatuses}{"\\n"}{end}']);
  const events = await node.kubectl(['-n', namespace, 'get', 'events', '--sort-by=.lastTimestamp']);
  const logs = await node.kubectl(['-n', namespace, 'logs', '-l', selector, '-c', 'postfix', '--tail=15']);
  return `${pods.stdout}${pods.stderr}\n${events.stdout.split('\n').slice(-20).join('\n')}\n${logs.stdout}${logs.stderr}`;
}

/** Whether the pod's container `name` is running (state.running). */
export function containerRunning(pod: V1Pod, name: string): boolean {
  return (pod.status?.containerStatuses ?? []).some((s) => s.name === name && s.state?.running !== undefined);
}
