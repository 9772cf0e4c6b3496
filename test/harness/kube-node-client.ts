// The test node as the suites see it: one node per test session (an `npm test` run), started by
// the first suite that asks and shared by the others, torn down by the session's global teardown
// (kube-node-global.ts) or when the session's process is gone.
//
//   const node = await useKubeNode();
//   await node.kubectl(['get', 'nodes']);
//   const smtp = await node.forward(podIp, 25);       // 127.0.0.1:smtp.port → the pod
//
// The node itself: kube-node.ts; the process that keeps it: kube-node-keeper.ts.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { forwardTo, type Forward } from './kube-node-forward.ts';
import { pidAlive } from './kube-node.ts';
import type { NodeState } from './kube-node-keeper.ts';
import { run, type CommandResult } from './kube-tools.ts';

export const SESSIONS_DIR = join(tmpdir(), 'mailwarden-node-sessions');
/** One node on this machine at a time (fixed names, one containerd root, 2 cores). */
export const MACHINE_LOCK = join(tmpdir(), 'mailwarden-node.lock');
const KEEPER = fileURLToPath(new URL('./kube-node-keeper.ts', import.meta.url));

export interface SharedNode extends NodeState {
  kubeConfig(): KubeConfig;
  /** A 127.0.0.1 port joined to host:port inside the node's network namespace. */
  forward(host: string, port: number): Promise<Forward>;
  kubectl(args: string[], input?: string): Promise<CommandResult>;
  helm(args: string[]): Promise<CommandResult>;
}

/** The process whose lifetime is the session's: node --test's runner for a suite it runs. */
export function sessionPid(): number {
  return process.env.NODE_TEST_CONTEXT !== undefined ? process.ppid : process.pid;
}

export function sessionDir(pid = sessionPid()): string {
  return join(SESSIONS_DIR, String(pid));
}


function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8'));
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Starts the keeper unless this session already has one; the directory is the claim. */
function claimAndStart(dir: string, pid: number): void {
  mkdirSync(SESSIONS_DIR, { recursive: true });
  try {
    mkdirSync(dir);
  } catch {
    const keeper = readPid(join(dir, 'keeper.pid'));
    if (keeper !== undefined && pidAlive(keeper)) return;
    if (existsSync(join(dir, 'error.txt'))) return;
    // A keeper that died without a word (killed): start over.
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
  }
  const out = openSync(join(dir, 'keeper.log'), 'a');
  // flock(1) holds the machine lock for the keeper's whole life; the kernel drops it on exit.
  const child = spawn('flock', ['-w', '1800', MACHINE_LOCK, process.execPath, KEEPER, dir, String(pid)], {
    detached: true,
    stdio: ['ignore', out, out],
  });
  writeFileSync(join(dir, 'keeper.pid'), String(child.pid));
  child.unref();
}

let shared: Promise<SharedNode> | undefined;

/** The session's node, started on first use. Rejects with the keeper's error if bring-up failed. */
export function useKubeNode(timeoutMs = 40 * 60_000): Promise<SharedNode> {
  shared ??= connect(timeoutMs);
  return shared;
}

async function connect(timeoutMs: number): Promise<SharedNode> {
  const pid = sessionPid();
  const dir = sessionDir(pid);
  claimAndStart(dir, pid);
  const deadline = Date.now() + timeoutMs;
  const statePath = join(dir, 'state.json');
  while (!existsSync(statePath)) {
    if (existsSync(join(dir, 'error.txt'))) {
      throw new Error(`the test node did not come up (log ${join(dir, 'keeper.log')}):\n${readFileSync(join(dir, 'error.txt'), 'utf8')}`);
    }
    const keeper = readPid(join(dir, 'keeper.pid'));
    if (keeper !== undefined && !pidAlive(keeper) && !existsSync(statePath)) {
      const logText = existsSync(join(dir, 'keeper.log')) ? readFileSync(join(dir, 'keeper.log'), 'utf8').slice(-3000) : '';
      throw new Error(`the test node's keeper exited before the node was up:\n${logText}`);
    }
    if (Date.now() > deadline) throw new Error(`the test node was not up within ${timeoutMs} ms (log ${join(dir, 'keeper.log')})`);
    await sleep(250);
  }
  const state = JSON.parse(readFileSync(statePath, 'utf8')) as NodeState;
  const forwards: Forward[] = [];
  process.once('exit', () => forwards.splice(0).forEach((f) => void f.close()));
  return {
    ...state,
    kubeConfig(): KubeConfig {
      const kc = new KubeConfig();
      kc.loadFromFile(state.kubeconfigPath);
      return kc;
    },
    async forward(host: string, port: number): Promise<Forward> {
      const f = await forwardTo(state.proxySocket, host, port);
      forwards.push(f);
      return f;
    },
    kubectl: (args, input) => run('kubectl', args, { kubeconfig: state.kubeconfigPath, input }),
    helm: (args) => run('helm', args, { kubeconfig: state.kubeconfigPath }),
  };
}

/** Stops this session's keeper (the node is torn down) and waits until it is gone. */
export async function stopSessionNode(pid = sessionPid(), timeoutMs = 120_000): Promise<void> {
  const dir = sessionDir(pid);
  if (!existsSync(dir)) return;
  // flock(1) runs the keeper as its child: signal the keeper once it runs, else flock (waiting).
  const keeper = existsSync(join(dir, 'state.json')) ? (JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as NodeState).keeperPid : undefined;
  const flockPid = readPid(join(dir, 'keeper.pid'));
  const target = keeper ?? flockPid;
  if (target !== undefined && pidAlive(target)) {
    try {
      process.kill(target, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + timeoutMs;
  while ((keeper !== undefined && pidAlive(keeper)) || (flockPid !== undefined && pidAlive(flockPid))) {
    if (Date.now() > deadline) break;
    await sleep(200);
  }
  rmSync(dir, { recursive: true, force: true });
}
