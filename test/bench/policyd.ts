/**
 * Policy daemon load benchmark: requests/s and latency of the daemon against the ceiling (the
 * same server code answering DUNNO without deciding), at several connection counts.
 *
 * Each server and the load generator are separate processes, as in production (smtpd, daemon),
 * sharing the machine's cores. Run with `npm run bench:policyd [-- options]`:
 *   --seconds S          measured time per server and connection count (default 5)
 *   --warmup S           unmeasured time before each measurement (default 1)
 *   --connections LIST   comma-separated connection counts (default 1,8,32,128)
 *   --mailboxes N        manifests in the store (default 10000)
 *   --daemon-cmd CMD     the daemon, with {host} {port} {httpPort} {store} placeholders (split on
 *                        spaces); default: node bin/mailwarden.js policyd
 *                        --listen {host}:{port} --http-listen {host}:{httpPort} --store {store}
 *                        (the daemon sets its V8 flags itself and the ceiling applies the same, see
 *                        src/policy/runtime-flags.ts; metrics stay on: they are part of the daemon's
 *                        cost; a free port avoids clashes)
 *   --rounds N           rounds per connection count: the ceiling and the daemon back to back, which
 *                        goes first alternating; figures are medians over the rounds, ratios the
 *                        median of the per-round ratios (test/bench/paired-rounds.ts) (default 5)
 *   --stand-in           benchmark a second ceiling server as the daemon (also used, with a
 *                        warning, while the CLI is not built)
 *   --stores LIST        then the SQL and LDAP stores (test/bench/stores.ts): postgres,mariadb,openldap
 *                        in containers, the daemon with a cold and a warm cache against the driver's own
 *                        round-trip rate and the protocol ceiling; "none" skips them (default all)
 *   --store-connections LIST, --store-seconds S, --store-rounds N
 *                        the same for the store section (default 8,32; 3; 5)
 *   --kubernetes LIST    then the Kubernetes store (test/bench/kubernetes-store.ts) with these
 *                        numbers of MailUserRestriction resources on a real API server: time to
 *                        ready, RSS, and warm against the manifests store at --mailboxes; "none"
 *                        skips it (default 10000,100000; needs `source .ci/controlplane.sh`)
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { rcptRequests, writeManifests } from './fixtures.ts';
import { parseStoreList, runStoreBench } from './stores.ts';
import { parseSizes, runKubernetesBench } from './kubernetes-store.ts';
import { loadRun, startServer, stop, type RunResult } from './store-support.ts';
import { formatRatio, formatRounds, medianRun, pairedRatio } from './paired-rounds.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const here = join(root, 'test/bench');
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    connections: { type: 'string', default: '1,8,32,128' },
    mailboxes: { type: 'string', default: '10000' },
    'daemon-cmd': { type: 'string' },
    'stand-in': { type: 'boolean', default: false },
    rounds: { type: 'string', default: '5' },
    stores: { type: 'string', default: 'all' },
    'store-connections': { type: 'string', default: '8,32' },
    'store-seconds': { type: 'string', default: '3' },
    'store-rounds': { type: 'string', default: '5' },
    kubernetes: { type: 'string', default: '10000,100000' },
  },
});
const stores = parseStoreList(String(values.stores));
const CEILING_CMD = `${process.execPath} ${join(here, 'ceiling-server.ts')} --listen {host}:{port} --store {store}`;
const DAEMON_CMD = `${process.execPath} ${join(root, 'bin/mailwarden.js')} policyd --listen {host}:{port} --http-listen {host}:{httpPort} --store {store}`;

type Result = RunResult;

function runLoad(server: { child: ChildProcess; port: number }, connections: number, requestsFile: string): Promise<Result> {
  return loadRun(server, connections, requestsFile, Number(values.seconds), Number(values.warmup));
}

const fmt = (n: number, digits = 2): string => n.toFixed(digits);

const work = await mkdtemp(join(tmpdir(), 'mw-bench-'));
const children: ChildProcess[] = [];
try {
  const mailboxes = Number(values.mailboxes);
  const store = join(work, 'store');
  await writeManifests(store, mailboxes);
  const requestsFile = join(work, 'requests.json');
  await writeFile(requestsFile, JSON.stringify(rcptRequests(4096, mailboxes)));

  let daemonCmd = values['daemon-cmd'] ?? DAEMON_CMD;
  let daemonName = 'daemon';
  if (values['stand-in'] || (values['daemon-cmd'] === undefined && !existsSync(join(root, 'dist/cli/main.js')))) {
    if (!values['stand-in']) process.stderr.write('bench: dist/cli/main.js is missing (CLI not built); benchmarking a second ceiling server as the daemon\n');
    daemonCmd = CEILING_CMD;
    daemonName = 'stand-in';
  }
  const ceiling = await startServer('ceiling', CEILING_CMD.replaceAll('{store}', store));
  children.push(ceiling.child);
  const daemon = await startServer(daemonName, daemonCmd.replaceAll('{store}', store));
  children.push(daemon.child);

  const counts = String(values.connections).split(',').map(Number);
  process.stdout.write(
    `policyd bench: ${mailboxes} manifests, ${values.seconds} s per run (+${values.warmup} s warm-up), ${values.rounds} paired rounds, node ${process.version}\n`,
  );
  const rows: { c: number; ceiling: Result[]; daemon: Result[] }[] = [];
  for (const c of counts) {
    const ceilingRuns: Result[] = [];
    const daemonRuns: Result[] = [];
    for (let round = 0; round < Number(values.rounds); round++) {
      // A round is a pair, back to back; which goes first alternates.
      if (round % 2 === 0) {
        ceilingRuns.push(await runLoad(ceiling, c, requestsFile));
        daemonRuns.push(await runLoad(daemon, c, requestsFile));
      } else {
        daemonRuns.push(await runLoad(daemon, c, requestsFile));
        ceilingRuns.push(await runLoad(ceiling, c, requestsFile));
      }
    }
    if (ceilingRuns.length === 0) throw new Error('--rounds must be at least 1');
    rows.push({ c, ceiling: ceilingRuns, daemon: daemonRuns });
    process.stdout.write(`  C=${c}: done (${daemonName} answers: ${JSON.stringify(daemonRuns[0]?.actions)})\n`);
  }
  const header = ['C', 'ceiling req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'cpu µs/req', `${daemonName} req/s`, 'p50 ms', 'p99 ms', 'p99.9 ms', 'cpu µs/req', 'req/s ratio', 'p99 ratio', 'cpu ratio'];
  const table = rows.map(({ c, ceiling: ceilingRuns, daemon: daemonRuns }) => {
    const a = medianRun(ceilingRuns);
    const b = medianRun(daemonRuns);
    return [
      String(c),
      fmt(a.rps, 0), fmt(a.p50, 3), fmt(a.p99, 3), fmt(a.p999, 3), fmt(a.cpuUs, 1),
      fmt(b.rps, 0), fmt(b.p50, 3), fmt(b.p99, 3), fmt(b.p999, 3), fmt(b.cpuUs, 1),
      formatRatio(pairedRatio(daemonRuns, ceilingRuns, (r) => r.rps)),
      formatRatio(pairedRatio(daemonRuns, ceilingRuns, (r) => r.p99)),
      formatRatio(pairedRatio(ceilingRuns, daemonRuns, (r) => r.cpuUs)),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] as string).length)));
  const line = (cells: string[]): string => cells.map((cell, i) => cell.padStart(widths[i] as number)).join('  ');
  process.stdout.write(`\n${line(header)}\n${table.map(line).join('\n')}\n`);
  for (const { c, ceiling: ceilingRuns, daemon: daemonRuns } of rows) {
    const rounds = (figure: (r: Result) => number): string => formatRounds(pairedRatio(daemonRuns, ceilingRuns, figure));
    process.stdout.write(`  C=${c} per round: req/s ratio ${rounds((r) => r.rps)}; p99 ratio ${rounds((r) => r.p99)}\n`);
  }
  process.stdout.write(
    'Figures: the median over the rounds. Ratios (daemon / ceiling; cpu: ceiling / daemon CPU per request) are taken within\n' +
      'each round, where the two ran back to back, and shown as the median (range); other work on the machine moves\n' +
      'req/s by ±10–20% from run to run, alike for both servers of a round (test/bench/paired-rounds.ts).\n',
  );
  if (stores.length > 0 && daemonName === 'daemon') {
    await Promise.all(children.splice(0).map(stop));
    await runStoreBench({
      stores,
      connections: String(values['store-connections']).split(',').map(Number),
      seconds: Number(values['store-seconds']),
      warmup: Number(values.warmup),
      rounds: Number(values['store-rounds']),
      mailboxes,
      manifestsDir: store,
      requestsFile,
    });
  }
  if (daemonName === 'daemon') {
    await Promise.all(children.splice(0).map(stop));
    await runKubernetesBench({
      sizes: parseSizes(String(values.kubernetes)),
      mailboxes,
      connections: String(values['store-connections']).split(',').map(Number),
      seconds: Number(values['store-seconds']),
      warmup: Number(values.warmup),
      rounds: Number(values['store-rounds']),
    });
  }
} finally {
  await Promise.all(children.map(stop));
  await rm(work, { recursive: true, force: true });
}
