/**
 * Decisions over the amavisd white/blacklist tables, as iRedAPD 6.1's amavisd_wblist takes them
 * (restrictions/amavisd-wblist.ts): plan the request, fetch its facts in one store round trip
 * (or take them from the cache), decide. The facts are cached per request shape (sender or SASL
 * login, recipient, client address) and kept past their TTL as the last known good data, so a
 * store outage answers from them as the mailbox cache does (spec §4).
 */
import { LRUCache } from 'lru-cache';
import { decideWblist, planWblist, type WblistDecision, type WblistFacts, type WblistOptions, type WblistPlan } from '../restrictions/amavisd-wblist.ts';
import { failed, skipped, type Decision } from '../restrictions/decide.ts';
import type { ListName } from '../restrictions/lists.ts';
import type { DecisionOptions } from '../restrictions/options.ts';
import type { Logger } from '../observability/logger.ts';
import type { PolicyMetrics } from '../observability/metrics.ts';
import { StoreError, type WblistReader } from '../stores/store.ts';
import { realClock, type Clock } from '../time/clock.ts';
import type { ResolverOptions } from './cached-source.ts';
import { DecisionLog } from './decision-log.ts';
import type { Decider } from './decision-handler.ts';
import type { PolicyRequest } from './request.ts';

interface FactsEntry {
  readonly facts: WblistFacts;
  readonly expires: number;
  /**
   * The decision over `facts`, made at its first use: the key determines the plan and the options
   * are the decider's, so every request of this shape decides the same until the facts change.
   */
  decision: Decision | undefined;
}

export interface WblistDeciderParams {
  readonly store: WblistReader;
  /** The failure action (and the recipient delimiter, '+' when none is configured) come from here. */
  readonly options: DecisionOptions;
  readonly wblist: Pick<WblistOptions, 'bypassOutgoing' | 'discardInsteadOfReject'>;
  readonly resolver?: Partial<Pick<ResolverOptions, 'ttlMs' | 'maxEntries' | 'lookupTimeoutMs'>>;
  readonly metrics?: PolicyMetrics;
  readonly logger?: Logger;
  readonly clock?: Clock;
}

/** The amavisd schema's decider: one store round trip per request whose facts are not cached. */
export class WblistDecider implements Decider {
  readonly options: DecisionOptions;
  readonly #store: WblistReader;
  readonly #wblist: WblistOptions;
  readonly #ttlMs: number;
  readonly #timeoutMs: number;
  readonly #cache: LRUCache<string, FactsEntry>;
  /** Requests of one shape waiting for the same round trip share it. */
  readonly #inFlight = new Map<string, Promise<FactsEntry>>();
  readonly #metrics: PolicyMetrics | undefined;
  readonly #logger: Logger | undefined;
  readonly #log: DecisionLog | undefined;
  readonly #clock: Clock;

  constructor(params: WblistDeciderParams) {
    this.options = params.options;
    this.#store = params.store;
    this.#wblist = { recipientDelimiter: params.options.recipientDelimiter === '' ? '+' : params.options.recipientDelimiter, ...params.wblist };
    this.#ttlMs = params.resolver?.ttlMs ?? 30_000;
    this.#timeoutMs = params.resolver?.lookupTimeoutMs ?? 1_000;
    this.#cache = new LRUCache({ max: Math.max(1, params.resolver?.maxEntries ?? 100_000) });
    this.#metrics = params.metrics;
    this.#logger = params.logger;
    this.#log = params.logger === undefined ? undefined : new DecisionLog(params.logger);
    this.#clock = params.clock ?? realClock;
  }

  get failureAction(): string {
    return this.options.failureAction;
  }

