import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { Controller } from '../../../src/controller/controller.ts';
import { WorkQueue } from '../../../src/controller/work-queue.ts';

async function until(what: string, ok: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
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
    const c = new Controller({
      name: 't1',
      queue,
      concurrency: 3,
      reconcile: async (key) => {
        if (running.has(key)) overlap = true;
        running.add(key);
        maxParallel = Math.max(maxParallel, running.size);
        await sleep(20);
        running.delete(key);
        seen.push(key);
      },
    });
    c.start();
    for (const k of ['a', 'b', 'c', 'a', 'a']) queue.add(k);
    await sleep(5);
    queue.add('a'); // while 'a' is in flight: one more reconcile afterwards
    await until('four reconciles', () => seen.length === 4);
    await c.stop();
    assert.equal(overlap, false);
    assert.equal(maxParallel, 3);
    assert.deepEqual([...seen].sort(), ['a', 'a', 'b', 'c']);
  });

  test('a failure retries with backoff and a success forgets it; metrics count each result', async () => {
    const registry = new Registry();
    const queue = new WorkQueue({ backoff: { baseMs: 10, jitter: 0 } });
    let calls = 0;
    const c = new Controller({
      name: 't2',
      queue,
      registry,
      reconcile: async () => {
        calls++;
        if (calls <= 2) throw new Error('store unavailable');
        if (calls === 3) return { requeueAfterMs: 10 };
        return undefined;
      },
    });
    c.start();
    queue.add('k');
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
    const queue = new WorkQueue();
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const reconciled: string[] = [];
    const c = new Controller({
      name: 't3',
      queue,
      registry,
      resyncMs: 30,
      keys: () => ['x', 'y', 'z'],
      reconcile: async (key) => {
        await gate;
        reconciled.push(key);
      },
    });
    c.start();
    await until('resync queued the keys', () => queue.length >= 2);
    const depth = await metric(registry, 'mailwarden_controller_queue_depth');
    assert.deepEqual(depth, [{ labels: { controller: 't3' }, value: queue.length }]);
    release();
    await until('all reconciled', () => ['x', 'y', 'z'].every((k) => reconciled.includes(k)));
    await c.stop();
  });

  test('the periodic resync skips keys reconciled within the last half period; an explicit resync queues all', async () => {
    const queue = new WorkQueue();
    const counts = new Map<string, number>();
    let now = 0;
    const fired: Array<() => void> = [];
    const timers = { now: () => now, setTimeout: (fn: () => void) => (fired.push(fn), fired.length), clearTimeout: () => {} };
    const c = new Controller({
      name: 't3b',
      queue,
      timers,
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
    now = 600; // 'old' was checked 600 ms ago: older than half the period
    queue.add('fresh');
    await until('fresh reconciled', () => counts.get('fresh') === 1);
    const before = new Map(counts);
    fired.shift()!(); // the periodic resync
    await until('resync ran', () => counts.get('old') === 2 && (counts.get('failing') ?? 0) >= 1);
    assert.equal(counts.get('fresh'), before.get('fresh'), 'fresh was reconciled 0 ms ago and is skipped');
    await c.resync(); // explicit: every key
    await until('explicit resync ran', () => counts.get('fresh') === 2 && counts.get('old') === 3);
    await c.stop();
  });

  test('stop lets a reconcile in flight finish, and gives up after the deadline', async () => {
    const queue = new WorkQueue();
    let finished = false;
    const c = new Controller({
      name: 't4',
      queue,
      reconcile: async () => {
        await sleep(50);
        finished = true;
      },
    });
    c.start();
    queue.add('a');
    await sleep(5);
    await c.stop();
    assert.equal(finished, true);

    const stuck = new WorkQueue();
    const d = new Controller({ name: 't5', queue: stuck, stopTimeoutMs: 50, reconcile: () => new Promise(() => {}) });
    d.start();
    stuck.add('a');
    await sleep(5);
    const t0 = Date.now();
    await d.stop();
    assert.ok(Date.now() - t0 < 1000, 'stop returned at the deadline');
  });
});
