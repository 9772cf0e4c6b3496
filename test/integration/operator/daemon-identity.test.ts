import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AppsV1Api, RbacAuthorizationV1Api, type V1Secret } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { run } from '../../harness/kube-tools.ts';
import { eventually, GROUP, resources, startOperatorEnv, VERSION, type OperatorEnv } from '../../harness/operator-env.ts';
import { startDaemon, type DaemonProcess } from '../../helpers/daemon.ts';
import { repoPath } from '../../helpers/paths.ts';
import { TestClient } from '../../unit/policy/client.ts';

// #25 (least privilege) and #22 (access), on a real API server with the chart's RBAC: the
// operator holds no write verb on Secrets; a PolicyDaemon with store Kubernetes reads as a
// ServiceAccount whose token the kubelet projects (Service mode: its own; Sidecar mode: the
// Postfix pod's), bound to a Role that can only get, list and watch MailUserRestrictions; the
// legacy token Secret of an older version goes once no pod mounts it.

const REJECT = 'action=REJECT Not authorized';

async function ask(daemon: DaemonProcess, sender: string, recipient: string): Promise<string> {
  const client = await TestClient.open({ host: '127.0.0.1', port: daemon.port });
  try {
    client.send(`request=smtpd_access_policy\nprotocol_state=RCPT\nsender=${sender}\nrecipient=${recipient}\n\n`);
    return (await client.waitAnswers(1, 30_000))[0]!;
  } finally {
    client.socket.destroy();
  }
}

