import { LRUCache } from 'lru-cache';
import type { CompiledMailbox } from '../restrictions/mailbox.ts';
import type { Logger } from '../observability/logger.ts';
import type { PolicyMetrics } from '../observability/metrics.ts';

/**
 * Counts the invalid entries of each mailbox compiled, and logs them once per mailbox and
 * content: a mailbox is compiled again at every refetch or reload, and the same mistake must
 * not fill the log.
 */
export class InvalidEntries {
  readonly #metrics: PolicyMetrics | undefined;
  readonly #logger: Logger | undefined;
  /** The invalid entries last logged, per mailbox (by their texts). */
  readonly #logged = new LRUCache<string, string>({ max: 10_000 });

  constructor(metrics: PolicyMetrics | undefined, logger: Logger | undefined) {
    this.#metrics = metrics;
    this.#logger = logger;
  }

  /** Called for every mailbox compiled; does nothing when all its entries are valid. */
  check(key: string, mailbox: CompiledMailbox): void {
    if (mailbox.invalid.length === 0) return;
    this.#metrics?.invalidEntries.inc(mailbox.invalid.length);
    const signature = mailbox.invalid.map((i) => `${i.list}:${i.entry.text}`).join('\n');
    if (this.#logged.get(key) === signature) return;
    this.#logged.set(key, signature);
    this.#logger?.warn(
      { mailbox: key, invalid: mailbox.invalid.map((i) => ({ list: i.list, entry: i.entry.text, reason: i.entry.reason })) },
      `mailbox ${key} has ${mailbox.invalid.length} invalid entries, ignored`,
    );
  }
}
