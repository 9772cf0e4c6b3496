// Scenario 1 of issue #19, on the test node: the chart installed as docs/install.md says runs.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import {
  clients,
  createNamespaces,
  describeOperator,
  GROUP,
  installOperator,
  podReady,
  uninstallOperator,
  useKubeNode,
  VERSION,
  waitFor,
  type Clients,
  type OperatorRelease,
  type SharedNode,
} from './support.ts';

const OPERATOR_NS = 'mailwarden-system';
const MAIL_NS = 'mail';

describe('on a real node: helm install as documented', () => {
  let node: SharedNode;
  let c: Clients;
  let rel: OperatorRelease | undefined;
  let pods: V1Pod[] = [];

  before(async () => {
    node = await useKubeNode();
    c = clients(node);
    await createNamespaces(node, OPERATOR_NS, [MAIL_NS]);
    rel = await installOperator(node, 'mailwarden', OPERATOR_NS, [MAIL_NS]);
  });
  after(async () => uninstallOperator(node, rel));

  test('the node came up on its own (bring-up measured)', (t) => {
    const ms = node.timings;
    t.diagnostic(`node bring-up ${ms.total} ms (apiserver ready at ${ms.apiserver} ms, Node Ready at ${ms['node-ready']} ms); image builds before it ${node.imagesMs} ms`);
    assert.ok(ms.total !== undefined && ms.total > 0);
  });

  test('the operator Deployment: two replicas Running and Ready, one of them leader', async (t) => {
    t.diagnostic(`helm install --wait took ${rel!.installMs} ms`);
    pods = await waitFor('two Ready operator pods', 120_000, async () => {
      const list = (await c.core.listNamespacedPod({ namespace: OPERATOR_NS, labelSelector: 'app.kubernetes.io/component=operator' })).items;
      return list.length === 2 && list.every(podReady) ? list : undefined;
    }).catch(async (e: unknown) => assert.fail(`${String(e)}\n${await describeOperator(node, OPERATOR_NS)}`));
    const names = pods.map((p) => p.metadata!.name!);
    const holder = await waitFor('a lease holder', 60_000, async () => {
      const lease = await c.leases.readNamespacedLease({ namespace: OPERATOR_NS, name: rel!.fullname });
      return lease.spec?.holderIdentity || undefined;
    });
    t.diagnostic(`pods ${names.join(', ')}; leader ${holder}`);
    assert.ok(names.includes(holder), `the lease holder ${holder} is one of the pods ${names.join(', ')}`);
  });

  test('Pod Security "restricted" is enforced on the namespace, and the operator pods pass it', async () => {
    const ns = await c.core.readNamespace({ name: OPERATOR_NS });
    assert.equal(ns.metadata?.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
    const bad = await node.kubectl(['-n', OPERATOR_NS, 'run', 'privileged', `--image=${node.images.postgres}`, '--image-pull-policy=Never', '--privileged', '--dry-run=server']);
    assert.notEqual(bad.code, 0, 'a privileged pod is refused');
    assert.match(bad.stderr, /violates PodSecurity "restricted/);
    assert.ok(pods.length === 2 && pods.every(podReady));
  });

  test('the API server calls the webhook through its Service and the pod comes back injected', async (t) => {
    const configuration = JSON.parse((await node.kubectl(['get', 'mutatingwebhookconfiguration', rel!.fullname, '-o', 'json'])).stdout) as {
      webhooks: Array<{ clientConfig: { service?: { name: string; namespace: string }; caBundle?: string } }>;
    };
    assert.deepEqual(configuration.webhooks[0]!.clientConfig.service?.namespace, OPERATOR_NS, 'the chart routes the webhook through a Service');
    await node.kubectl(['apply', '-f', '-'], `
apiVersion: v1
kind: Secret
metadata: { name: vmail-credentials, namespace: ${MAIL_NS} }
stringData: { password: change-me }
---
apiVersion: ${GROUP}/${VERSION}
kind: MailBackend
metadata: { name: vmail, namespace: ${MAIL_NS} }
spec:
  url: postgres://vmail@postgres.${MAIL_NS}.svc:5432/vmail
  credentialsSecretRef: { name: vmail-credentials }
---
apiVersion: ${GROUP}/${VERSION}
kind: PolicyDaemon
metadata: { name: mailserver, namespace: ${MAIL_NS} }
spec:
  backendRef: { name: vmail }
  mode: Sidecar
  podSelector: { matchLabels: { app.kubernetes.io/name: postfix } }
`);
    const pod = `
apiVersion: v1
kind: Pod
metadata:
  name: postfix-probe
  namespace: ${MAIL_NS}
  labels: { app.kubernetes.io/name: postfix, mailwarden.io/inject: "true" }
spec:
  containers: [{ name: postfix, image: ${node.images.postfix}, imagePullPolicy: Never }]
`;
    const t0 = Date.now();
    // A server-side dry run goes through admission, webhooks included, and stores nothing.
    const injected = await waitFor('an injected pod from the webhook', 60_000, async () => {
      const r = await node.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], pod);
      if (r.code !== 0) throw new Error(r.stderr);
      const p = JSON.parse(r.stdout) as V1Pod;
      const all = [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])];
      return all.some((x) => x.name === 'mailwarden-policyd') ? p : undefined;
    });
    t.diagnostic(`webhook through the Service injected within ${Date.now() - t0} ms of the PolicyDaemon's creation`);
    assert.equal(injected.metadata?.annotations?.['mailwarden.io/injected'], 'mailserver');
    assert.ok(configuration.webhooks[0]!.clientConfig.caBundle, 'the operator filled in the caBundle');
  });

  test('/metrics is scraped from an operator pod', async (t) => {
    const ip = pods[0]!.status!.podIP!;
    const f = await node.forward(ip, 8080);
    try {
      const t0 = Date.now();
      const res = await fetch(`http://127.0.0.1:${f.port}/metrics`);
      const text = await res.text();
      t.diagnostic(`GET ${ip}:8080/metrics: HTTP ${res.status}, ${text.length} bytes in ${Date.now() - t0} ms`);
      assert.equal(res.status, 200);
      assert.match(text, /^# HELP mailwarden_operator_/m);
    } finally {
      await f.close();
    }
  });
});
