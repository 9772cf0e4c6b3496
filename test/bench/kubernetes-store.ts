/**
 * The policy daemon with the Kubernetes store (`--store kubernetes://`) on a real API server
 * (test/harness/controlplane.ts), loaded with the benchmark's mailboxes as MailUserRestriction
 * resources, per size:
 *
 *   ready    time from the daemon's start to /readyz 200 (every restriction listed) and the
 *            daemon's CPU time meanwhile; before it the API server's part: the same paged list
 *            (500 a page, the daemon's client) read and dropped by this process
 *   RSS      the daemon's resident memory once ready, and after answering the whole request
 *            stream once (VmRSS; VmHWM is the peak, reached while listing)
 *   warm     at the size of the manifests section only, so at equal size: both stores hold the
 *            same restrictions and get the same requests; requests/s, p99 and the daemon's CPU per
 *            request against the manifests store, in paired rounds (goal: within 5 %; CPU per
 *            request is the figure the machine's load moves least). With --control a third daemon
 *            joins each round: the manifests store with the Kubernetes store listing and watching
 *            beside it in the same process, deciding nothing (test/bench/kubernetes-list-preload.ts):
 *            what the Kubernetes client costs the request path apart from the store's decisions
 *
 * Both daemons run with the heap options the operator gives a daemon container with the default
 * 256Mi memory limit (nodeHeapOptions): without them Node sizes its young generation from the
 * machine's memory, and RSS measures that rather than the store. The kubernetes daemon's young
 * generation is held at that size too, as its container holds it (daemonCommand: the store's
 * collection once listed would leave it at its smallest); in the warm rounds the manifests
 * daemon's is held likewise, unless --as-deployed: V8 sizes it by the heap's history (it grows
 * while the files load, by how much varies), and at equal allocation per request a young
 * generation a quarter the size scavenges four times as often. Held equal, the warm rounds
 * compare the request paths; --as-deployed compares the daemons as their containers start them.
 * Each daemon's scavenges per 1000 decisions
 * in the rounds are printed beside it (its /metrics). --idle S leaves both daemons idle S seconds
 * before the rounds. The ready and RSS figures are of a daemon started as its container starts
 * it. The kubernetes daemon (and the control, which holds a Kubernetes store) is started with
 * --expose-gc as its container is (daemonCommand), with which the store collects the list's
 * garbage. Goal: RSS ≤ 150 MB at 100,000 restrictions. Run by `npm run bench:policyd` after the
 * manifests section (its --kubernetes option), or alone:
 *   node test/bench/kubernetes-store.ts [--sizes 10000,100000] [--connections 8,32]
 *        [--seconds 3] [--warmup 1] [--rounds 5] [--control] [--as-deployed] [--idle S]
 * Needs the control plane binaries (`source .ci/controlplane.sh`).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { reuseConnections } from '../../src/kube/kube-config.ts';
import { kubeconfigCredentials } from '../../src/kube/api-credentials.ts';
import { ApiStatusError, CollectionClient } from '../../src/kube/collection-client.ts';
import { daemonCommand, DEFAULT_RESOURCES, nodeHeapOptions } from '../../src/reconcilers/policy-daemon-objects.ts';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { installCrds } from '../harness/crds.ts';
import { listsFor, mailbox, rcptRequests, writeManifests } from './fixtures.ts';
import { formatRatio, medianRun, pairedRatio } from './paired-rounds.ts';
import { processCpuSeconds } from '../helpers/proc.ts';
import { HOST, loadRun, prime, ROOT, startServer, stop, type RunningServer, type RunResult } from './store-support.ts';

export interface KubernetesBenchOptions {
  /** Restriction counts, ascending; the warm comparison runs at `mailboxes`. */
  readonly sizes: readonly number[];
  readonly mailboxes: number;
  readonly connections: readonly number[];
  readonly seconds: number;
  readonly warmup: number;
  readonly rounds: number;
  /** A third daemon in the warm rounds: manifests, with the Kubernetes store listing beside it (see the header). */
  readonly control?: boolean;
  /** Each daemon as its container starts it: the manifests daemon's young generation as V8 sizes it (see the header). */
  readonly asDeployed?: boolean;
  /** Seconds both daemons stay idle, primed, before the warm rounds (V8's memory reducer collects in such a spell). */
  readonly idleSeconds?: number;
}

