// node --test --test-global-setup: runs in the test runner, whose pid is the session the suites'
// test node belongs to (kube-node-client.ts). The node is started lazily by the first suite that
// uses it; the teardown stops it, so the next `npm test` finds the machine clean.
import { stopSessionNode } from './kube-node-client.ts';

export async function globalSetup(): Promise<void> {
  // Nothing up front: runs without node suites never pay for a node.
}

export async function globalTeardown(): Promise<void> {
  const t0 = Date.now();
  await stopSessionNode(process.pid);
  const ms = Date.now() - t0;
  if (ms > 1000) process.stderr.write(`test node torn down in ${ms} ms\n`);
}
