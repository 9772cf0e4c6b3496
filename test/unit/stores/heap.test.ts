import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tickLiteralFeedback } from '../../harness/tick-literal-feedback.ts';

const HEAP = fileURLToPath(new URL('../../../src/stores/heap.ts', import.meta.url));

/**
 * Runs releaseGarbage in a fresh Node.js (with `flags`) after 64 MB that were held, as a list's
 * pages are, became garbage; returns what it saw.
 */
function releaseIn(flags: string[]): { returned: boolean; freedMb: number; youngMb: number; contextsBefore: number; contextsAfter: number; gcGlobal: string } {
  const script = `
    import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
    import { releaseGarbage } from ${JSON.stringify(HEAP)};
    const MB = 1024 * 1024;
    let held = Array.from({ length: 64 }, () => new Array(MB / 8).fill(1.5));
    const before = getHeapStatistics();
    held = undefined;
    const returned = releaseGarbage();
    const after = getHeapStatistics();
    const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').physical_space_size;
    process.stdout.write(JSON.stringify({ returned, freedMb: (before.total_heap_size - after.total_heap_size) / MB, youngMb: young / MB,
      contextsBefore: before.number_of_native_contexts, contextsAfter: after.number_of_native_contexts + after.number_of_detached_contexts, gcGlobal: typeof globalThis.gc, held }));`;
  return JSON.parse(execFileSync(process.execPath, [...flags, '--input-type=module', '--eval', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } }));
}

describe('releaseGarbage', () => {
  test('in a Node.js started with --expose-gc (the daemon container): collects what nothing holds any more and gives its memory back, young generation included', () => {
    const seen = releaseIn(['--expose-gc']);
    assert.equal(seen.returned, true);
    assert.ok(seen.freedMb > 56, `freed ${seen.freedMb.toFixed(0)} MB`);
    assert.ok(seen.youngMb <= 1, `young generation ${seen.youngMb.toFixed(1)} MB resident`);
    assert.equal(seen.contextsAfter, seen.contextsBefore, 'no second V8 context');
  });

  test('without --expose-gc: collects nothing and says so, and creates no second V8 context (which slows every later request)', () => {
    const seen = releaseIn([]);
    assert.equal(seen.returned, false);
    assert.equal(seen.contextsAfter, seen.contextsBefore, 'no second V8 context');
    assert.equal(seen.gcGlobal, 'undefined');
  });

  test("keeps process.nextTick's object literal fast: its shapes outlive the collection, so V8's feedback for it stays monomorphic", () => {
    // With no tick object alive, a full collection frees the literal's intermediate shapes; the
    // next tick finds new ones and V8 marks the definitions megamorphic for good: every tick of
    // every later request then goes through V8's runtime (docs/performance.md).
    assert.deepEqual(tickLiteralFeedback(`import { releaseGarbage } from ${JSON.stringify(HEAP)};`, 'releaseGarbage()'), Array(5).fill('MONOMORPHIC'));
  });
});