const NAMESPACE = 'mail';
/** As in the daemon's container (see the header). */
const DAEMON_ENV = { ...process.env, NODE_OPTIONS: nodeHeapOptions(DEFAULT_RESOURCES.limits.memory) };
const DAEMON = `${process.execPath} ${join(ROOT, 'bin/mailwarden.js')} policyd --listen {host}:{port} --http-listen {host}:{httpPort} --log-level warn`;
/** A Kubernetes store daemon's Node.js options, as in its container (daemonCommand). */
const KUBERNETES_NODE_OPTIONS = daemonCommand(undefined, DEFAULT_RESOURCES.limits.memory).slice(1, -1);
const KUBERNETES_DAEMON = DAEMON.replace(' ', ` ${KUBERNETES_NODE_OPTIONS.join(' ')} `);
/** The young generation held at the container's maximum, as that container's command holds it (see the header). */
const HELD_YOUNG_GENERATION = KUBERNETES_NODE_OPTIONS.find((option) => option.startsWith('--min-semi-space-size='));

/** `command` (a daemon's) with its young generation held as the kubernetes daemon's is. */
function heldYoungGeneration(command: string): string {
  if (HELD_YOUNG_GENERATION === undefined) throw new Error('daemonCommand holds no young generation at the default memory limit');
  return command.includes(HELD_YOUNG_GENERATION) ? command : command.replace(' ', ` ${HELD_YOUNG_GENERATION} `);
}

/** A daemon's scavenges (V8's young generation collections) and decisions so far, from its /metrics. */
async function gcCounts(server: RunningServer): Promise<{ scavenges: number; decisions: number }> {
  const text = await (await fetch(`http://${HOST}:${server.httpPort}/metrics`)).text();
  const total = (prefix: string): number =>
    text
      .split('\n')
      .filter((line) => line.startsWith(prefix))
      .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  return { scavenges: total('mailwarden_nodejs_gc_duration_seconds_count{kind="minor"'), decisions: total('mailwarden_policy_decisions_total') };
}

/** Scavenges per 1000 decisions between two readings of {@link gcCounts}. */
function scavengesPerThousand(before: { scavenges: number; decisions: number }, after: { scavenges: number; decisions: number }): string {
  return (((after.scavenges - before.scavenges) / (after.decisions - before.decisions)) * 1000).toFixed(2);
}

/** Parses `10000,100000`; `none` gives an empty list. */
export function parseSizes(text: string): number[] {
  if (text === 'none' || text === '') return [];
  return text.split(',').map(Number).sort((a, b) => a - b);
}

