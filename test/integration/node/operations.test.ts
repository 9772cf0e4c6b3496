// Scenarios 3 and 6 of issue #19 on one operator release on the test node. First helm upgrade
// with changed values while the operator runs (the chart owns the webhook configuration, the
// operator only its caBundle, through its own field manager). Then, at the same time: the
// chart's manifests applied server-side every 30 s for 3 minutes (GitOps), and mail flowing
// through Postfix to a Service-mode daemon while the leader operator pod is deleted and Postfix
// is restarted (rolling) — the applies then also meet an operator failover.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { renderChart } from '../../harness/kube-tools.ts';
import { ACCEPTED, rejected, sendMessage } from '../postfix/suite.ts';
import { backendManifest, deployPostgres, deployServiceDaemon, deployPostfix, restrictionManifest, SMTP_PORT, type ClusterPostgres } from './mail-cluster.ts';
import {
  clients,
  createNamespaces,
  imageValues,
  installOperator,
  podReady,
  uninstallOperator,
  useKubeNode,
  waitFor,
  type Clients,
  type OperatorRelease,
  type SharedNode,
} from './support.ts';

const OPERATOR_NS = 'mw-ops';
const MAIL_NS = 'mail-ops';
const RELEASE = 'mwops';
const CA_MANAGER = 'mailwarden-webhook-ca';

interface ManagedEntry {
  manager: string;
  operation: string;
  fieldsV1?: unknown;
}
interface Configuration {
  metadata: { managedFields?: ManagedEntry[]; labels?: Record<string, string> };
  webhooks: Array<{ timeoutSeconds?: number; objectSelector?: unknown; clientConfig: { caBundle?: string } }>;
}

/** Every owned leaf field path of the object → the sorted managers that own it. */
function owners(entries: readonly ManagedEntry[]): Map<string, string> {
  const out = new Map<string, Set<string>>();
  const walk = (node: unknown, path: string, manager: string): void => {
    if (node === null || typeof node !== 'object') return;
    const keys = Object.keys(node as object).filter((k) => k !== '.');
    if (keys.length === 0) {
      if (!out.has(path)) out.set(path, new Set());
      out.get(path)!.add(manager);
      return;
    }
    for (const k of keys) walk((node as Record<string, unknown>)[k], `${path}/${k}`, manager);
  };
  for (const e of entries) walk(e.fieldsV1, '', e.manager);
  return new Map([...out].map(([k, v]) => [k, [...v].sort().join(',')]));
}

