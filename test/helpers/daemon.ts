import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { repoPath } from './paths.ts';

/** A `mailwarden policyd` process started from the built CLI, as users run it. */
export interface DaemonProcess {
  readonly process: ChildProcess;
  readonly port: number;
  readonly httpPort: number;
  /** Every stdout line so far (JSON log records). */
  readonly logs: Record<string, unknown>[];
  stderr(): string;
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
      try {
        const record = JSON.parse(line) as Record<string, unknown>;
        logs.push(record);
        if (record.msg === 'policy daemon ready') ready?.(record);
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
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      return exited;
    },
  };
}
