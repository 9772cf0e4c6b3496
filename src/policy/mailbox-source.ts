import type { MailboxLookup } from '../restrictions/decide.ts';
import type { DecisionOptions } from '../restrictions/options.ts';
import type { Logger } from '../observability/logger.ts';
import type { PolicyMetrics } from '../observability/metrics.ts';
import type { MailboxReader, StoreError } from '../stores/store.ts';
import { CachedSource, type ResolverOptions } from './cached-source.ts';
import type { Clock, Random } from '../time/clock.ts';
import { InMemorySource } from './memory-source.ts';

/** The mailboxes of one request's keys, or the store failure that left one of them unknown. */
export type Resolution =
  | { readonly failed: undefined; readonly mailboxes: MailboxLookup }
  | { readonly failed: StoreError; readonly mailboxes?: undefined };

/**
 * The mailbox keys of one request. A DecisionPlan is one: it computes its keys on first read,
 * so a source that has every mailbox at hand (in memory) never pays for them (docs/performance.md).
 */
export interface MailboxKeys {
  readonly keys: readonly string[];
}

/**
 * Where decisions get their mailboxes: `resolve` takes a plan's keys and gives what `decide`
 * reads. Two kinds: a store that holds its records in memory ({@link InMemorySource}) and a
 * network store, read through a bounded cache ({@link CachedSource}).
 */
export interface MailboxSource {
  /**
   * The mailboxes of `keys`; synchronous when nothing has to be fetched (the hot path allocates
   * no promise). Never rejects: a store failure is a {@link Resolution} with `failed`.
   */
  resolve(wanted: MailboxKeys): Resolution | Promise<Resolution>;
  /** Forgets what was compiled or cached for `keys`, or for every key: the store's data changed. */
  clear(keys?: readonly string[]): void;
}

export interface MailboxSourceParams {
  readonly store: MailboxReader;
  readonly decision: DecisionOptions;
  /** For a network store's cache; an in-memory store has neither TTL nor timeout. */
  readonly options?: Partial<ResolverOptions>;
  readonly metrics?: PolicyMetrics;
  readonly logger?: Logger;
  readonly clock?: Clock;
  readonly random?: Random;
}

/**
 * The source for `store`: in memory when the store can answer a key synchronously (`peek`),
 * through the cache otherwise. Either way it is cleared when the store says its data changed.
 */
export function mailboxSourceFor(params: MailboxSourceParams): MailboxSource {
  const { store } = params;
  const peek = store.peek?.bind(store);
  const loaded = store.loaded?.bind(store);
  const source = peek !== undefined ? new InMemorySource({ ...params, peek, loaded, kind: store.kind }) : new CachedSource(params);
  store.onChange?.((changed) => source.clear(changed));
  return source;
}
