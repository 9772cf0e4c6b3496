/**
 * The daemon's start-up check of its store's schema: a table or attribute the configuration names
 * but the store lacks is a configuration error, said once and clearly (the daemon is not ready and
 * the log names what is missing), instead of a failure answer to every request. A store that
 * cannot be reached yet is asked again; the check ends at its first definite answer, or keeps
 * asking while the schema is wrong (an admin may create the columns or fix the configuration).
 */
import { StoreError, type StoreReader } from '../stores/store.ts';
import { realClock, type Clock } from '../time/clock.ts';

export interface SchemaCheckOptions {
  readonly store: StoreReader;
  /** A pino logger fits. */
  readonly logger: { error(obj: object, msg: string): void; info(obj: object, msg: string): void; debug(obj: object, msg: string): void };
  /** Between attempts while the store is unreachable or its schema wrong (default 10 s). */
  readonly retryMs?: number;
  /** One attempt's time limit (default 5 s). */
  readonly timeoutMs?: number;
  readonly clock?: Clock;
}

export class SchemaCheck {
  readonly #options: SchemaCheckOptions;
  #problem: string | undefined;
  #settled = false;
  #stopped = false;
  #timer: unknown;

  constructor(options: SchemaCheckOptions) {
    this.#options = options;
  }

  /** What is wrong with the store's schema, when the last attempt found something. */
  get problem(): string | undefined {
    return this.#problem;
  }

  /** The first attempt has finished (found the schema, found it wrong, or found the store down). */
  get settled(): boolean {
    return this.#settled;
  }

  /** Runs the first attempt (not awaited by the daemon) and schedules any further ones. */
  async start(): Promise<void> {
    const verify = this.#options.store.verifySchema?.bind(this.#options.store);
    if (verify === undefined) {
      this.#settled = true;
      return;
    }
    await this.#attempt(verify);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) (this.#options.clock ?? realClock).clearTimeout(this.#timer);
  }

  async #attempt(verify: (signal: AbortSignal) => Promise<void>): Promise<void> {
    if (this.#stopped) return;
    let again = false;
    try {
      await verify(AbortSignal.timeout(this.#options.timeoutMs ?? 5_000));
      if (this.#problem !== undefined) this.#options.logger.info({}, 'store schema found: ready');
      this.#problem = undefined;
    } catch (error) {
      if (error instanceof StoreError && error.kind === 'Misconfigured') {
        // Said once per distinct problem, not on every attempt.
        if (error.message !== this.#problem) this.#options.logger.error({ store: this.#options.store.kind }, `store misconfigured, not ready: ${error.message}`);
        this.#problem = error.message;
      } else {
        this.#options.logger.debug({ err: (error as Error).message }, 'store schema not checked yet: store unavailable');
      }
      again = true;
    }
    this.#settled = true;
    if (!again || this.#stopped) return;
    this.#timer = (this.#options.clock ?? realClock).setTimeout(() => void this.#attempt(verify), this.#options.retryMs ?? 10_000);
  }
}
