import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { eventually } from './eventually.ts';
import { repoPath } from './paths.ts';
import { processCpuSeconds } from './proc.ts';

/** One JSON log record of the operator (pino: `level`, `time`, `msg` and the fields). */
export type LogRecord = Record<string, unknown> & { msg?: string; level?: string };

export interface OperatorProcessOptions {
  /** A kubeconfig file, e.g. the control plane's `cp.kubeconfigPath`. */
  readonly kubeconfig: string;
  readonly namespaces: readonly string[];
  readonly leaderElect?: boolean;
  readonly leaseNamespace?: string;
  readonly leaseName?: string;
  /** Identity in the Lease (`--id`). */
  readonly id?: string;
  /** e.g. `2s`; default the CLI's. */
  readonly resync?: string;
  readonly workers?: number;
  /** Default info: the scenarios look for info lines. */
  readonly logLevel?: string;
  readonly extraArgs?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /**
   * What `startOperatorProcess` waits for: `started` (the HTTP port is known), `synced` (the
   * informers' caches, the default) or `leading`.
   */
  readonly waitFor?: 'started' | 'synced' | 'leading';
  readonly startTimeoutMs?: number;
}

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A `mailwarden operator` process started from the built CLI, as users run it. */
export interface OperatorProcess {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly id: string | undefined;
  /** /healthz, /readyz, /metrics on 127.0.0.1. */
  readonly httpPort: number;
  /** Every stdout line so far, parsed (lines that are not JSON as `{ raw }`). */
  readonly logs: LogRecord[];
  /** The same lines as written (what a terminal running `kubectl logs` would be sent). */
  readonly rawLines: string[];
  stderr(): string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ProcessExit>;
  readonly hasExited: boolean;
  /** Waits for a log record matching `match` (a `msg` or a predicate), including ones already seen. */
  waitForLog(match: string | ((record: LogRecord) => boolean), timeoutMs?: number): Promise<LogRecord>;
  /** Records whose `msg` is `msg`. */
  logged(msg: string): LogRecord[];
  /** Sends `signal` and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<ProcessExit>;
  /** Resident set size from /proc/PID/status (VmRSS), in bytes. */
  rssBytes(): number;
  /** Peak resident set size (VmHWM), in bytes. */
  peakRssBytes(): number;
  /** CPU seconds (user + system) used so far, from /proc/PID/stat. */
  cpuSeconds(): number;
}

/**
 * Starts `node bin/mailwarden.js operator` with `--http-listen 127.0.0.1:0` and resolves once it
 * reached `waitFor`; rejects (with its stderr and last logs) if it exits first. Run
 * `npm run build` before: the CLI runs from dist/.
 */
export async function startOperatorProcess(options: OperatorProcessOptions): Promise<OperatorProcess> {
  const args = ['operator', '--kubeconfig', options.kubeconfig, '--http-listen', '127.0.0.1:0', '--log-level', options.logLevel ?? 'info'];
  for (const ns of options.namespaces) args.push('--namespace', ns);
  if (options.leaderElect) args.push('--leader-elect');
  if (options.leaseNamespace !== undefined) args.push('--lease-namespace', options.leaseNamespace);
  if (options.leaseName !== undefined) args.push('--lease-name', options.leaseName);
  if (options.id !== undefined) args.push('--id', options.id);
  if (options.resync !== undefined) args.push('--resync', options.resync);
  if (options.workers !== undefined) args.push('--workers', String(options.workers));
  args.push(...(options.extraArgs ?? []));

  const child = spawn(process.execPath, [repoPath('bin/mailwarden.js'), ...args], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogRecord[] = [];
  const rawLines: string[] = [];
  const waiters = new Set<{ test: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }>();
  let stderr = '';
  let partial = '';
  let hasExited = false;
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    partial += text;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      rawLines.push(line);
      let record: LogRecord;
      try {
        record = JSON.parse(line) as LogRecord;
      } catch {
        record = { raw: line };
      }
      logs.push(record);
      for (const w of waiters) {
        if (w.test(record)) {
          waiters.delete(w);
          w.resolve(record);
        }
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited: Promise<ProcessExit> = once(child, 'exit').then(([code, signal]) => {
    hasExited = true;
    return { code: code as number | null, signal: signal as NodeJS.Signals | null };
  });

  const predicate = (match: string | ((r: LogRecord) => boolean)) => (typeof match === 'string' ? (r: LogRecord) => r.msg === match : match);
  const describe = () => `stderr:\n${stderr.slice(-4000)}\nlast logs:\n${logs.slice(-15).map((l) => JSON.stringify(l)).join('\n')}`;
  const waitForLog = (match: string | ((r: LogRecord) => boolean), timeoutMs = 30_000): Promise<LogRecord> => {
    const test = predicate(match);
    const seen = logs.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<LogRecord>((resolve, reject) => {
      const waiter = {
        test,
        resolve: (r: LogRecord) => {
          clearTimeout(timer);
          resolve(r);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`operator ${options.id ?? child.pid} did not log ${typeof match === 'string' ? JSON.stringify(match) : 'the awaited line'} within ${timeoutMs} ms\n${describe()}`));
      }, timeoutMs);
      waiters.add(waiter);
    });
  };

  const startTimeout = options.startTimeoutMs ?? 60_000;
  const milestone = { started: 'operator starting', synced: 'operator caches synced', leading: 'leading: reconciling' }[options.waitFor ?? 'synced'];
  const reached = await Promise.race([
    Promise.all([waitForLog('operator starting', startTimeout), waitForLog(milestone, startTimeout)]).then(([starting]) => starting),
    exited.then((exit) => exit),
  ]).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  if (!('msg' in reached)) throw new Error(`operator exited (${JSON.stringify(reached)}) before "${milestone}"\n${describe()}`);
  const http = (reached as { http?: { port?: number } }).http;

  return {
    process: child,
    pid: child.pid!,
    id: options.id,
    httpPort: http?.port ?? 0,
    logs,
    rawLines,
    stderr: () => stderr,
    exited,
    get hasExited() {
      return hasExited;
    },
    waitForLog,
    logged: (msg) => logs.filter((r) => r.msg === msg),
    async kill(signal = 'SIGTERM') {
      if (!hasExited) child.kill(signal);
      return exited;
    },
    rssBytes: () => procStatusBytes(child.pid!, 'VmRSS'),
    peakRssBytes: () => procStatusBytes(child.pid!, 'VmHWM'),
    cpuSeconds: () => processCpuSeconds(child.pid),
  };
}

function procStatusBytes(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
  return kb ? Number(kb[1]) * 1024 : 0;
}

/** Polls an operator's /readyz (200 = synced and leading or a healthy standby). */
export async function isReady(operator: OperatorProcess): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${operator.httpPort}/readyz`);
    await response.body?.cancel();
    return response.status === 200;
  } catch {
    return false;
  }
}

/** Waits (see {@link eventually}) until `check` is true; resolves with the elapsed milliseconds. */
export async function timeUntil(check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<number> {
  const start = performance.now();
  await eventually('the condition', check, timeoutMs);
  return performance.now() - start;
}
