/**
 * Operator benchmark against a real API server and PostgreSQL (a container), the operator running
 * as its own process (`mailwarden operator`), as in production. `npm run bench:operator [-- options]`:
 *   --restrictions N   restrictions (and mailboxes pre-inserted) (default 10000)
 *   --in-flight N      concurrent creates through the API (default 50)
 *   --updates N        sequential spec changes for the idle latency (default 100)
 *   --workers N        the operator's --workers (default: the CLI's)
 *   --resync DUR       the operator's --resync; the resync measurement waits for one (default 30s)
 *   --node-options S   NODE_OPTIONS for the operator (default: the Helm chart's
 *                      operator.nodeOptions, with its operator.mallocArenaMax as MALLOC_ARENA_MAX,
 *                      so the figures are those of the chart's deployment); "" runs it bare
 *
 * Figures and goals:
 *   1. create N restrictions (N mailboxes in the store) → all Ready with rows written   < 60 s
 *   2. store writes during a resync with no drift (rows written, counted by a trigger)    0
 *   3. the operator's RSS with N restrictions (VmRSS from /proc)                          < 200 MB
 *   4. spec change → store write at idle, p50 / p99 over sequential updates               p99 < 1 s
 */
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { reuseConnections } from '../../src/kube/kube-config.ts';
import { startPostgres } from '../harness/containers.ts';
import { resources, startOperatorEnv } from '../harness/operator-env.ts';
import { startOperatorProcess } from '../helpers/operator-process.ts';
import { repoPath } from '../helpers/paths.ts';
import { countStoreWrites, cpuByProcess, createAll, metric, ReadyTracker, percentile, storeWrites } from './operator-support.ts';

const { values } = parseArgs({
  options: {
    restrictions: { type: 'string', default: '10000' },
    'in-flight': { type: 'string', default: '50' },
    updates: { type: 'string', default: '100' },
    workers: { type: 'string' },
    resync: { type: 'string', default: '30s' },
    'node-options': { type: 'string' },
  },
});
const chart = parse(readFileSync(repoPath('charts/mailwarden/values.yaml'), 'utf8')) as { operator: { nodeOptions?: string; mallocArenaMax?: string } };
const operatorEnv: Record<string, string> =
  values['node-options'] !== undefined
    ? { NODE_OPTIONS: values['node-options'] }
    : { NODE_OPTIONS: chart.operator.nodeOptions ?? '', ...(chart.operator.mallocArenaMax ? { MALLOC_ARENA_MAX: chart.operator.mallocArenaMax } : {}) };
const N = Number(values.restrictions);
const IN_FLIGHT = Number(values['in-flight']);
const UPDATES = Number(values.updates);
const GOALS = { convergeS: 60, resyncWrites: 0, rssMb: 200, p99Ms: 1000 };

if (!existsSync(repoPath('dist/cli/main.js'))) throw new Error('run `npm run build` first: the operator runs from dist/');
const log = (line: string) => process.stdout.write(`${line}\n`);
const ratio = (value: number, goal: number) => (goal === 0 ? (value === 0 ? 'met' : 'MISSED') : `${(value / goal).toFixed(2)} of goal${value <= goal ? '' : ' — MISSED'}`);

