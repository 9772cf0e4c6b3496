import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiextensionsV1Api, RbacAuthorizationV1Api, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { checkedInCrds } from '../../harness/crds.ts';
import { run } from '../../harness/kube-tools.ts';
import { eventually, GROUP, resources, startOperatorEnv, VERSION, type OperatorEnv } from '../../harness/operator-env.ts';
import { startDaemon, type DaemonProcess } from '../../helpers/daemon.ts';
import { repoPath } from '../../helpers/paths.ts';
import { TestClient } from '../../unit/policy/client.ts';

// The policy daemon with store Kubernetes (`--store kubernetes://`) against a real API server:
// its identity provisioned by the operator from a PolicyDaemon and used through a TokenRequest
// token, answers following the resources, 10,000 restrictions, an API server outage, a compacted
// history, an invalid resource past admission.

const FAILURE = 'action=DEFER_IF_PERMIT Service temporarily unavailable';
const REJECT = 'action=REJECT Not authorized';
const ALLOW = 'action=DUNNO';
const DAEMON = 'mx';
/** The Postfix pod's ServiceAccount: a sidecar reads as it, with the token the kubelet projects. */
const IDENTITY = 'postfix';

/** One policy connection; `ask` sends an RCPT request and returns the answer line. */
class Asker {
  #client: TestClient;
  #count = 0;
  readonly #port: number;
  private constructor(client: TestClient, port: number) {
    this.#client = client;
    this.#port = port;
  }
  static async open(daemon: DaemonProcess): Promise<Asker> {
    return new Asker(await TestClient.open({ host: '127.0.0.1', port: daemon.port }), daemon.port);
  }
  async ask(sender: string, recipient: string): Promise<string> {
    // The daemon closes a connection left idle (while thousands of restrictions are created):
    // connect again, as Postfix does.
    if (this.#client.closed) {
      this.#client = await TestClient.open({ host: '127.0.0.1', port: this.#port });
      this.#count = 0;
    }
    this.#client.send(`request=smtpd_access_policy\nprotocol_state=RCPT\nsender=${sender}\nrecipient=${recipient}\n\n`);
    // Generous: the machine running the tests may be loaded; a missing answer still fails.
    const answers = await this.#client.waitAnswers(++this.#count, 30_000);
    return answers[this.#count - 1]!;
  }
  /** Asks until the answer is `expected`; resolves with the milliseconds that took. */
  async until(sender: string, recipient: string, expected: string, timeoutMs = 20_000): Promise<number> {
    const start = performance.now();
    let answer = '';
    while (performance.now() - start < timeoutMs) {
      answer = await this.ask(sender, recipient);
      if (answer === expected) return performance.now() - start;
      await sleep(2);
    }
    throw new Error(`${sender} → ${recipient}: still "${answer}" after ${timeoutMs} ms, expected "${expected}"`);
  }
  close(): void {
    this.#client.socket.destroy();
  }
}

async function metric(daemon: DaemonProcess, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${daemon.httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

async function readyz(daemon: DaemonProcess): Promise<number> {
  return (await fetch(`http://127.0.0.1:${daemon.httpPort}/readyz`)).status;
}

/** The current etcd revision, then a physical compaction up to it (etcd's JSON gateway). */
async function compactEtcd(etcdUrl: string): Promise<number> {
  const range = await fetch(`${etcdUrl}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/').toString('base64') }) });
  const revision = Number(((await range.json()) as { header: { revision: string } }).header.revision);
  const compacted = await fetch(`${etcdUrl}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision: String(revision), physical: true }) });
  assert.equal(compacted.status, 200, await compacted.text());
  return revision;
}

