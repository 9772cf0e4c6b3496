// Shared by the suites that run on the test node (test/harness/kube-node*.ts): the chart
// installed as docs/install.md says, with the locally built image, and small waits on real state.
import { setTimeout as sleep } from 'node:timers/promises';
import { AppsV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { useKubeNode, type SharedNode } from '../../harness/kube-node-client.ts';

export { GROUP, VERSION } from '../../harness/operator-env.ts';

export interface Clients {
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly objects: CustomObjectsApi;
  readonly leases: CoordinationV1Api;
}

export function clients(node: SharedNode): Clients {
  const kc = node.kubeConfig();
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    objects: kc.makeApiClient(CustomObjectsApi),
    leases: kc.makeApiClient(CoordinationV1Api),
  };
}

/** Polls `check` until it returns a value (not undefined); throws with `what` after timeoutMs. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await sleep(intervalMs);
  }
}

export interface OperatorRelease {
  readonly release: string;
  readonly namespace: string;
  /** Namespaces the operator watches. */
  readonly watch: readonly string[];
  /** The chart's full name: Deployment, Lease, webhook configuration. */
  readonly fullname: string;
  /** Milliseconds helm install --wait took. */
  readonly installMs: number;
}

/** `--set` values that point the chart at the image imported into the node. */
export function imageValues(node: SharedNode): string[] {
  const at = node.images.mailwarden.lastIndexOf(':');
  return [`image.repository=${node.images.mailwarden.slice(0, at)}`, `image.tag=${node.images.mailwarden.slice(at + 1)}`, 'image.pullPolicy=IfNotPresent'];
}

/** Namespaces, the one the operator runs in labelled Pod Security `restricted` (enforce). */
export async function createNamespaces(node: SharedNode, operatorNamespace: string, watch: readonly string[]): Promise<void> {
  const { core } = clients(node);
  await core.createNamespace({ body: { metadata: { name: operatorNamespace, labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' } } } });
  for (const ns of watch) await core.createNamespace({ body: { metadata: { name: ns } } });
}

/**
 * docs/install.md's command — `helm install mailwarden charts/mailwarden --namespace NS
 * --set watchNamespaces={mail}` — plus the image values, waiting until the Deployment is ready.
 */
export async function installOperator(node: SharedNode, release: string, namespace: string, watch: readonly string[], sets: readonly string[] = []): Promise<OperatorRelease> {
  const t0 = Date.now();
  const args = ['install', release, 'charts/mailwarden', '--namespace', namespace, '--set', `watchNamespaces={${watch.join(',')}}`];
  for (const s of [...imageValues(node), ...sets]) args.push('--set', s);
  args.push('--wait', '--timeout', '5m');
  const result = await node.helm(args);
  if (result.code !== 0) throw new Error(`helm install failed:\n${result.stdout}\n${result.stderr}\n${await describeOperator(node, namespace)}`);
  const fullname = release.includes('mailwarden') ? release : `${release}-mailwarden`;
  return { release, namespace, watch, fullname, installMs: Date.now() - t0 };
}

export async function uninstallOperator(node: SharedNode, rel: OperatorRelease | undefined): Promise<void> {
  if (rel === undefined) return;
  await node.helm(['uninstall', rel.release, '--namespace', rel.namespace, '--wait', '--timeout', '2m']);
  await node.kubectl(['delete', 'namespace', rel.namespace, ...rel.watch, '--wait=false', '--ignore-not-found']);
}

/** What the operator's pods are doing, for a failure message. */
export async function describeOperator(node: SharedNode, namespace: string): Promise<string> {
  const pods = await node.kubectl(['-n', namespace, 'get', 'pods', '-o', 'wide']);
  const events = await node.kubectl(['-n', namespace, 'get', 'events', '--sort-by=.lastTimestamp']);
  const logs = await node.kubectl(['-n', namespace, 'logs', '-l', 'app.kubernetes.io/component=operator', '--tail=20', '--all-containers']);
  return `${pods.stdout}${pods.stderr}\n${events.stdout.split('\n').slice(-25).join('\n')}\n${logs.stdout}${logs.stderr}`;
}

export function podReady(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

export { useKubeNode, type SharedNode };
