/**
 * The policy daemon against real SQL and LDAP stores (PostgreSQL, MariaDB, OpenLDAP in
 * containers, loaded with the benchmark's mailboxes), per store and connection count:
 *
 *   cold     the daemon with a cache TTL of 0: every key of every request is fetched from the store
 *            (the misses of concurrent requests coalesced into shared round trips)
 *   store    the store's ceiling: the same lookups (same SQL and bound keys, same LDAP search)
 *            issued straight through the driver by C callers over a pool of the store's default
 *            size, in its own process (test/bench/store-ceiling.ts)
 *   warm     the daemon after every mailbox of the stream was fetched once, with a TTL (WARM_TTL) that
 *            outlasts the section, so every lookup of a measured run is a cache hit
 *   protocol the protocol ceiling (test/bench/ceiling-server.ts, answers DUNNO)
 *
 * Goals: cold ≥ 0.7 × store, warm ≥ 0.8 × protocol (req/s).
 *
 * The amavisd stores (amavisd-postgres, amavisd-mariadb) hold the same mailboxes' lists in the
 * amavisd tables, beside the vmail columns of the same server. Their store ceiling is the very
 * statement the daemon sends for a request's facts (amavisd-sql.ts's factsStatement), and a fifth
 * run per round, the vmail-column daemon of the same server warm, gives the goal
 * warm ≥ 0.9 × vmail warm (within 10 %).
 *
 * Run by `npm run bench:policyd` after the manifests section (see its --stores option), or alone:
 *   node test/bench/stores.ts [--stores postgres,mariadb,openldap] [--connections 8,32]
 *        [--seconds 3] [--warmup 1] [--rounds 5] [--mailboxes 10000] [--verbose (every run)]
 *        [--pool-size N (storeSettings.poolSize for daemons and ceiling, instead of the default)]
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decisionOptionsOf, loadPolicydConfig } from '../../src/policy/config.ts';
import { planDecision } from '../../src/restrictions/decide.ts';
import { DEFAULT_WBLIST_OPTIONS, planWblist } from '../../src/restrictions/amavisd-wblist.ts';
import { rcptRequests, writeManifests } from './fixtures.ts';
import { isAmavisdStore, readMailboxes, startStore, STORE_NAMES, type LoadedStore, type StoreName } from './store-servers.ts';
import { formatRatio, formatRounds, medianRun, pairedRatio, type PairedRatio } from './paired-rounds.ts';
import { ceilingRun, HERE, loadRun, prime, ROOT, startServer, stop, storeLookups, type RunResult, type RunningServer } from './store-support.ts';

export interface StoreBenchOptions {
  readonly stores: readonly StoreName[];
  readonly connections: readonly number[];
  readonly seconds: number;
  readonly warmup: number;
  readonly rounds: number;
  readonly mailboxes: number;
  /** A manifests directory written by writeManifests(), and the request stream (JSON) to send. */
  readonly manifestsDir: string;
  readonly requestsFile: string;
  /** Print every run as it ends. */
  readonly verbose?: boolean;
  /** storeSettings.poolSize for the daemons and the store ceiling (default: the store's default). */
  readonly poolSize?: number;
}

/** Parses `postgres,mariadb,openldap` (or `all`); `none` gives an empty list. */
export function parseStoreList(text: string): StoreName[] {
  if (text === 'none' || text === '') return [];
  if (text === 'all') return [...STORE_NAMES];
  const names = text.split(',').map((s) => s.trim());
  for (const name of names) {
    if (!(STORE_NAMES as readonly string[]).includes(name)) {
      throw new Error(`--stores: unknown store ${JSON.stringify(name)} (one of ${STORE_NAMES.join(', ')}, all, none)`);
    }
  }
  return names as StoreName[];
}

interface Row {
  store: StoreName;
  c: number;
  /** One run per round of each; a round runs cold and store back to back, then warm and protocol. */
  cold: RunResult[];
  ceiling: RunResult[];
  warm: RunResult[];
  protocol: RunResult[];
  /** amavisd stores: the vmail-column daemon of the same server, warm. */
  vmailWarm: RunResult[];
}

/**
 * The warm daemon's cache TTL: longer than the whole section, so no entry comes due within a
 * measured run. With the default 30 s, the priming pass fetches every mailbox of the stream
 * within a second or two, so they all come due together 27-30 s later, and whichever run that
 * window falls into measures a refetch burst rather than a warm cache (measured on 2 cores: 998
 * store round trips in one 4 s run, 0.3 of the protocol ceiling, against 0.6-0.9 in the rounds
 * before and after). Refetching is what the cold runs measure; a warm run's lookups/req column
 * shows that it made no round trip.
 */
