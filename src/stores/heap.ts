import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/**
 * Collects the whole heap now, compacting it, shrinking the young generation and returning the
 * freed pages to the system: for a store that has just taken in a large transient allocation (a
 * list of every object) and will hold what it kept, so that the garbage does not stay resident
 * until V8 next marks the old generation. Synchronous: a pause of the order of the live heap's
 * marking, once.
 */
export function releaseGarbage(): void {
  // V8's gc() is installed in contexts created once --expose-gc is set; this one was created
  // before. The "last-resort" flavour is V8's collection for a low-memory notification.
  const collect = (globalThis as { gc?: Collect }).gc ?? exposeGc();
  collect({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}

function exposeGc(): Collect {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as Collect;
}
