/**
 * V8 settings the policy daemon gives itself at startup, whatever launched it (the container's
 * command, `npm start`, a unit file). Each is read by V8 when it is used, so setting them at run
 * time works. What each one changed, measured: docs/performance.md.
 */
import { setFlagsFromString } from 'node:v8';

/**
 * Allocation-site pretenuring off: V8 watches where object literals are allocated and, when many
 * outlive a scavenge, allocates every later one at that site straight in the old generation. A
 * policy server trips it whenever requests wait for a store round trip (cold lookups, startup):
 * from then on each request's objects are born old, hold young strings that only a full GC can
 * free, and every scavenge copies megabytes.
 */
export const POLICYD_V8_FLAGS: readonly string[] = [
  '--no-allocation-site-pretenuring',
  /*
   * Scavenges on the main thread alone: the daemon's young objects die within a request, and
   * parallel scavenger helper threads only compete with Postfix for cores (a sidecar has none to
   * spare). Unlike --single-threaded-gc (which it replaces) it leaves the sweeping of freed socket
   * buffers to a background thread, out of the pause, where it lengthened the tail latency.
   */
  '--no-parallel-scavenge',
  /*
   * Full collections when the old generation has used 80% of its growth allowance (at 90% at
   * once), and not otherwise. V8's own rule also starts one whenever the allowance is smaller
   * than the young generation; the daemon promotes almost nothing, so V8 keeps the allowance at
   * its minimum (growing factor 1.1) while the young generation grows under load: after an idle
   * spell, or at random under steady load, it then marked the whole heap after every scavenge.
   * Both are read at each check.
   */
  '--incremental-marking-soft-trigger=80',
  '--incremental-marking-hard-trigger=90',
];

export function applyPolicydV8Flags(): void {
  for (const flag of POLICYD_V8_FLAGS) setFlagsFromString(flag);
}
