import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LookupBatcher, type LookupBatcherOptions } from '../../../src/policy/lookup-batcher.ts';

/** A fetch the test completes by hand: every call is recorded with its keys and signal. */
function scriptedFetch() {
  const calls: { keys: string[]; signal: AbortSignal; resolve: () => void; reject: (e: Error) => void }[] = [];
  const fetch = (keys: string[], signal: AbortSignal): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      calls.push({ keys: [...keys], signal, resolve, reject });
    });
  return { calls, fetch };
}

function batcher(fetch: LookupBatcherOptions['fetch'], options: Partial<LookupBatcherOptions> = {}) {
  const failures: { error: Error; keys: readonly string[] }[] = [];
  const b = new LookupBatcher({
    concurrency: 2,
    maxKeys: 4,
    timeoutMs: 1_000,
    fetch,
    timeoutError: () => new Error('timed out'),
    onFailure: (error, keys) => failures.push({ error, keys }),
    ...options,
  });
  return { b, failures };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('LookupBatcher', () => {
  test('keys asked for in one turn go out in one round trip; one key asked twice is fetched once', async () => {
    const { calls, fetch } = scriptedFetch();
    const { b } = batcher(fetch);
    const waits = [b.request('a'), b.request('b'), b.request('a')];
    assert.equal(calls.length, 0, 'nothing leaves before the turn ends');
    await turn();
    assert.deepEqual(calls.map((c) => c.keys), [['a', 'b']]);
    calls[0]!.resolve();
    await Promise.all(waits);
  });

  test('a batch holds at most maxKeys keys', async () => {
    const { calls, fetch } = scriptedFetch();
    const { b } = batcher(fetch, { maxKeys: 2, concurrency: 8 });
    const waits = ['a', 'b', 'c', 'd', 'e'].map((k) => b.request(k));
    await turn();
    assert.deepEqual(calls.map((c) => c.keys), [['a', 'b'], ['c', 'd'], ['e']]);
    for (const c of calls) c.resolve();
    await Promise.all(waits);
  });

  test('at most `concurrency` round trips run; keys asked for meanwhile wait and leave together', async () => {
    const { calls, fetch } = scriptedFetch();
    const { b } = batcher(fetch, { concurrency: 1 });
    const first = b.request('a');
    await turn();
    assert.equal(calls.length, 1);
    const later = [b.request('b'), b.request('c')];
    await turn();
    const more = b.request('d');
    await turn();
    assert.equal(calls.length, 1, 'the only slot is busy');
    assert.deepEqual(b.load, { running: 1, queued: 1 });
    calls[0]!.resolve();
    await first;
    await turn();
    assert.deepEqual(calls.map((c) => c.keys), [['a'], ['b', 'c', 'd']]);
    calls[1]!.resolve();
    await Promise.all([...later, more]);
    assert.deepEqual(b.load, { running: 0, queued: 0 });
  });

  test('a failed round trip rejects every key of its batch, is reported once, and the key can be asked again', async () => {
    const { calls, fetch } = scriptedFetch();
    const { b, failures } = batcher(fetch);
    const waits = [b.request('a'), b.request('b')];
    await turn();
    calls[0]!.reject(new Error('connection refused'));
    for (const w of waits) await assert.rejects(w, /connection refused/);
    assert.equal(failures.length, 1);
    assert.deepEqual(failures[0]!.keys, ['a', 'b']);
    const again = b.request('a');
    await turn();
    assert.equal(calls.length, 2, 'a new round trip, not the failed one');
    calls[1]!.resolve();
    await again;
  });

  test('the timeout runs from the first key, also while the batch waits for a slot; the store is told to abort', async () => {
    const { calls, fetch } = scriptedFetch();
    const { b, failures } = batcher(fetch, { concurrency: 1, timeoutMs: 60 });
    const hung = b.request('a');
    await turn();
    const queued = b.request('b');
    const started = Date.now();
    await assert.rejects(hung, /timed out/);
    await assert.rejects(queued, /timed out/);
    assert.ok(Date.now() - started < 500);
    assert.equal(calls[0]!.signal.aborted, true);
    assert.equal(calls.length, 1, 'the queued batch never went out');
    assert.equal(failures.length, 2);
    // The hung round trip lets go of its slot when the store gives up.
    calls[0]!.reject(new Error('aborted'));
    await turn();
    const next = b.request('c');
    await turn();
    assert.deepEqual(calls.at(-1)!.keys, ['c']);
    calls.at(-1)!.resolve();
    await next;
  });

  test('a fetch that throws synchronously fails its batch instead of escaping', async () => {
    const { b } = batcher(() => {
      throw new Error('bad statement');
    });
    await assert.rejects(b.request('a'), /bad statement/);
  });

  test('refuses a concurrency or batch size below 1', () => {
    assert.throws(() => batcher(async () => {}, { concurrency: 0 }), RangeError);
    assert.throws(() => batcher(async () => {}, { maxKeys: 0 }), RangeError);
  });
});
