// Scenarios 4 and 5 of issue #19, on the test node: a failure at the sidecar's start never stops
// mail (Postfix's container runs and answers, with the failure action or its default_action),
// and the PolicyDaemon's status shows the pods whose sidecar is not running.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { deferred, sendMessage } from '../postfix/suite.ts';
import type { V1Pod } from '@kubernetes/client-node';
import { backendManifest, containerReady, containerRunning, describePods, deployPostgres, deployPostfix, POLICY_UNAVAILABLE, postfixPods, SMTP_PORT, type ClusterPostgres, type PostfixDeployment } from './mail-cluster.ts';
import { clients, createNamespaces, GROUP, installOperator, uninstallOperator, useKubeNode, VERSION, waitFor, type Clients, type OperatorRelease, type SharedNode } from './support.ts';

const OPERATOR_NS = 'mw-podstart';
const MAIL_NS = 'mail-podstart';
const SIDECAR = 'mailwarden-policyd';
const FAILURE_TEXT = 'Mail policy temporarily unavailable';
/** An image the node does not have (and cannot pull). */
const MISSING_IMAGE = 'mailwarden-test/not-there:0';

interface Case {
  readonly name: string;
  readonly what: string;
  /** PolicyDaemon spec additions and the MailBackend it names. */
  readonly daemon: Record<string, unknown>;
  readonly backend: string;
  /** The RCPT reply text Postfix must give: the daemon's failure action, or Postfix's default_action. */
  readonly expect: string;
}

