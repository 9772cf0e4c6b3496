import { getHeapStatistics } from 'node:v8';
import { LRUCache } from 'lru-cache';
import type { MailboxLookup } from '../restrictions/decide.ts';
import { LIST_NAMES, type MailboxRecord } from '../restrictions/lists.ts';
import { compileMailbox, type CompiledMailbox } from '../restrictions/mailbox.ts';
import type { DecisionOptions } from '../restrictions/options.ts';
import type { Logger } from '../observability/logger.ts';
import type { PolicyMetrics } from '../observability/metrics.ts';
import { StoreError, type MailboxStore } from '../stores/store.ts';
import { LookupBatcher } from './lookup-batcher.ts';

/** Round trips at once for a store that does not say (its pool size, when it has one). */
const DEFAULT_LOOKUP_CONCURRENCY = 4;
/** A request needs at most four mailboxes (sender and recipient, each with and without extension). */
const MEMO_SIZE = 4;
/** Keys in one store round trip at most: a bounded `IN (…)` list or LDAP OR filter. */
const MAX_KEYS_PER_LOOKUP = 64;
/** The share of a TTL by which entries fetched together are spread (see spread()). */
const TTL_SPREAD = 0.1;
/**
 * The share of its TTL after which an entry that is still used is refetched in the background:
 * a mailbox in steady use is then never due on a request's path (no request waits for its
 * refetch), and no entry is older than its TTL either.
 */
const REFRESH_AFTER = 0.8;
/** Keys an in-memory store does not have, remembered at most (about 100 B each). */
const MAX_ABSENT = 100_000;

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
 * The cache's default share of this process's heap limit. The rest is the daemon itself (about
 * 15 MB) and room for the collector: a cache at its bound then never drives V8 out of memory, in
 * a container whose heap is sized from its limit (see nodeHeapOptions) or anywhere else.
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
 * record kept for comparison and the cache's own slot. Fitted to measurements (node 24, entries
 * of 45 characters; heap after a full GC per cached mailbox): 186 B for "no such mailbox", 486 B
 * for a mailbox with no lists, then 807, 1225, 1630, 4533 and 18,727 B with 1, 4, 5, 20 and 100
 * entries. It errs on the high side.
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

/** What a resolution tells the decision: how to read mailboxes, and whether data is missing. */
export interface Resolution {
  /** A store failure left at least one needed mailbox unknown: answer the failure action. */
  readonly failed: StoreError | undefined;
  /**
   * After a store round trip, every key's mailbox (null: none), to be read here rather than
   * through {@link MailboxResolver.lookup}: while the request waited, the cache may have dropped
   * an entry, or refused one larger than its bound. Undefined when resolved from the cache at once.
   */
  readonly mailboxes?: ReadonlyMap<string, CompiledMailbox | null>;
}

/** What one round trip brought, key by key (null: no such mailbox). */
type Fetched = ReadonlyMap<string, CompiledMailbox | null>;

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

export const RESOLVED: Resolution = Object.freeze({ failed: undefined });

/**
 * Fetches the mailboxes a decision needs, through a bounded cache (network stores) or straight
 * from memory (the manifests store, which answers synchronously).
 *
 * Entries are kept past their TTL (until evicted) as the last known good data: when the store
 * fails or times out, a stale entry still answers (spec §4). An entry used in the last fifth of
 * its TTL is refetched in the background, so mailboxes in steady use are never due on a
 * request's path. Misses of concurrent requests are coalesced into shared store round trips (see
 * LookupBatcher). A fully cached request resolves synchronously, so the hot path allocates no
 * promise.
 */
export class MailboxResolver {
  readonly #store: MailboxStore;
  readonly #decision: DecisionOptions;
  readonly #options: ResolverOptions;
  readonly #metrics: PolicyMetrics | undefined;
  readonly #logger: Logger | undefined;
  readonly #cache: LRUCache<string, CacheEntry>;
  /**
   * In-memory stores: each mailbox compiled on first use, by key, until the store changes; null
   * for a key the store does not have (the other half of the traffic: outside senders and
   * recipients), so it costs one hash lookup too, not two. At most MAX_ABSENT of those.
   */
  readonly #compiled = new Map<string, CompiledMailbox | null>();
  #absent = 0;
  /**
   * What the last resolve() found fresh, key by key: the decision that follows at once reads its
   * mailboxes here instead of the LRU cache a second time. Emptied whenever the cache changes, so
   * it never disagrees with it.
   */
  readonly #memoKeys: string[] = [];
  readonly #memoMailboxes: (CompiledMailbox | null)[] = [];
  #memoCount = 0;
  /** Misses go to the store through here: coalesced, bounded, with the lookup timeout. */
  readonly #batcher: LookupBatcher<Fetched>;
  #inMemory = false;
  /** Invalid entries already logged, per mailbox (by their texts), so each is logged once. */
  readonly #loggedInvalid: LRUCache<string, string>;
  /** Reads a mailbox for `decide`; bound once, not per request. */
  readonly lookup: MailboxLookup;

