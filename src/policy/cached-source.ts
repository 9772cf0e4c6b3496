import { getHeapStatistics } from 'node:v8';
import { LRUCache } from 'lru-cache';
import type { MailboxLookup } from '../restrictions/decide.ts';
import { LIST_NAMES, type MailboxRecord } from '../restrictions/lists.ts';
import { compileMailbox, type CompiledMailbox } from '../restrictions/mailbox.ts';
import type { DecisionOptions } from '../restrictions/options.ts';
import type { Logger } from '../observability/logger.ts';
import type { PolicyMetrics } from '../observability/metrics.ts';
import { StoreError, type MailboxReader } from '../stores/store.ts';
import { realClock, realRandom, type Clock, type Random } from '../time/clock.ts';
import { InvalidEntries } from './invalid-entries.ts';
import { LookupBatcher } from './lookup-batcher.ts';
import type { MailboxKeys, MailboxSource, Resolution } from './mailbox-source.ts';

/** Round trips at once for a store that does not say (its pool size, when it has one). */
const DEFAULT_LOOKUP_CONCURRENCY = 4;
/** Keys in one store round trip at most: a bounded `IN (…)` list or LDAP OR filter. */
const MAX_KEYS_PER_LOOKUP = 64;
/** The share of a TTL by which entries fetched together are spread (see #spread). */
const TTL_SPREAD = 0.1;
/**
 * The share of its TTL after which an entry that is still used is refetched in the background:
 * a mailbox in steady use is then never due on a request's path (no request waits for its
 * refetch), and no entry is older than its TTL either.
 */
const REFRESH_AFTER = 0.8;

export interface ResolverOptions {
  /**
   * How long a fetched mailbox is used without asking the store again (each entry up to a tenth
   * less, so that mailboxes fetched together are not refetched together).
   */
  readonly ttlMs: number;
  /** The same for "no such mailbox" answers. */
  readonly negativeTtlMs: number;
  /**
   * Entries kept at most (fresh and stale together); the least recently fetched go first (a
   * mailbox in use is refetched about once a TTL, see REFRESH_AFTER, so it stays among the newest).
   */
  readonly maxEntries: number;
  /**
   * The heap the cached mailboxes may take at most, as estimated by {@link cachedBytes}: a bound
   * that holds however long the stored lists are (maxEntries alone does not).
   */
  readonly maxBytes: number;
  /** A store lookup that takes longer fails (spec §4: default 1 s). */
  readonly lookupTimeoutMs: number;
}

/**
 * The cache's default share of this process's heap limit. The rest is the daemon itself and room
 * for the collector: a cache at its bound then never drives V8 out of memory, in a container whose
 * heap is sized from its limit (see nodeHeapOptions) or anywhere else.
 */
const CACHE_SHARE_OF_HEAP = 0.4;

export const DEFAULT_RESOLVER_OPTIONS: ResolverOptions = Object.freeze({
  ttlMs: 30_000,
  negativeTtlMs: 30_000,
  maxEntries: 100_000,
  maxBytes: Math.floor(getHeapStatistics().heap_size_limit * CACHE_SHARE_OF_HEAP),
  lookupTimeoutMs: 1_000,
});

/**
 * The heap one cache entry holds, estimated from its texts: the entry, its compiled index, the
 * record kept for comparison and the cache's own slot. Fitted to the heap measured per cached
 * mailbox (docs/performance.md), erring on the high side: a bound that is kept even when the
 * estimate is off.
 */
export function cachedBytes(key: string, record: MailboxRecord | undefined): number {
  if (record === undefined) return 200 + 2 * key.length;
  let bytes = 500 + 2 * key.length;
  let entries = 0;
  for (const name of LIST_NAMES) {
    const list = record.lists[name];
    if (list === null) continue;
    for (const value of list) bytes += 100 + 2 * value.length;
    entries += list.length;
  }
  // What any entry brings along: the record's list arrays and the index's keys.
  return entries > 0 ? bytes + 320 : bytes;
}

/** What one round trip brought, key by key (null: no such mailbox). */
type Fetched = ReadonlyMap<string, CompiledMailbox | null>;

/** Each key's mailbox as resolved: null for none, undefined while unknown. */
type Found = (CompiledMailbox | null | undefined)[];

interface CacheEntry {
  readonly mailbox: CompiledMailbox | null;
  /** Renewed in place when a refetch brings the same lists (see renew()). */
  expires: number;
  /** From then on a use asks for a background refetch (see REFRESH_AFTER). */
  refreshAt: number;
  /** A background refetch was asked for: not again until the entry is renewed or replaced. */
  refreshing: boolean;
  /** What `mailbox` was compiled from: a refetch with the same lists reuses it. */
  readonly source: MailboxRecord | undefined;
}