const WARM_TTL = '1h';

const CEILING_CMD = `${process.execPath} ${join(HERE, 'ceiling-server.ts')} --listen {host}:{port}`;
const daemonCmd = (store: LoadedStore, config: string, ttl: string): string =>
  `${process.execPath} ${join(ROOT, 'bin/mailwarden.js')} policyd --listen {host}:{port} --http-listen {host}:{httpPort} ` +
  `--store ${store.url} -c ${config} --cache-ttl ${ttl}`;

/** The attributes of each request of the stream. */
async function requestAttributes(requestsFile: string): Promise<Map<string, string>[]> {
  const requests = JSON.parse(await readFile(requestsFile, 'utf8')) as string[];
  return requests.map((text) => new Map(text.split('\n').filter((line) => line.indexOf('=') > 0).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as [string, string])));
}

/** The amavisd decision's plan of each request of the stream, as the daemon makes it (its default delimiter '+'). */
async function wblistPlans(requestsFile: string): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const attrs of await requestAttributes(requestsFile)) {
    const plan = planWblist(
      { protocolState: attrs.get('protocol_state'), sender: attrs.get('sender'), recipient: attrs.get('recipient'), saslUsername: attrs.get('sasl_username') || undefined, clientAddress: attrs.get('client_address') },
      DEFAULT_WBLIST_OPTIONS,
    );
    if (typeof plan !== 'string') out.push(plan);
  }
  return out;
}

/** The keys the daemon looks up for each request of the stream, as its plan computes them. */
async function keyLists(requestsFile: string): Promise<string[][]> {
  const options = decisionOptionsOf(await loadPolicydConfig(undefined, {}));
  const out: string[][] = [];
  for (const attrs of await requestAttributes(requestsFile)) {
    const plan = planDecision(
      { protocolState: attrs.get('protocol_state'), sender: attrs.get('sender'), recipient: attrs.get('recipient'), saslUsername: attrs.get('sasl_username') },
      options,
    );
    if (typeof plan !== 'string') out.push([...plan.keys]);
  }
  return out;
}

const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');

