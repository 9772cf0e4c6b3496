import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { withDeadline } from './deadline.ts';
import { repoPath } from './paths.ts';

/** A `mailwarden policyd` process started from the built CLI, as users run it. */
export interface DaemonProcess {
  readonly process: ChildProcess;
  readonly port: number;
  readonly httpPort: number;
  /** Every stdout line so far (JSON log records). */
  readonly logs: Record<string, unknown>[];
  /** The same lines as written (what a terminal running `kubectl logs` would be sent). */
  readonly rawLines: string[];
  stderr(): string;
  /** The first log record (seen so far or to come) that `match` accepts; rejects after `timeoutMs`. */
  waitForLog(match: (record: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts the daemon on free 127.0.0.1 ports; resolves once it logged "policy daemon ready". */
export async function startDaemon(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [repoPath('bin/mailwarden.js'), 'policyd', '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const rawLines: string[] = [];
  const logWatchers = new Set<(record: Record<string, unknown>) => void>();
  let stderr = '';
  let partial = '';
  let ready: ((value: Record<string, unknown>) => void) | undefined;
  const readyLine = new Promise<Record<string, unknown>>((resolve) => (ready = resolve));
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    partial += text;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      rawLines.push(line);
      try {
        const record = JSON.parse(line) as Record<string, unknown>;
        logs.push(record);
        if (record.msg === 'policy daemon ready') ready?.(record);
        for (const watch of logWatchers) watch(record);
      } catch {
        logs.push({ raw: line });
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const first = await Promise.race([readyLine, exited.then((code) => ({ exited: code }))]);
  if ('exited' in first) throw new Error(`policyd exited with ${String(first.exited)} before it was ready:\n${stderr}`);
  const listen = first.listen as { port: number };
  const http = first.http as { port: number };
  return {
    process: child,
    port: listen.port,
    httpPort: http.port,
    logs,
    rawLines,
    stderr: () => stderr,
    waitForLog(match, timeoutMs = 10_000) {
      const seen = logs.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      let watch = (_record: Record<string, unknown>): void => {};
      const logged = new Promise<Record<string, unknown>>((resolve) => {
        watch = (record) => {
          if (match(record)) resolve(record);
        };
        logWatchers.add(watch);
      });
      return withDeadline(logged, timeoutMs, () => {
        throw new Error(`no such log line within ${timeoutMs} ms`);
      }).finally(() => logWatchers.delete(watch));
    },
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      return exited;
    },
  };
}
