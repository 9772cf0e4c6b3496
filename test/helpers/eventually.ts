import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `check` until it gives something other than undefined or false, and returns that; fails
 * after `timeoutMs` with what was awaited (and the last error `check` threw). The one way tests wait
 * for a state another process or server reaches on its own: nothing waits longer than the state
 * takes to appear, and a test never sleeps a fixed time hoping it has.
 */
export async function eventually<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(50);
  }
}
