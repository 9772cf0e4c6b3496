import type { MailboxLookup } from '../restrictions/decide.ts';
import type { MailboxRecord } from '../restrictions/lists.ts';
import { compileMailbox, type CompiledMailbox } from '../restrictions/mailbox.ts';
import type { DecisionOptions } from '../restrictions/options.ts';
import type { Logger } from '../observability/logger.ts';
import type { PolicyMetrics } from '../observability/metrics.ts';
import { InvalidEntries } from './invalid-entries.ts';
import { StoreError } from '../stores/store.ts';
import type { MailboxKeys, MailboxSource, Resolution } from './mailbox-source.ts';

/**
 * Keys a store does not have, remembered at most (about 100 B each): outside senders and
 * recipients are half the traffic and unbounded in number.
 */
const MAX_ABSENT = 100_000;

/**
 * The mailboxes of a store that holds its records in memory and answers a key synchronously
 * (`peek`): no cache, no TTL, no promise. Each mailbox is compiled on first use and kept under
 * its key until the store changes, so a request costs one hash lookup per key it reads; a key the
 * store does not have is remembered too (null), so it costs one lookup as well, not two.
 *
 * Every key is at hand, so `resolve` returns one view over all of them and `decide` reads only
 * the keys it gets to (often the first).
 */
export class InMemorySource implements MailboxSource {
  readonly #peek: (key: string) => MailboxRecord | undefined;
  readonly #decision: DecisionOptions;
  readonly #invalid: InvalidEntries;
  readonly #compiled = new Map<string, CompiledMailbox | null>();
  #absent = 0;
  readonly #resolved: Resolution;
  /**
   * A store that fills in the background (kubernetes://): its `loaded`, asked until it first says
   * true and then dropped (once true it stays true), so that a loaded store's requests cost no
   * call into it; and the failure answered until then.
   */
  #loaded: (() => boolean) | undefined;
  readonly #notLoaded: Resolution | undefined;

  constructor(params: {
    peek: (key: string) => MailboxRecord | undefined;
    /** The store's MailboxStore.loaded, when it has one. */
    loaded?: () => boolean;
    kind?: string;
    decision: DecisionOptions;
    metrics?: PolicyMetrics;
    logger?: Logger;
  }) {
    this.#peek = params.peek;
    this.#loaded = params.loaded;
    this.#notLoaded =
      params.loaded === undefined ? undefined : Object.freeze({ failed: new StoreError('Unavailable', `the ${params.kind ?? 'in-memory'} store has not loaded its data yet`) });
    this.#decision = params.decision;
    this.#invalid = new InvalidEntries(params.metrics, params.logger);
    const lookup: MailboxLookup = (key) => this.#lookup(key);
    this.#resolved = Object.freeze({ failed: undefined, mailboxes: lookup });
  }

  /** Every key is at hand: the keys themselves are never read. */
  resolve(_wanted: MailboxKeys): Resolution {
    if (this.#loaded !== undefined) {
      if (!this.#loaded()) return this.#notLoaded!;
      this.#loaded = undefined;
    }
    return this.#resolved;
  }

  clear(keys?: readonly string[]): void {
    if (keys === undefined) {
      this.#compiled.clear();
      this.#absent = 0;
      return;
    }
    // Only the mailboxes the store says changed: the rest stay compiled.
    for (const key of keys) {
      if (this.#compiled.get(key) === null) this.#absent--;
      this.#compiled.delete(key);
    }
  }

  #lookup(key: string): CompiledMailbox | undefined {
    const known = this.#compiled.get(key);
    if (known !== undefined) return known ?? undefined;
    const record = this.#peek(key);
    if (record === undefined) {
      // Start over rather than grow without end.
      if (++this.#absent > MAX_ABSENT) this.clear();
      this.#compiled.set(key, null);
      return undefined;
    }
    const mailbox = compileMailbox(record, this.#decision);
    this.#invalid.check(key, mailbox);
    this.#compiled.set(key, mailbox);
    return mailbox;
  }
}
