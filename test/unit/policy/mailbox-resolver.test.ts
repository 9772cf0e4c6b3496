import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { getHeapStatistics } from 'node:v8';
import { DecisionService } from '../../../src/policy/decision-handler.ts';
import { cachedBytes, DEFAULT_RESOLVER_OPTIONS, MailboxResolver } from '../../../src/policy/mailbox-resolver.ts';
import { emptyPolicyRequest } from '../../../src/policy/request.ts';
import type { MailboxRecord } from '../../../src/restrictions/lists.ts';
import { LIST_NUMBER } from '../../../src/restrictions/mailbox.ts';
import { resolveOptions } from '../../../src/restrictions/options.ts';
import { PolicyMetrics } from '../../../src/observability/metrics.ts';
import { StoreError, type MailboxStore } from '../../../src/stores/store.ts';

/** An in-memory store whose answers, delays and failures the test controls. */
class ScriptedStore implements MailboxStore {
  readonly kind = 'scripted';
  readonly data = new Map<string, MailboxRecord>();
  calls: string[][] = [];
  mode: 'ok' | 'fail' | 'hang' = 'ok';
  delayMs = 0;
  aborted = 0;
  async lookup(keys: readonly string[], signal: AbortSignal): Promise<ReadonlyMap<string, MailboxRecord>> {
    this.calls.push([...keys]);
    if (this.mode === 'fail') throw new StoreError('Unavailable', 'connection refused');
    if (this.mode === 'hang') {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => { this.aborted++; resolve(); }));
      throw new StoreError('Unavailable', 'aborted');
    }
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const out = new Map<string, MailboxRecord>();
    for (const key of keys) {
      const record = this.data.get(key);
      if (record) out.set(key, record);
    }
    return out;
  }
  async close() {}
}

function record(address: string, rejectedRecipients: string[]): MailboxRecord {
  return { address, lists: { allowedSenders: null, rejectedSenders: null, allowedRecipients: null, rejectedRecipients } };
}

const options = resolveOptions('default');

async function counterValue(metrics: PolicyMetrics, name: string, labels: Record<string, string>): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  assert.ok(metric, `metric ${name} exists`);
  const values = (await metric.get()).values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return values.reduce((sum, v) => sum + v.value, 0);
}
const request = (sender: string, recipient: string) => ({ ...emptyPolicyRequest(), protocolState: 'RCPT', sender, recipient, saslUsername: '' });

function setup(resolverOptions: ConstructorParameters<typeof MailboxResolver>[0]['options'] = {}) {
  const store = new ScriptedStore();
  store.data.set('alice@example.com', record('alice@example.com', ['@.']));
  const metrics = new PolicyMetrics({ store: 'scripted', defaultMetrics: false });
  const resolver = new MailboxResolver({ store, decision: options, options: resolverOptions, metrics });
  const service = new DecisionService({ resolver, options, metrics });
  return { store, resolver, service, metrics };
}