/** Resident memory of `pid` in MB: now (VmRSS) and its peak (VmHWM). */
function rss(pid: number | undefined): { now: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { now: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

async function readyz(server: RunningServer): Promise<boolean> {
  return fetch(`http://${HOST}:${server.httpPort}/readyz`).then((r) => r.status === 200, () => false);
}

/**
 * Puts restrictions `from`…`to - 1` (the manifests bench's mailboxes and lists) into the API
 * server's storage: one is created through the API, and its stored form (metadata, managedFields)
 * is the template for the rest, written straight into etcd 128 to a transaction. Creating them
 * through the API (admission, validation, one write each) took 646 s for 10,000 on the shared
 * 2-core machine, so 100,000 would take hours; what the bench measures — the daemon listing and
 * watching them through the API server — is the same either way. Returns when the API server
 * lists them all.
 */
export async function seedRestrictions(cp: ControlPlane, from: number, to: number): Promise<void> {
  const api = reuseConnections(cp.kubeConfig()).makeApiClient(CustomObjectsApi);
  const base = { group: 'mailwarden.io', version: 'v1alpha1', namespace: NAMESPACE, plural: 'mailuserrestrictions' };
  const prefix = `/registry/mailwarden.io/mailuserrestrictions/${NAMESPACE}/`;
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  const etcd = async (call: string, body: unknown): Promise<Record<string, unknown>> => {
    const res = await fetch(`${cp.etcdUrl}/v3/kv/${call}`, { method: 'POST', body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`etcd ${call}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  const restriction = (i: number) => ({ apiVersion: 'mailwarden.io/v1alpha1', kind: 'MailUserRestriction', metadata: { name: `user${i}` }, spec: { mailbox: mailbox(i), ...listsFor(i) } });
  let next = from;
  if (next === 0) await api.createNamespacedCustomObject({ ...base, body: restriction(next++) });
  const stored = (await etcd('range', { key: b64(`${prefix}user0`) })) as { kvs?: { value: string }[] };
  const template = JSON.parse(Buffer.from(stored.kvs![0]!.value, 'base64').toString()) as {
    metadata: { name: string; uid: string; managedFields: { fieldsV1: unknown }[] };
    spec: Record<string, unknown>;
  };
  const storedForm = (i: number): string => {
    const { spec } = restriction(i);
    const fields = Object.fromEntries([['.', {}], ...Object.keys(spec).map((k) => [`f:${k}`, {}])]);
    const managedFields = template.metadata.managedFields.map((m) => ({ ...m, fieldsV1: { 'f:spec': fields } }));
    return JSON.stringify({ ...template, metadata: { ...template.metadata, name: `user${i}`, uid: randomUUID(), managedFields }, spec }) + '\n';
  };
  while (next < to) {
    const batch: unknown[] = [];
    for (; next < to && batch.length < 128; next++) batch.push({ requestPut: { key: b64(`${prefix}user${next}`), value: b64(storedForm(next)) } });
    await etcd('txn', { success: batch });
  }
  // The API server's watch cache follows etcd: wait until it lists every one.
  for (;;) {
    const page = (await api.listNamespacedCustomObject({ ...base, limit: 1 })) as { items: unknown[]; metadata?: { remainingItemCount?: number } };
    if (page.items.length + (page.metadata?.remainingItemCount ?? 0) >= to) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Milliseconds to read every page of the restrictions as the daemon's store does, holding none. */
async function timeList(kubeconfig: string, expected: number): Promise<number> {
  const credentials = kubeconfigCredentials(kubeconfig);
  const client = new CollectionClient(credentials);
  const path = `/apis/mailwarden.io/v1alpha1/namespaces/${NAMESPACE}/mailuserrestrictions`;
  const started = performance.now();
  let count = 0;
  let token: string | undefined;
  try {
    do {
      const page = await client.list(path, { limit: 500, _continue: token });
      count += page.items.length;
      token = page.metadata?._continue;
    } while (token);
  } finally {
    credentials.connections.destroy();
  }
  if (count !== expected) throw new Error(`listed ${count} restrictions, expected ${expected}`);
  return performance.now() - started;
}

/** Waits until a full paged list succeeds (the watch cache has every seeded object). */
export async function untilListed(kubeconfig: string, expected: number): Promise<void> {
  for (;;) {
    try {
      await timeList(kubeconfig, expected);
      return;
    } catch (error) {
      if (!(error instanceof ApiStatusError && (error.statusCode === 504 || error.statusCode === 410))) throw error;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

export async function runKubernetesBench(options: KubernetesBenchOptions): Promise<void> {
  if (options.sizes.length === 0) return;
  if (!process.env.KUBEBUILDER_ASSETS) {
    process.stdout.write('\nkubernetes store: skipped (no KUBEBUILDER_ASSETS: `source .ci/controlplane.sh` first)\n');
    return;
  }
  const work = await mkdtemp(join(tmpdir(), 'mw-bench-kube-'));
  const cp = await startControlPlane();
  const children: RunningServer[] = [];
  try {
    await installCrds(cp.kubeConfig());
    await cp.kubeConfig().makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NAMESPACE } } });
    const config = join(work, 'policyd.yaml');
    await writeFile(config, JSON.stringify({ store: 'kubernetes://', storeSettings: { namespaces: [NAMESPACE], kubeconfig: cp.kubeconfigPath } }));
    process.stdout.write(`\nkubernetes store: kube-apiserver ${cp.server}, node ${process.version}\n`);
    let created = 0;
    for (const size of options.sizes) {
      const t0 = performance.now();
      await seedRestrictions(cp, created, size);
      created = size;
      process.stdout.write(`  ${size} restrictions in the API server (${((performance.now() - t0) / 1000).toFixed(0)} s to seed through etcd)\n`);

      // Objects written straight into etcd reach the API server's watch cache as events, which it
      // takes in far slower than etcd takes the writes: until it has, a continued page fails (504
      // "Too large resource version") and a list starts over. The daemon is started once a list works.
      const caughtUp = performance.now();
      await untilListed(cp.kubeconfigPath, size);
      process.stdout.write(`  ${size}: the API server's cache had them ${((performance.now() - caughtUp) / 1000).toFixed(0)} s later\n`);
      const listed = await timeList(cp.kubeconfigPath, size);
      process.stdout.write(`  ${size}: the API server lists them (pages of 500, read and dropped) in ${(listed / 1000).toFixed(2)} s\n`);

      const requestsFile = join(work, `requests-${size}.json`);
      await writeFile(requestsFile, JSON.stringify(rcptRequests(4096, Math.min(size, 10_000))));
      const started = performance.now();
      const daemon = await startServer('kubernetes daemon', `${KUBERNETES_DAEMON} -c ${config}`, DAEMON_ENV);
      children.push(daemon);
      while (!(await readyz(daemon))) await new Promise((r) => setTimeout(r, 20));
      const readyMs = performance.now() - started;
      const atReady = rss(daemon.child.pid);
      const cpuAtReady = processCpuSeconds(daemon.child.pid);
      await prime(daemon, requestsFile);
      const afterRequests = rss(daemon.child.pid);
      process.stdout.write(
        `  ${size}: start → ready ${(readyMs / 1000).toFixed(2)} s (the daemon's CPU meanwhile ${cpuAtReady.toFixed(2)} s); RSS ${atReady.now.toFixed(0)} MB when ready, ${afterRequests.now.toFixed(0)} MB after the request stream, peak ${afterRequests.peak.toFixed(0)} MB\n`,
      );

      await stop(daemon.child);
      children.splice(children.indexOf(daemon), 1);
      if (size === options.mailboxes) await compareWithManifests(config, size, requestsFile, work, options, { namespaces: [NAMESPACE], kubeconfig: cp.kubeconfigPath });
    }
  } finally {
    await Promise.all(children.map((c) => stop(c.child)));
    await cp.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Warm requests/s, p99 and CPU per request: the Kubernetes store against the manifests store,
 * same restrictions and requests (and the control, see the header), in paired rounds.
 */
async function compareWithManifests(
  config: string,
  size: number,
  requestsFile: string,
  work: string,
  options: KubernetesBenchOptions,
  settings: { namespaces: string[]; kubeconfig: string },
): Promise<void> {
  const dir = join(work, 'manifests');
  await writeManifests(dir, size);
  const warm = (command: string): string => (options.asDeployed ? command : heldYoungGeneration(command));
  const kube = await startServer('kubernetes daemon', `${warm(KUBERNETES_DAEMON)} -c ${config}`, DAEMON_ENV);
  const manifests = await startServer('manifests daemon', `${warm(DAEMON)} --store ${dir}`, DAEMON_ENV).catch(async (error: unknown) => {
    await stop(kube.child);
    throw error;
  });
  let control: RunningServer | undefined;
  try {
    while (!(await readyz(kube))) await new Promise((r) => setTimeout(r, 20));
    await prime(kube, requestsFile);
    await prime(manifests, requestsFile);
    process.stdout.write(`  manifests store, ${size}: RSS ${rss(manifests.child.pid).now.toFixed(0)} MB after the request stream\n`);
    if (options.control) {
      const preload = join(ROOT, 'test/bench/kubernetes-list-preload.ts');
      const env = { ...DAEMON_ENV, NODE_OPTIONS: `${DAEMON_ENV.NODE_OPTIONS ?? ''} --import=${preload}`, MW_BENCH_KUBE_SETTINGS: JSON.stringify(settings) };
      control = await startServer('control daemon', `${warm(KUBERNETES_DAEMON)} --store ${dir}`, env);
      await prime(control, requestsFile);
    }
    const young = options.asDeployed ? 'each daemon as its container starts it (the manifests daemon\'s young generation as V8 sizes it)' : 'young generation of each daemon held at its maximum (--min-semi-space-size)';
    process.stdout.write(`  warm, equal size: ${size} restrictions in each store, the same ${JSON.parse(readFileSync(requestsFile, 'utf8')).length} requests; ${young}\n`);
    if (options.idleSeconds) {
      // V8's memory reducer collects in an idle spell: does either daemon's young generation change?
      process.stdout.write(`  both daemons idle for ${options.idleSeconds} s\n`);
      await new Promise((r) => setTimeout(r, options.idleSeconds! * 1000));
    }
    for (const c of options.connections) {
      const gcBefore = { kube: await gcCounts(kube), manifests: await gcCounts(manifests) };
      const kubeRuns: RunResult[] = [];
      const manifestRuns: RunResult[] = [];
      const controlRuns: RunResult[] = [];
      for (let round = 0; round < options.rounds; round++) {
        // A round runs each daemon once, back to back; the order turns from round to round.
        const order = [{ runs: manifestRuns, server: manifests }, { runs: kubeRuns, server: kube }];
        if (control !== undefined) order.push({ runs: controlRuns, server: control });
        for (let turn = 0; turn < round % order.length; turn++) order.push(order.shift()!);
        for (const { runs, server } of order) runs.push(await loadRun(server, c, requestsFile, options.seconds, options.warmup));
      }
      const k = medianRun(kubeRuns);
      const m = medianRun(manifestRuns);
      process.stdout.write(
        `  warm C=${c}: kubernetes ${k.rps.toFixed(0)} req/s p99 ${k.p99.toFixed(3)} ms ${k.cpuUs.toFixed(1)} µs CPU/req; ` +
          `manifests ${m.rps.toFixed(0)} req/s p99 ${m.p99.toFixed(3)} ms ${m.cpuUs.toFixed(1)} µs CPU/req; ` +
          `req/s ratio ${formatRatio(pairedRatio(kubeRuns, manifestRuns, (r) => r.rps))}, p99 ratio ${formatRatio(pairedRatio(kubeRuns, manifestRuns, (r) => r.p99))}, ` +
          // The daemon's CPU per request: what the store costs a decision, and far less moved by
          // the shared machine's load than req/s, which swings by tens of percent between runs.
          `CPU/req ratio ${formatRatio(pairedRatio(kubeRuns, manifestRuns, (r) => r.cpuUs))}; ` +
          `scavenges per 1000 decisions in these rounds: kubernetes ${scavengesPerThousand(gcBefore.kube, await gcCounts(kube))}, ` +
          `manifests ${scavengesPerThousand(gcBefore.manifests, await gcCounts(manifests))}\n`,
      );
      if (control !== undefined) {
        const x = medianRun(controlRuns);
        process.stdout.write(
          `  warm C=${c}: control (manifests + Kubernetes store beside) ${x.rps.toFixed(0)} req/s ${x.cpuUs.toFixed(1)} µs CPU/req; ` +
            `CPU/req ratio control / manifests ${formatRatio(pairedRatio(controlRuns, manifestRuns, (r) => r.cpuUs))}, ` +
            `kubernetes / control ${formatRatio(pairedRatio(kubeRuns, controlRuns, (r) => r.cpuUs))}\n`,
        );
      }
    }
  } finally {
    await stop(kube.child);
    await stop(manifests.child);
    if (control !== undefined) await stop(control.child);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '10000,100000' },
      mailboxes: { type: 'string', default: '10000' },
      connections: { type: 'string', default: '8,32' },
      seconds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      rounds: { type: 'string', default: '5' },
      control: { type: 'boolean', default: false },
      'as-deployed': { type: 'boolean', default: false },
      idle: { type: 'string', default: '0' },
    },
  });
  await runKubernetesBench({
    sizes: parseSizes(String(values.sizes)),
    mailboxes: Number(values.mailboxes),
    connections: String(values.connections).split(',').map(Number),
    seconds: Number(values.seconds),
    warmup: Number(values.warmup),
    rounds: Number(values.rounds),
    control: values.control,
    asDeployed: values['as-deployed'],
    idleSeconds: Number(values.idle),
  });
}
