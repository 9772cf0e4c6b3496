// Scenario 6 of issue #19, on the test node: while mail flows through Postfix (a Service in
// front of its Deployment) to a Service-mode daemon with two replicas, the leader operator pod is
// deleted and Postfix is restarted (rolling). No session gets a failure action, and a
// restriction changed during the operator's failover is applied within 30 s.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ACCEPTED, rejected, sendMessage } from '../postfix/suite.ts';
import { backendManifest, deployPostgres, deployPostfix, SMTP_PORT, LOOKUP_TIMEOUT, restrictionManifest, type ClusterPostgres } from './mail-cluster.ts';
import { clients, createNamespaces, GROUP, installOperator, uninstallOperator, useKubeNode, VERSION, waitFor, type Clients, type OperatorRelease, type SharedNode } from './support.ts';

const OPERATOR_NS = 'mw-disrupt';
const MAIL_NS = 'mail-disrupt';

describe('on a real node: disruption while mail flows', () => {
  let node: SharedNode;
  let c: Clients;
  let rel: OperatorRelease | undefined;
  let store: ClusterPostgres | undefined;
  let smtpPort = 0;
  let closeSmtp: (() => Promise<void>) | undefined;

  const restriction = (senders: string[]): string => restrictionManifest(MAIL_NS, senders);

  before(async () => {
    node = await useKubeNode();
    c = clients(node);
    await createNamespaces(node, OPERATOR_NS, [MAIL_NS]);
    [rel, store] = await Promise.all([installOperator(node, 'mwdis', OPERATOR_NS, [MAIL_NS]), deployPostgres(node, MAIL_NS, ['alice@example.com'])]);
    const applied = await node.kubectl(['apply', '-f', '-'], `${backendManifest(MAIL_NS, 'vmail', `postgres://vmailadmin@${store.clusterIp}:5432/vmail`, 'vmail-credentials')}
---
${restriction(['@spam.test'])}
---
apiVersion: ${GROUP}/${VERSION}
kind: PolicyDaemon
metadata: { name: shared, namespace: ${MAIL_NS} }
spec:
  backendRef: { name: vmail }
  mode: Service
  replicas: 2
  policy: { cacheTTL: 5s, lookupTimeout: ${LOOKUP_TIMEOUT} }
`);
    assert.equal(applied.code, 0, applied.stderr);
    await waitFor('two daemon replicas ready', 180_000, async () => ((await c.apps.readNamespacedDeployment({ namespace: MAIL_NS, name: 'shared-policyd' }).catch(() => undefined))?.status?.readyReplicas === 2 ? true : undefined));
    const daemonIp = (await c.core.readNamespacedService({ namespace: MAIL_NS, name: 'shared-policyd' })).spec!.clusterIP!;
    await deployPostfix(node, MAIL_NS, 'postfix', `inet:${daemonIp}:7777`, { 'app.kubernetes.io/name': 'postfix' });
    const svc = await node.kubectl(['-n', MAIL_NS, 'expose', 'deployment', 'postfix', `--port=${SMTP_PORT}`, '--name=smtp']);
    assert.equal(svc.code, 0, svc.stderr);
    const smtpIp = (await c.core.readNamespacedService({ namespace: MAIL_NS, name: 'smtp' })).spec!.clusterIP!;
    const f = await node.forward(smtpIp, SMTP_PORT);
    smtpPort = f.port;
    closeSmtp = () => f.close();
    await waitFor('a first decision through the Services', 120_000, async () => ((await sendMessage(smtpPort, { from: 'x@spam.test', to: ['alice@example.com'] })).rcpt[0] === rejected('alice@example.com') ? true : undefined), 500);
  });
  after(async () => {
    await closeSmtp?.();
    await store?.close();
    await node?.kubectl(['delete', 'namespace', MAIL_NS, '--wait=false']);
    await uninstallOperator(node, rel);
  });

  test('leader pod deleted and Postfix restarted while sessions flow: no failure action; a change made during failover applied within 30 s', async (t) => {
    const replies = new Map<string, number>();
    const broken: string[] = [];
    let sessions = 0;
    let stop = false;
    let changedAt: number | undefined;
    let seenAt: number | undefined;
    const loop = (async () => {
      while (!stop) {
        try {
          const senders = ['x@spam.test', 'friend@example.net', ...(changedAt !== undefined ? ['y@failover.test'] : [])];
          for (const from of senders) {
            const r = (await sendMessage(smtpPort, { from, to: ['alice@example.com'] })).rcpt[0]!;
            sessions++;
            replies.set(r, (replies.get(r) ?? 0) + 1);
            if (from === 'y@failover.test' && r === rejected('alice@example.com') && seenAt === undefined) seenAt = Date.now();
          }
        } catch (error) {
          broken.push(String(error));
        }
      }
    })();
    const leader = (await c.leases.readNamespacedLease({ namespace: OPERATOR_NS, name: rel!.fullname })).spec!.holderIdentity!;
    const t0 = Date.now();
    await c.core.deleteNamespacedPod({ namespace: OPERATOR_NS, name: leader });
    // During the failover: a change the new leader must write.
    const r = await node.kubectl(['apply', '-f', '-'], restriction(['@spam.test', '@failover.test']));
    assert.equal(r.code, 0, r.stderr);
    changedAt = Date.now();
    const newLeader = await waitFor('a new leader', 90_000, async () => {
      const holder = (await c.leases.readNamespacedLease({ namespace: OPERATOR_NS, name: rel!.fullname })).spec?.holderIdentity;
      return holder && holder !== leader ? holder : undefined;
    });
    const failoverMs = Date.now() - t0;
    const restart = await node.kubectl(['-n', MAIL_NS, 'rollout', 'restart', 'deployment/postfix']);
    assert.equal(restart.code, 0, restart.stderr);
    const rolled = await node.kubectl(['-n', MAIL_NS, 'rollout', 'status', 'deployment/postfix', '--timeout=180s']);
    assert.equal(rolled.code, 0, rolled.stderr);
    await waitFor('the change seen by Postfix', 60_000, async () => (seenAt !== undefined ? true : undefined));
    stop = true;
    await loop;
    const summary = [...replies].map(([k, v]) => `${v}× "${k}"`).join('; ');
    t.diagnostic(`leader ${leader} → ${newLeader} in ${failoverMs} ms; restriction changed during failover seen by Postfix ${seenAt! - changedAt} ms later; ${sessions} sessions: ${summary}; ${broken.length} connections cut (${broken.slice(0, 3).join(' | ')})`);
    const failureAnswers = [...replies.keys()].filter((k) => k !== ACCEPTED && k !== rejected('alice@example.com'));
    assert.deepEqual(failureAnswers, [], 'no session got a failure action or default_action');
    assert.ok(seenAt! - changedAt <= 30_000, `the change took ${seenAt! - changedAt} ms`);
  });
});
