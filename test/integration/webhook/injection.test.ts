import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { AdmissionregistrationV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import type { Operator } from '../../../src/operator/manager.ts';
import { splitBundle } from '../../../src/webhook/certificates.ts';
import { webhookConfiguration } from '../../../src/webhook/configuration.ts';
import { eventually, OPERATOR_NAMESPACE, startOperatorEnv, type OperatorEnv } from '../../harness/operator-env.ts';
import { createBackendAndDaemon, createPod, freePort, INJECT, installChartWebhookSecret, localWebhook, sidecarOf } from './support.ts';

// The sidecar webhook on a real API server: the operator (as the chart's ServiceAccount, with the
// chart's RBAC) serves it over TLS on 127.0.0.1 and keeps the MutatingWebhookConfiguration's
// caBundle current. The configuration and the empty certificate Secret are created first, as
// `helm install` would (release "mw"), the configuration with clientConfig.url: the API server
// dials 127.0.0.1, not a Service.

const CONFIGURATION = 'mw-mailwarden';
const SECRET = 'mw-mailwarden-webhook-tls';
const SIDECAR = 'mailwarden-policyd';


describe('sidecar injection webhook', () => {
  let env: OperatorEnv;
  let operator: Operator;
  let ns: string;
  let restricted: string;
  let port: number;
  let counter = 0;
  const name = (prefix: string) => `${prefix}-${++counter}`;

  before(async () => {
    env = await startOperatorEnv();
    ns = await env.namespace('inject');
    restricted = `restricted-${Math.random().toString(36).slice(2, 6)}`;
    await env.core.createNamespace({ body: { metadata: { name: restricted, labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' } } } });
    for (const namespace of [ns, restricted]) {
      await createBackendAndDaemon(env.objects, env.core, namespace, { name: 'postfix', spec: { backendRef: { name: 'vmail' }, mode: 'Sidecar', podSelector: { matchLabels: { app: 'postfix' } }, policy: { recipientDelimiter: '+' } } });
    }
    port = await freePort();
    const admission = env.kc.makeApiClient(AdmissionregistrationV1Api);
    await admission.createMutatingWebhookConfiguration({ body: webhookConfiguration(CONFIGURATION, { url: `https://127.0.0.1:${port}` }, '') });
    assert.equal(await installChartWebhookSecret(env.cp), SECRET);
    operator = await env.operator([ns, restricted], { policyDaemons: localWebhook(port, { secretName: SECRET, configurationName: CONFIGURATION }) });
    // The API server loads a new webhook configuration asynchronously: wait until it injects.
    await eventually('the API server to call the webhook', async () => {
      const pod = await createPod(env.core, ns, name('warmup'), { ...INJECT, app: 'postfix' });
      return sidecarOf(pod) !== undefined;
    }, 30_000);
  });
  after(async () => {
    await env?.stopAll();
  });

  test('a matching pod comes back with the daemon beside Postfix (not an init container), configured through mounted files', async () => {
    const pod = await createPod(env.core, ns, name('postfix'), { ...INJECT, app: 'postfix' }, { initContainers: [{ name: 'setup', image: 'example.invalid/setup:1' }] });
    const sidecar = sidecarOf(pod);
    assert.ok(sidecar, 'sidecar injected');
    assert.deepEqual(pod.spec?.initContainers?.map((c) => c.name), ['setup'], 'init containers untouched: nothing of the daemon runs before Postfix');
    assert.equal(sidecar.restartPolicy, undefined);
    assert.equal(sidecar.image, 'example.invalid/mailwarden:test');
    assert.deepEqual(sidecar.command, ['node', '/app/bin/mailwarden.js']);
    assert.deepEqual(sidecar.args, ['policyd', '-c', '/etc/mailwarden/policyd/policyd.yaml']);
    assert.equal(sidecar.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(sidecar.securityContext?.allowPrivilegeEscalation, false);
    assert.equal(sidecar.securityContext?.runAsNonRoot, true);
    assert.deepEqual(sidecar.securityContext?.capabilities?.drop, ['ALL']);
    assert.equal(sidecar.securityContext?.seccompProfile?.type, 'RuntimeDefault');
    assert.equal(sidecar.readinessProbe, undefined, 'the store\'s reachability is not the Postfix pod\'s readiness');
    assert.equal(sidecar.startupProbe?.httpGet?.path, '/healthz');
    assert.equal(sidecar.livenessProbe?.httpGet?.path, '/healthz');
    assert.ok(sidecar.resources?.requests?.memory);
    // The heap sized from the default 256Mi limit, not from the node's memory.
    assert.deepEqual(sidecar.env?.map((e) => [e.name, e.value]), [['NODE_OPTIONS', '--max-old-space-size=128 --max-semi-space-size=8']]);
    assert.equal(pod.metadata?.annotations?.['mailwarden.io/injected'], 'postfix');
    assert.equal(pod.metadata?.labels?.['mailwarden.io/policy-daemon'], 'postfix');
    const volumes = new Map((pod.spec?.volumes ?? []).map((v) => [v.name, v]));
    assert.equal(volumes.get('mailwarden-policyd-config')?.configMap?.name, 'postfix-policyd');
    assert.equal(volumes.get('mailwarden-policyd-credentials')?.secret?.secretName, 'vmail-credentials');
    assert.deepEqual(pod.spec?.containers.map((c) => c.name), ['postfix', SIDECAR], 'Postfix container first and untouched');
    assert.equal(volumes.get('mailwarden-policyd-credentials')?.secret?.optional, true, 'a missing Secret cannot hold the pod back');
    assert.equal(volumes.get('mailwarden-policyd-config')?.configMap?.optional, true);
  });

  test('the ConfigMap holds the daemon config: policy port on 127.0.0.1, password from the mounted Secret', async () => {
    const cm = await eventually('ConfigMap', () => env.core.readNamespacedConfigMap({ namespace: ns, name: 'postfix-policyd' }).catch(() => undefined));
    const yaml = cm.data?.['policyd.yaml'] ?? '';
    assert.match(yaml, /^listen: 127\.0\.0\.1:7777$/m);
    assert.match(yaml, /^passwordFile: \/etc\/mailwarden\/store-credentials\/password$/m);
    assert.match(yaml, /^recipientDelimiter: \+$/m);
    assert.equal(cm.metadata?.ownerReferences?.[0]?.kind, 'PolicyDaemon');
  });

  test('pods the selector does not match, or without the opt-in label, are untouched', async () => {
    const other = await createPod(env.core, ns, name('other'), { ...INJECT, app: 'webmail' });
    assert.equal(sidecarOf(other), undefined);
    assert.equal(other.metadata?.annotations?.['mailwarden.io/injected'], undefined);
    const optedOut = await createPod(env.core, ns, name('noinject'), { app: 'postfix' });
    assert.equal(sidecarOf(optedOut), undefined);
  });

  test('a PolicyDaemon naming an image the admin did not allow is never injected (#25)', async () => {
    const base = { group: 'mailwarden.io', version: 'v1alpha1', namespace: ns, plural: 'policydaemons' };
    await env.objects.createNamespacedCustomObject({
      ...base,
      body: { apiVersion: 'mailwarden.io/v1alpha1', kind: 'PolicyDaemon', metadata: { name: 'spy' }, spec: { backendRef: { name: 'vmail' }, mode: 'Sidecar', podSelector: { matchLabels: { app: 'spied' } }, image: 'evil.example/steal:1' } },
    });
    // Its status says the operator's cache (which the webhook decides from) has seen it.
    await eventually('spy NotAllowed', async () => {
      const daemon = (await env.objects.getNamespacedCustomObject({ ...base, name: 'spy' })) as { status?: { conditions?: { type: string; reason: string }[] } };
      return daemon.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'NotAllowed');
    });
    const pod = await createPod(env.core, ns, name('spied'), { ...INJECT, app: 'spied' });
    assert.equal(sidecarOf(pod), undefined);
    assert.ok(!(pod.spec?.containers ?? []).some((c) => c.image === 'evil.example/steal:1'));
  });

  test('a second admission of an injected pod adds nothing', async () => {
    const first = await createPod(env.core, ns, name('twice'), { ...INJECT, app: 'postfix' });
    assert.ok(sidecarOf(first));
    // The same pod spec, as a controller re-creating it would send it: already carrying the sidecar.
    const again = await env.core.createNamespacedPod({
      namespace: ns,
      body: { metadata: { name: name('twice-again'), labels: first.metadata?.labels, annotations: first.metadata?.annotations }, spec: first.spec },
    });
    assert.equal(again.spec?.containers.filter((c) => c.name === SIDECAR).length, 1);
    assert.equal(again.spec?.volumes?.length, first.spec?.volumes?.length);
  });

  test('an injected pod is admitted by Pod Security "restricted"', async () => {
    const pod = await createPod(env.core, restricted, name('postfix'), { ...INJECT, app: 'postfix' });
    assert.ok(sidecarOf(pod), 'injected and admitted');
    // The namespace really enforces: a non-compliant pod is refused.
    await assert.rejects(
      env.core.createNamespacedPod({ namespace: restricted, body: { metadata: { name: name('root') }, spec: { containers: [{ name: 'c', image: 'example.invalid/x:1' }] } } }),
      (error: { code?: number; body?: string }) => error.code === 403 && /restricted/.test(String(error.body)),
    );
  });

  test('store Kubernetes: the daemon alone gets the pod\'s own token, projected (admitted by "restricted"); the operator binds the pod\'s ServiceAccount read-only', async () => {
    const base = { group: 'mailwarden.io', version: 'v1alpha1', namespace: restricted, plural: 'policydaemons' };
    await env.objects.createNamespacedCustomObject({ ...base, body: { apiVersion: 'mailwarden.io/v1alpha1', kind: 'PolicyDaemon', metadata: { name: 'kube' }, spec: { store: 'Kubernetes', mode: 'Sidecar', podSelector: { matchLabels: { app: 'kube-postfix' } } } } });
    await env.core.createNamespacedServiceAccount({ namespace: restricted, body: { metadata: { name: 'kube-postfix' } } });
    const pod = await eventually('injected', async () => {
      const created = await createPod(env.core, restricted, name('kube-postfix'), { ...INJECT, app: 'kube-postfix' }, { serviceAccountName: 'kube-postfix', automountServiceAccountToken: false });
      return sidecarOf(created) === undefined ? undefined : created;
    });
    const token = pod.spec!.volumes!.find((v) => v.name === 'mailwarden-policyd-kube')!;
    const projectedToken = token.projected?.sources?.[0]?.serviceAccountToken;
    assert.deepEqual([projectedToken?.path, projectedToken?.expirationSeconds], ['token', 3600]);
    assert.ok(!(pod.spec?.volumes ?? []).some((v) => v.secret !== undefined), 'no Secret volume');
    const mount = sidecarOf(pod)!.volumeMounts?.find((m) => m.name === token.name);
    assert.deepEqual([mount?.mountPath, mount?.readOnly], ['/etc/mailwarden/kube', true]);
    assert.ok(!pod.spec!.containers[0]!.volumeMounts?.some((m) => m.name === token.name), 'not mounted into Postfix');
    assert.equal(pod.spec?.automountServiceAccountToken, false, 'the pod\'s own choice stays');
    const rbac = env.kc.makeApiClient(RbacAuthorizationV1Api);
    await eventually('the pod\'s ServiceAccount bound', async () => (await rbac.readNamespacedRoleBinding({ namespace: restricted, name: 'kube-policyd' }).catch(() => undefined))?.subjects?.map((x) => x.name).join() === 'kube-postfix');
  });

  test('status counts the injected pods', async () => {
    await eventually('injectedPods', async () => {
      const pd = (await env.objects.getNamespacedCustomObject({ group: 'mailwarden.io', version: 'v1alpha1', namespace: ns, plural: 'policydaemons', name: 'postfix' })) as { status?: { injectedPods?: number; conditions?: { type: string; status: string; reason: string }[] } };
      const pods = await env.core.listNamespacedPod({ namespace: ns, labelSelector: 'mailwarden.io/policy-daemon=postfix' });
      const ready = pd.status?.conditions?.find((c) => c.type === 'Ready');
      return pd.status?.injectedPods === pods.items.length && pods.items.length >= 3 && ready?.status === 'True' && ready.reason === 'Injecting';
    });
  });

  test('after certificate and CA rotation the webhook still injects; the caBundle trusts old and new CA', async () => {
    const admission = env.kc.makeApiClient(AdmissionregistrationV1Api);
    const bundleOf = async () => Buffer.from((await admission.readMutatingWebhookConfiguration({ name: CONFIGURATION })).webhooks?.[0]?.clientConfig.caBundle ?? '', 'base64').toString();
    const before = await bundleOf();
    assert.equal(splitBundle(before).length, 1);
    const secretBefore = await env.core.readNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: SECRET });

    const serving = await operator.webhook!.keeper!.rotate({ ca: true });
    const after = await bundleOf();
    assert.equal(splitBundle(after).length, 2, 'new CA published next to the old one');
    assert.ok(splitBundle(after).includes(splitBundle(before)[0]!), 'old CA still trusted');
    const secretAfter = await env.core.readNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: SECRET });
    assert.notEqual(secretAfter.data?.['tls.crt'], secretBefore.data?.['tls.crt']);
    assert.equal(secretAfter.metadata?.labels?.['app.kubernetes.io/managed-by'], 'Helm', 'only the data is written: the chart\'s labels stay');
    assert.equal(secretAfter.type, 'Opaque', 'and the type the chart created it with');
    assert.ok(new X509Certificate(serving.cert).checkIssued(new X509Certificate(splitBundle(after)[0]!)), 'serving certificate signed by the new CA');

    const pod = await createPod(env.core, ns, name('rotated'), { ...INJECT, app: 'postfix' });
    assert.ok(sidecarOf(pod), 'injected with the new certificate');

    await operator.webhook!.keeper!.rotate();
    const again = await createPod(env.core, ns, name('renewed'), { ...INJECT, app: 'postfix' });
    assert.ok(sidecarOf(again), 'injected after a serving-only renewal');
  });

  test('with the webhook down, matching pods are still admitted (failurePolicy Ignore), unchanged', async () => {
    await operator.webhook!.stop();
    const started = Date.now();
    const pod = await createPod(env.core, ns, name('down'), { ...INJECT, app: 'postfix' });
    assert.equal(sidecarOf(pod), undefined);
    assert.ok(Date.now() - started < 10_000, 'admitted without waiting out long timeouts');
  });
});