describe('on a real node: a failure at the sidecar\'s start never stops mail', () => {
  let node: SharedNode;
  let c: Clients;
  let rel: OperatorRelease | undefined;
  let store: ClusterPostgres | undefined;
  const deployments = new Map<string, PostfixDeployment>();
  const startedAt = new Map<string, number>();
  const starts = new Map<string, { pod: V1Pod; runningMs: number; readyMs: number } | { error: string }>();
  let cases: Case[] = [];

  before(async () => {
    node = await useKubeNode();
    c = clients(node);
    await createNamespaces(node, OPERATOR_NS, [MAIL_NS]);
    [rel, store] = await Promise.all([installOperator(node, 'mwpod', OPERATOR_NS, [MAIL_NS], [`policyDaemon.allowedImages={${MISSING_IMAGE},${node.images.postgres}}`]), deployPostgres(node, MAIL_NS, ['alice@example.com'])]);
    const pgUrl = `postgres://vmailadmin@${store.clusterIp}:5432/vmail`;
    // Nothing listens there: the Service has no endpoints (a store that is down).
    const down = await node.kubectl(['-n', MAIL_NS, 'create', 'service', 'clusterip', 'db-down', '--tcp=5432:5432']);
    assert.equal(down.code, 0, down.stderr);
    const downIp = (await c.core.readNamespacedService({ namespace: MAIL_NS, name: 'db-down' })).spec!.clusterIP!;
    cases = [
      { name: 'image-missing', what: 'the sidecar image missing', backend: 'good', daemon: { image: MISSING_IMAGE, imagePullPolicy: 'Never' }, expect: POLICY_UNAVAILABLE },
      { name: 'secret-missing', what: 'the backend Secret missing', backend: 'no-secret', daemon: {}, expect: POLICY_UNAVAILABLE },
      { name: 'store-down', what: 'the store down', backend: 'down', daemon: {}, expect: FAILURE_TEXT },
      // The daemon's command cannot run in this image: the container starts, fails, restarts.
      { name: 'crash-loop', what: 'the daemon crash-looping', backend: 'good', daemon: { image: node.images.postgres, imagePullPolicy: 'Never' }, expect: POLICY_UNAVAILABLE },
    ];
    const manifests = [
      backendManifest(MAIL_NS, 'good', pgUrl, 'good-credentials'),
      backendManifest(MAIL_NS, 'no-secret', pgUrl, undefined),
      backendManifest(MAIL_NS, 'down', `postgres://vmailadmin@${downIp}:5432/vmail`, 'down-credentials'),
      ...cases.map(
        (k) => `apiVersion: ${GROUP}/${VERSION}
kind: PolicyDaemon
metadata: { name: ${k.name}, namespace: ${MAIL_NS} }
spec:
  backendRef: { name: ${k.backend} }
  mode: Sidecar
  podSelector: { matchLabels: { case: ${k.name} } }
  policy: { failureAction: "DEFER_IF_PERMIT ${FAILURE_TEXT}", lookupTimeout: 2s }
${Object.entries(k.daemon).map(([key, v]) => `  ${key}: ${JSON.stringify(v)}`).join('\n')}
`,
      ),
    ];
    const applied = await node.kubectl(['apply', '-f', '-'], manifests.join('\n---\n'));
    assert.equal(applied.code, 0, applied.stderr);
    // The webhook decides from the operator's caches: wait until they hold every PolicyDaemon
    // (a dry-run pod per case comes back injected) before the real pods are created.
    for (const k of cases) {
      await waitFor(`the webhook knowing PolicyDaemon ${k.name}`, 60_000, async () => {
        const r = await node.kubectl(['-n', MAIL_NS, 'run', `probe-${k.name}`, `--image=${node.images.postfix}`, `--labels=case=${k.name},mailwarden.io/inject=true`, '--dry-run=server', '-o', 'json']);
        return r.code === 0 && r.stdout.includes(SIDECAR) ? true : undefined;
      });
    }
    for (const k of cases) {
      startedAt.set(k.name, Date.now());
      deployments.set(k.name, await deployPostfix(node, MAIL_NS, `postfix-${k.name}`, 'inet:127.0.0.1:7777', { case: k.name, 'mailwarden.io/inject': 'true' }));
    }
    // The four pods start together (as after a node restart): each one's start is timed from its
    // Deployment's creation, watched in parallel.
    await Promise.all(
      cases.map(async (k) => {
        const d = deployments.get(k.name)!;
        const since = startedAt.get(k.name)!;
        try {
          const running = await waitFor(`${k.what}: Postfix's container running`, 120_000, async () => (await postfixPods(node, d)).find((p) => containerRunning(p, 'postfix')));
          const runningMs = Date.now() - since;
          // The container's own readiness (its SMTP port open): the pod is not Ready while the daemon is not.
          const pod = await waitFor(`${k.what}: Postfix's container ready`, 120_000, async () => (await postfixPods(node, d)).find((p) => p.metadata?.name === running.metadata?.name && containerReady(p, 'postfix')));
          starts.set(k.name, { pod, runningMs, readyMs: Date.now() - since });
        } catch (error) {
          starts.set(k.name, { error: `${String(error)}\n${await describePods(node, MAIL_NS, `case=${k.name}`)}` });
        }
      }),
    );
  });
  after(async () => {
    await store?.close();
    await node?.kubectl(['delete', 'namespace', MAIL_NS, '--wait=false']);
    await uninstallOperator(node, rel);
  });

  for (const index of [0, 1, 2, 3]) {
    test(`case ${index + 1}: Postfix runs within 60 s and answers, never hangs`, async (t) => {
      const k = cases[index]!;
      const start = starts.get(k.name)!;
      if ('error' in start) assert.fail(start.error);
      const { pod, runningMs, readyMs } = start;
      const sidecar = (pod.status?.containerStatuses ?? []).find((s) => s.name === SIDECAR);
      assert.ok(sidecar, 'the daemon was injected');
      const f = await node.forward(pod.status!.podIP!, SMTP_PORT);
      try {
        const t0 = Date.now();
        const reply = await sendMessage(f.port, { from: 'someone@example.net', to: ['alice@example.com'] });
        const smtpMs = Date.now() - t0;
        t.diagnostic(`${k.what}: Postfix's container running ${runningMs} ms and answering ${readyMs} ms after its Deployment was created; sidecar ${JSON.stringify(sidecar.state)}; RCPT → "${reply.rcpt[0]}" in ${smtpMs} ms`);
        assert.equal(reply.rcpt[0], deferred('alice@example.com', k.expect));
        assert.ok(smtpMs < 15_000, `the session took ${smtpMs} ms`);
      } finally {
        await f.close();
      }
      assert.ok(runningMs < 60_000, `Postfix's container running after ${runningMs} ms`);
    });
  }

  test('visible: each PolicyDaemon counts and names its injected pods whose sidecar is not running, with a condition, an Event and a column', async (t) => {
    for (const k of cases.filter((x) => x.name !== 'store-down')) {
      const t0 = Date.now();
      const d = deployments.get(k.name)!;
      const podName = (await postfixPods(node, d))[0]!.metadata!.name!;
      const status = await waitFor(`${k.name}: status naming ${podName}`, 30_000, async () => {
        const pd = (await c.objects.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: MAIL_NS, plural: 'policydaemons', name: k.name })) as {
          status?: { sidecarsNotRunning?: number; sidecarsNotRunningPods?: string[]; conditions?: Array<{ type: string; status: string; reason: string; message: string }> };
        };
        return pd.status?.sidecarsNotRunning === 1 && pd.status.sidecarsNotRunningPods?.includes(podName) ? pd.status : undefined;
      });
      const condition = status.conditions?.find((x) => x.type === 'SidecarsRunning');
      assert.equal(condition?.status, 'False');
      assert.ok(condition?.reason, 'a reason');
      assert.match(condition!.message, new RegExp(podName));
      const events = await c.core.listNamespacedEvent({ namespace: MAIL_NS, fieldSelector: `involvedObject.kind=PolicyDaemon,involvedObject.name=${k.name}` });
      const warning = events.items.find((e) => e.type === 'Warning' && e.reason === condition!.reason && (e.message ?? '').includes(podName));
      assert.ok(warning, `an Event with reason ${condition!.reason} naming ${podName}`);
      // When the operator first said it, counted from the pod's creation (the failure comes after).
      const pod = (await postfixPods(node, d))[0]!;
      const said = new Date(warning.firstTimestamp ?? warning.eventTime ?? 0).getTime() - new Date(pod.metadata!.creationTimestamp!).getTime();
      t.diagnostic(`${k.what}: status names ${podName} (reason ${condition!.reason}); first Event ${said} ms after the pod was created; ${Date.now() - t0} ms of looking`);
    }
    const table = await node.kubectl(['-n', MAIL_NS, 'get', 'policydaemons']);
    t.diagnostic(table.stdout);
    assert.match(table.stdout.split('\n')[0]!, /SIDECARS NOT RUNNING/);
    assert.match(table.stdout, /image-missing\s.*\s1\s/);
  });
});
