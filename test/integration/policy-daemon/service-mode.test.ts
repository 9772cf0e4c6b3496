import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, NetworkingV1Api, PolicyV1Api, type KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Operator } from '../../../src/operator/manager.ts';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { installCrds } from '../../harness/crds.ts';
import { eventually } from '../../harness/operator-env.ts';
import { createBackendAndDaemon } from '../webhook/support.ts';

// Service mode on a real API server with kube-controller-manager (garbage collection): the
// Deployment, Service, PodDisruptionBudget and ConfigMap are created owned by the PolicyDaemon,
// rolled on a configuration change, and collected with it.

const NAME = 'relay';
const OBJECT = `${NAME}-policyd`;

describe('PolicyDaemon in Service mode', () => {
  let cp: ControlPlane;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  let policy: PolicyV1Api;
  let networking: NetworkingV1Api;
  let objects: CustomObjectsApi;
  let operator: Operator;
  const ns = `pd-service-${Math.random().toString(36).slice(2, 6)}`;
  const base = { group: 'mailwarden.io', version: 'v1alpha1', namespace: ns, plural: 'policydaemons' };
  const daemon = async () => (await objects.getNamespacedCustomObject({ ...base, name: NAME })) as { metadata: { generation: number; uid: string }; spec: Record<string, unknown>; status?: { readyReplicas?: number; configHash?: string; observedGeneration?: number; conditions?: { type: string; status: string; reason: string; message: string }[] } };
  const deployment = () => apps.readNamespacedDeployment({ namespace: ns, name: OBJECT }).catch(() => undefined);
  const hashOf = (d: V1Deployment | undefined) => d?.spec?.template.metadata?.annotations?.['mailwarden.io/config-hash'];

  before(async () => {
    cp = await startControlPlane({ controllerManager: true });
    kc = cp.kubeConfig();
    await installCrds(kc);
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
    policy = kc.makeApiClient(PolicyV1Api);
    networking = kc.makeApiClient(NetworkingV1Api);
    objects = kc.makeApiClient(CustomObjectsApi);
    await core.createNamespace({ body: { metadata: { name: ns, labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' } } } });
    operator = new Operator({ kubeConfig: kc, namespaces: [ns], logger: pino({ level: process.env.OPERATOR_LOG_LEVEL ?? 'silent' }), backendProbeIntervalMs: 60_000, policyDaemons: { image: 'example.invalid/mailwarden:test', metricsNamespaces: ['monitoring'] } });
    await operator.start();
    await createBackendAndDaemon(objects, core, ns, { name: NAME, spec: { backendRef: { name: 'vmail' }, mode: 'Service', replicas: 2, policy: { semantics: 'iredapd', cacheTTL: '10s' } } });
  });
  after(async () => {
    await operator?.stop();
    await cp?.stop();
  });

  test('creates a Deployment, Service, PodDisruptionBudget and ConfigMap owned by the PolicyDaemon', async () => {
    const d = await eventually('Deployment', deployment);
    const uid = (await daemon()).metadata.uid;
    const svc = await core.readNamespacedService({ namespace: ns, name: OBJECT });
    const pdb = await policy.readNamespacedPodDisruptionBudget({ namespace: ns, name: OBJECT });
    const cm = await core.readNamespacedConfigMap({ namespace: ns, name: OBJECT });
    for (const object of [d, svc, pdb, cm]) {
      const owner = object.metadata?.ownerReferences?.[0];
      assert.equal(owner?.uid, uid);
      assert.equal(owner?.controller, true);
    }
    assert.equal(d.spec?.replicas, 2);
    assert.equal(svc.spec?.ports?.[0]?.port, 7777);
    assert.equal(pdb.spec?.maxUnavailable, 1);
    assert.match(cm.data?.['policyd.yaml'] ?? '', /^listen: 0\.0\.0\.0:7777$/m, 'reachable through the Service');
    assert.match(cm.data?.['policyd.yaml'] ?? '', /^semantics: iredapd$/m);
    const container = d.spec?.template.spec?.containers[0];
    assert.equal(container?.restartPolicy, undefined, 'a plain container in a Deployment');
    assert.equal(container?.securityContext?.readOnlyRootFilesystem, true);
    assert.ok(hashOf(d));
  });

  test('a NetworkPolicy admits to the policy port only the Postfix pods podSelector names (none without one), to metrics only the chart\'s namespaces', async () => {
    const read = () => networking.readNamespacedNetworkPolicy({ namespace: ns, name: OBJECT }).catch(() => undefined);
    const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
    const metricsRule = { _from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ protocol: 'TCP', port: 7778 }] };
    const policyRule = { _from: [{ podSelector: { matchLabels: { app: 'postfix' } } }], ports: [{ protocol: 'TCP', port: 7777 }] };
    const ingressBecomes = (rules: unknown[]) =>
      eventually(`ingress ${JSON.stringify(rules)}`, async () => {
        const np = await read();
        return np !== undefined && isDeepStrictEqual(plain(np.spec?.ingress ?? []), rules) ? np : undefined;
      });
    const setSelector = async (podSelector: object | undefined) => {
      const current = await daemon();
      const { podSelector: _, ...spec } = current.spec;
      await objects.replaceNamespacedCustomObject({ ...base, name: NAME, body: { ...current, spec: podSelector === undefined ? spec : { ...spec, podSelector } } });
    };
    const ready = async () => (await daemon()).status?.conditions?.find((c) => c.type === 'Ready');

    // No podSelector: the Service-mode daemon does not know its clients, so no pod is admitted to
    // the policy port; only the metrics rule is there (a rule without `from` would admit everyone).
    const np = await ingressBecomes([metricsRule]);
    assert.equal(np.metadata?.ownerReferences?.[0]?.uid, (await daemon()).metadata.uid);
    assert.deepEqual(plain(np.spec?.podSelector), { matchLabels: { 'app.kubernetes.io/name': 'mailwarden-policyd', 'app.kubernetes.io/instance': NAME } });
    assert.deepEqual(np.spec?.policyTypes, ['Ingress']);
    const nobody = await eventually('NoClientsAdmitted', async () => ((await ready())?.reason === 'NoClientsAdmitted' ? ready() : undefined));
    assert.equal(nobody?.status, 'False');
    assert.match(nobody!.message, /^no podSelector: NetworkPolicy relay-policyd admits no pod to port 7777 .*set spec\.podSelector/);

    // The daemon names its Postfix pods: only they are admitted (in its namespace: no namespaceSelector).
    await setSelector({ matchLabels: { app: 'postfix' } });
    await ingressBecomes([policyRule, metricsRule]);
    await eventually('Ready leaves NoClientsAdmitted', async () => (await ready())?.reason === 'Progressing');
    // Taken away again: the rule goes with it.
    await setSelector(undefined);
    await ingressBecomes([metricsRule]);
    await setSelector({ matchLabels: { app: 'postfix' } });
    await ingressBecomes([policyRule, metricsRule]);
  });

  test("the Deployment's pod template passes Pod Security restricted (server-side dry run)", async () => {
    const d = (await deployment())!;
    const pod = await core.createNamespacedPod({ namespace: ns, dryRun: 'All', body: { metadata: { name: 'template-check', labels: d.spec?.template.metadata?.labels }, spec: d.spec?.template.spec! } });
    assert.equal(pod.metadata?.name, 'template-check');
  });

  test('status reports ready replicas and Ready once the Deployment has some', async () => {
    await eventually('Progressing', async () => (await daemon()).status?.conditions?.find((c) => c.type === 'Ready')?.reason === 'Progressing');
    // No kubelet here: report the replicas ready as the deployment controller would.
    const d = (await deployment())!;
    await apps.replaceNamespacedDeploymentStatus({ namespace: ns, name: OBJECT, body: { ...d, status: { replicas: 2, readyReplicas: 2, availableReplicas: 2, updatedReplicas: 2 } } });
    const pd = await eventually('Available', async () => {
      const pd = await daemon();
      return pd.status?.conditions?.find((c) => c.type === 'Ready')?.reason === 'Available' ? pd : undefined;
    });
    assert.equal(pd.status?.readyReplicas, 2);
    assert.match(pd.status!.conditions!.find((c) => c.type === 'Ready')!.message, /inet:relay-policyd\.pd-service-\w+\.svc:7777/);
  });

  test('a configuration change updates the ConfigMap and rolls the Deployment (hash annotation)', async () => {
    const before = hashOf(await deployment());
    const current = await daemon();
    await objects.replaceNamespacedCustomObject({ ...base, name: NAME, body: { ...current, spec: { ...current.spec, policy: { semantics: 'iredapd', cacheTTL: '10s', rejectAction: 'REJECT Not allowed here' } } } });
    const after = await eventually('new hash', async () => {
      const hash = hashOf(await deployment());
      return hash !== before ? hash : undefined;
    });
    const cm = await core.readNamespacedConfigMap({ namespace: ns, name: OBJECT });
    assert.match(cm.data?.['policyd.yaml'] ?? '', /^rejectAction: REJECT Not allowed here$/m);
    await eventually('status configHash', async () => (await daemon()).status?.configHash === after);
  });

  test('unchanged specs are not rewritten (server-side apply is a no-op)', async () => {
    const rv = (await deployment())?.metadata?.resourceVersion;
    const current = await daemon();
    // A label change is a new event for the reconciler but no change to what it produces.
    await objects.replaceNamespacedCustomObject({ ...base, name: NAME, body: { ...current, metadata: { ...current.metadata, labels: { touched: 'yes' } } } });
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal((await deployment())?.metadata?.resourceVersion, rv);
  });

  test('deleting the PolicyDaemon garbage-collects its objects', async () => {
    await objects.deleteNamespacedCustomObject({ ...base, name: NAME });
    await eventually('all gone', async () => {
      const gone = async (read: () => Promise<unknown>) => read().then(() => false, (e: { code?: number }) => e.code === 404);
      return (
        (await gone(() => apps.readNamespacedDeployment({ namespace: ns, name: OBJECT }))) &&
        (await gone(() => core.readNamespacedService({ namespace: ns, name: OBJECT }))) &&
        (await gone(() => policy.readNamespacedPodDisruptionBudget({ namespace: ns, name: OBJECT }))) &&
        (await gone(() => networking.readNamespacedNetworkPolicy({ namespace: ns, name: OBJECT }))) &&
        (await gone(() => core.readNamespacedConfigMap({ namespace: ns, name: OBJECT })))
      );
    }, 60_000);
  });
});
