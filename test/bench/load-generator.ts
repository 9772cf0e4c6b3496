/**
 * The benchmark's client, in its own process: C persistent connections driven by one event loop,
 * each like an smtpd process — send one request, wait for its answer, send the next.
 *
 * Usage: node test/bench/load-generator.ts --port P [--host H] --connections C --seconds S
 *        --warmup W --requests FILE(JSON array of request texts) [--server-pid PID]
 * Prints one JSON line: requests, seconds, rps, latency percentiles (ms), the client's CPU per
 * request (µs), answers by action; with --server-pid, the server's CPU per request (µs) over the
 * measured window alone, read from /proc at the window's two ends.
 */
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { processCpuNanoseconds } from '../helpers/proc.ts';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    connections: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    requests: { type: 'string' },
    'server-pid': { type: 'string' },
  },
});
const connections = Number(values.connections);
const seconds = Number(values.seconds);
const warmup = Number(values.warmup);
const serverPid = values['server-pid'] === undefined ? undefined : Number(values['server-pid']);
const pool = (JSON.parse(await readFile(String(values.requests), 'utf8')) as string[]).map((r) => Buffer.from(r));

/** Latencies of the measured window; grown by doubling. */
let samples = new Float64Array(1 << 16);
let count = 0;
const actions = new Map<string, number>();
let measuring = false;
let stopping = false;

function record(ms: number): void {
  if (count === samples.length) {
    const grown = new Float64Array(samples.length * 2);
    grown.set(samples);
    samples = grown;
  }
  samples[count++] = ms;
}

function lane(index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ host: values.host, port: Number(values.port), noDelay: true });
    let next = (index * 7919) % pool.length;
    let sentAt = 0;
    let reply = '';
    const send = (): void => {
      if (stopping) {
        socket.end();
        return;
      }
      const request = pool[next] as Buffer;
      next = next + 1 === pool.length ? 0 : next + 1;
      sentAt = performance.now();
      socket.write(request);
    };
    socket.setEncoding('latin1');
    socket.on('connect', send);
    socket.on('data', (text: string) => {
      reply += text;
      if (!reply.endsWith('\n\n')) return; // one request in flight: its answer ends the data
      const ms = performance.now() - sentAt;
      if (measuring) {
        record(ms);
        const action = reply.slice(7, reply.indexOf(' ') > 0 ? reply.indexOf(' ') : reply.length - 2);
        actions.set(action, (actions.get(action) ?? 0) + 1);
      }
      reply = '';
      send();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve());
  });
}

const lanes = Array.from({ length: connections }, (_, i) => lane(i));
await new Promise((r) => setTimeout(r, warmup * 1000));
measuring = true;
const started = performance.now();
const cpuStarted = process.cpuUsage();
const serverCpuStarted = serverPid === undefined ? NaN : processCpuNanoseconds(serverPid);
await new Promise((r) => setTimeout(r, seconds * 1000));
measuring = false;
const serverCpu = serverPid === undefined ? NaN : processCpuNanoseconds(serverPid) - serverCpuStarted;
const elapsed = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuStarted);
stopping = true;
await Promise.all(lanes);

const sorted = samples.subarray(0, count).sort();
const at = (q: number): number => sorted[Math.min(count - 1, Math.floor(q * count))] ?? NaN;
process.stdout.write(
  JSON.stringify({
    connections,
    requests: count,
    seconds: elapsed,
    rps: count / elapsed,
    p50: at(0.5),
    p99: at(0.99),
    p999: at(0.999),
    // The client's own CPU per answered request (µs): it shares the cores with the server.
    clientCpuUs: (cpu.user + cpu.system) / count,
    // The server's CPU per answered request (µs): the answers in flight at either end of the
    // window cost it CPU inside or outside the window alike, which evens out over thousands.
    ...(serverPid === undefined ? {} : { serverCpuUs: serverCpu / 1000 / count }),
    actions: Object.fromEntries(actions),
  }) + '\n',
);
