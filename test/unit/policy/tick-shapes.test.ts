import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const TICK_SHAPES = fileURLToPath(new URL('../../../src/policy/tick-shapes.ts', import.meta.url));

/**
 * V8's feedback for process.nextTick's object literal (its five property definitions) after ten
 * rounds of many ticks, all run, each followed by a memory-reducing full collection (as V8's
 * own in an idle spell), in a fresh Node.js with or without keepTickShapes at start. Ten
 * rounds, some resumed by a timer: whether a tick object happens to be alive at one collection
 * depends on where the code runs from.
 */
function feedbackAfterIdleCollections(keep: boolean): string[] {
  const script = `
    import { keepTickShapes } from ${JSON.stringify(TICK_SHAPES)};
    if (${keep}) keepTickShapes();
    const feedback = new Function('f', 'return %GetFeedback(f)');
    const literal = () => feedback(process.nextTick).filter((slot) => slot?.[0] === 'DefineKeyedOwnPropertyInLiteral').map((slot) => slot[1]);
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    for (let round = 0; round < 10; round++) {
      for (let t = 0; t < 5; t++) {
        for (let i = 0; i < 1000; i++) process.nextTick(() => {});
        await turn();
      }
      if (round % 2) await new Promise((resolve) => setTimeout(resolve, 1));
      globalThis.gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    }
    for (let i = 0; i < 100; i++) process.nextTick(() => {});
    await turn();
    process.stdout.write(JSON.stringify(literal()));`;
  return JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--allow-natives-syntax', '--input-type=module', '--eval', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } }));
}

const MONOMORPHIC = Array(5).fill('MONOMORPHIC');

describe('keepTickShapes', () => {
  test("memory-reducing collections with no tick queued leave process.nextTick's object literal fast: V8's feedback for it stays monomorphic", () => {
    assert.deepEqual(feedbackAfterIdleCollections(true), MONOMORPHIC);
  });

  test('without it, the same collections make four of the five definitions megamorphic for good (what it guards against)', () => {
    assert.deepEqual(feedbackAfterIdleCollections(false), ['MONOMORPHIC', ...Array(4).fill('MEGAMORPHIC')]);
  });
});