describe('mailbox resolver', () => {
  test('one batched lookup per request, then answers from the cache synchronously', async () => {
    const { store, service } = setup();
    const first = service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.ok(first instanceof Promise);
    assert.equal((await first).action, 'REJECT Not authorized');
    assert.deepEqual(store.calls, [['alice@example.com', 'x@gmail.com']]);
    const second = service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.ok(!(second instanceof Promise), 'a cached request is decided synchronously');
    assert.equal(second.action, 'REJECT Not authorized');
    assert.equal(store.calls.length, 1, 'negative entries are cached too');
  });

  test('entries expire after the TTL', async () => {
    const { store, service } = setup({ ttlMs: 30, negativeTtlMs: 30 });
    await service.decide(request('alice@example.com', 'x@gmail.com'));
    await new Promise((r) => setTimeout(r, 50));
    store.data.set('alice@example.com', record('alice@example.com', ['@yahoo.test']));
    assert.equal((await service.decide(request('alice@example.com', 'x@gmail.com'))).verdict, 'none');
    assert.equal(store.calls.length, 2);
  });

  test('mailboxes fetched together expire spread over the last tenth of the TTL, not all at once', async () => {
    const { store, resolver } = setup({ ttlMs: 400, negativeTtlMs: 400 });
    const keys = Array.from({ length: 200 }, (_, i) => `u${i}@example.com`);
    await Promise.all(keys.map((key) => resolver.resolve([key])));
    assert.equal(store.calls.flat().length, 200, 'each fetched once, in shared round trips');
    await new Promise((r) => setTimeout(r, 380)); // 95% of the TTL: about half are due
    let expired = 0;
    for (const key of keys) if (resolver.resolve([key]) instanceof Promise) expired++;
    assert.ok(expired > 20 && expired < 180, `${expired} of 200 expired at 95% of the TTL`);
  });

  test('a mailbox used late in its TTL is refetched in the background: no request waits for it', async () => {
    // TTLs of 1.8-2 s (spread): due for a refresh from 1.6 s at the latest, fresh until 1.8 s at least.
    const { store, service, metrics } = setup({ ttlMs: 2000, negativeTtlMs: 2000 });
    await service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.equal(store.calls.length, 1);
    const early = service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.ok(!(early instanceof Promise));
    assert.equal(store.calls.length, 1, 'early in the TTL: no refetch');
    await new Promise((r) => setTimeout(r, 1650));
    store.data.set('alice@example.com', record('alice@example.com', ['@yahoo.test']));
    store.delayMs = 30;
    const late = service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.ok(!(late instanceof Promise), 'answered from the cache at once');
    assert.equal(late.verdict, 'reject', 'with the lists it holds until the refetch lands');
    const again = service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.ok(!(again instanceof Promise));
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(store.calls.slice(1), [['alice@example.com', 'x@gmail.com']], 'both keys, once, in one round trip');
    assert.equal(await counterValue(metrics, 'mailwarden_cache_lookups_total', { result: 'refresh' }), 2);
    const refreshed = service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.ok(!(refreshed instanceof Promise), 'the refetched entries are fresh');
    assert.equal(refreshed.verdict, 'none', 'and hold the new lists');
    assert.equal(store.calls.length, 2);
  });

  test('a mailbox in steady use with unchanged lists is refreshed in the background TTL after TTL', async () => {
    // TTLs of 1.8-2 s: due for a refresh from 1.6 s at the latest, fresh until 1.8 s at least.
    const { store, resolver, service, metrics } = setup({ ttlMs: 2000, negativeTtlMs: 2000 });
    await service.decide(request('alice@example.com', 'x@gmail.com'));
    const compiled = resolver.lookup('alice@example.com');
    for (let round = 1; round <= 2; round++) {
      await new Promise((r) => setTimeout(r, 1700));
      const late = service.decide(request('alice@example.com', 'x@gmail.com'));
      assert.ok(!(late instanceof Promise), `round ${round}: answered from the cache at once`);
      assert.equal(late.verdict, 'reject');
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(store.calls.length, 1 + round, `round ${round}: one background refetch`);
    }
    assert.equal(await counterValue(metrics, 'mailwarden_cache_lookups_total', { result: 'refresh' }), 4, 'both keys, each round');
    assert.equal(resolver.lookup('alice@example.com'), compiled, 'the same lists keep their compiled form');
  });

  test('a failed background refetch leaves the entry answering until it is due', async () => {
    const { store, service, metrics } = setup({ ttlMs: 2000, negativeTtlMs: 2000 });
    await service.decide(request('alice@example.com', 'x@gmail.com'));
    await new Promise((r) => setTimeout(r, 1650));
    store.mode = 'fail';
    const late = service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.ok(!(late instanceof Promise));
    assert.equal(late.verdict, 'reject');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(store.calls.length, 2, 'one refetch, which failed');
    assert.equal(await counterValue(metrics, 'mailwarden_store_errors_total', { kind: 'Unavailable' }), 1);
    const after = service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.ok(!(after instanceof Promise), 'still answered from the cache');
    assert.equal(after.verdict, 'reject');
    assert.equal(store.calls.length, 2, 'and not asked again before it is due');
  });

  test('a refetch that brings the same lists reuses their compiled form; changed lists are compiled anew', async () => {
    const { store, resolver } = setup({ ttlMs: 0, negativeTtlMs: 0 });
    await resolver.resolve(['alice@example.com']);
    const first = resolver.lookup('alice@example.com');
    assert.ok(first);
    // An equal record, but a new object, as every store round trip returns.
    store.data.set('alice@example.com', record('alice@example.com', ['@.']));
    await resolver.resolve(['alice@example.com']);
    assert.equal(resolver.lookup('alice@example.com'), first);
    store.data.set('alice@example.com', record('alice@example.com', ['@yahoo.test']));
    await resolver.resolve(['alice@example.com']);
    const changed = resolver.lookup('alice@example.com');
    assert.notEqual(changed, first);
    const rejectedRecipients = LIST_NUMBER.rejectedRecipients;
    const match = (address: string, domain: string) => changed?.entryFor(rejectedRecipients, address, changed.bits(address), domain, changed.bits(domain), false);
    assert.equal(match('x@yahoo.test', 'yahoo.test'), '@yahoo.test');
    assert.equal(match('x@gmail.com', 'gmail.com'), undefined);
    assert.equal(store.calls.length, 3);
  });

  test('an in-memory store: mailboxes are compiled once, and again after the store changes', () => {
    const records = new Map([['alice@example.com', record('alice@example.com', ['@yahoo.test'])]]);
    let notify = (): void => {};
    const store: MailboxStore = {
      kind: 'memory',
      lookup: async () => new Map(),
      peek: (key) => records.get(key),
      onChange: (listener) => (notify = listener),
      close: async () => {},
    };
    const resolver = new MailboxResolver({ store, decision: options });
    const first = resolver.lookup('alice@example.com');
    assert.equal(resolver.lookup('alice@example.com'), first, 'compiled once');
    records.set('alice@example.com', record('alice@example.com', ['@gmail.test']));
    assert.equal(resolver.lookup('alice@example.com'), first, 'until the store says it changed');
    notify();
    const changed = resolver.lookup('alice@example.com');
    assert.notEqual(changed, first);
    const rejectedRecipients = LIST_NUMBER.rejectedRecipients;
    assert.equal(changed?.entryFor(rejectedRecipients, 'x@gmail.test', changed.bits('x@gmail.test'), 'gmail.test', changed.bits('gmail.test'), false), '@gmail.test');
  });

  test('an in-memory store: a key it does not have is asked for once, until the store changes', () => {
    const records = new Map<string, MailboxRecord>();
    const asked: string[] = [];
    let notify = (): void => {};
    const store: MailboxStore = {
      kind: 'memory',
      lookup: async () => new Map(),
      peek: (key) => (asked.push(key), records.get(key)),
      onChange: (listener) => (notify = listener),
      close: async () => {},
    };
    const resolver = new MailboxResolver({ store, decision: options });
    assert.equal(resolver.lookup('bob@example.com'), undefined);
    assert.equal(resolver.lookup('bob@example.com'), undefined);
    assert.deepEqual(asked, ['bob@example.com'], 'remembered as absent');
    records.set('bob@example.com', record('bob@example.com', ['@.']));
    notify();
    assert.equal(resolver.lookup('bob@example.com')?.address, 'bob@example.com', 'found once the store reloaded');
  });

  test('an in-memory store: absent keys are remembered up to a bound, then forgotten', () => {
    const asked: string[] = [];
    const store: MailboxStore = { kind: 'memory', lookup: async () => new Map(), peek: (key) => (asked.push(key), undefined), close: async () => {} };
    const resolver = new MailboxResolver({ store, decision: options });
    resolver.lookup('first@outside.test');
    for (let i = 0; i < 100_000; i++) resolver.lookup(`x${i}@outside.test`);
    resolver.lookup('first@outside.test');
    assert.equal(asked.filter((k) => k === 'first@outside.test').length, 2, 'forgotten past 100,000 absent keys');
  });

  test('the cache is bounded', async () => {
    const { resolver } = setup({ maxEntries: 10 });
    for (let i = 0; i < 50; i++) await resolver.resolve([`u${i}@example.com`]);
    assert.ok(resolver.size <= 10, `cache holds ${resolver.size}`);
  });

  test('a full cache drops the least recently fetched mailbox first', async () => {
    const { store, resolver } = setup({ maxEntries: 3, ttlMs: 0, negativeTtlMs: 0 });
    for (const name of ['a', 'b', 'c', 'd']) store.data.set(`${name}@example.com`, record(`${name}@example.com`, ['@.']));
    for (const name of ['a', 'b', 'c', 'a', 'd']) await resolver.resolve([`${name}@example.com`]);
    assert.equal(resolver.size, 3);
    assert.equal(resolver.lookup('b@example.com'), undefined, 'b: fetched longest ago');
    for (const name of ['a', 'c', 'd']) assert.ok(resolver.lookup(`${name}@example.com`), `${name} is kept`);
  });

  test('the cache is bounded in bytes too, whatever the lists hold', async () => {
    const { store, resolver } = setup({ maxBytes: 64 * 1024 });
    const long = Array.from({ length: 40 }, (_, i) => `someone${i}@partner${i}.example`);
    for (let i = 0; i < 50; i++) store.data.set(`u${i}@example.com`, record(`u${i}@example.com`, long));
    for (let i = 0; i < 50; i++) await resolver.resolve([`u${i}@example.com`]);
    const each = cachedBytes('u0@example.com', store.data.get('u0@example.com'));
    assert.ok(each > 4_000, `a mailbox of 40 entries is estimated at ${each} B`);
    assert.ok(resolver.bytes <= 64 * 1024, `cache holds ${resolver.bytes} B`);
    assert.equal(resolver.size, Math.floor((64 * 1024) / each), 'as many as fit, no more');
  });

  test('by default the cache may take 40% of the heap limit', () => {
    assert.equal(DEFAULT_RESOLVER_OPTIONS.maxBytes, Math.floor(getHeapStatistics().heap_size_limit * 0.4));
  });

  test('a mailbox larger than the whole bound is not cached, yet decided by its lists every time', async () => {
    const { store, service, resolver } = setup({ maxBytes: 2_000 });
    const long = Array.from({ length: 40 }, (_, i) => `someone${i}@partner${i}.example`);
    store.data.set('big@example.com', record('big@example.com', [...long, '@gmail.com']));
    for (let i = 0; i < 2; i++) {
      const decision = await service.decide(request('big@example.com', 'x@gmail.com'));
      assert.equal(decision.action, 'REJECT Not authorized');
      assert.equal(decision.entry, '@gmail.com');
    }
    assert.equal(store.calls.filter((keys) => keys.includes('big@example.com')).length, 2, 'fetched for each request');
    assert.ok(resolver.bytes <= 2_000);
  });

  test('a mailbox evicted while its request waited for the store is still decided by its lists', async () => {
    // Room for one entry: the recipient's (a miss) evicts the sender's before the decision reads it.
    const { store, service } = setup({ maxEntries: 1 });
    const decision = await service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.equal(decision.action, 'REJECT Not authorized');
    assert.equal(decision.mailbox, 'alice@example.com');
    assert.deepEqual(store.calls, [['alice@example.com', 'x@gmail.com']]);
  });

  test('a store failure is answered from the last known good data', async () => {
    const { store, service, metrics } = setup({ ttlMs: 1, negativeTtlMs: 1 });
    await service.decide(request('alice@example.com', 'x@gmail.com'));
    await new Promise((r) => setTimeout(r, 5));
    store.mode = 'fail';
    const decision = await service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.equal(decision.action, 'REJECT Not authorized');
    assert.equal(await counterValue(metrics, 'mailwarden_cache_lookups_total', { result: 'stale' }), 2);
  });

  test('a store failure with nothing known answers the failure action', async () => {
    const { store, service, metrics } = setup();
    store.mode = 'fail';
    const decision = await service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.equal(decision.verdict, 'failure');
    assert.equal(decision.action, 'DEFER_IF_PERMIT Service temporarily unavailable');
    const errors = await metrics.storeErrors.get();
    assert.equal(errors.values[0]!.labels.kind, 'Unavailable');
  });

  test('a store that hangs is cut off at the lookup timeout and told to abort', async () => {
    const { store, service } = setup({ lookupTimeoutMs: 50 });
    store.mode = 'hang';
    const started = Date.now();
    const decision = await service.decide(request('alice@example.com', 'x@gmail.com'));
    const took = Date.now() - started;
    assert.equal(decision.verdict, 'failure');
    assert.match(decision.reason!, /did not answer within 50 ms/);
    assert.ok(took < 500, `took ${took} ms`);
    assert.equal(store.aborted, 1);
  });

  test('concurrent misses for the same mailbox share one round trip', async () => {
    const { store, service } = setup();
    store.delayMs = 20;
    const decisions = await Promise.all(Array.from({ length: 20 }, () => service.decide(request('alice@example.com', 'x@gmail.com'))));
    assert.ok(decisions.every((d) => d.action === 'REJECT Not authorized'));
    assert.equal(store.calls.length, 1);
  });

  test('misses of concurrent requests for different mailboxes are coalesced into one round trip', async () => {
    const { store, service } = setup();
    const senders = Array.from({ length: 10 }, (_, i) => `s${i}@example.net`);
    const decisions = await Promise.all(senders.map((sender) => service.decide(request(sender, 'alice@example.com'))));
    assert.ok(decisions.every((d) => d.verdict === 'none'));
    assert.equal(store.calls.length, 1);
    assert.deepEqual(new Set(store.calls[0]), new Set([...senders, 'alice@example.com']));
  });

  test('invalid entries are counted and ignored', async () => {
    const { store, service, metrics } = setup();
    store.data.set('bob@example.com', record('bob@example.com', ['gmail.com', '@yahoo.test']));
    assert.equal((await service.decide(request('bob@example.com', 'x@gmail.com'))).verdict, 'none');
    assert.equal((await service.decide(request('bob@example.com', 'x@yahoo.test'))).verdict, 'reject');
    assert.equal(await counterValue(metrics, 'mailwarden_invalid_entries_total', {}), 1);
  });

  test('the failure action is configurable (fail open)', async () => {
    const store = new ScriptedStore();
    store.mode = 'fail';
    const open = resolveOptions('default', { failureAction: 'DUNNO' });
    const service = new DecisionService({ resolver: new MailboxResolver({ store, decision: open }), options: open });
    assert.equal((await service.decide(request('a@example.com', 'b@example.com'))).action, 'DUNNO');
  });
});
