// Scenario 2 of issue #19, on the test node: mail through a Postfix pod, asking the injected
// sidecar (and then a Service-mode daemon with two replicas), decided from an in-cluster
// PostgreSQL the operator writes the MailUserRestrictions into. Then store Kubernetes (#22): the
// daemon reads the MailUserRestrictions itself, with the token the kubelet projects — the
// Postfix pod's ServiceAccount as a sidecar, its own in Service mode — and no Secret, with the
// PostgreSQL removed first: no SQL or LDAP server runs anywhere on the node.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { TestClient } from '../../unit/policy/client.ts';
import { ACCEPTED, rejected, sendMessage } from '../postfix/suite.ts';
import { backendManifest, containerRunning, deployServiceDaemon, deployPostgres, deployPostfix, postfixPods, SMTP_PORT, LOOKUP_TIMEOUT, restrictionManifest, type ClusterPostgres, type PostfixDeployment } from './mail-cluster.ts';
import { clients, createNamespaces, GROUP, installOperator, podReady, uninstallOperator, useKubeNode, VERSION, waitFor, type Clients, type OperatorRelease, type SharedNode } from './support.ts';

const OPERATOR_NS = 'mw-mail';
const MAIL_NS = 'mail-flow';
const CACHE_TTL = '5s';

