import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { getHeapStatistics } from 'node:v8';
import { cachedBytes, CachedSource, DEFAULT_RESOLVER_OPTIONS } from '../../../src/policy/cached-source.ts';
import { DecisionService } from '../../../src/policy/decision-handler.ts';
import { mailboxSourceFor, type MailboxSource } from '../../../src/policy/mailbox-source.ts';
import { InMemorySource } from '../../../src/policy/memory-source.ts';
import { emptyPolicyRequest } from '../../../src/policy/request.ts';
import type { Decision } from '../../../src/restrictions/decide.ts';
import type { MailboxRecord } from '../../../src/restrictions/lists.ts';
import { LIST_NUMBER } from '../../../src/restrictions/mailbox.ts';
import { resolveOptions } from '../../../src/restrictions/options.ts';
import { PolicyMetrics } from '../../../src/observability/metrics.ts';
import { StoreError, type MailboxReader } from '../../../src/stores/store.ts';
import { prng } from '../../bench/fixtures.ts';
import { FakeClock, turn } from '../../helpers/fake-clock.ts';

/** A network store (no peek) whose answers, holds and failures the test controls. */
class ScriptedStore implements MailboxReader {
  readonly kind = 'scripted';
  readonly data = new Map<string, MailboxRecord>();
  calls: string[][] = [];
  mode: 'ok' | 'fail' | 'hang' = 'ok';
  /** While true, lookups wait until {@link release}. */
  holding = false;
  #held: (() => void)[] = [];
  aborted = 0;
  async lookup(keys: readonly string[], signal: AbortSignal): Promise<ReadonlyMap<string, MailboxRecord>> {
    this.calls.push([...keys]);
    if (this.mode === 'fail') throw new StoreError('Unavailable', 'connection refused');
    if (this.mode === 'hang') {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => { this.aborted++; resolve(); }));
      throw new StoreError('Unavailable', 'aborted');
    }
    if (this.holding) await new Promise<void>((resolve) => this.#held.push(resolve));
    const out = new Map<string, MailboxRecord>();
    for (const key of keys) {
      const record = this.data.get(key);
      if (record) out.set(key, record);
    }
    return out;
  }
  /** Lets the held lookups answer, and the next ones at once. */
  release(): void {
    this.holding = false;
    for (const answer of this.#held.splice(0)) answer();
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

function setup(resolverOptions: ConstructorParameters<typeof CachedSource>[0]['options'] = {}) {
  const store = new ScriptedStore();
  store.data.set('alice@example.com', record('alice@example.com', ['@.']));
  const metrics = new PolicyMetrics({ store: 'scripted', defaultMetrics: false });
  const clock = new FakeClock();
  const source = new CachedSource({ store, decision: options, options: resolverOptions, metrics, clock, random: prng(1) });
  const service = new DecisionService({ source, options, metrics });
  return { store, source, service, metrics, clock };
}

/** `key`'s mailbox as `source` resolves it (fetched when it must be). */
async function mailboxOf(source: MailboxSource, key: string) {
  const resolution = await source.resolve({ keys: [key] });
  assert.equal(resolution.failed, undefined, `${key} resolved`);
  return resolution.mailboxes?.(key);
}

/** `key`'s mailbox when the source has it at hand (a fresh cache entry, memory): never fetched. */
function mailboxAtHand(source: MailboxSource, key: string) {
  const resolution = source.resolve({ keys: [key] });
  assert.ok(!(resolution instanceof Promise), `${key} is at hand`);
  return resolution.mailboxes?.(key);
}

/** A store that holds its records in memory and says when they change (as the manifests store does). */
function memoryStore(peek: (key: string) => MailboxRecord | undefined, extra: Partial<MailboxReader> = {}) {
  const listeners: ((changed?: readonly string[]) => void)[] = [];
  const store: MailboxReader = { kind: 'memory', lookup: async () => new Map(), peek, onChange: (listener) => listeners.push(listener), close: async () => {}, ...extra };
  return { store, changed: (keys?: readonly string[]) => listeners.forEach((l) => l(keys)) };
}

describe('mailbox source: cached (network stores)', () => {
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
    const { store, service, clock } = setup({ ttlMs: 30, negativeTtlMs: 30 });
    await service.decide(request('alice@example.com', 'x@gmail.com'));
    clock.advance(26); // within the TTL less its spread (a tenth)
    assert.ok(!(service.decide(request('alice@example.com', 'x@gmail.com')) instanceof Promise), 'fresh within the TTL');
    clock.advance(4);
    store.data.set('alice@example.com', record('alice@example.com', ['@yahoo.test']));
    assert.equal((await service.decide(request('alice@example.com', 'x@gmail.com'))).verdict, 'none');
    assert.equal(store.calls.length, 2);
  });

  test('mailboxes fetched together expire spread over the last tenth of the TTL, not all at once', async () => {
    const { store, source, clock } = setup({ ttlMs: 400, negativeTtlMs: 400 });
    const keys = Array.from({ length: 200 }, (_, i) => `u${i}@example.com`);
    await Promise.all(keys.map((key) => source.resolve({ keys: [key] })));
    assert.equal(store.calls.flat().length, 200, 'each fetched once, in shared round trips');
    clock.advance(359);
    assert.ok(keys.every((key) => !(source.resolve({ keys: [key] }) instanceof Promise)), 'none expired before 90% of the TTL');
    clock.advance(21); // 95% of the TTL: about half are due
    let expired = 0;
    for (const key of keys) if (source.resolve({ keys: [key] }) instanceof Promise) expired++;
    assert.ok(expired > 20 && expired < 180, `${expired} of 200 expired at 95% of the TTL`);
  });

  test('a mailbox used late in its TTL is refetched in the background: no request waits for it', async () => {
    // TTLs of 1.8-2 s (spread): due for a refresh from 1.6 s at the latest, fresh until 1.8 s at least.
    const { store, service, metrics, clock } = setup({ ttlMs: 2000, negativeTtlMs: 2000 });
    await service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.equal(store.calls.length, 1);
    const early = service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.ok(!(early instanceof Promise));
    assert.equal(store.calls.length, 1, 'early in the TTL: no refetch');
    clock.advance(1650);
    store.data.set('alice@example.com', record('alice@example.com', ['@yahoo.test']));
    store.holding = true;
    const late = service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.ok(!(late instanceof Promise), 'answered from the cache at once');
    assert.equal(late.verdict, 'reject', 'with the lists it holds until the refetch lands');
    const again = service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.ok(!(again instanceof Promise));
    await turn();
    store.release();
    await turn();
    assert.deepEqual(store.calls.slice(1), [['alice@example.com', 'x@gmail.com']], 'both keys, once, in one round trip');
    assert.equal(await counterValue(metrics, 'mailwarden_cache_lookups_total', { result: 'refresh' }), 2);
    const refreshed = service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.ok(!(refreshed instanceof Promise), 'the refetched entries are fresh');
    assert.equal(refreshed.verdict, 'none', 'and hold the new lists');
    assert.equal(store.calls.length, 2);
  });

  test('a mailbox in steady use with unchanged lists is refreshed in the background TTL after TTL', async () => {
    // TTLs of 1.8-2 s: due for a refresh from 1.6 s at the latest, fresh until 1.8 s at least.
    const { store, source, service, metrics, clock } = setup({ ttlMs: 2000, negativeTtlMs: 2000 });
    await service.decide(request('alice@example.com', 'x@gmail.com'));
    const compiled = mailboxAtHand(source, 'alice@example.com');
    for (let round = 1; round <= 2; round++) {
      clock.advance(1700);
      const late = service.decide(request('alice@example.com', 'x@gmail.com'));
      assert.ok(!(late instanceof Promise), `round ${round}: answered from the cache at once`);
      assert.equal(late.verdict, 'reject');
      await turn();
      assert.equal(store.calls.length, 1 + round, `round ${round}: one background refetch`);
    }
    assert.equal(await counterValue(metrics, 'mailwarden_cache_lookups_total', { result: 'refresh' }), 4, 'both keys, each round');
    assert.equal(mailboxAtHand(source, 'alice@example.com'), compiled, 'the same lists keep their compiled form');
  });

  test('a failed background refetch leaves the entry answering until it is due', async () => {
    const { store, service, metrics, clock } = setup({ ttlMs: 2000, negativeTtlMs: 2000 });
    await service.decide(request('alice@example.com', 'x@gmail.com'));
    clock.advance(1650);
    store.mode = 'fail';
    const late = service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.ok(!(late instanceof Promise));
    assert.equal(late.verdict, 'reject');
    await turn();
    assert.equal(store.calls.length, 2, 'one refetch, which failed');
    assert.equal(await counterValue(metrics, 'mailwarden_store_errors_total', { kind: 'Unavailable' }), 1);
    const after = service.decide(request('alice@example.com', 'x@gmail.com'));
    assert.ok(!(after instanceof Promise), 'still answered from the cache');
    assert.equal(after.verdict, 'reject');
    assert.equal(store.calls.length, 2, 'and not asked again before it is due');
  });

  test('a refetch that brings the same lists reuses their compiled form; changed lists are compiled anew', async () => {
    const { store, source } = setup({ ttlMs: 0, negativeTtlMs: 0 });
    const first = await mailboxOf(source, 'alice@example.com');
    assert.ok(first);
    // An equal record, but a new object, as every store round trip returns.
    store.data.set('alice@example.com', record('alice@example.com', ['@.']));
    assert.equal(await mailboxOf(source, 'alice@example.com'), first);
    store.data.set('alice@example.com', record('alice@example.com', ['@yahoo.test']));
    const changed = await mailboxOf(source, 'alice@example.com');
    assert.notEqual(changed, first);
    const rejectedRecipients = LIST_NUMBER.rejectedRecipients;
    const match = (address: string, domain: string) => changed?.entryFor(rejectedRecipients, address, changed.bits(address), domain, changed.bits(domain), false);
    assert.equal(match('x@yahoo.test', 'yahoo.test'), '@yahoo.test');
    assert.equal(match('x@gmail.com', 'gmail.com'), undefined);
    assert.equal(store.calls.length, 3);
  });

  test('the cache is bounded', async () => {
    const { source } = setup({ maxEntries: 10 });
    for (let i = 0; i < 50; i++) await source.resolve({ keys: [`u${i}@example.com`] });
    assert.ok(source.size <= 10, `cache holds ${source.size}`);
  });

  test('a full cache drops the least recently fetched mailbox first', async () => {
    const { store, source } = setup({ maxEntries: 3, ttlMs: 0, negativeTtlMs: 0 });
    for (const name of ['a', 'b', 'c', 'd']) store.data.set(`${name}@example.com`, record(`${name}@example.com`, ['@.']));
    for (const name of ['a', 'b', 'c', 'a', 'd']) await source.resolve({ keys: [`${name}@example.com`] });
    assert.equal(source.size, 3);
    // With the store down, only what the cache kept still answers.
    store.mode = 'fail';
    assert.ok((await source.resolve({ keys: ['b@example.com'] })).failed, 'b: fetched longest ago');
    for (const name of ['a', 'c', 'd']) assert.ok(await mailboxOf(source, `${name}@example.com`), `${name} is kept`);
  });

  test('the cache is bounded in bytes too, whatever the lists hold', async () => {
    const { store, source } = setup({ maxBytes: 64 * 1024 });
    const long = Array.from({ length: 40 }, (_, i) => `someone${i}@partner${i}.example`);
    for (let i = 0; i < 50; i++) store.data.set(`u${i}@example.com`, record(`u${i}@example.com`, long));
    for (let i = 0; i < 50; i++) await source.resolve({ keys: [`u${i}@example.com`] });
    const each = cachedBytes('u0@example.com', store.data.get('u0@example.com'));
    assert.ok(each > 4_000, `a mailbox of 40 entries is estimated at ${each} B`);
    assert.ok(source.bytes <= 64 * 1024, `cache holds ${source.bytes} B`);
    assert.equal(source.size, Math.floor((64 * 1024) / each), 'as many as fit, no more');
  });

  test('by default the cache may take 40% of the heap limit', () => {
    assert.equal(DEFAULT_RESOLVER_OPTIONS.maxBytes, Math.floor(getHeapStatistics().heap_size_limit * 0.4));
  });

  test('a mailbox larger than the whole bound is not cached, yet decided by its lists every time', async () => {
    const { store, service, source } = setup({ maxBytes: 2_000 });
    const long = Array.from({ length: 40 }, (_, i) => `someone${i}@partner${i}.example`);
    store.data.set('big@example.com', record('big@example.com', [...long, '@gmail.com']));
    for (let i = 0; i < 2; i++) {
      const decision = await service.decide(request('big@example.com', 'x@gmail.com'));
      assert.equal(decision.action, 'REJECT Not authorized');
      assert.equal(decision.entry, '@gmail.com');
    }
    assert.equal(store.calls.filter((keys) => keys.includes('big@example.com')).length, 2, 'fetched for each request');
    assert.ok(source.bytes <= 2_000);
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
    const { store, service, metrics, clock } = setup({ ttlMs: 1, negativeTtlMs: 1 });
    await service.decide(request('alice@example.com', 'x@gmail.com'));
    clock.advance(5);
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
    const { store, service, clock } = setup({ lookupTimeoutMs: 50 });
    store.mode = 'hang';
    let decided: Decision | undefined;
    const decision = Promise.resolve(service.decide(request('alice@example.com', 'x@gmail.com'))).then((d) => (decided = d));
    await turn();
    clock.advance(49);
    await turn();
    assert.equal(decided, undefined, 'still waiting just before the timeout');
    clock.advance(1);
    const cutOff = await decision;
    assert.equal(cutOff.verdict, 'failure');
    assert.match(cutOff.reason!, /did not answer within 50 ms/);
    assert.equal(store.aborted, 1);
  });

  test('concurrent misses for the same mailbox share one round trip', async () => {
    const { store, service } = setup();
    store.holding = true;
    const decisions = Promise.all(Array.from({ length: 20 }, () => service.decide(request('alice@example.com', 'x@gmail.com'))));
    await turn();
    store.release();
    assert.ok((await decisions).every((d) => d.action === 'REJECT Not authorized'));
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
    const service = new DecisionService({ source: mailboxSourceFor({ store, decision: open }), options: open });
    assert.equal((await service.decide(request('a@example.com', 'b@example.com'))).action, 'DUNNO');
  });
});