  constructor(params: {
    store: MailboxStore;
    decision: DecisionOptions;
    options?: Partial<ResolverOptions>;
    metrics?: PolicyMetrics;
    logger?: Logger;
  }) {
    this.#store = params.store;
    this.#decision = params.decision;
    this.#options = { ...DEFAULT_RESOLVER_OPTIONS, ...definedOnly(params.options ?? {}) };
    this.#metrics = params.metrics;
    this.#logger = params.logger;
    this.#cache = new LRUCache({ max: this.#options.maxEntries, maxSize: Math.max(1, this.#options.maxBytes) });
    this.#loggedInvalid = new LRUCache({ max: 10_000 });
    const timeoutMs = this.#options.lookupTimeoutMs;
    this.#batcher = new LookupBatcher<Fetched>({
      concurrency: params.store.lookupConcurrency ?? DEFAULT_LOOKUP_CONCURRENCY,
      maxKeys: MAX_KEYS_PER_LOOKUP,
      timeoutMs,
      fetch: (keys, signal) => this.#roundTrip(keys, signal),
      timeoutError: () => new StoreError('Unavailable', `the ${params.store.kind} store did not answer within ${timeoutMs} ms`),
      onFailure: (error, keys) => this.#lookupFailed(error, keys),
    });
    const peek = params.store.peek?.bind(params.store);
    if (peek !== undefined) {
      // In memory: no cache, no TTL, no promise. Each mailbox is compiled on first use and kept
      // under its key until the store reloads: one hash lookup per key on the hot path.
      const compiled = this.#compiled;
      this.#inMemory = true;
      this.lookup = (key) => {
        const known = compiled.get(key);
        if (known !== undefined) return known ?? undefined;
        const record = peek(key);
        if (record === undefined) {
          // Outside addresses are unbounded: start over rather than grow without end.
          if (++this.#absent > MAX_ABSENT) this.clear();
          compiled.set(key, null);
          return undefined;
        }
        const mailbox = compileMailbox(record, this.#decision);
        if (mailbox.invalid.length > 0) this.#reportInvalid(key, mailbox);
        compiled.set(key, mailbox);
        return mailbox;
      };
    } else {
      this.lookup = (key) => {
        // The request just resolved: its keys are in the memo (the very same strings).
        for (let i = 0; i < this.#memoCount; i++) if (this.#memoKeys[i] === key) return this.#memoMailboxes[i] ?? undefined;
        return this.#cache.peek(key)?.mailbox ?? undefined;
      };
    }
    params.store.onChange?.(() => this.clear());
  }

  /** Makes every key readable through {@link lookup}; synchronous when all are fresh. */
  resolve(keys: readonly string[]): Resolution | Promise<Resolution> {
    if (this.#inMemory) return RESOLVED;
    const now = Date.now();
    let missing: string[] | undefined;
    this.#memoCount = 0;
    for (const key of keys) {
      // peek, not get: a hit writes nothing into the cache's recency lists. Recency comes from
      // refetches (an entry in use is refetched before it is due). Measured on 2 cores with
      // 10,000 cached mailboxes, median CPU a request: 46.1 -> 42.9 µs at C=8, 48.0 -> 47.5 at C=32.
      const entry = this.#cache.peek(key);
      if (entry !== undefined && entry.expires > now) {
        this.#metrics?.cache.hit.inc();
        if (now >= entry.refreshAt && !entry.refreshing) this.#refreshAhead(key, entry);
        if (this.#memoCount < MEMO_SIZE) {
          this.#memoKeys[this.#memoCount] = key;
          this.#memoMailboxes[this.#memoCount++] = entry.mailbox;
        }
      } else {
        (missing ??= []).push(key);
      }
    }
    if (missing === undefined) return RESOLVED;
    // What was fresh now: the memo is the next request's by the time the store answers.
    const known = new Map<string, CompiledMailbox | null>();
    for (let i = 0; i < this.#memoCount; i++) known.set(this.#memoKeys[i] as string, this.#memoMailboxes[i] ?? null);
    return this.#fetch(missing, known);
  }

  /** The store is in memory: every lookup is at hand, resolve() has nothing to fetch. */
  get inMemory(): boolean {
    return this.#inMemory;
  }

  /** Drops everything cached or compiled (the manifests store does this on reload). */
  clear(): void {
    this.#memoCount = 0;
    this.#compiled.clear();
    this.#absent = 0;
    this.#cache.clear();
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

  async #fetch(keys: string[], known: Map<string, CompiledMailbox | null>): Promise<Resolution> {
    this.#metrics?.cache.miss.inc(keys.length);
    // Every key is asked for before anything is awaited, so they share a batch.
    const waits: Promise<Fetched>[] = [];
    for (const key of keys) {
      const wait = this.#batcher.request(key);
      if (!waits.includes(wait)) waits.push(wait);
    }
    let failure: StoreError | undefined;
    for (const wait of waits) {
      try {
        const fetched = await wait;
        for (const key of keys) {
          const mailbox = fetched.get(key);
          if (mailbox !== undefined) known.set(key, mailbox);
        }
      } catch (error) {
        failure ??= error as StoreError;
      }
    }
    if (failure === undefined) return { failed: undefined, mailboxes: known };
    // Fall back to the last known good data when every needed mailbox has some.
    for (const key of keys) {
      if (known.has(key)) continue;
      const stale = this.#cache.get(key);
      if (stale === undefined) return { failed: failure };
      known.set(key, stale.mailbox);
    }
    this.#metrics?.cache.stale.inc(keys.length);
    return { failed: undefined, mailboxes: known };
  }

  /** One round trip for a batch of keys: fills the cache and returns what it brought; rejects with a StoreError. */
  async #roundTrip(keys: string[], signal: AbortSignal): Promise<Fetched> {
    const started = performance.now();
    let found: ReadonlyMap<string, MailboxRecord>;
    try {
      found = await this.#store.lookup(keys, signal);
    } catch (error) {
      throw error instanceof StoreError ? error : new StoreError('Unavailable', `the ${this.#store.kind} store failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
    }
    this.#metrics?.storeLookupDuration.observe((performance.now() - started) / 1000);
    return this.#install(keys, found);
  }

  #lookupFailed(error: Error, keys: readonly string[]): void {
    const storeError = error as StoreError;
    this.#metrics?.storeError(storeError.kind);
    this.#logger?.warn({ store: this.#store.kind, kind: storeError.kind, keys: keys.length }, `store lookup failed: ${storeError.message}`);
  }

  #install(keys: readonly string[], found: ReadonlyMap<string, MailboxRecord>): Fetched {
    this.#memoCount = 0; // the cache changes: the memo could disagree with it
    const now = Date.now();
    const fetched = new Map<string, CompiledMailbox | null>();
    for (const key of keys) {
      const record = found.get(key);
      const previous = this.#cache.peek(key);
      if (record === undefined) {
        fetched.set(key, null);
        const entry = previous?.mailbox === null ? renew(previous, now, spread(this.#options.negativeTtlMs)) : entryOf(null, undefined, now, spread(this.#options.negativeTtlMs));
        this.#cache.set(key, entry, { size: cachedBytes(key, undefined) });
        continue;
      }
      // A refetch after the TTL mostly brings the same lists: the entry is renewed in place and
      // what the store sent dies young. A new entry and record for each refetch would live until
      // the next one, outlast their scavenges and be copied into the old generation, whose growth
      // then costs full collections and fresh pages (measured with --cache-ttl 0: 0.7 page faults
      // a request).
      if (previous?.source !== undefined && sameRecord(previous.source, record)) {
        this.#cache.set(key, renew(previous, now, spread(this.#options.ttlMs)), { size: cachedBytes(key, previous.source) });
        fetched.set(key, previous.mailbox);
        continue;
      }
      // Compiling validates every entry.
      const mailbox = compileMailbox(record, this.#decision);
      if (mailbox.invalid.length > 0) this.#reportInvalid(key, mailbox);
      // A mailbox larger than the whole bound is not kept (lru-cache refuses it): each request
      // that needs it fetches it again, and a store failure then answers the failure action.
      this.#cache.set(key, entryOf(mailbox, record, now, spread(this.#options.ttlMs)), { size: cachedBytes(key, record) });
      fetched.set(key, mailbox);
    }
    return fetched;
  }

  #reportInvalid(key: string, mailbox: CompiledMailbox): void {
    this.#metrics?.invalidEntries.inc(mailbox.invalid.length);
    const signature = mailbox.invalid.map((i) => `${i.list}:${i.entry.text}`).join('\n');
    if (this.#loggedInvalid.get(key) === signature) return;
    this.#loggedInvalid.set(key, signature);
    this.#logger?.warn(
      { mailbox: key, invalid: mailbox.invalid.map((i) => ({ list: i.list, entry: i.entry.text, reason: i.entry.reason })) },
      `mailbox ${key} has ${mailbox.invalid.length} invalid entries, ignored`,
    );
  }
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

/**
 * A TTL shortened by up to a tenth at random. Mailboxes fetched together (at startup, after an
 * outage, in one batch) would otherwise all expire together, and every TTL the daemon would
 * refetch them in one burst of round trips that requests queue behind.
 */
function spread(ttlMs: number): number {
  return ttlMs - Math.floor(Math.random() * ttlMs * TTL_SPREAD);
}

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