describe('on a real node: mail through a Postfix pod', () => {
  let node: SharedNode;
  let c: Clients;
  let rel: OperatorRelease | undefined;
  let store: ClusterPostgres | undefined;

  const restriction = (senders: string[]): string => restrictionManifest(MAIL_NS, senders);
  const applyRestriction = async (senders: string[]): Promise<void> => {
    const r = await node.kubectl(['apply', '-f', '-'], restriction(senders));
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the restriction in the store', 60_000, async () => {
      const rows = await store!.query<{ rejectedsenders: string }>('SELECT rejectedsenders FROM mailbox WHERE username = $1', ['alice@example.com']);
      return senders.every((s) => rows[0]?.rejectedsenders.includes(s)) ? true : undefined;
    });
  };

  /** Pods in any namespace running a SQL or LDAP server image: 'namespace/pod image'. */
  const databasePods = async (): Promise<string[]> =>
    (await c.core.listPodForAllNamespaces()).items.flatMap((p) =>
      (p.spec?.containers ?? []).filter((x) => x.image === node.images.postgres || /postgres|mariadb|mysql|ldap/i.test(x.image ?? '')).map((x) => `${p.metadata?.namespace}/${p.metadata?.name} ${x.image}`),
    );

  /** RCPT replies for mail to alice from each sender, over one SMTP session per sender. */
  const ask = async (port: number, senders: string[]): Promise<string[]> => {
    const out: string[] = [];
    for (const from of senders) out.push((await sendMessage(port, { from, to: ['alice@example.com'] })).rcpt[0]!);
    return out;
  };

  before(async () => {
    node = await useKubeNode();
    c = clients(node);
    await createNamespaces(node, OPERATOR_NS, [MAIL_NS]);
    [rel, store] = await Promise.all([installOperator(node, 'mwmail', OPERATOR_NS, [MAIL_NS]), deployPostgres(node, MAIL_NS, ['alice@example.com'])]);
    const r = await node.kubectl(['apply', '-f', '-'], backendManifest(MAIL_NS, 'vmail', `postgres://vmailadmin@${store.clusterIp}:5432/vmail`, 'vmail-credentials'));
    assert.equal(r.code, 0, r.stderr);
    await applyRestriction(['@spam.test']);
  });
  after(async () => {
    await store?.close();
    await node?.kubectl(['delete', 'namespace', MAIL_NS, '--wait=false']);
    await uninstallOperator(node, rel);
  });

  async function checkFlow(t: { diagnostic(m: string): void }, d: PostfixDeployment, label: string, changed: string, consecutive: number): Promise<void> {
    const pod = await waitFor(`${label}: Postfix Ready`, 120_000, async () => (await postfixPods(node, d)).find(podReady));
    const f = await node.forward(pod.status!.podIP!, SMTP_PORT);
    try {
      // Until the daemon has read the store, answers may be the failure action: wait for a decision.
      await waitFor(`${label}: the first decision`, 60_000, async () => ((await ask(f.port, ['x@spam.test']))[0] === rejected('alice@example.com') ? true : undefined));
      assert.deepEqual(await ask(f.port, ['x@spam.test', 'friend@example.net']), [rejected('alice@example.com'), ACCEPTED]);
      const t0 = Date.now();
      await applyRestriction(['@spam.test', changed]);
      const stored = Date.now() - t0;
      await waitFor(`${label}: Postfix seeing the changed restriction`, 90_000, async () => ((await ask(f.port, [`y${changed}`]))[0] === rejected('alice@example.com') ? true : undefined), 200);
      const seen = Date.now() - t0;
      // Each daemon replica caches on its own (cacheTTL): the change is in force once every
      // replica answers with it — `consecutive` rejections in a row through the Service.
      let run = 0;
      await waitFor(`${label}: every replica answering with the change`, 90_000, async () => {
        run = (await ask(f.port, [`y${changed}`]))[0] === rejected('alice@example.com') ? run + 1 : 0;
        return run >= consecutive ? true : undefined;
      }, 0);
      const everywhere = Date.now() - t0;
      assert.deepEqual(await ask(f.port, [`z${changed}`, 'x@spam.test', 'friend@example.net']), [rejected('alice@example.com'), rejected('alice@example.com'), ACCEPTED]);
      t.diagnostic(`${label}: restriction changed → in the store after ${stored} ms → first rejected by Postfix after ${seen} ms → rejected in ${consecutive} sessions in a row after ${everywhere} ms (daemon cacheTTL ${CACHE_TTL})`);
    } finally {
      await f.close();
    }
  }

  test('Sidecar mode: the pod runs with the injected daemon; sessions rejected and accepted as the restrictions say, also after a change', async (t) => {
    const pd = await node.kubectl(['apply', '-f', '-'], `
apiVersion: ${GROUP}/${VERSION}
kind: PolicyDaemon
metadata: { name: sidecar, namespace: ${MAIL_NS} }
spec:
  backendRef: { name: vmail }
  mode: Sidecar
  podSelector: { matchLabels: { app.kubernetes.io/name: postfix } }
  policy: { cacheTTL: ${CACHE_TTL}, lookupTimeout: ${LOOKUP_TIMEOUT} }
`);
    assert.equal(pd.code, 0, pd.stderr);
    await waitFor('the webhook knowing the PolicyDaemon', 60_000, async () => {
      const r = await node.kubectl(['-n', MAIL_NS, 'run', 'probe', `--image=${node.images.postfix}`, '--labels=app.kubernetes.io/name=postfix,mailwarden.io/inject=true', '--dry-run=server', '-o', 'json']);
      return r.stdout.includes('mailwarden-policyd') ? true : undefined;
    });
    const t0 = Date.now();
    const d = await deployPostfix(node, MAIL_NS, 'postfix', 'inet:127.0.0.1:7777', { 'app.kubernetes.io/name': 'postfix', 'mailwarden.io/inject': 'true' });
    const pod = await waitFor('Postfix and its sidecar running and Ready', 120_000, async () => (await postfixPods(node, d)).find((p) => podReady(p) && containerRunning(p, 'mailwarden-policyd')));
    t.diagnostic(`Postfix pod with the injected sidecar Ready ${Date.now() - t0} ms after the Deployment was applied`);
    assert.deepEqual(pod.spec?.containers.map((x) => x.name), ['postfix', 'mailwarden-policyd']);
    await checkFlow(t, d, 'sidecar', '@changed-sidecar.test', 1);
  });

  test('Service mode with two daemon replicas: Postfix asks the daemon through its Service', async (t) => {
    const t0 = Date.now();
    await deployServiceDaemon(node, MAIL_NS, CACHE_TTL, 'postfix-svc');
    t.diagnostic(`Service-mode Deployment with 2 ready replicas ${Date.now() - t0} ms after the PolicyDaemon`);
    const ip = (await c.core.readNamespacedService({ namespace: MAIL_NS, name: 'shared-policyd' })).spec!.clusterIP!;
    const d = await deployPostfix(node, MAIL_NS, 'postfix-svc', `inet:${ip}:7777`, { 'app.kubernetes.io/name': 'postfix-svc' });
    await checkFlow(t, d, 'service', '@changed-service.test', 8);
  });

  test('store Kubernetes: the sidecar reads as the Postfix pod\'s ServiceAccount with a projected token, Postfix end to end; Service mode as its own', async (t) => {
    const kubeRestriction = (senders: string[]) => `
apiVersion: ${GROUP}/${VERSION}
kind: MailUserRestriction
metadata: { name: alice-kube, namespace: ${MAIL_NS} }
spec: { mailbox: alice@example.com, rejectedSenders: ${JSON.stringify(senders)} }
`;
    // #22: no SQL or LDAP server runs while these daemons decide. The in-cluster PostgreSQL of
    // the scenarios above goes first, and the API server shows no database pod left anywhere.
    await store?.close();
    store = undefined;
    const removed = await node.kubectl(['-n', MAIL_NS, 'delete', 'deployment/postgres', 'service/postgres']);
    assert.equal(removed.code, 0, removed.stderr);
    const t00 = Date.now();
    await waitFor('no SQL or LDAP server pod left', 60_000, async () => ((await databasePods()).length === 0 ? true : undefined));
    t.diagnostic(`store Kubernetes: PostgreSQL's pod gone ${Date.now() - t00} ms after its Deployment was deleted`);
    const applied = await node.kubectl(['apply', '-f', '-'], `
apiVersion: v1
kind: ServiceAccount
metadata: { name: postfix-kube, namespace: ${MAIL_NS} }
---
apiVersion: ${GROUP}/${VERSION}
kind: PolicyDaemon
metadata: { name: kube, namespace: ${MAIL_NS} }
spec:
  store: Kubernetes
  mode: Sidecar
  podSelector: { matchLabels: { app.kubernetes.io/name: postfix-kube } }
  policy: { lookupTimeout: ${LOOKUP_TIMEOUT} }
---
apiVersion: ${GROUP}/${VERSION}
kind: PolicyDaemon
metadata: { name: kube-svc, namespace: ${MAIL_NS} }
spec: { store: Kubernetes, mode: Service, replicas: 1, policy: { lookupTimeout: ${LOOKUP_TIMEOUT} } }
---${kubeRestriction(['@kube-spam.test'])}`);
    assert.equal(applied.code, 0, applied.stderr);
    await waitFor('the webhook knowing the PolicyDaemon', 60_000, async () => {
      const r = await node.kubectl(['-n', MAIL_NS, 'run', 'probe-kube', `--image=${node.images.postfix}`, '--labels=app.kubernetes.io/name=postfix-kube,mailwarden.io/inject=true', '--dry-run=server', '-o', 'json']);
      return r.stdout.includes('mailwarden-policyd') ? true : undefined;
    });
    const t0 = Date.now();
    const d = await deployPostfix(node, MAIL_NS, 'postfix-kube', 'inet:127.0.0.1:7777', { 'app.kubernetes.io/name': 'postfix-kube', 'mailwarden.io/inject': 'true' }, 'postfix-kube');
    const pod = await waitFor('Postfix and its sidecar running and Ready', 120_000, async () => (await postfixPods(node, d)).find((p) => podReady(p) && containerRunning(p, 'mailwarden-policyd')));
    t.diagnostic(`store Kubernetes: Postfix pod with the injected sidecar Ready ${Date.now() - t0} ms after the Deployment was applied`);
    // The token: projected into the daemon's container only, from the pod's own ServiceAccount; no Secret.
    const sidecar = pod.spec!.containers.find((x) => x.name === 'mailwarden-policyd')!;
    const tokenVolume = pod.spec!.volumes!.find((v) => v.name === 'mailwarden-policyd-kube')!;
    const projectedToken = tokenVolume.projected?.sources?.[0]?.serviceAccountToken;
    assert.deepEqual([projectedToken?.path, projectedToken?.expirationSeconds], ['token', 3600]);
    assert.ok(sidecar.volumeMounts?.some((m) => m.name === tokenVolume.name));
    assert.ok(!pod.spec!.containers.find((x) => x.name === 'postfix')!.volumeMounts?.some((m) => m.name === tokenVolume.name), 'not mounted into Postfix');
    assert.ok(!(pod.spec!.volumes ?? []).some((v) => v.secret !== undefined), 'no Secret volume');
    const rbac = c.kc.makeApiClient(RbacAuthorizationV1Api);
    assert.deepEqual((await rbac.readNamespacedRoleBinding({ namespace: MAIL_NS, name: 'kube-policyd' })).subjects?.map((s) => s.name), ['postfix-kube']);
    const can = async (...args: string[]) => (await node.kubectl(['auth', 'can-i', '--as', `system:serviceaccount:${MAIL_NS}:postfix-kube`, ...args, '-n', MAIL_NS])).stdout.trim();
    assert.equal(await can('watch', 'mailuserrestrictions.mailwarden.io'), 'yes');
    for (const args of [['update', 'mailuserrestrictions.mailwarden.io'], ['get', 'secrets'], ['get', 'mailbackends.mailwarden.io'], ['list', 'pods']]) assert.equal(await can(...args), 'no', args.join(' '));

    // Ready only once the injected daemon has listed the restrictions (its readiness probe): the
    // PolicyDaemon counts it, and the restriction reports Served by it.
    type Status = { status?: { readySidecars?: number; conditions?: { type: string; reason?: string; message?: string }[] } };
    const get = async (plural: string, name: string) => (await c.objects.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: MAIL_NS, plural, name })) as Status;
    assert.ok(pod.status?.containerStatuses?.find((x) => x.name === 'mailwarden-policyd')?.ready, 'the daemon container is ready');
    await waitFor('PolicyDaemon kube counting a ready sidecar', 60_000, async () => (((await get('policydaemons', 'kube')).status?.readySidecars ?? 0) >= 1 ? true : undefined));
    const served = await waitFor('alice-kube Served', 60_000, async () => (await get('mailuserrestrictions', 'alice-kube')).status?.conditions?.find((x) => x.type === 'Ready' && x.reason === 'Served'));
    assert.match(served.message ?? '', /served by PolicyDaemon kube(,|$)/);
    const f = await node.forward(pod.status!.podIP!, SMTP_PORT);
    try {
      await waitFor('store Kubernetes: the first decision', 60_000, async () => ((await ask(f.port, ['x@kube-spam.test']))[0] === rejected('alice@example.com') ? true : undefined));
      assert.deepEqual(await ask(f.port, ['x@kube-spam.test', 'friend@example.net']), [rejected('alice@example.com'), ACCEPTED]);
      const t1 = Date.now();
      const changed = await node.kubectl(['apply', '-f', '-'], kubeRestriction(['@kube-spam.test', '@kube-changed.test']));
      assert.equal(changed.code, 0, changed.stderr);
      await waitFor('store Kubernetes: Postfix seeing the change', 60_000, async () => ((await ask(f.port, ['y@kube-changed.test']))[0] === rejected('alice@example.com') ? true : undefined), 200);
      t.diagnostic(`store Kubernetes: restriction changed → rejected by Postfix after ${Date.now() - t1} ms`);
    } finally {
      await f.close();
    }

    // Service mode: ready only once it has listed the restrictions, as its own ServiceAccount.
    const svc = await waitFor('the Service-mode daemon ready', 180_000, async () => ((await c.apps.readNamespacedDeployment({ namespace: MAIL_NS, name: 'kube-svc-policyd' }).catch(() => undefined))?.status?.readyReplicas === 1 ? true : undefined)).then(() => c.apps.readNamespacedDeployment({ namespace: MAIL_NS, name: 'kube-svc-policyd' }));
    assert.equal(svc.spec?.template.spec?.serviceAccountName, 'kube-svc-policyd-reader');
    assert.ok(!(svc.spec?.template.spec?.volumes ?? []).some((v) => v.secret !== undefined), 'no Secret volume');
    const ip = (await c.core.readNamespacedService({ namespace: MAIL_NS, name: 'kube-svc-policyd' })).spec!.clusterIP!;
    const policy = await node.forward(ip, 7777);
    const client = await TestClient.open({ host: '127.0.0.1', port: policy.port });
    try {
      client.send('request=smtpd_access_policy\nprotocol_state=RCPT\nsender=y@kube-changed.test\nrecipient=alice@example.com\n\n');
      assert.equal((await client.waitAnswers(1, 30_000))[0], 'action=REJECT Not authorized');
    } finally {
      client.socket.destroy();
      await policy.close();
    }
    assert.deepEqual(await databasePods(), [], 'still no SQL or LDAP server pod');
    const secrets = (await c.core.listNamespacedSecret({ namespace: MAIL_NS })).items.map((x) => `${x.metadata?.name} ${x.type}`);
    assert.ok(!secrets.some((x) => x.endsWith('kubernetes.io/service-account-token')), secrets.join(', '));
  });
});
