// Keeps the test node of one test session (an `npm test` run: its node --test runner process)
// alive for all its suites. Started detached by kube-node-client.ts under the machine lock:
//
//   flock -w 1800 LOCK node test/harness/kube-node-keeper.ts SESSION_DIR SESSION_PID
//
// Builds (or finds) the images the suites use, brings the node up, writes SESSION_DIR/state.json
// (or SESSION_DIR/error.txt), then waits. It tears the node down and exits on SIGTERM (the
// session's global teardown) or as soon as SESSION_PID is gone (a session that died).
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureImage } from './containers.ts';
import { pidAlive, startKubeNode, type KubeNode } from './kube-node.ts';
import { ensureMailwardenImage } from './mailwarden-image.ts';

const [sessionDir, sessionPidArg] = process.argv.slice(2);
if (sessionDir === undefined || sessionPidArg === undefined) {
  console.error('usage: kube-node-keeper.ts SESSION_DIR SESSION_PID');
  process.exit(2);
}
const sessionPid = Number(sessionPidArg);

/** What a suite needs to use the node (kube-node-client.ts reads it). */
export interface NodeState {
  readonly keeperPid: number;
  readonly kubeconfigPath: string;
  readonly server: string;
  readonly proxySocket: string;
  readonly caPath: string;
  readonly images: { readonly mailwarden: string; readonly postfix: string; readonly postgres: string };
  /** Milliseconds: image builds (0 when cached) and the node's bring-up phases. */
  readonly imagesMs: number;
  readonly timings: Readonly<Record<string, number>>;
}


const log = (line: string): void => {
  process.stderr.write(`${new Date().toISOString()} kube-node: ${line}\n`);
};

let node: KubeNode | undefined;
let stopping: Promise<void> | undefined;
function shutdown(why: string): Promise<void> {
  stopping ??= (async () => {
    log(`stopping (${why})`);
    const t0 = Date.now();
    await node?.stop().catch((err: unknown) => log(`teardown failed: ${String(err)}`));
    log(`stopped in ${Date.now() - t0} ms`);
    rmSync(sessionDir!, { recursive: true, force: true });
    process.exit(0);
  })();
  return stopping;
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

try {
  const t0 = Date.now();
  const [mailwarden, postfix, postgres] = await Promise.all([ensureMailwardenImage().then((i) => i.tag), ensureImage('postfix'), ensureImage('postgres')]);
  const imagesMs = Date.now() - t0;
  log(`images ready in ${imagesMs} ms`);
  if (!pidAlive(sessionPid)) await shutdown('session gone');
  node = await startKubeNode({ images: [mailwarden, postfix, postgres], log });
  log(`node up in ${node.timings.total} ms: ${JSON.stringify(node.timings)}`);
  const state: NodeState = {
    keeperPid: process.pid,
    kubeconfigPath: node.kubeconfigPath,
    server: node.server,
    proxySocket: node.proxySocket,
    caPath: node.caPath,
    images: { mailwarden, postfix, postgres },
    imagesMs,
    timings: node.timings,
  };
  // Written aside and renamed: a reader never sees half a file.
  writeFileSync(join(sessionDir, 'state.json.tmp'), JSON.stringify(state, null, 2));
  renameSync(join(sessionDir, 'state.json.tmp'), join(sessionDir, 'state.json'));
} catch (err) {
  log(`bring-up failed: ${(err as Error).stack ?? String(err)}`);
  writeFileSync(join(sessionDir, 'error.txt'), (err as Error).stack ?? String(err));
  await node?.stop().catch(() => undefined);
  process.exit(1);
}

while (pidAlive(sessionPid) && stopping === undefined) await sleep(1000);
await shutdown('session gone');
