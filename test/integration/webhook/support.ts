import { createServer } from 'node:net';
import type { CoreV1Api, CustomObjectsApi, V1Pod } from '@kubernetes/client-node';
import type { OperatorOptions } from '../../../src/operator/manager.ts';
import type { ControlPlane } from '../../harness/controlplane.ts';
import { renderChart, run } from '../../harness/kube-tools.ts';
import { OPERATOR_NAMESPACE } from '../../harness/operator-env.ts';

/** A free TCP port on 127.0.0.1 (the webhook's URL must be known before it listens). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A container that Pod Security `restricted` admits. */
export function restrictedContainer(name: string) {
  return {
    name,
    image: 'example.invalid/postfix:1',
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 1000,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
}

export async function createPod(core: CoreV1Api, namespace: string, name: string, labels: Record<string, string>, extra: Partial<V1Pod['spec']> = {}): Promise<V1Pod> {
  return core.createNamespacedPod({
    namespace,
    body: { metadata: { name, labels }, spec: { containers: [restrictedContainer('postfix')], ...extra } },
  });
}

export async function createBackendAndDaemon(objects: CustomObjectsApi, core: CoreV1Api, namespace: string, daemon: { name: string; spec: Record<string, unknown> }): Promise<void> {
  await core.createNamespacedSecret({ namespace, body: { metadata: { name: 'vmail-credentials' }, stringData: { password: 'secret-1' } } });
  const base = { group: 'mailwarden.io', version: 'v1alpha1', namespace };
  await objects.createNamespacedCustomObject({
    ...base,
    plural: 'mailbackends',
    // Nothing listens on port 1: the backend is simply unavailable, which the webhook does not mind.
    body: { apiVersion: 'mailwarden.io/v1alpha1', kind: 'MailBackend', metadata: { name: 'vmail' }, spec: { url: 'postgres://vmail@127.0.0.1:1/vmail', credentialsSecretRef: { name: 'vmail-credentials' } } },
  });
  await objects.createNamespacedCustomObject({
    ...base,
    plural: 'policydaemons',
    body: { apiVersion: 'mailwarden.io/v1alpha1', kind: 'PolicyDaemon', metadata: { name: daemon.name }, spec: daemon.spec },
  });
}

export const INJECT = { 'mailwarden.io/inject': 'true' };

/** The injected sidecar of a Pod as the API server returned it (after the webhook), if any. */
export const sidecarOf = (pod: V1Pod) => pod.spec?.containers.find((c) => c.name === 'mailwarden-policyd');

/**
 * The operator's PolicyDaemon options with the sidecar webhook served on 127.0.0.1:`port`, its
 * certificate kept in Secret `secretName` (or read from `certificateDir`, as cert-manager mounts it).
 */
export function localWebhook(port: number, names: { secretName: string; configurationName: string }, certificate: { certificateDir?: string; certificateCheckIntervalMs?: number } = {}): NonNullable<OperatorOptions['policyDaemons']> {
  return {
    image: 'example.invalid/mailwarden:test',
    webhook: {
      listen: { host: '127.0.0.1', port },
      endpoint: { url: `https://127.0.0.1:${port}` },
      secretNamespace: OPERATOR_NAMESPACE,
      secretName: names.secretName,
      configurationName: names.configurationName,
      dnsNames: [],
      ipAddresses: ['127.0.0.1'],
      ...certificate,
    },
  };
}

/**
 * The webhook certificate Secret as `helm install` (release "mw") creates it: empty, in the
 * operator's namespace. The operator fills it; it never creates one.
 */
export async function installChartWebhookSecret(cp: ControlPlane): Promise<string> {
  await run('kubectl', ['create', 'namespace', OPERATOR_NAMESPACE], { kubeconfig: cp.kubeconfigPath });
  const yaml = await renderChart('mw', OPERATOR_NAMESPACE, [], ['--show-only', 'templates/webhook-secret.yaml']);
  const applied = await run('kubectl', ['apply', '-f', '-'], { input: yaml, kubeconfig: cp.kubeconfigPath });
  if (applied.code !== 0) throw new Error(`applying the chart's webhook Secret failed: ${applied.stderr}`);
  return 'mw-mailwarden-webhook-tls';
}