describe('policy daemon with store Kubernetes, on a real API server', () => {
  let env: OperatorEnv;
  let ns: string;
  let scaleNs: string;
  let dir: string;
  let daemon: DaemonProcess;
  let asker: Asker;
  let r: ReturnType<typeof resources>;
  let big: ReturnType<typeof resources>;

  before(async () => {
    assert.ok(existsSync(repoPath('dist/cli/main.js')), 'run `npm run build` first: the daemon runs from dist/');
    env = await startOperatorEnv();
    ns = await env.namespace('kubestore');
    scaleNs = await env.namespace('kubestore-scale');
    r = resources(env, ns);
    big = resources(env, scaleNs);
    dir = await mkdtemp(path.join(tmpdir(), 'mw-kubestore-'));
    // The operator (as the chart's ServiceAccount) provisions the daemon's identity from the PolicyDaemon.
    await env.operator([ns], { policyDaemons: { image: 'mailwarden:test' } });
    await env.objects.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: 'policydaemons',
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'PolicyDaemon', metadata: { name: DAEMON }, spec: { store: 'Kubernetes', podSelector: { matchLabels: { app: 'postfix' } } } },
    });
    // A Postfix pod the daemon was injected into (no node here: it stays Pending until the test
    // reports its daemon ready, as the kubelet would); the operator binds its ServiceAccount to
    // the daemon's read-only Role.
    await env.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: IDENTITY } } });
    await env.core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'postfix-0', labels: { app: 'postfix', 'mailwarden.io/inject': 'true', 'mailwarden.io/policy-daemon': DAEMON } }, spec: { serviceAccountName: IDENTITY, containers: [{ name: 'postfix', image: 'postfix:test' }, { name: 'mailwarden-policyd', image: 'mailwarden:test' }] } } });
    await eventually('the daemon identity', async () => {
      const rbac = env.kc.makeApiClient(RbacAuthorizationV1Api);
      const binding = await rbac.readNamespacedRoleBinding({ namespace: ns, name: `${DAEMON}-policyd` });
      return binding.subjects?.some((s) => s.name === IDENTITY) === true;
    });
  });
  after(async () => {
    if (process.env.MAILWARDEN_TEST_VERBOSE && daemon) process.stderr.write(daemon.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
    if (process.env.MAILWARDEN_TEST_VERBOSE && daemon) process.stderr.write(daemon.stderr());
    asker?.close();
    await daemon?.stop();
    await env?.stopAll();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('RBAC: the identity the operator binds (the injected pod\'s ServiceAccount) can get, list and watch MailUserRestrictions of its namespace, nothing else', async () => {
    const as = `system:serviceaccount:${ns}:${IDENTITY}`;
    const can = async (...args: string[]) => (await run('kubectl', ['auth', 'can-i', '--as', as, ...args], { kubeconfig: env.cp.kubeconfigPath })).stdout.trim();
    for (const verb of ['get', 'list', 'watch']) assert.equal(await can(verb, 'mailuserrestrictions.mailwarden.io', '-n', ns), 'yes', verb);
    for (const verb of ['create', 'update', 'patch', 'delete']) assert.equal(await can(verb, 'mailuserrestrictions.mailwarden.io', '-n', ns), 'no', verb);
    assert.equal(await can('patch', 'mailuserrestrictions.mailwarden.io', '--subresource=status', '-n', ns), 'no');
    for (const resource of ['secrets', 'configmaps', 'pods', 'events', 'mailbackends.mailwarden.io', 'policydaemons.mailwarden.io']) {
      assert.equal(await can('get', resource, '-n', ns), 'no', resource);
    }
    assert.equal(await can('list', 'mailuserrestrictions.mailwarden.io', '-n', scaleNs), 'no', 'another namespace');
    assert.equal(await can('list', 'mailuserrestrictions.mailwarden.io', '--all-namespaces'), 'no', 'cluster-wide');
  });

  test('until every namespace is listed the daemon answers the failure action and is not ready; then it decides', async () => {
    await r.create('alice', { mailbox: 'alice@example.com', rejectedRecipients: ['@.'] });
    // The daemon runs with exactly the identity's token (TokenRequest), for its namespace and
    // one it may not read yet.
    const token = await env.cp.serviceAccountToken(ns, IDENTITY, { create: false });
    const config = path.join(dir, 'policyd.yaml');
    await writeFile(config, stringify({ store: 'kubernetes://', storeSettings: { namespaces: [ns, scaleNs], kubeconfig: token.path }, logLevel: 'debug' }));
    daemon = await startDaemon(['-c', config]);
    asker = await Asker.open(daemon);
    assert.equal(await asker.ask('alice@example.com', 'bob@outside.test'), FAILURE);
    assert.equal(await readyz(daemon), 503);

    // The same read-only grant in the second namespace.
    const rbac = env.kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({ namespace: scaleNs, body: { metadata: { name: IDENTITY }, rules: [{ apiGroups: [GROUP], resources: ['mailuserrestrictions'], verbs: ['get', 'list', 'watch'] }] } });
    await rbac.createNamespacedRoleBinding({ namespace: scaleNs, body: { metadata: { name: IDENTITY }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: IDENTITY }, subjects: [{ kind: 'ServiceAccount', name: IDENTITY, namespace: ns }] } });
    await asker.until('alice@example.com', 'bob@outside.test', REJECT);
    assert.equal(await readyz(daemon), 200);
    assert.equal(await asker.ask('carol@example.com', 'bob@outside.test'), ALLOW);
  });

  test('create, change, delete: the answer follows', async () => {
    await r.create('dave', { mailbox: 'dave@example.com', allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'] });
    await asker.until('dave@example.com', 'x@outside.test', REJECT);
    assert.equal(await asker.ask('dave@example.com', 'x@example.com'), ALLOW);
    await r.update('dave', { allowedRecipients: ['@outside.test'] });
    await asker.until('dave@example.com', 'x@outside.test', ALLOW);
    assert.equal(await asker.ask('dave@example.com', 'x@example.com'), REJECT);
    await r.delete('dave');
    await asker.until('dave@example.com', 'x@example.com', ALLOW);
  });

  test('Served only once a daemon serving the namespace is ready: NotServed while no injected daemon has listed the restrictions, Served when the kubelet reports one ready', async () => {
    await r.create('nina', { mailbox: 'nina@example.com', rejectedRecipients: ['@.'] });
    const waiting = await r.waitReason('nina', 'NotServed');
    assert.match(waiting.ready.message, /no daemon of PolicyDaemon mx \(store Kubernetes\) in \S+ is ready yet/);
    // The kubelet's report once the sidecar's readiness probe passes (/readyz: the first full list).
    const pod = await env.core.readNamespacedPod({ namespace: ns, name: 'postfix-0' });
    const startedAt = new Date();
    const containerStatuses = pod.spec!.containers.map((c) => ({ name: c.name, image: c.image!, imageID: '', restartCount: 0, started: true, ready: true, state: { running: { startedAt } } }));
    await env.core.replaceNamespacedPodStatus({ namespace: ns, name: 'postfix-0', body: { ...pod, status: { ...pod.status, phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }], containerStatuses } } });
    const served = await r.waitReason('nina', 'Served');
    assert.match(served.ready.message, /served by PolicyDaemon mx/);
    const daemonStatus = (await env.objects.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'policydaemons', name: DAEMON })) as { status?: { readySidecars?: number; injectedPods?: number } };
    assert.deepEqual([daemonStatus.status?.injectedPods, daemonStatus.status?.readySidecars], [1, 1]);
  });

  test('two restrictions for one mailbox: the oldest decides, and the operator reports the same', async () => {
    await r.create('erin-first', { mailbox: 'erin@example.com', rejectedRecipients: ['@.'] });
    await sleep(1100); // creation times have a resolution of one second
    await r.create('erin-second', { mailbox: 'Erin@Example.com', allowedRecipients: ['@.'] });
    await asker.until('erin@example.com', 'x@outside.test', REJECT);
    const first = await r.waitReason('erin-first', 'Served');
    assert.match(first.ready.message, /served by PolicyDaemon mx/);
    const second = await r.waitReason('erin-second', 'Conflict');
    assert.match(second.ready.message, /erin-first \(the oldest wins\)/);
    await r.delete('erin-first');
    await asker.until('erin@example.com', 'x@outside.test', ALLOW);
    await r.waitReason('erin-second', 'Served');
  });

  test('10,000 restrictions present: p99 from the API write to the new answer within 1 s', async () => {
    const total = 10_000;
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < total; i = next++) await big.create(`u${i}`, { mailbox: `u${i}@scale.test`, rejectedRecipients: ['@outside.test'], allowedSenders: ['@scale.test'] });
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    await asker.until(`u${total - 1}@scale.test`, 'x@outside.test', REJECT, 60_000);

    const latencies: number[] = [];
    for (let i = 0; i < 100; i++) {
      const mailbox = `u${i * 97}@scale.test`;
      const expected = i % 2 === 0 ? ALLOW : REJECT;
      await big.update(`u${i * 97}`, { rejectedRecipients: i % 2 === 0 ? ['@other.test'] : ['@outside.test'] });
      latencies.push(await asker.until(mailbox, 'x@outside.test', expected));
    }
    latencies.sort((a, b) => a - b);
    const p50 = latencies[49]!;
    const p99 = latencies[98]!;
    process.stderr.write(`kubernetes store, 10,000 restrictions: write → answer p50 ${p50.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms, max ${latencies[99]!.toFixed(0)} ms\n`);
    assert.ok(p99 <= 1000, `p99 ${p99} ms`);
  });

  test('API server stopped for 30 s: every answer still decided, the outage said, later changes seen', async () => {
    await r.create('frank', { mailbox: 'frank@example.com', rejectedRecipients: ['@.'] });
    await asker.until('frank@example.com', 'x@outside.test', REJECT);
    assert.equal(await metric(daemon, 'mailwarden_store_stale'), 0);
    await env.cp.stopApiServer();
    const answers = new Set<string>();
    const until = performance.now() + 30_000;
    let stale = false;
    while (performance.now() < until) {
      answers.add(`frank ${await asker.ask('frank@example.com', 'x@outside.test')}`);
      answers.add(`alice ${await asker.ask('alice@example.com', 'x@outside.test')}`);
      answers.add(`u5 ${await asker.ask('u5@scale.test', 'x@outside.test')}`);
      answers.add(`nobody ${await asker.ask('nobody@example.com', 'x@outside.test')}`);
      stale ||= (await metric(daemon, 'mailwarden_store_stale')) === 1;
      await sleep(200);
    }
    assert.deepEqual([...answers].sort(), [`alice ${REJECT}`, `frank ${REJECT}`, `nobody ${ALLOW}`, `u5 ${REJECT}`]);
    assert.equal(await readyz(daemon), 200, 'still ready');
    assert.ok(stale, 'mailwarden_store_stale was 1 during the outage');
    assert.ok(daemon.logs.some((l) => String(l.msg).startsWith('the API server cannot be reached: still deciding from')), 'the outage was logged');

    await env.cp.startApiServer();
    await eventually('the restriction updated', async () => (await r.update('frank', { rejectedRecipients: [], allowedRecipients: ['@.'] }), true), 30_000);
    await asker.until('frank@example.com', 'x@outside.test', ALLOW, 30_000);
    // The flag clears when the informers watch again, which may come after the first new answer.
    await eventually('mailwarden_store_stale back to 0', async () => (await metric(daemon, 'mailwarden_store_stale')) === 0, 30_000);
  });

  test('the watch history compacted away while the API server was down: the daemon re-lists and sees what changed', async () => {
    await r.create('grace', { mailbox: 'grace@example.com', rejectedRecipients: ['@.'] });
    await r.create('judy', { mailbox: 'judy@example.com', rejectedRecipients: ['@.'] });
    await asker.until('grace@example.com', 'x@outside.test', REJECT);
    await asker.until('judy@example.com', 'x@outside.test', REJECT);
    await env.cp.stopApiServer();
    // judy deleted straight from etcd while no API server runs, then etcd's history compacted up
    // to that revision: the daemon resumes its watch from a resourceVersion that is gone (410),
    // and no watch can deliver the delete: only a re-list shows it.
    const key = Buffer.from(`/registry/${GROUP}/mailuserrestrictions/${ns}/judy`).toString('base64');
    const deleted = await fetch(`${env.cp.etcdUrl}/v3/kv/deleterange`, { method: 'POST', body: JSON.stringify({ key }) });
    assert.equal(((await deleted.json()) as { deleted?: string }).deleted, '1');
    await compactEtcd(env.cp.etcdUrl);
    await env.cp.startApiServer();
    await asker.until('judy@example.com', 'x@outside.test', ALLOW, 30_000);
    // The daemon's log leaves stdout in blocks (at most half a second late): wait for the line.
    await eventually('the expired history was re-listed', async () => daemon.logs.some((l) => l.msg === 'watch history expired (410 Gone): re-listing'));
    assert.equal(await asker.ask('grace@example.com', 'x@outside.test'), REJECT, 'what did not change is kept');
    assert.equal(await asker.ask('alice@example.com', 'x@outside.test'), REJECT);
    // And the watch from the re-list's resourceVersion follows later changes.
    await eventually('the restriction updated', async () => (await r.update('grace', { rejectedRecipients: ['@other.test'] }), true), 30_000);
    await asker.until('grace@example.com', 'x@outside.test', ALLOW, 30_000);
  });

  test('a resource invalid past admission is ignored with a log line and an Event, never a crash', async () => {
    // The two tests before stopped the API server: the operator's informers retry with backoff, at
    // most 30 s apart (client-go's reflector's cap), and may not be watching again yet. Wait until
    // it reports a new restriction, so that what follows tests the invalid resource, not how soon
    // the operator is back after an outage (a 20 s wait here failed whenever it was not).
    await r.create('olivia', { mailbox: 'olivia@example.com', rejectedRecipients: ['@.'] });
    await r.waitReason('olivia', 'Served', 60_000);
    // An older CRD that checked nothing let it in.
    const [original] = checkedInCrds().filter((c) => c.spec.names.kind === 'MailUserRestriction');
    const lax = structuredClone(original!);
    const schema = lax.spec.versions[0]!.schema!.openAPIV3Schema!.properties!.spec!;
    lax.spec.versions[0]!.schema!.openAPIV3Schema!.properties!.spec = { type: 'object', x_kubernetes_preserve_unknown_fields: true, description: schema.description };
    const api = env.kc.makeApiClient(ApiextensionsV1Api);
    const replace = async (crd: V1CustomResourceDefinition) => {
      const name = crd.metadata!.name!;
      const existing = await api.readCustomResourceDefinition({ name });
      await api.replaceCustomResourceDefinition({ name, body: { ...crd, metadata: { ...crd.metadata, resourceVersion: existing.metadata!.resourceVersion } } });
    };
    await replace(lax);
    try {
      await eventually('an invalid restriction admitted', async () => (await r.create('heidi', { mailbox: 'heidi@example.com', rejectedRecipients: ['not an entry'] }), true));
    } finally {
      await replace(original!);
    }
    await r.create('ivan', { mailbox: 'ivan@example.com', rejectedRecipients: ['@.'] });
    await asker.until('ivan@example.com', 'x@outside.test', REJECT);
    assert.equal(await asker.ask('heidi@example.com', 'x@outside.test'), ALLOW, 'the invalid lists are not applied');
    await eventually('logged', async () => daemon.logs.some((l) => String(l.msg).startsWith(`MailUserRestriction ${ns}/heidi is invalid and ignored: rejectedRecipients[0]`)));
    await r.waitReason('heidi', 'InvalidSpec');
    await eventually('the InvalidSpec Event', async () => (await r.events('heidi')).some((e) => e.reason === 'InvalidSpec'));
    assert.equal(daemon.process.exitCode, null, 'still running');
  });
});
