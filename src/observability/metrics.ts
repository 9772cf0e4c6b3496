import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Verdict } from '../restrictions/decide.ts';
import { HotCounter, HotHistogram, type HotCounterChild } from './hot-metrics.ts';

/**
 * The policy daemon's Prometheus metrics. Labelled children are resolved once here so the
 * hot path only increments; the two updated on every request (decisions, request duration)
 * are hot-metrics, a few arithmetic operations each.
 */
export class PolicyMetrics {
  readonly registry: Registry;
  readonly decisions: Readonly<Record<Verdict, HotCounterChild>>;
  readonly requestDuration: HotHistogram;
  readonly storeErrors: Counter<'store' | 'kind'>;
  readonly storeLookupDuration: Histogram.Internal<'store'>;
  readonly cache: Readonly<Record<'hit' | 'miss' | 'stale' | 'refresh', HotCounterChild>>;
  readonly invalidEntries: Counter;
  readonly protocolErrors: Counter<'reason'>;
  readonly connectionsShed: Readonly<Record<'evicted' | 'refused', HotCounterChild>>;
  readonly #store: string;
  #stale: () => boolean = () => false;
  #openConnections: () => number = () => 0;

  constructor(options: { store: string; registry?: Registry; defaultMetrics?: boolean }) {
    const registry = options.registry ?? new Registry();
    this.registry = registry;
    this.#store = options.store;
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'mailwarden_' });
    this.decisions = new HotCounter({
      name: 'mailwarden_policy_decisions_total',
      help: 'Policy requests answered, by verdict (allow, reject, none, skip, failure).',
      label: 'verdict',
      values: ['allow', 'reject', 'none', 'skip', 'failure'] as const,
      registers: [registry],
    }).children;
    this.requestDuration = new HotHistogram({
      name: 'mailwarden_policy_request_duration_seconds',
      help: 'Time from a complete request to its answer.',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    this.storeErrors = new Counter({
      name: 'mailwarden_store_errors_total',
      help: 'Store lookups that failed, by store and error kind (Unavailable, Misconfigured, Timeout …).',
      labelNames: ['store', 'kind'] as const,
      registers: [registry],
    });
    this.storeLookupDuration = new Histogram({
      name: 'mailwarden_store_lookup_duration_seconds',
      help: 'Duration of one batched store lookup.',
      labelNames: ['store'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }).labels(options.store);
    // Counted per mailbox key of every request: a hot metric like the decisions.
    this.cache = new HotCounter({
      name: 'mailwarden_cache_lookups_total',
      help: 'Mailbox lookups by cache result: hit (fresh), miss (fetched), stale (store failed, last known good data used), refresh (a hit late in its TTL, refetched in the background).',
      label: 'result',
      values: ['hit', 'miss', 'stale', 'refresh'] as const,
      registers: [registry],
    }).children;
    this.invalidEntries = new Counter({
      name: 'mailwarden_invalid_entries_total',
      help: 'Invalid list entries found in fetched mailboxes and ignored.',
      registers: [registry],
    });
    // Read when scraped: an idle flood opens and evicts thousands of connections a second.
    const openConnections = () => this.#openConnections();
    new Gauge({
      name: 'mailwarden_policy_connections',
      help: 'Open policy connections.',
      registers: [registry],
      collect() {
        this.set(openConnections());
      },
    });
    const stale = () => this.#stale();
    new Gauge({
      name: 'mailwarden_store_stale',
      help: '1 while the store answers from data its source cannot confirm (the Kubernetes store with the API server unreachable), else 0.',
      labelNames: ['store'] as const,
      registers: [registry],
      collect() {
        this.labels(options.store).set(stale() ? 1 : 0);
      },
    });
    this.protocolErrors = new Counter({
      name: 'mailwarden_policy_protocol_errors_total',
      help: 'Connections closed for a protocol violation, by reason.',
      labelNames: ['reason'] as const,
      registers: [registry],
    });
    this.connectionsShed = new HotCounter({
      name: 'mailwarden_policy_connections_shed_total',
      help: 'Connections closed (evicted) or refused to keep slots for new ones, by reason.',
      label: 'reason',
      values: ['evicted', 'refused'] as const,
      registers: [registry],
    }).children;
  }

  /** Where mailwarden_store_stale reads from (the daemon's current store). */
  reportStaleness(stale: () => boolean): void {
    this.#stale = stale;
  }

  /** Where mailwarden_policy_connections reads from (the policy server's open connections). */
  reportOpenConnections(open: () => number): void {
    this.#openConnections = open;
  }

  storeError(kind: string): void {
    this.storeErrors.labels(this.#store, kind).inc();
  }
}
