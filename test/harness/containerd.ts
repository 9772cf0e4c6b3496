// A private containerd (the machine's binary, its own root, state and socket under a temp
// directory, no CRI plugin), for tests that import images the way a Kubernetes node does.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface Containerd {
  /** Runs `ctr` against it; stdout. */
  ctr(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export async function startContainerd(): Promise<Containerd> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mw-containerd-'));
  const socket = path.join(dir, 'containerd.sock');
  await writeFile(
    path.join(dir, 'config.toml'),
    `version = 2\nroot = "${dir}/root"\nstate = "${dir}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${socket}"\n[ttrpc]\n  address = "${socket}.ttrpc"\n`,
  );
  let log = '';
  const child: ChildProcess = spawn('containerd', ['--config', path.join(dir, 'config.toml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ctr = async (args: string[]) => (await execFileP('ctr', ['--address', socket, ...args], { maxBuffer: 16 * 1024 * 1024, timeout: 300_000 })).stdout;
  for (let i = 0; !(existsSync(socket) && (await ctr(['version']).then(() => true, () => false))); i++) {
    if (child.exitCode !== null || i > 300) throw new Error(`containerd did not start:\n${log.slice(-2000)}`);
    await sleep(100);
  }
  return {
    ctr,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