/**
 * The mailboxes of a network store, through a bounded cache.
 *
 * Entries are kept past their TTL (until evicted) as the last known good data: when the store
 * fails or times out, a stale entry still answers (spec §4). An entry used in the last fifth of
 * its TTL is refetched in the background, so mailboxes in steady use are never due on a
 * request's path. Misses of concurrent requests are coalesced into shared store round trips (see
 * LookupBatcher). A fully cached request resolves synchronously.
 *
 * A resolution carries the mailboxes it found rather than pointing back into the cache: while a
 * request waits for the store, the cache may drop an entry, or refuse one larger than its bound.
 */
export class CachedSource implements MailboxSource {
  readonly #store: MailboxReader;
  readonly #decision: DecisionOptions;
  readonly #options: ResolverOptions;
  readonly #metrics: PolicyMetrics | undefined;
  readonly #logger: Logger | undefined;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #cache: LRUCache<string, CacheEntry>;
  readonly #invalid: InvalidEntries;
  /** Misses go to the store through here: coalesced, bounded, with the lookup timeout. */
  readonly #batcher: LookupBatcher<Fetched>;

  constructor(params: {
    store: MailboxReader;
    decision: DecisionOptions;
    options?: Partial<ResolverOptions>;
    metrics?: PolicyMetrics;
    logger?: Logger;
    clock?: Clock;
    random?: Random;
  }) {
    this.#store = params.store;
    this.#decision = params.decision;
    this.#options = { ...DEFAULT_RESOLVER_OPTIONS, ...definedOnly(params.options ?? {}) };
    this.#metrics = params.metrics;
    this.#logger = params.logger;
    this.#clock = params.clock ?? realClock;
    this.#random = params.random ?? realRandom;
    this.#cache = new LRUCache({ max: this.#options.maxEntries, maxSize: Math.max(1, this.#options.maxBytes) });
    this.#invalid = new InvalidEntries(params.metrics, params.logger);
    const timeoutMs = this.#options.lookupTimeoutMs;
    this.#batcher = new LookupBatcher<Fetched>({
      concurrency: params.store.lookupConcurrency ?? DEFAULT_LOOKUP_CONCURRENCY,
      maxKeys: MAX_KEYS_PER_LOOKUP,
      timeoutMs,
      clock: this.#clock,
      fetch: (keys, signal) => this.#roundTrip(keys, signal),
      timeoutError: () => new StoreError('Unavailable', `the ${params.store.kind} store did not answer within ${timeoutMs} ms`),
      onFailure: (error, keys) => this.#lookupFailed(error, keys),
    });
  }

  resolve(wanted: MailboxKeys): Resolution | Promise<Resolution> {
    const keys = wanted.keys;
    const now = this.#clock.now();
    const found: Found = new Array(keys.length);
    let missing: string[] | undefined;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      // peek, not get: a hit writes nothing into the cache's recency lists, which costs CPU on
      // every request (docs/performance.md). Recency comes from refetches instead (an entry in
      // use is refetched before it is due).
      const entry = this.#cache.peek(key);
      if (entry !== undefined && entry.expires > now) {
        this.#metrics?.cache.hit.inc();
        if (now >= entry.refreshAt && !entry.refreshing) this.#refreshAhead(key, entry);
        found[i] = entry.mailbox;
      } else {
        (missing ??= []).push(key);
      }
    }
    if (missing === undefined) return { failed: undefined, mailboxes: lookupIn(keys, found) };
    return this.#fetch(keys, found, missing);
  }

  /** Drops everything cached. */
  clear(keys?: readonly string[]): void {
    if (keys === undefined) this.#cache.clear();
    else for (const key of keys) this.#cache.delete(key);
  }

  get size(): number {
    return this.#cache.size;
  }

  /** The estimated heap the cached entries hold (see {@link cachedBytes}). */
  get bytes(): number {
    return this.#cache.calculatedSize;
  }

  /**
   * Refetches a fresh entry's mailbox without anyone waiting for it: the round trip is shared
   * with other misses (LookupBatcher) and installs its result; a failure is logged and counted
   * there, and the entry then answers until it is due, as it would have anyway.
   */
  #refreshAhead(key: string, entry: CacheEntry): void {
    entry.refreshing = true;
    this.#metrics?.cache.refresh.inc();
    this.#batcher.request(key).then(ignore, ignore);
  }

  async #fetch(keys: readonly string[], found: Found, missing: string[]): Promise<Resolution> {
    this.#metrics?.cache.miss.inc(missing.length);
    // Every key is asked for before anything is awaited, so they share a batch.
    const waits: Promise<Fetched>[] = [];
    for (const key of missing) {
      const wait = this.#batcher.request(key);
      if (!waits.includes(wait)) waits.push(wait);
    }
    let failure: StoreError | undefined;
    for (const wait of waits) {
      try {
        const fetched = await wait;
        for (let i = 0; i < keys.length; i++) {
          const mailbox = fetched.get(keys[i] as string);
          if (mailbox !== undefined && found[i] === undefined) found[i] = mailbox;
        }
      } catch (error) {
        failure ??= error as StoreError;
      }
    }
    if (failure === undefined) return { failed: undefined, mailboxes: lookupIn(keys, found) };
    // Fall back to the last known good data when every needed mailbox has some.
    for (let i = 0; i < keys.length; i++) {
      if (found[i] !== undefined) continue;
      const stale = this.#cache.get(keys[i] as string);
      if (stale === undefined) return { failed: failure };
      found[i] = stale.mailbox;
    }
    this.#metrics?.cache.stale.inc(missing.length);
    return { failed: undefined, mailboxes: lookupIn(keys, found) };
  }

  /** One round trip for a batch of keys: fills the cache and returns what it brought; rejects with a StoreError. */
  async #roundTrip(keys: string[], signal: AbortSignal): Promise<Fetched> {
    const started = this.#clock.now();
    let records: ReadonlyMap<string, MailboxRecord>;
    try {
      records = await this.#store.lookup(keys, signal);
    } catch (error) {
      throw error instanceof StoreError ? error : new StoreError('Unavailable', `the ${this.#store.kind} store failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
    }
    this.#metrics?.storeLookupDuration.observe((this.#clock.now() - started) / 1000);
    return this.#install(keys, records);
  }

  #lookupFailed(error: Error, keys: readonly string[]): void {
    const storeError = error as StoreError;
    this.#metrics?.storeError(storeError.kind);
    this.#logger?.warn({ store: this.#store.kind, kind: storeError.kind, keys: keys.length }, `store lookup failed: ${storeError.message}`);
  }

  #install(keys: readonly string[], records: ReadonlyMap<string, MailboxRecord>): Fetched {
    const now = this.#clock.now();
    const fetched = new Map<string, CompiledMailbox | null>();
    for (const key of keys) {
      const record = records.get(key);
      const previous = this.#cache.peek(key);
      if (record === undefined) {
        fetched.set(key, null);
        const ttlMs = this.#spread(this.#options.negativeTtlMs);
        const entry = previous?.mailbox === null ? renew(previous, now, ttlMs) : entryOf(null, undefined, now, ttlMs);
        this.#cache.set(key, entry, { size: cachedBytes(key, undefined) });
        continue;
      }
      // A refetch after the TTL mostly brings the same lists: the entry is renewed in place and
      // what the store sent dies young. A new entry and record for each refetch would live until
      // the next one, outlast their scavenges and be copied into the old generation, whose growth
      // then costs full collections and fresh pages (docs/performance.md).
      if (previous?.source !== undefined && sameRecord(previous.source, record)) {
        this.#cache.set(key, renew(previous, now, this.#spread(this.#options.ttlMs)), { size: cachedBytes(key, previous.source) });
        fetched.set(key, previous.mailbox);
        continue;
      }
      // Compiling validates every entry.
      const mailbox = compileMailbox(record, this.#decision);
      this.#invalid.check(key, mailbox);
      // A mailbox larger than the whole bound is not kept (lru-cache refuses it): each request
      // that needs it fetches it again, and a store failure then answers the failure action.
      this.#cache.set(key, entryOf(mailbox, record, now, this.#spread(this.#options.ttlMs)), { size: cachedBytes(key, record) });
      fetched.set(key, mailbox);
    }
    return fetched;
  }

  /**
   * A TTL shortened by up to a tenth at random. Mailboxes fetched together (at startup, after an
   * outage, in one batch) would otherwise all expire together, and every TTL the daemon would
   * refetch them in one burst of round trips that requests queue behind.
   */
  #spread(ttlMs: number): number {
    return ttlMs - Math.floor(this.#random() * ttlMs * TTL_SPREAD);
  }
}

/** Reads the mailboxes found for `keys` (one plan's keys: at most four). */
function lookupIn(keys: readonly string[], found: Found): MailboxLookup {
  return (key) => {
    for (let i = 0; i < keys.length; i++) if (keys[i] === key) return found[i] ?? undefined;
    return undefined;
  };
}

function entryOf(mailbox: CompiledMailbox | null, source: MailboxRecord | undefined, now: number, ttlMs: number): CacheEntry {
  return { mailbox, expires: now + ttlMs, refreshAt: now + Math.floor(ttlMs * REFRESH_AFTER), source, refreshing: false };
}

/** The entry again, fresh from `now` (set() then makes it the most recently fetched). */
function renew(entry: CacheEntry, now: number, ttlMs: number): CacheEntry {
  entry.expires = now + ttlMs;
  entry.refreshAt = now + Math.floor(ttlMs * REFRESH_AFTER);
  entry.refreshing = false;
  return entry;
}

function ignore(): void {}

function sameRecord(a: MailboxRecord, b: MailboxRecord): boolean {
  if (a.address !== b.address) return false;
  for (const name of LIST_NAMES) {
    const x = a.lists[name];
    const y = b.lists[name];
    if (x === y) continue;
    if (x === null || y === null || x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  return true;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
