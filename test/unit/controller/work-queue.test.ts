import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkQueue } from '../../../src/controller/work-queue.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';

/** The value of a promise if it has settled by the next macrotask, else 'pending'. */
async function peek<T>(p: Promise<T>): Promise<T | 'pending'> {
  return Promise.race([p, new Promise<'pending'>((r) => setImmediate(() => r('pending')))]);
}

describe('WorkQueue', () => {
  test('a key added many times while waiting is handed out once', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    q.add('a');
    assert.equal(q.length, 2);
    assert.equal(await q.get(), 'a');
    assert.equal(await q.get(), 'b');
    assert.equal(await peek(q.get()), 'pending');
  });

  test('low-priority keys are handed out after every normal key, in their own order', async () => {
    const q = new WorkQueue();
    q.addLowPriority('resync-1');
    q.addLowPriority('resync-2');
    q.add('change-1');
    q.addLowPriority('resync-3');
    q.add('change-2');
    assert.equal(q.length, 5);
    const order: (string | undefined)[] = [];
    for (let i = 0; i < 5; i++) order.push(await q.get());
    assert.deepEqual(order, ['change-1', 'change-2', 'resync-1', 'resync-2', 'resync-3']);
    assert.equal(q.length, 0);
  });

  test('a normal add promotes a key waiting at low priority, which is then handed out once', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.addLowPriority('b');
    q.addLowPriority('c');
    q.add('c'); // a user's change to a key the resync queued: it must not wait behind the resync
    q.addLowPriority('a'); // already waiting at normal priority: keeps its place
    assert.equal(q.length, 3);
    const order: (string | undefined)[] = [];
    for (let i = 0; i < 3; i++) order.push(await q.get());
    assert.deepEqual(order, ['a', 'c', 'b']);
    assert.equal(await peek(q.get()), 'pending');
  });

  test('a low-priority add of a key being processed queues it again at done, and a waiting get() takes it at once', async () => {
    const q = new WorkQueue();
    q.add('k');
    assert.equal(await q.get(), 'k');
    q.addLowPriority('k');
    assert.equal(q.length, 0);
    const waiting = q.get();
    assert.equal(await peek(waiting), 'pending');
    q.done('k');
    assert.equal(await waiting, 'k');
    q.done('k');
    const next = q.get();
    q.addLowPriority('later');
    assert.equal(await next, 'later');
  });

  test('a key added while being processed is handed out again only after done', async () => {
    const q = new WorkQueue();
    q.add('a');
    const key = await q.get();
    assert.equal(key, 'a');
    q.add('a');
    q.add('a');
    assert.equal(q.length, 0, 'not queued while processing');
    const second = q.get();
    assert.equal(await peek(second), 'pending', 'no second worker gets the same key');
    q.done('a');
    assert.equal(await second, 'a');
    q.done('a');
    assert.equal(q.length, 0, 'added twice during processing, processed once more');
  });

  test('a waiting get() receives the next add in FIFO order of getters', async () => {
    const q = new WorkQueue();
    const g1 = q.get();
    const g2 = q.get();
    q.add('x');
    q.add('y');
    assert.equal(await g1, 'x');
    assert.equal(await g2, 'y');
  });

  test('addAfter adds once the delay has passed, keeping the earliest of several delays', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.addAfter('a', 1000);
    q.addAfter('a', 5000);
    q.addAfter('a', 500);
    assert.equal(clock.pending, 1);
    clock.advance(499);
    assert.equal(q.length, 0);
    clock.advance(1);
    assert.equal(q.length, 1);
    clock.advance(10_000);
    assert.equal(q.length, 1, 'the superseded delays never fire');
    q.addAfter('b', 0);
    assert.equal(q.length, 2, 'no delay adds at once');
  });

  test('rate-limited backoff doubles from the base up to the cap, within the jitter bounds', () => {
    const table: Array<{ random: number; expected: number[] }> = [
      { random: 0, expected: [200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 51_200, 102_400, 204_800, 300_000, 300_000] },
      { random: 0.999999, expected: [160, 320, 640, 1280, 2560, 5120, 10_240, 20_480, 40_960, 81_920, 163_840, 240_000, 240_000] },
    ];
    for (const { random, expected } of table) {
      const q = new WorkQueue({ random: () => random });
      assert.deepEqual(expected.map(() => q.nextBackoff('k')), expected);
    }
    const q = new WorkQueue({ backoff: { baseMs: 10, capMs: 1000, jitter: 0.5 } });
    for (let i = 0; i < 20; i++) {
      const ceiling = Math.min(1000, 10 * 2 ** i);
      const d = q.nextBackoff('k');
      assert.ok(d <= ceiling && d >= ceiling * 0.5, `attempt ${i}: ${d} within [${ceiling / 2}, ${ceiling}]`);
    }
  });

  test('addRateLimited counts requeues per key and forget resets them', () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock, random: () => 0 });
    q.addRateLimited('a');
    q.addRateLimited('b');
    assert.equal(q.numRequeues('a'), 1);
    clock.advance(200);
    assert.equal(q.length, 2);
    q.addRateLimited('a');
    assert.equal(q.numRequeues('a'), 2);
    q.forget('a');
    assert.equal(q.numRequeues('a'), 0);
    assert.equal(q.numRequeues('b'), 1);
    assert.equal(q.nextBackoff('a'), 200, 'backoff starts over after forget');
  });

  test('shutDown resolves waiting and later gets with undefined and ignores adds', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    const waiting = q.get();
    q.addAfter('late', 100);
    q.shutDown();
    assert.equal(await waiting, undefined);
    assert.equal(clock.pending, 0, 'pending delays are cancelled');
    q.add('x');
    assert.equal(q.length, 0);
    assert.equal(await q.get(), undefined);
  });

  test('shutDownWithDrain waits for the keys in flight', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    assert.equal(await q.get(), 'a');
    let drained = false;
    const drain = q.shutDownWithDrain().then(() => { drained = true; });
    assert.equal(await q.get(), undefined, 'queued keys are dropped');
    await peek(drain);
    assert.equal(drained, false);
    q.done('a');
    await drain;
    assert.equal(drained, true);
    await q.shutDownWithDrain(); // nothing in flight: resolves at once
  });
});