describe('mailbox source: in memory (stores that peek)', () => {
  test('a store that peeks gets the in-memory source, which resolves every request at once', () => {
    const { store } = memoryStore(() => undefined);
    const source = mailboxSourceFor({ store, decision: options });
    assert.ok(source instanceof InMemorySource);
    assert.ok(!(source.resolve({ keys: ['a@example.com'] }) instanceof Promise));
  });

  test('the keys are never read: a plan computes them only for a source that fetches', () => {
    const { store } = memoryStore(() => undefined);
    const source = mailboxSourceFor({ store, decision: options });
    const resolution = source.resolve({
      get keys(): string[] {
        throw new Error('keys read');
      },
    });
    assert.ok(!(resolution instanceof Promise) && resolution.failed === undefined);
  });

  test('mailboxes are compiled once, and again after the store changes', () => {
    const records = new Map([['alice@example.com', record('alice@example.com', ['@yahoo.test'])]]);
    const { store, changed: notify } = memoryStore((key) => records.get(key));
    const source = mailboxSourceFor({ store, decision: options });
    const first = mailboxAtHand(source, 'alice@example.com');
    assert.equal(mailboxAtHand(source, 'alice@example.com'), first, 'compiled once');
    records.set('alice@example.com', record('alice@example.com', ['@gmail.test']));
    assert.equal(mailboxAtHand(source, 'alice@example.com'), first, 'until the store says it changed');
    notify();
    const changed = mailboxAtHand(source, 'alice@example.com');
    assert.notEqual(changed, first);
    const rejectedRecipients = LIST_NUMBER.rejectedRecipients;
    assert.equal(changed?.entryFor(rejectedRecipients, 'x@gmail.test', changed.bits('x@gmail.test'), 'gmail.test', changed.bits('gmail.test'), false), '@gmail.test');
  });

  test('a key it does not have is asked for once, until the store changes', () => {
    const records = new Map<string, MailboxRecord>();
    const asked: string[] = [];
    const { store, changed: notify } = memoryStore((key) => (asked.push(key), records.get(key)));
    const source = mailboxSourceFor({ store, decision: options });
    assert.equal(mailboxAtHand(source, 'bob@example.com'), undefined);
    assert.equal(mailboxAtHand(source, 'bob@example.com'), undefined);
    assert.deepEqual(asked, ['bob@example.com'], 'remembered as absent');
    records.set('bob@example.com', record('bob@example.com', ['@.']));
    notify();
    assert.equal(mailboxAtHand(source, 'bob@example.com')?.address, 'bob@example.com', 'found once the store reloaded');
  });

  test('a store that names the changed mailboxes: only those are compiled again', () => {
    const records = new Map([
      ['alice@example.com', record('alice@example.com', ['@yahoo.test'])],
      ['bob@example.com', record('bob@example.com', ['@.'])],
    ]);
    const { store, changed: notify } = memoryStore((key) => records.get(key));
    const source = mailboxSourceFor({ store, decision: options });
    const alice = mailboxAtHand(source, 'alice@example.com');
    const bob = mailboxAtHand(source, 'bob@example.com');
    assert.equal(mailboxAtHand(source, 'carol@example.com'), undefined);
    records.set('bob@example.com', record('bob@example.com', ['@gmail.test']));
    records.set('carol@example.com', record('carol@example.com', ['@.']));
    notify(['bob@example.com', 'carol@example.com']);
    assert.equal(mailboxAtHand(source, 'alice@example.com'), alice, 'alice unchanged, still compiled');
    assert.notEqual(mailboxAtHand(source, 'bob@example.com'), bob);
    assert.equal(mailboxAtHand(source, 'carol@example.com')?.address, 'carol@example.com', 'a mailbox that was absent is found');
  });

  test('a store that has not loaded yet: every request fails as the store being unavailable', () => {
    let loaded = false;
    const { store } = memoryStore(() => undefined, { kind: 'kubernetes', loaded: () => loaded });
    const source = mailboxSourceFor({ store, decision: options });
    const before = source.resolve({ keys: ['alice@example.com'] });
    assert.ok(!(before instanceof Promise));
    assert.equal(before.failed?.kind, 'Unavailable');
    loaded = true;
    const after = source.resolve({ keys: ['alice@example.com'] });
    assert.ok(!(after instanceof Promise));
    assert.equal(after.failed, undefined);
  });

  test('a store that has loaded is not asked again: once true, loaded stays true', () => {
    let asked = 0;
    let loaded = false;
    const { store } = memoryStore(() => undefined, { kind: 'kubernetes', loaded: () => (asked++, loaded) });
    const source = mailboxSourceFor({ store, decision: options });
    source.resolve({ keys: ['alice@example.com'] });
    source.resolve({ keys: ['alice@example.com'] });
    assert.equal(asked, 2, 'asked on every request until loaded');
    loaded = true;
    for (let i = 0; i < 3; i++) assert.equal((source.resolve({ keys: ['alice@example.com'] }) as { failed?: unknown }).failed, undefined);
    assert.equal(asked, 3, 'asked once more, when it first said true, and not afterwards');
  });

  test('absent keys are remembered up to a bound, then forgotten', () => {
    const asked: string[] = [];
    const { store } = memoryStore((key) => (asked.push(key), undefined));
    const source = mailboxSourceFor({ store, decision: options });
    const lookup = mailboxAtHand.bind(undefined, source);
    lookup('first@outside.test');
    for (let i = 0; i < 100_000; i++) lookup(`x${i}@outside.test`);
    lookup('first@outside.test');
    assert.equal(asked.filter((k) => k === 'first@outside.test').length, 2, 'forgotten past 100,000 absent keys');
  });
});