  /** Synchronous when the request's facts are cached. Never rejects. */
  decide(request: PolicyRequest): Decision | Promise<Decision> {
    const plan = planWblist(
      { protocolState: request.protocolState, sender: request.sender, recipient: request.recipient, saslUsername: request.saslUsername || undefined, clientAddress: request.clientAddress },
      this.#wblist,
    );
    if (typeof plan === 'string') return this.#record(skipped(plan), request);
    const key = `${plan.sasl ? 's' : 'e'}\n${plan.sender}\n${plan.recipient}\n${plan.clientAddress}`;
    const entry = this.#cache.peek(key);
    if (entry !== undefined && entry.expires > this.#clock.now()) {
      this.#metrics?.cache.hit.inc();
      return this.#record(this.#decisionIn(entry, plan), request);
    }
    this.#metrics?.cache.miss.inc();
    return this.#fetch(key, plan).then(
      (fetched) => this.#record(this.#decisionIn(fetched, plan), request),
      (error: unknown) => {
        // The last known good facts answer while the store cannot.
        const stale = this.#cache.get(key);
        if (stale !== undefined) {
          this.#metrics?.cache.stale.inc();
          return this.#record(this.#decisionIn(stale, plan), request);
        }
        return this.#record(failed((error as Error).message, this.options), request);
      },
    );
  }

  /** The decision of `entry`'s request shape, made once per entry (it is shared by the requests). */
  #decisionIn(entry: FactsEntry, plan: WblistPlan): Decision {
    return (entry.decision ??= decisionOf(decideWblist(plan, entry.facts, this.#wblist)));
  }

  #fetch(key: string, plan: WblistPlan): Promise<FactsEntry> {
    const running = this.#inFlight.get(key);
    if (running !== undefined) return running;
    const started = this.#clock.now();
    const controller = new AbortController();
    const timer = this.#clock.setTimeout(() => controller.abort(), this.#timeoutMs);
    const timeout = new Promise<never>((_, reject) =>
      controller.signal.addEventListener('abort', () => reject(new StoreError('Unavailable', `the ${this.#store.kind} store did not answer within ${this.#timeoutMs} ms`)), { once: true }),
    );
    const work = Promise.race([this.#store.facts(plan, controller.signal), timeout])
      .then((facts) => {
        this.#metrics?.storeLookupDuration.observe((this.#clock.now() - started) / 1000);
        const fetched: FactsEntry = { facts, expires: this.#clock.now() + this.#ttlMs, decision: undefined };
        this.#cache.set(key, fetched);
        return fetched;
      })
      .catch((error: unknown) => {
        const storeError = error instanceof StoreError ? error : new StoreError('Unavailable', `the ${this.#store.kind} store failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
        this.#metrics?.storeError(storeError.kind);
        this.#logger?.warn({ store: this.#store.kind, kind: storeError.kind }, `store lookup failed: ${storeError.message}`);
        throw storeError;
      })
      .finally(() => {
        this.#clock.clearTimeout(timer);
        this.#inFlight.delete(key);
      });
    this.#inFlight.set(key, work);
    return work;
  }

  #record(decision: Decision, request: PolicyRequest): Decision {
    this.#metrics?.decisions[decision.verdict].inc();
    this.#log?.record(decision, request);
    return decision;
  }
}

/** The list a pair stands for, so logs name it as they name a mailbox list. */
function listOf(direction: 'inbound' | 'outbound', wb: 'W' | 'B'): ListName {
  if (direction === 'inbound') return wb === 'W' ? 'allowedSenders' : 'rejectedSenders';
  return wb === 'W' ? 'allowedRecipients' : 'rejectedRecipients';
}

/** The daemon's Decision for a wblist decision: the account as mailbox, the party as entry. */
export function decisionOf(wblist: WblistDecision): Decision {
  if (wblist.verdict === 'whitelist' || wblist.verdict === 'blacklist') {
    return {
      verdict: wblist.verdict === 'whitelist' ? 'allow' : 'reject',
      action: wblist.action,
      direction: wblist.direction,
      mailbox: wblist.account,
      list: listOf(wblist.direction!, wblist.wb!),
      entry: wblist.party,
      wblist,
    };
  }
  return { verdict: wblist.verdict === 'skip' ? 'skip' : 'none', action: wblist.action, reason: wblist.reason, wblist };
}
