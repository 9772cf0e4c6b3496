// Scenario 2 of issue #19, on the test node: mail through a Postfix pod, asking the injected
// sidecar (and then a Service-mode daemon with two replicas), decided from an in-cluster
// PostgreSQL the operator writes the MailUserRestrictions into.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
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
    await deployServiceDaemon(node, MAIL_NS, CACHE_TTL);
    t.diagnostic(`Service-mode Deployment with 2 ready replicas ${Date.now() - t0} ms after the PolicyDaemon`);
    const ip = (await c.core.readNamespacedService({ namespace: MAIL_NS, name: 'shared-policyd' })).spec!.clusterIP!;
    const d = await deployPostfix(node, MAIL_NS, 'postfix-svc', `inet:${ip}:7777`, { 'app.kubernetes.io/name': 'postfix-svc' });
    await checkFlow(t, d, 'service', '@changed-service.test', 8);
  });
});
