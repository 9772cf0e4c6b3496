import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { Controller } from '../../../src/controller/controller.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';
import { WorkQueue } from '../../../src/controller/work-queue.ts';

/** Lets the workers run: yields to the event loop (no clock involved) until `ok` or gives up. */
async function until(what: string, ok: () => boolean, turns = 1000): Promise<void> {
  for (let i = 0; !ok(); i++) {
    if (i >= turns) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** A promise and the function that settles it: a reconcile held in flight until the test says. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}


async function metric(registry: Registry, name: string): Promise<Array<{ labels: Record<string, string | number>; value: number }>> {
  const m = registry.getSingleMetric(name);
  assert.ok(m, name);
  return (await m.get()).values.map((v) => ({ labels: v.labels as Record<string, string | number>, value: v.value }));
}

describe('Controller', () => {
  test('reconciles each key, never the same key twice at once, across workers', async () => {
    const queue = new WorkQueue();
    const running = new Set<string>();
    let overlap = false;
    let maxParallel = 0;
    const seen: string[] = [];
    const held = gate();
    const c = new Controller({
      name: 't1',
      queue,
      concurrency: 3,
      reconcile: async (key) => {
        if (running.has(key)) overlap = true;
        running.add(key);
        maxParallel = Math.max(maxParallel, running.size);
        await held.wait;
        running.delete(key);
        seen.push(key);
      },
    });
    c.start();
    for (const k of ['a', 'b', 'c', 'a', 'a']) queue.add(k);
    await until('three reconciles in flight', () => running.size === 3);
    queue.add('a'); // while 'a' is in flight: one more reconcile afterwards
    held.open();
    await until('four reconciles', () => seen.length === 4);
    await c.stop();
    assert.equal(overlap, false);
    assert.equal(maxParallel, 3);
    assert.deepEqual([...seen].sort(), ['a', 'a', 'b', 'c']);
  });

  test('a failure retries with backoff and a success forgets it; metrics count each result', async () => {
    const registry = new Registry();
    const clock = new FakeClock();
    const queue = new WorkQueue({ backoff: { baseMs: 10, jitter: 0 }, clock });
    let calls = 0;
    const c = new Controller({
      name: 't2',
      queue,
      registry,
      clock,
      reconcile: async () => {
        calls++;
        if (calls <= 2) throw new Error('store unavailable');
        if (calls === 3) return { requeueAfterMs: 10 };
        return undefined;
      },
    });
    c.start();
    queue.add('k');
    await until('the first call', () => calls === 1);
    clock.advance(10); // first backoff
    await until('the retry', () => calls === 2);
    clock.advance(20); // doubled
    await until('the second retry', () => calls === 3);
    clock.advance(10); // the requeue asked for
    await until('four calls', () => calls === 4);
    await until('settled', () => queue.processing.size === 0);
    assert.equal(queue.numRequeues('k'), 0, 'forgotten after success');
    await c.stop();
    const results = Object.fromEntries((await metric(registry, 'mailwarden_controller_reconciles_total')).map((v) => [v.labels.result, v.value]));
    assert.deepEqual(results, { error: 2, requeue: 1, success: 1 });
    const retries = await metric(registry, 'mailwarden_controller_retries_total');
    assert.deepEqual(retries, [{ labels: { controller: 't2' }, value: 2 }]);
    const hist = await metric(registry, 'mailwarden_controller_reconcile_duration_seconds');
    assert.ok(hist.some((v) => v.labels.controller === 't2'));
  });

  test('resync queues every key; queue depth is exported per controller', async () => {
    const registry = new Registry();
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock });
    const held = gate();
    const reconciled: string[] = [];
    const c = new Controller({
      name: 't3',
      queue,
      registry,
      clock,
      resyncMs: 30,
      keys: () => ['x', 'y', 'z'],
      reconcile: async (key) => {
        await held.wait;
        reconciled.push(key);
      },
    });
    c.start();
    clock.advance(30);
    await until('resync queued the keys', () => queue.length >= 2);
    const depth = await metric(registry, 'mailwarden_controller_queue_depth');
    assert.deepEqual(depth, [{ labels: { controller: 't3' }, value: queue.length }]);
    held.open();
    await until('all reconciled', () => ['x', 'y', 'z'].every((k) => reconciled.includes(k)));
    await c.stop();
  });

  test('the periodic resync skips keys reconciled within the last half period; an explicit resync queues all', async () => {
    const queue = new WorkQueue();
    const counts = new Map<string, number>();
    const clock = new FakeClock();
    const c = new Controller({
      name: 't3b',
      queue,
      clock,
      resyncMs: 1000,
      keys: () => ['old', 'fresh', 'failing'],
      reconcile: async (key) => {
        counts.set(key, (counts.get(key) ?? 0) + 1);
        if (key === 'failing') throw new Error('store down');
      },
    });
    c.start();
    queue.add('old');
    await until('old reconciled', () => counts.get('old') === 1);
    clock.advance(600); // 'old' was checked 600 ms ago: older than half the period
    queue.add('fresh');
    await until('fresh reconciled', () => counts.get('fresh') === 1);
    const before = new Map(counts);
    clock.advance(400); // the periodic resync, a period after start
    await until('resync ran', () => counts.get('old') === 2 && (counts.get('failing') ?? 0) >= 1);
    assert.equal(counts.get('fresh'), before.get('fresh'), 'fresh was reconciled 400 ms ago, within half the period, and is skipped');
    await c.resync(); // explicit: every key
    await until('explicit resync ran', () => counts.get('fresh') === 2 && counts.get('old') === 3);
    await c.stop();
  });

  test('stop lets a reconcile in flight finish, and gives up after the deadline', async () => {
    const queue = new WorkQueue();
    let finished = false;
    let started = false;
    const held = gate();
    const c = new Controller({
      name: 't4',
      queue,
      reconcile: async () => {
        started = true;
        await held.wait;
        finished = true;
      },
    });
    c.start();
    queue.add('a');
    await until('the reconcile in flight', () => started);
    const stopping = c.stop();
    held.open();
    await stopping;
    assert.equal(finished, true);

    const clock = new FakeClock();
    const stuck = new WorkQueue({ clock });
    let stuckStarted = false;
    const d = new Controller({ name: 't5', queue: stuck, clock, stopTimeoutMs: 50, reconcile: () => ((stuckStarted = true), new Promise(() => {})) });
    d.start();
    stuck.add('a');
    await until('the stuck reconcile in flight', () => stuckStarted);
    let stopped = false;
    const stoppingStuck = d.stop().then(() => (stopped = true));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r)); // let stop() run as far as it can
    assert.equal(stopped, false, 'stop waits for the reconcile in flight');
    clock.advance(50);
    await stoppingStuck;
    assert.equal(stopped, true, 'stop returned at the deadline');
  });
});
