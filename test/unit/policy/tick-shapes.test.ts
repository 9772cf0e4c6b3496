import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tickLiteralFeedback } from '../../harness/tick-literal-feedback.ts';

const TICK_SHAPES = fileURLToPath(new URL('../../../src/policy/tick-shapes.ts', import.meta.url));

/** The feedback after memory-reducing full collections (as V8's own in an idle spell), with or without keepTickShapes at start. */
function feedbackAfterIdleCollections(keep: boolean): string[] {
  return tickLiteralFeedback(
    `import { keepTickShapes } from ${JSON.stringify(TICK_SHAPES)};\nif (${keep}) keepTickShapes();`,
    "globalThis.gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })",
  );
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