log(`operator bench: ${N} restrictions, ${IN_FLIGHT} creates in flight, ${UPDATES} idle updates; operator environment ${JSON.stringify(operatorEnv)}${values['node-options'] === undefined ? " (the chart's)" : ''}`);
const [env, pg] = await Promise.all([startOperatorEnv(), startPostgres()]);
const processes: { kill(signal?: NodeJS.Signals): Promise<unknown> }[] = [];
try {
  const ns = await env.namespace('bench');
  // Everyone authenticates as in a cluster: the operator as the chart's ServiceAccount, this
  // bench (the GitOps tool's part) as a ServiceAccount of its own, both with bearer tokens. The
  // admin's client certificate would cost the API server an ECDSA chain verification per request
  // (7% of its CPU here), which no in-cluster client pays.
  const operatorCredentials = await env.chartServiceAccount([ns]);
  const client = await env.cp.serviceAccountToken(ns, 'bench-client');
  await env.kc.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding({
    namespace: ns,
    body: {
      metadata: { name: 'bench-client' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
      subjects: [{ kind: 'ServiceAccount', name: 'bench-client', namespace: ns }],
    },
  });
  // The bench's own requests over kept-alive connections, as kubectl, Argo CD or Flux send
  // theirs: a TLS handshake per create would bill the API server (and these two cores) for the
  // load generator, not for the operator.
  const pooled = reuseConnections(client.kubeConfig());
  const r = resources({ ...env, kc: pooled, objects: pooled.makeApiClient(CustomObjectsApi), core: pooled.makeApiClient(CoreV1Api) }, ns);
  await r.createBackend('vmail', { url: pg.url }, pg.password);
  await pg.query(`INSERT INTO mailbox (username, domain) SELECT 'bench' || g || '@example.com', 'example.com' FROM generate_series(0, ${N - 1}) AS g`, [], pg.admin);
  const mailbox = (i: number) => `bench${i}@example.com`;
  await countStoreWrites(pg);

  const operator = await startOperatorProcess({
    kubeconfig: operatorCredentials.path,
    namespaces: [ns],
    resync: values.resync,
    workers: values.workers === undefined ? undefined : Number(values.workers),
    env: operatorEnv,
  });
  processes.push(operator);
  const tracker = new ReadyTracker(pooled, ns);
  await tracker.start();

  // 1. Creation to convergence.
  const cpuNames = ['kube-apiserver', 'etcd', 'postgres', 'node', 'MainThread'];
  const cpuBefore = cpuByProcess(cpuNames);
  const t0 = performance.now();
  const spec = (i: number) => ({ mailbox: mailbox(i), backendRef: { name: 'vmail' }, rejectedSenders: ['@bench.test'], allowedRecipients: ['@example.com'] });
  const created = createAll(r, N, IN_FLIGHT, (i) => [`bench${i}`, spec(i)]).then(() => performance.now() - t0);
  let rowsAt = 0;
  let readyAt = 0;
  let lastPrint = 0;
  for (;;) {
    const now = performance.now();
    const [first] = await pg.query<{ count: string }>(`SELECT count(*) AS count FROM mailbox WHERE rejectedsenders = '@bench.test'`, [], pg.admin);
    const rows = Number(first?.count ?? 0);
    if (rows >= N && rowsAt === 0) rowsAt = now - t0;
    if (tracker.ready >= N && readyAt === 0) readyAt = now - t0;
    if (now - lastPrint > 5_000) {
      lastPrint = now;
      log(`  ${((now - t0) / 1000).toFixed(0)} s: ${tracker.seen} created, ${rows} rows written, ${tracker.ready} Ready`);
    }
    if (rowsAt > 0 && readyAt > 0) break;
    if (now - t0 > 600_000) throw new Error(`no convergence in 10 min: ${rows} rows, ${tracker.ready} Ready`);
    await sleep(100);
  }
  const createMs = await created;
  const convergeMs = Math.max(rowsAt, readyAt);
  const cpuAfter = cpuByProcess(cpuNames);
  const operatorCpu = operator.cpuSeconds();
  log(`1. ${N} restrictions created through the API in ${(createMs / 1000).toFixed(1)} s; rows written after ${(rowsAt / 1000).toFixed(1)} s, all Ready after ${(readyAt / 1000).toFixed(1)} s`);
  log(`   convergence ${(convergeMs / 1000).toFixed(1)} s (goal < ${GOALS.convergeS} s: ${ratio(convergeMs / 1000, GOALS.convergeS)}); ${(N / (convergeMs / 1000)).toFixed(0)} restrictions/s`);

  const used = (n: string) => cpuAfter[n]! - cpuBefore[n]!;
  // Node names its main thread MainThread (22+), and /proc/PID/stat shows the main thread's name.
  const cpu = [...cpuNames.slice(0, 3).map((n) => `${n} ${used(n).toFixed(1)}`), `Node.js (operator + this bench) ${(used('node') + used('MainThread')).toFixed(1)}`].join(', ');
  log(`   CPU seconds while converging: ${cpu}; the operator alone ${operatorCpu.toFixed(1)} since its start`);

  // 3. Memory, once converged (and again after the resync).
  const rss = () => operator.rssBytes() / 2 ** 20;
  const rssConverged = rss();

  // 2. A resync with no drift: the operator's own periodic resync, seen on its reconcile counter.
  const reconciles = async () => metric(operator.httpPort, 'mailwarden_controller_reconciles_total', { controller: 'mailuserrestriction' });
  const depth = async () => metric(operator.httpPort, 'mailwarden_controller_queue_depth', { controller: 'mailuserrestriction' });
  /** Until the queue is empty and no reconcile ran for a second. */
  const quiet = async () => {
    const start = performance.now();
    for (let last = -1; ; ) {
      const [count, queued] = [await reconciles(), await depth()];
      if (count === last && queued === 0) return performance.now() - start;
      last = count;
      await sleep(1_000);
    }
  };
  const settleMs = await quiet();
  log(`   (the operator went quiet ${(settleMs / 1000).toFixed(1)} s after convergence: ${await reconciles()} reconciles in all)`);
  const before = { updates: await storeWrites(pg), reconciles: await reconciles(), objectChanges: tracker.changes };
  const resyncStart = performance.now();
  while ((await reconciles()) - before.reconciles < N) {
    if (performance.now() - resyncStart > 180_000) throw new Error('no resync within 3 min');
    await sleep(250);
  }
  await quiet();
  const resyncMs = performance.now() - resyncStart;
  const after = { updates: await storeWrites(pg), reconciles: await reconciles(), objectChanges: tracker.changes };
  const resyncWrites = after.updates - before.updates;
  log(`2. resync: ${after.reconciles - before.reconciles} reconciles, ${resyncWrites} rows written to the store (goal ${GOALS.resyncWrites}: ${ratio(resyncWrites, GOALS.resyncWrites)}), ${after.objectChanges - before.objectChanges} API object changes (status/finalizer writes); done ${(resyncMs / 1000).toFixed(1)} s after we started waiting for it`);

  const rssAfterResync = rss();
  const peak = operator.peakRssBytes() / 2 ** 20;
  const mb = async (name: string) => (await metric(operator.httpPort, `mailwarden_operator_nodejs_${name}`)) / 2 ** 20;
  const heap = `heap ${(await mb('heap_size_used_bytes')).toFixed(0)} MB used of ${(await mb('heap_size_total_bytes')).toFixed(0)} MB, external ${(await mb('external_memory_bytes')).toFixed(0)} MB`;
  log(`3. operator RSS with ${N} restrictions (${heap}): ${rssConverged.toFixed(0)} MB converged, ${rssAfterResync.toFixed(0)} MB after a resync, peak ${peak.toFixed(0)} MB (goal < ${GOALS.rssMb} MB: ${ratio(Math.max(rssConverged, rssAfterResync), GOALS.rssMb)})`);

  // 4. Idle latency: sequential spec changes of one restriction, the row polled until it shows each.
  const latencies: number[] = [];
  const updatesBefore = await storeWrites(pg);
  for (let k = 0; k < UPDATES; k++) {
    const entry = `@lat${k}.test`;
    const start = performance.now();
    await r.update('bench0', { rejectedSenders: [entry] });
    for (;;) {
      const [row] = await pg.query<{ rejectedsenders: string }>('SELECT rejectedsenders FROM mailbox WHERE username = $1', [mailbox(0)], pg.admin);
      if (row?.rejectedsenders === entry) break;
      if (performance.now() - start > 30_000) throw new Error(`update ${k} not written within 30 s`);
      await sleep(2);
    }
    latencies.push(performance.now() - start);
  }
  const p50 = percentile(latencies, 0.5);
  const p99 = percentile(latencies, 0.99);
  log(`4. spec change → store write at idle over ${UPDATES} updates: p50 ${p50.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms, max ${Math.max(...latencies).toFixed(0)} ms (goal p99 < ${GOALS.p99Ms} ms: ${ratio(p99, GOALS.p99Ms)})`);
  log(`   (cross-check of the write counter: ${(await storeWrites(pg)) - updatesBefore} rows written for ${UPDATES} changes)`);

  await tracker.stop();
  const exit = await operator.kill('SIGTERM');
  log(`operator stopped: ${JSON.stringify(exit)}`);
} finally {
  await Promise.all(processes.map((p) => p.kill('SIGKILL')));
  await pg.stop();
  await env.stopAll();
}
