/**
 * Process plumbing for the store benchmark (test/bench/stores.ts): start a policy server and wait
 * until it answers, drive it with the load generator, prime its cache, read its CPU time, stop it.
 * The same steps as test/bench/policyd.ts, which keeps its own copies inline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const HERE = join(ROOT, 'test/bench');
export const HOST = '127.0.0.1';

/** What the load generator (and the store ceiling client) print: one run's figures. */
export interface RunResult {
  connections: number;
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  actions: Record<string, number>;
  /** CPU time (user + system) of the measured process per request, µs; NaN when unknown. */
  cpuUs: number;
  /** Store round trips per answered request (daemons with a store); NaN when unknown. */
  lookupsPerRequest?: number;
}

export interface RunningServer {
  readonly child: ChildProcess;
  readonly port: number;
  /** The daemon's /metrics port ({httpPort}). */
  readonly httpPort: number;
}

/** How many store lookups the daemon has made (its store_lookup_duration histogram); NaN if unknown. */
export async function storeLookups(server: RunningServer): Promise<number> {
  try {
    const text = await (await fetch(`http://${HOST}:${server.httpPort}/metrics`)).text();
    const match = /^mailwarden_store_lookup_duration_seconds_count(?:\{[^}]*\})? (\S+)$/m.exec(text);
    return match === null ? NaN : Number(match[1]);
  } catch {
    return NaN;
  }
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, HOST, r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * Starts a server command (`{host}`, `{port}`, `{httpPort}` placeholders; split on spaces) and
 * waits until it answers a policy request.
 */
export async function startServer(name: string, template: string, env: NodeJS.ProcessEnv = process.env): Promise<RunningServer> {
  const port = await freePort();
  const httpPort = await freePort();
  const [command, ...args] = template
    .replaceAll('{host}', HOST)
    .replaceAll('{httpPort}', String(httpPort))
    .replaceAll('{port}', String(port))
    .split(/\s+/)
    .filter(Boolean);
  // Its banner is not shown; what it wrote last is, when it dies before answering.
  const child = spawn(command as string, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (stderr = (stderr + text).slice(-4000)));
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = `${name} exited (${signal ?? code}):\n${stderr}`));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited !== undefined) throw new Error(exited);
    if (await answers(port)) return { child, port, httpPort };
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`${name} did not answer on ${HOST}:${port} within 60 s`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolveProbe) => {
    const socket = connect(port, HOST);
    let reply = '';
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write('request=smtpd_access_policy\nprotocol_state=RCPT\nsender=a@b.example\nrecipient=c@d.example\n\n'));
    socket.on('data', (text: string) => {
      reply += text;
      if (reply.endsWith('\n\n')) {
        socket.destroy();
        resolveProbe(reply.startsWith('action='));
      }
    });
    socket.on('error', () => resolveProbe(false));
    socket.setTimeout(2000, () => (socket.destroy(), resolveProbe(false)));
  });
}

/** Runs a bench child script that prints one JSON line of figures. */
function runChild<T>(script: string, args: string[]): Promise<T> {
  return new Promise<T>((resolveRun, reject) => {
    const child = spawn(process.execPath, [join(HERE, script), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
    child.once('exit', (code) => (code === 0 ? resolveRun(JSON.parse(out) as T) : reject(new Error(`${script} exited ${code}`))));
  });
}

/**
 * The load generator against a policy server: C persistent connections. The server's CPU per
 * request is the generator's reading over the measured window alone.
 */
export async function loadRun(server: Pick<RunningServer, 'child' | 'port'>, connections: number, requestsFile: string, seconds: number, warmup: number): Promise<RunResult> {
  const args = ['--port', String(server.port), '--connections', String(connections), '--server-pid', String(server.child.pid)];
  args.push('--seconds', String(seconds), '--warmup', String(warmup), '--requests', requestsFile);
  const { serverCpuUs, ...result } = await runChild<Omit<RunResult, 'cpuUs'> & { serverCpuUs: number }>('load-generator.ts', args);
  return { ...result, cpuUs: serverCpuUs };
}

/**
 * The store ceiling client (test/bench/store-ceiling.ts), which reports its own CPU per lookup.
 * It stands for the daemon's best, so it applies the daemon's V8 settings itself (runtime-flags.ts).
 */
export function ceilingRun(args: string[], connections: number, seconds: number, warmup: number): Promise<RunResult> {
  const runArgs = [...args, '--connections', String(connections), '--seconds', String(seconds), '--warmup', String(warmup)];
  return runChild<RunResult>('store-ceiling.ts', runArgs);
}

/**
 * Sends every request of the file once, over `connections` connections, and waits for every
 * answer: afterwards each mailbox the stream names is in the daemon's cache. Returns the answers
 * by action.
 */
export async function prime(server: RunningServer, requestsFile: string, connections = 16): Promise<Record<string, number>> {
  const pool = JSON.parse(await readFile(requestsFile, 'utf8')) as string[];
  const actions: Record<string, number> = {};
  let next = 0;
  const lane = (): Promise<void> =>
    new Promise((resolveLane, reject) => {
      const socket = connect({ host: HOST, port: server.port, noDelay: true });
      let reply = '';
      const send = (): void => {
        if (next >= pool.length) {
          socket.end();
          return;
        }
        socket.write(pool[next++] as string, 'latin1');
      };
      socket.setEncoding('latin1');
      socket.on('connect', send);
      socket.on('data', (text: string) => {
        reply += text;
        if (!reply.endsWith('\n\n')) return;
        const action = reply.slice(7, reply.indexOf(' ') > 0 ? reply.indexOf(' ') : reply.length - 2);
        actions[action] = (actions[action] ?? 0) + 1;
        reply = '';
        send();
      });
      socket.on('error', reject);
      socket.on('close', () => resolveLane());
    });
  await Promise.all(Array.from({ length: connections }, lane));
  return actions;
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