describe('the policy daemon\'s identity without token Secrets, and an operator that writes none', () => {
  let env: OperatorEnv;
  let ns: string;
  let upgraded: string;
  let other: string;
  let dir: string;
  let daemon: DaemonProcess | undefined;
  let legacyUid: string;
  const daemonObject = (name: string, spec: Record<string, unknown>) => ({ apiVersion: `${GROUP}/${VERSION}`, kind: 'PolicyDaemon', metadata: { name }, spec: { store: 'Kubernetes', ...spec } });
  const createDaemon = async (namespace: string, name: string, spec: Record<string, unknown>) =>
    (await env.objects.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'policydaemons', body: daemonObject(name, spec) })) as { metadata: { uid: string } };
  const secret = async (namespace: string, name: string): Promise<V1Secret | undefined> => env.core.readNamespacedSecret({ namespace, name }).catch(() => undefined);
  const subjects = async (namespace: string, name: string): Promise<string[] | undefined> => {
    const binding = await env.kc.makeApiClient(RbacAuthorizationV1Api).readNamespacedRoleBinding({ namespace, name }).catch(() => undefined);
    return binding === undefined ? undefined : (binding.subjects ?? []).map((s) => s.name).sort();
  };

  before(async () => {
    assert.ok(existsSync(repoPath('dist/cli/main.js')), 'run `npm run build` first: the daemon runs from dist/');
    env = await startOperatorEnv();
    // The token controller fills in (and removes) legacy token Secrets; the garbage collector.
    await env.cp.startControllerManager();
    ns = await env.namespace('identity');
    upgraded = await env.namespace('upgraded');
    other = await env.namespace('elsewhere');
    dir = await mkdtemp(path.join(tmpdir(), 'mw-identity-'));

    // What an older version left in `upgraded`: PolicyDaemon `old` (Sidecar), its ServiceAccount
    // `old-policyd` with a legacy token Secret, and a Postfix pod injected then, mounting it.
    const old = await createDaemon(upgraded, 'old', { mode: 'Sidecar', podSelector: { matchLabels: { app: 'postfix' } } });
    const owner = [{ apiVersion: `${GROUP}/${VERSION}`, kind: 'PolicyDaemon', name: 'old', uid: old.metadata.uid, controller: true, blockOwnerDeletion: true }];
    await env.core.createNamespacedServiceAccount({ namespace: upgraded, body: { metadata: { name: 'old-policyd', ownerReferences: owner }, automountServiceAccountToken: false } });
    await env.core.createNamespacedSecret({ namespace: upgraded, body: { type: 'kubernetes.io/service-account-token', metadata: { name: 'old-policyd-token', ownerReferences: owner, annotations: { 'kubernetes.io/service-account.name': 'old-policyd' } } } });
    legacyUid = (await eventually('the legacy token filled in', async () => ((await secret(upgraded, 'old-policyd-token'))?.data?.token ? secret(upgraded, 'old-policyd-token') : undefined)))!.metadata!.uid!;
    await env.core.createNamespacedServiceAccount({ namespace: upgraded, body: { metadata: { name: 'postfix' } } });
    await env.core.createNamespacedPod({
      namespace: upgraded,
      body: {
        metadata: { name: 'postfix-legacy', labels: { app: 'postfix', 'mailwarden.io/policy-daemon': 'old' } },
        spec: { serviceAccountName: 'postfix', containers: [{ name: 'postfix', image: 'postfix:test' }], volumes: [{ name: 'mailwarden-policyd-kube', secret: { secretName: 'old-policyd-token', optional: true } }] },
      },
    });
    await env.operator([ns, upgraded], { policyDaemons: { image: 'mailwarden:test' } });
  });
  after(async () => {
    await daemon?.stop();
    await env?.stopAll();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("kubectl auth can-i: the operator's ServiceAccount may not create, update, patch or delete any Secret of a watched namespace", async () => {
    const operator = await env.chartServiceAccount([ns, upgraded]);
    const can = async (...args: string[]) => (await run('kubectl', ['auth', 'can-i', ...args], { kubeconfig: operator.path })).stdout.trim();
    for (const namespace of [ns, upgraded]) {
      for (const verb of ['create', 'update', 'patch', 'delete', 'deletecollection']) assert.equal(await can(verb, 'secrets', '-n', namespace), 'no', `${verb} secrets -n ${namespace}`);
      for (const verb of ['update', 'patch', 'delete']) assert.equal(await can(verb, 'secrets/old-policyd-token', '-n', namespace), 'no', `${verb} a token Secret`);
      assert.equal(await can('get', 'secrets', '-n', namespace), 'yes', 'reading the Secrets MailBackends name stays');
    }
  });

  test('Service mode: the daemon runs as its own ServiceAccount with a projected token, and reads with exactly that identity', async () => {
    await createDaemon(ns, 'svc', { mode: 'Service', replicas: 1 });
    const apps = env.kc.makeApiClient(AppsV1Api);
    const deployment = await eventually('the Deployment', () => apps.readNamespacedDeployment({ namespace: ns, name: 'svc-policyd' }).catch(() => undefined));
    const pod = deployment.spec!.template.spec!;
    assert.equal(pod.serviceAccountName, 'svc-policyd-reader');
    assert.equal(pod.automountServiceAccountToken, false);
    assert.ok(!(pod.volumes ?? []).some((v) => v.secret !== undefined), 'no Secret volume');
    const projectedToken = pod.volumes?.find((v) => v.projected)?.projected?.sources?.[0]?.serviceAccountToken;
    assert.deepEqual([projectedToken?.path, projectedToken?.expirationSeconds], ['token', 3600]);
    assert.deepEqual(await subjects(ns, 'svc-policyd'), ['svc-policyd-reader']);
    assert.deepEqual((await env.core.listNamespacedSecret({ namespace: ns })).items.map((s) => s.metadata?.name), [], 'no Secret created');

    // The token the kubelet would project (a TokenRequest for the same ServiceAccount), used as is.
    const token = await env.cp.serviceAccountToken(ns, 'svc-policyd-reader', { create: false });
    const can = async (...args: string[]) => (await run('kubectl', ['auth', 'can-i', ...args], { kubeconfig: token.path })).stdout.trim();
    for (const verb of ['get', 'list', 'watch']) assert.equal(await can(verb, 'mailuserrestrictions.mailwarden.io', '-n', ns), 'yes', verb);
    const denied = [
      ...['create', 'update', 'patch', 'delete', 'deletecollection'].map((verb) => [verb, 'mailuserrestrictions.mailwarden.io', '-n', ns]),
      ['patch', 'mailuserrestrictions.mailwarden.io', '--subresource=status', '-n', ns],
      ...['secrets', 'configmaps', 'pods', 'serviceaccounts', 'events', 'mailbackends.mailwarden.io', 'policydaemons.mailwarden.io'].map((resource) => ['get', resource, '-n', ns]),
      ['create', 'serviceaccounts/token', '-n', ns],
      ['list', 'mailuserrestrictions.mailwarden.io', '-n', other],
      ['list', 'mailuserrestrictions.mailwarden.io', '--all-namespaces'],
    ];
    for (const args of denied) assert.equal(await can(...args), 'no', args.join(' '));

    // The daemon as a pod runs it: the token, CA and namespace files in credentialsDir, the API
    // server's address in the environment.
    const credentials = path.join(dir, 'kube');
    await mkdir(credentials);
    await writeFile(path.join(credentials, 'token'), token.token);
    await writeFile(path.join(credentials, 'ca.crt'), await readFile(env.cp.caPath));
    await writeFile(path.join(credentials, 'namespace'), ns);
    await resources(env, ns).create('alice', { mailbox: 'alice@example.com', rejectedRecipients: ['@outside.test'] });
    const config = path.join(dir, 'policyd.yaml');
    await writeFile(config, stringify({ store: 'kubernetes://', storeSettings: { namespaces: [ns], credentialsDir: credentials } }));
    daemon = await startDaemon(['-c', config], { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(env.cp.port) });
    await eventually('the restriction decides', async () => (await ask(daemon!, 'alice@example.com', 'bob@outside.test')) === REJECT, 30_000);
  });

  test('Sidecar mode: the Postfix pods\' ServiceAccounts are bound, and only while such a pod exists', async () => {
    await createDaemon(ns, 'side', { mode: 'Sidecar', podSelector: { matchLabels: { app: 'postfix' } } });
    await eventually('the binding', async () => (await subjects(ns, 'side-policyd'))?.length === 0);
    await env.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'postfix' } } });
    await env.core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'postfix-0', labels: { app: 'postfix', 'mailwarden.io/policy-daemon': 'side' } }, spec: { serviceAccountName: 'postfix', containers: [{ name: 'postfix', image: 'postfix:test' }] } } });
    await eventually('the pod\'s ServiceAccount bound', async () => (await subjects(ns, 'side-policyd'))?.join() === 'postfix');
    const as = `system:serviceaccount:${ns}:postfix`;
    const can = async (...args: string[]) => (await run('kubectl', ['auth', 'can-i', '--as', as, ...args], { kubeconfig: env.cp.kubeconfigPath })).stdout.trim();
    assert.equal(await can('watch', 'mailuserrestrictions.mailwarden.io', '-n', ns), 'yes');
    assert.equal(await can('update', 'mailuserrestrictions.mailwarden.io', '-n', ns), 'no');
    assert.equal(await can('get', 'secrets', '-n', ns), 'no');
    await env.core.deleteNamespacedPod({ namespace: ns, name: 'postfix-0', gracePeriodSeconds: 0 });
    await eventually('unbound with its last pod', async () => (await subjects(ns, 'side-policyd'))?.length === 0);
    assert.equal(await can('watch', 'mailuserrestrictions.mailwarden.io', '-n', ns), 'no');
  });

  test('upgrade: the legacy ServiceAccount reads on while a pod mounts its token Secret; once none does, both are gone', async () => {
    await eventually('the new binding', async () => (await subjects(upgraded, 'old-policyd'))?.join() === 'old-policyd,postfix');
    const legacy = `system:serviceaccount:${upgraded}:old-policyd`;
    const can = async (...args: string[]) => (await run('kubectl', ['auth', 'can-i', '--as', legacy, ...args], { kubeconfig: env.cp.kubeconfigPath })).stdout.trim();
    assert.equal(await can('list', 'mailuserrestrictions.mailwarden.io', '-n', upgraded), 'yes', 'the pod from before the upgrade still reads');
    assert.equal((await secret(upgraded, 'old-policyd-token'))?.metadata?.uid, legacyUid);

    await env.core.deleteNamespacedPod({ namespace: upgraded, name: 'postfix-legacy', gracePeriodSeconds: 0 });
    await eventually('the legacy ServiceAccount gone', async () => (await env.core.readNamespacedServiceAccount({ namespace: upgraded, name: 'old-policyd' }).catch(() => undefined)) === undefined);
    await eventually('the legacy token Secret gone (token controller)', async () => (await secret(upgraded, 'old-policyd-token')) === undefined, 30_000);
    assert.deepEqual(await subjects(upgraded, 'old-policyd'), []);
    assert.equal(await can('list', 'mailuserrestrictions.mailwarden.io', '-n', upgraded), 'no');
    assert.ok(await env.core.readNamespacedServiceAccount({ namespace: upgraded, name: 'postfix' }), 'the Postfix pods\' own ServiceAccount stays');
  });
});
