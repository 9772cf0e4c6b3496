type Collect = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/**
 * Collects the whole heap now, compacting it, shrinking the young generation and returning the
 * freed pages to the system: for a store that has just taken in a large transient allocation (a
 * list of every object) and will hold what it kept, so that the garbage does not stay resident
 * until V8 next marks the old generation. Synchronous: a pause of the order of the live heap's
 * marking, once. Returns false, collecting nothing, when Node was started without --expose-gc
 * (the daemon's container is started with it: daemonCommand).
 *
 * Not V8's gc() from a new vm context, which --expose-gc set at run time would give: a second
 * context in the isolate, even one created and dropped at once, leaves the daemon's request path
 * slower for the rest of its life (process.nextTick's object literal falls to V8's runtime); the
 * figures are in docs/performance.md. Nor v8.queryObjects(), which collects as thoroughly but
 * then walks the heap, and leaves more of it resident.
 */
export function releaseGarbage(): boolean {
  const collect = (globalThis as { gc?: Collect }).gc;
  if (typeof collect !== 'function') return false;
  // A tick object alive through the collection keeps the shapes of process.nextTick's object
  // literal. Collected (no tick pending, as when a list has just been taken in), the next tick
  // builds new ones, and V8 marks the literal's property definitions megamorphic for good: every
  // later tick, several per policy request, then goes through V8's runtime. (The policy daemon
  // also holds one tick object for good: src/policy/tick-shapes.ts.)
  process.nextTick(aliveThroughCollection);
  // The "last-resort" flavour is V8's collection for a low-memory notification.
  collect({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  return true;
}

function aliveThroughCollection(): void {}