describe('on a real node: helm upgrade, GitOps applies and disruption while the operator runs', () => {
  let node: SharedNode;
  let c: Clients;
  let rel: OperatorRelease | undefined;
  let store: ClusterPostgres | undefined;
  let closeSmtp: (() => Promise<void>) | undefined;
  const configuration = async (): Promise<Configuration> =>
    JSON.parse((await node.kubectl(['get', 'mutatingwebhookconfiguration', rel!.fullname, '-o', 'json', '--show-managed-fields'])).stdout) as Configuration;
  const operatorPods = async () => (await c.core.listNamespacedPod({ namespace: OPERATOR_NS, labelSelector: 'app.kubernetes.io/component=operator' })).items;
  const restriction = (senders: string[]): string => restrictionManifest(MAIL_NS, senders);

  before(async () => {
    node = await useKubeNode();
    c = clients(node);
    await createNamespaces(node, OPERATOR_NS, [MAIL_NS]);
    [rel, store] = await Promise.all([installOperator(node, RELEASE, OPERATOR_NS, [MAIL_NS]), deployPostgres(node, MAIL_NS, ['alice@example.com'])]);
    await waitFor('the operator filling in the caBundle', 60_000, async () => ((await configuration()).webhooks[0]?.clientConfig.caBundle ? true : undefined));
  });
  after(async () => {
    await closeSmtp?.();
    await store?.close();
    await node?.kubectl(['delete', 'namespace', MAIL_NS, '--wait=false']);
    await uninstallOperator(node, rel);
  });

  test('helm upgrade with changed values succeeds while the operator runs, and the values stay', async (t) => {
    const before = (await operatorPods()).map((p) => p.metadata!.name!);
    // The chart creates the webhook's certificate Secret empty; what the operator wrote in it must
    // survive the upgrade (the chart renders no data), or the webhook would get a new CA.
    const certificates = async () => (await c.core.readNamespacedSecret({ namespace: OPERATOR_NS, name: `${rel!.fullname}-webhook-tls` })).data;
    const written = await certificates();
    assert.ok(written?.['tls.crt'], 'the operator filled the chart\'s Secret');
    const t0 = Date.now();
    const args = ['upgrade', RELEASE, 'charts/mailwarden', '--namespace', OPERATOR_NS, '--set', `watchNamespaces={${MAIL_NS}}`];
    for (const s of [...imageValues(node), 'webhook.timeoutSeconds=9', 'operator.resync=10m', 'webhook.objectSelector.matchLabels.mailwarden\\.io/inject=yes']) args.push('--set', s);
    const result = await node.helm([...args, '--wait', '--timeout', '5m']);
    assert.equal(result.code, 0, `helm upgrade failed:\n${result.stderr}`);
    t.diagnostic(`helm upgrade (rolling the operator) took ${Date.now() - t0} ms`);
    // New pods (operator.resync changed the template) ran their certificate check at start-up:
    // the one that used to force the whole configuration back.
    await waitFor('the rolled operator pods Ready', 120_000, async () => {
      const pods = await operatorPods();
      return pods.length === 2 && pods.every((p) => podReady(p) && !before.includes(p.metadata!.name!)) ? true : undefined;
    });
    await sleep(5_000);
    const cfg = await configuration();
    assert.equal(cfg.webhooks[0]!.timeoutSeconds, 9);
    assert.deepEqual(cfg.webhooks[0]!.objectSelector, { matchLabels: { 'mailwarden.io/inject': 'yes' } });
    assert.equal(cfg.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm');
    assert.ok(cfg.webhooks[0]!.clientConfig.caBundle);
    assert.deepEqual(await certificates(), written, 'the CA and serving certificate kept through the upgrade');
    const fields = owners(cfg.metadata.managedFields ?? []);
    const caOwned = [...fields].filter(([, o]) => o.includes(CA_MANAGER)).map(([k]) => k);
    t.diagnostic(`fields owned by ${CA_MANAGER}: ${caOwned.join(' ')}`);
    // An apply names the list entry it sets the caBundle in by its key, and so co-owns the key.
    const isListKey = (k: string): boolean => /^\/f:webhooks\/k:\{[^}]*\}\/f:name$/.test(k);
    assert.ok(caOwned.some((k) => k.endsWith('/f:clientConfig/f:caBundle')), `the operator owns the caBundle: ${caOwned.join(' ')}`);
    assert.ok(caOwned.every((k) => k.endsWith('/f:clientConfig/f:caBundle') || isListKey(k)), `the operator owns only the caBundle: ${caOwned.join(' ')}`);
    assert.ok(!(cfg.metadata.managedFields ?? []).some((e) => e.manager === 'mailwarden-operator'), 'no whole-object ownership by the operator');
  });

  /** Postfix behind Service `smtp`, asking a Service-mode daemon with two replicas; a 127.0.0.1 port to it. */
  async function mailFlow(): Promise<number> {
    const applied = await node.kubectl(['apply', '-f', '-'], `${backendManifest(MAIL_NS, 'vmail', `postgres://vmailadmin@${store!.clusterIp}:5432/vmail`, 'vmail-credentials')}
---
${restriction(['@spam.test'])}
`);
    assert.equal(applied.code, 0, applied.stderr);
    await deployServiceDaemon(node, MAIL_NS, '5s', 'postfix');
    const daemonIp = (await c.core.readNamespacedService({ namespace: MAIL_NS, name: 'shared-policyd' })).spec!.clusterIP!;
    await deployPostfix(node, MAIL_NS, 'postfix', `inet:${daemonIp}:7777`, { 'app.kubernetes.io/name': 'postfix' });
    const svc = await node.kubectl(['-n', MAIL_NS, 'expose', 'deployment', 'postfix', `--port=${SMTP_PORT}`, '--name=smtp']);
    assert.equal(svc.code, 0, svc.stderr);
    const smtpIp = (await c.core.readNamespacedService({ namespace: MAIL_NS, name: 'smtp' })).spec!.clusterIP!;
    const f = await node.forward(smtpIp, SMTP_PORT);
    closeSmtp = () => f.close();
    await waitFor('a first decision through the Services', 120_000, async () => ((await sendMessage(f.port, { from: 'x@spam.test', to: ['alice@example.com'] })).rcpt[0] === rejected('alice@example.com') ? true : undefined), 500);
    return f.port;
  }

  describe('at the same time', { concurrency: true }, () => {
    test('the chart applied server-side every 30 s for 3 minutes: every apply succeeds, no field changes owner', async (t) => {
      const sets = [`watchNamespaces={${MAIL_NS}}`, ...imageValues(node), 'webhook.timeoutSeconds=9', 'operator.resync=10m', 'webhook.objectSelector.matchLabels.mailwarden\\.io/inject=yes'];
      const manifests = await renderChart(RELEASE, OPERATOR_NS, sets);
      let first: Map<string, string> | undefined;
      const flips: string[] = [];
      const rounds = 7;
      for (let i = 0; i < rounds; i++) {
        if (i > 0) await sleep(30_000);
        const r = await node.kubectl(['apply', '--server-side', '--field-manager=gitops', '-f', '-'], manifests);
        assert.equal(r.code, 0, `server-side apply ${i + 1} failed:\n${r.stderr}`);
        const now = owners((await configuration()).metadata.managedFields ?? []);
        if (first === undefined) {
          first = now;
          continue;
        }
        for (const [field, who] of now) if (first.get(field) !== who) flips.push(`apply ${i + 1}: ${field} ${first.get(field) ?? '(none)'} → ${who}`);
        for (const field of first.keys()) if (!now.has(field)) flips.push(`apply ${i + 1}: ${field} no longer owned`);
      }
      t.diagnostic(`${rounds} server-side applies over ${(rounds - 1) * 30} s; ${first?.size} owned fields of the webhook configuration watched; ${flips.length} owner changes`);
      assert.deepEqual(flips, []);
      const cfg = await configuration();
      assert.equal(cfg.webhooks[0]!.timeoutSeconds, 9);
      assert.ok(cfg.webhooks[0]!.clientConfig.caBundle, 'the caBundle stays');
    });

    test('leader pod deleted and Postfix restarted while sessions flow: no failure action; a change made during failover applied within 30 s', async (t) => {
      const t0Setup = Date.now();
      const smtpPort = await mailFlow();
      t.diagnostic(`mail flowing through Postfix and two daemon replicas ${Date.now() - t0Setup} ms after the test started`);
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
});