export async function runStoreBench(options: StoreBenchOptions, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  if (options.stores.length === 0) return;
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) {
    out.write('\nstores bench: skipped, dist/cli/main.js is missing (run npm run build)\n');
    return;
  }
  const work = await mkdtemp(join(tmpdir(), 'mw-bench-stores-'));
  const started: RunningServer[] = [];
  let server: LoadedStore | undefined;
  try {
    const mailboxes = await readMailboxes(options.manifestsDir);
    const keysFile = join(work, 'keys.json');
    await writeFile(keysFile, JSON.stringify(await keyLists(options.requestsFile)));
    const plansFile = join(work, 'plans.json');
    if (options.stores.some(isAmavisdStore)) await writeFile(plansFile, JSON.stringify(await wblistPlans(options.requestsFile)));
    out.write(
      `\nstores bench: ${mailboxes.length} mailboxes per store, C = ${options.connections.join(', ')}, ${options.seconds} s per run ` +
        `(+${options.warmup} s warm-up), ${options.rounds} paired rounds; load average at start ${load()}\n`,
    );
    const protocol = await startServer('ceiling', CEILING_CMD);
    started.push(protocol);
    const rows: Row[] = [];
    for (const name of options.stores) {
      const loaded = await startStore(name, mailboxes);
      server = options.poolSize === undefined ? loaded : { ...loaded, settings: { ...loaded.settings, poolSize: options.poolSize } };
      const config = join(work, `${name}.yaml`);
      // JSON is YAML; the daemon logs warnings and up (rejections are logged at info).
      await writeFile(config, JSON.stringify({ storeSettings: server.settings }));
      const env = { ...process.env, MAILWARDEN_STORE_PASSWORD: server.password };
      const cold = await startServer(`${name} daemon (cold)`, daemonCmd(server, config, '0ms'), env);
      started.push(cold);
      const warm = await startServer(`${name} daemon (warm)`, daemonCmd(server, config, WARM_TTL), env);
      started.push(warm);
      let vmailWarm: RunningServer | undefined;
      if (server.vmail !== undefined) {
        const vmailConfig = join(work, `${name}-vmail.yaml`);
        await writeFile(vmailConfig, JSON.stringify({ storeSettings: server.vmail.settings }));
        vmailWarm = await startServer(`${name} vmail-column daemon (warm)`, daemonCmd(server, vmailConfig, WARM_TTL), env);
        started.push(vmailWarm);
      }
      // A fresh process runs its first thousands of requests unoptimised (and opens its pool):
      // every daemon sees the whole stream twice before anything is measured.
      for (const daemon of [cold, warm, ...(vmailWarm === undefined ? [] : [vmailWarm])]) for (let i = 0; i < 2; i++) await prime(daemon, options.requestsFile);
      const kind = name === 'openldap' ? 'ldap' : name === 'postgres' ? 'postgres' : name === 'mariadb' ? 'mysql' : name === 'amavisd-postgres' ? 'amavisd-postgres' : 'amavisd-mysql';
      const ceilingArgs = ['--kind', kind, '--url', server.url, '--keys', isAmavisdStore(name) ? plansFile : keysFile, '--settings', JSON.stringify(server.settings)];
      const savedPassword = process.env.MAILWARDEN_STORE_PASSWORD;
      process.env.MAILWARDEN_STORE_PASSWORD = server.password;
      out.write(`  ${name}: started in ${(server.startMs / 1000).toFixed(1)} s, ${mailboxes.length} mailboxes loaded in ${(server.loadMs / 1000).toFixed(1)} s\n`);
      try {
        for (const c of options.connections) {
          const r: Omit<Row, 'store' | 'c'> = { cold: [], ceiling: [], warm: [], protocol: [], vmailWarm: [] };
          // A daemon's run with the store round trips it made per request (its lookup counter).
          const countedRun = async (daemon: RunningServer): Promise<RunResult> => {
            const before = await storeLookups(daemon);
            const run = await loadRun(daemon, c, options.requestsFile, options.seconds, options.warmup);
            const lookups = (await storeLookups(daemon)) - before;
            return { ...run, lookupsPerRequest: lookups / (run.rps * (options.seconds + options.warmup)) };
          };
          const steps = {
            // Every key reaches the store, but the misses of concurrent requests share round trips
            // (the resolver coalesces them), even with a TTL of 0: lookups/req counts round trips.
            cold: async () => void r.cold.push(await countedRun(cold)),
            ceiling: async () => void r.ceiling.push(await ceilingRun(ceilingArgs, c, options.seconds, options.warmup)),
            warm: async () => {
              await prime(warm, options.requestsFile);
              // Round trips during the run would show that it was not warm throughout (see WARM_TTL).
              r.warm.push(await countedRun(warm));
            },
            protocol: async () => void r.protocol.push(await loadRun(protocol, c, options.requestsFile, options.seconds, options.warmup)),
            vmailWarm: async () => {
              await prime(vmailWarm!, options.requestsFile);
              r.vmailWarm.push(await countedRun(vmailWarm!));
            },
          };
          for (let round = 0; round < options.rounds; round++) {
            // The vmail-column warm run goes right before or after the amavisd warm one.
            const order: (keyof typeof steps)[] = round % 2 === 0 ? ['cold', 'ceiling', 'warm', 'protocol'] : ['ceiling', 'cold', 'protocol', 'warm'];
            if (vmailWarm !== undefined) order.splice(order.indexOf('warm') + (round % 2 === 0 ? 0 : 1), 0, 'vmailWarm');
            for (const step of order) {
              await steps[step]();
              if (options.verbose) out.write(`    round ${round + 1} C=${c} ${step}: ${fmt(r[step].at(-1)?.rps ?? NaN, 0)}/s (load ${load()})\n`);
            }
          }
          if (r.cold.length === 0) throw new Error('--rounds must be at least 1');
          const row: Row = { store: name, c, ...r };
          rows.push(row);
          const ratios = (measured: RunResult[], ceiling: RunResult[]): string => formatRounds(pairedRatio(measured, ceiling, (x) => x.rps));
          out.write(
            `  ${name} C=${c}: per round cold/store ${ratios(row.cold, row.ceiling)}, warm/protocol ${ratios(row.warm, row.protocol)}` +
              `${row.vmailWarm.length > 0 ? `, warm/vmail warm ${ratios(row.warm, row.vmailWarm)}` : ''} ` +
              `(cold answers ${JSON.stringify(row.cold[0]?.actions)}; load ${load()})\n`,
          );
        }
      } finally {
        if (savedPassword === undefined) delete process.env.MAILWARDEN_STORE_PASSWORD;
        else process.env.MAILWARDEN_STORE_PASSWORD = savedPassword;
        const daemons = [cold, warm, ...(vmailWarm === undefined ? [] : [vmailWarm])];
        await Promise.all(daemons.map((d) => stop(d.child)));
        for (const d of daemons) started.splice(started.indexOf(d), 1);
        await server.stop();
        server = undefined;
      }
    }
    printTable(rows, out);
    out.write(`load average at end ${load()} (2 cores: other work shares the machine, alike for the two runs of a pair)\n`);
  } finally {
    await Promise.all(started.map((s) => stop(s.child)));
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

function printTable(rows: readonly Row[], out: NodeJS.WritableStream): void {
  const header = [
    'store', 'C',
    'cold req/s', 'p99 ms', 'cpu µs/req', 'lookups/req',
    'store req/s', 'p99 ms', 'cpu µs/req',
    'cold/store',
    'warm req/s', 'p99 ms', 'cpu µs/req', 'lookups/req',
    'protocol req/s', 'p99 ms', 'cpu µs/req',
    'warm/protocol',
    'vmail warm req/s', 'warm/vmail warm',
  ];
  const goal = (ratio: PairedRatio, min: number): string => `${formatRatio(ratio)}${ratio.median >= min ? '' : ' (<' + min + ')'}`;
  const table = rows.map((r) => {
    const [cold, ceiling, warm, protocol] = [medianRun(r.cold), medianRun(r.ceiling), medianRun(r.warm), medianRun(r.protocol)];
    return [
      r.store, String(r.c),
      fmt(cold.rps, 0), fmt(cold.p99, 3), fmt(cold.cpuUs, 1), fmt(cold.lookupsPerRequest ?? NaN),
      fmt(ceiling.rps, 0), fmt(ceiling.p99, 3), fmt(ceiling.cpuUs, 1),
      goal(pairedRatio(r.cold, r.ceiling, (x) => x.rps), 0.7),
      fmt(warm.rps, 0), fmt(warm.p99, 3), fmt(warm.cpuUs, 1), fmt(warm.lookupsPerRequest ?? NaN, 4),
      fmt(protocol.rps, 0), fmt(protocol.p99, 3), fmt(protocol.cpuUs, 1),
      goal(pairedRatio(r.warm, r.protocol, (x) => x.rps), 0.8),
      r.vmailWarm.length === 0 ? '-' : fmt(medianRun(r.vmailWarm).rps, 0),
      r.vmailWarm.length === 0 ? '-' : goal(pairedRatio(r.warm, r.vmailWarm, (x) => x.rps), 0.9),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => (row[i] as string).length)));
  const line = (cells: string[]): string => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join('  ');
  out.write(`\n${line(header)}\n${table.map(line).join('\n')}\n`);
  out.write(
    'cold: daemon with --cache-ttl 0ms: every key of every request is fetched from the store, the misses of concurrent requests\n' +
      '  coalesced into shared round trips (lookups/req = store round trips per request);\n' +
      'store: the same lookups straight through the driver, same pool size (the store default unless --pool-size), one per request;\n' +
      'warm: daemon after a priming pass, with a TTL no entry reaches during the section (lookups/req: round trips, 0 when warm throughout); protocol: the DUNNO ceiling server. Goals: cold/store >= 0.7, warm/protocol >= 0.8.\n' +
      'amavisd-*: the amavisd tables of a server that also holds the vmail columns; store: the facts statement the daemon sends, straight through the driver;\n' +
      '  vmail warm: the vmail-column daemon of the same server and mailboxes, warm, run next to the amavisd warm run in each round. Goal: warm/vmail warm >= 0.9.\n' +
      'Figures: medians over the rounds; ratios: the median (range) of the per-round ratios, each of two runs back to back.\n',
  );
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({
    options: {
      stores: { type: 'string', default: 'all' },
      connections: { type: 'string', default: '8,32' },
      seconds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      rounds: { type: 'string', default: '5' },
      mailboxes: { type: 'string', default: '10000' },
      verbose: { type: 'boolean', default: false },
      'pool-size': { type: 'string' },
    },
  });
  const work = await mkdtemp(join(tmpdir(), 'mw-bench-'));
  try {
    const mailboxes = Number(values.mailboxes);
    const manifestsDir = join(work, 'store');
    await writeManifests(manifestsDir, mailboxes);
    const requestsFile = join(work, 'requests.json');
    await writeFile(requestsFile, JSON.stringify(rcptRequests(4096, mailboxes)));
    await runStoreBench({
      stores: parseStoreList(String(values.stores)),
      connections: String(values.connections).split(',').map(Number),
      seconds: Number(values.seconds),
      warmup: Number(values.warmup),
      rounds: Number(values.rounds),
      mailboxes,
      manifestsDir,
      requestsFile,
      verbose: values.verbose,
      poolSize: values['pool-size'] === undefined ? undefined : Number(values['pool-size']),
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  // The harness removes its containers at exit.
  process.exit(0);
}
