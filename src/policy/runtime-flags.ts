/**
 * V8 settings the policy daemon gives itself at startup, whatever launched it (the container's
 * command, `npm start`, a unit file). Both are read by V8 at each garbage collection, so setting
 * them at run time works (measured: scavenge pauses and survivors change at once).
 */
import { setFlagsFromString } from 'node:v8';

/**
 * Allocation-site pretenuring off: V8 watches where object literals are allocated and, when many
 * outlive a scavenge, allocates every later one at that site straight in the old generation. A
 * policy server trips it whenever requests wait for a store round trip (cold lookups, startup):
 * from then on each request's objects are born old, hold young strings that only a full GC can
 * free, and every scavenge copies megabytes. Measured in-process over a warm cache: 3.5 → 2.1 µs a
 * request (scavenges surviving 25 MB → under 1 KB).
 */
export const POLICYD_V8_FLAGS: readonly string[] = [
  '--no-allocation-site-pretenuring',
  /*
   * Scavenges on the main thread alone: the daemon's young objects die within a request, and
   * parallel scavenger helper threads only compete with Postfix for cores (a sidecar has none to
   * spare). Unlike --single-threaded-gc (which it replaces) it leaves the sweeping of freed socket
   * buffers to a background thread: with it in the pause, scavenges took 4-5 ms. Measured on 2
   * cores, C=32: the same CPU and p99, p99.9 2.8-3.2 ms instead of 5.2-5.4 ms.
   */
  '--no-parallel-scavenge',
];

/**
 * V8 settings read only when the isolate is created: the command that starts the daemon must pass
 * them to node (the sidecar's command, `npm start`, the benchmarks), `node <these> bin/mailwarden.js`.
 *
 * The memory reducer off: after an idle spell it starts full collections, and under load that
 * follows the daemon's near-zero old-generation growth convinces V8's heuristics to go on marking
 * the whole heap at every scavenge (measured after 6 s idle at 8 connections: a mark-compact every
 * ~330 ms, GC threads 1.1-2.4 µs a request instead of 0.2, p99.9 2.2-4.2 ms instead of 1.0-1.1).
 * The heap then only grows when allocation needs it, as between the idle spells anyway.
 */
export const POLICYD_NODE_FLAGS: readonly string[] = ['--no-memory-reducer'];

/** Whether this process was started with {@link POLICYD_NODE_FLAGS} (else say so once at startup). */
export function missingPolicydNodeFlags(execArgv: readonly string[] = process.execArgv): string[] {
  return POLICYD_NODE_FLAGS.filter((flag) => !execArgv.includes(flag));
}

export function applyPolicydV8Flags(): void {
  for (const flag of POLICYD_V8_FLAGS) setFlagsFromString(flag);
}
