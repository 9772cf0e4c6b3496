import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { releaseGarbage } from '../../../src/stores/heap.ts';

const MB = 1024 * 1024;
const space = (name: string) => getHeapSpaceStatistics().find((s) => s.space_name === name)!;

test('releaseGarbage collects what nothing holds any more and gives its memory back, young generation included', () => {
  // 64 MB that were held (as a list's pages are) and are now garbage: V8 leaves them until it marks.
  let held: number[][] | undefined = Array.from({ length: 64 }, () => new Array<number>(MB / 8).fill(1.5));
  const before = getHeapStatistics().total_heap_size;
  held = undefined;
  assert.equal(held, undefined);
  releaseGarbage();
  const after = getHeapStatistics().total_heap_size;
  assert.ok(before - after > 56 * MB, `heap ${(before / MB).toFixed(0)} MB -> ${(after / MB).toFixed(0)} MB`);
  assert.ok(space('new_space').physical_space_size <= 1 * MB, `young generation ${(space('new_space').physical_space_size / MB).toFixed(1)} MB resident`);
});
