import { createHook } from 'node:async_hooks';

/** One of process.nextTick's tick objects, held for the life of the process. */
let kept: object | undefined;

/**
 * Holds one tick object for good, so that the shapes of process.nextTick's object literal are
 * never collected. V8 keeps one shape as the feedback of each of the literal's property
 * definitions, and only tick objects hold those shapes: a full collection when no tick is queued
 * (V8's own, a minute into an idle spell, or the Kubernetes store's once listed) frees them, the
 * next tick makes new ones, and V8 marks the definitions megamorphic for the rest of the process.
 * Every tick, several a policy request, then goes through V8's runtime (docs/performance.md).
 *
 * The tick object is only reachable from an async_hooks init hook, enabled for this one tick.
 */
export function keepTickShapes(): void {
  if (kept !== undefined) return;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject') kept ??= resource;
    },
  });
  hook.enable();
  try {
    process.nextTick(keptTick);
  } finally {
    hook.disable();
  }
}

function keptTick(): void {}
