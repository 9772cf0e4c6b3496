/**
 * The log lines of decisions: a rejection at info and a failure at warn, each naming the request
 * and which mailbox, list and entry decided (what a mail admin looks for); allows at debug.
 */
import type { Decision } from '../restrictions/decide.ts';
import { jsonString, preformattedLines, type Logger, type PreformattedLines } from '../observability/logger.ts';
import type { PolicyRequest } from './request.ts';

const MESSAGE = 'policy decision';

export class DecisionLog {
  readonly #logger: Logger;
  /** Rejections can be a large share of all requests: their line skips pino's generic path. */
  readonly #rejections: PreformattedLines | undefined;
  /** Allows are logged at debug: their log object is built only when debug is on. */
  readonly #logAllows: boolean;
  #action = '';
  #quotedAction = '""';

  constructor(logger: Logger) {
    this.#logger = logger;
    this.#rejections = preformattedLines(logger, 'info', MESSAGE);
    const levels = logger as Logger & { isLevelEnabled?: (level: string) => boolean };
    this.#logAllows = levels.isLevelEnabled?.('debug') ?? true;
  }

  record(decision: Decision, request: PolicyRequest): void {
    switch (decision.verdict) {
      case 'reject':
        if (this.#rejections === undefined) this.#logger.info(fieldsOf(decision, request), MESSAGE);
        else if (this.#rejections.enabled()) this.#rejections.write(this.#rejectionFields(decision, request));
        return;
      case 'failure':
        this.#logger.warn(fieldsOf(decision, request), MESSAGE);
        return;
      case 'allow':
        if (this.#logAllows) {
          this.#logger.debug({ verdict: 'allow', sender: request.sender, recipient: request.recipient, mailbox: decision.mailbox, list: decision.list, entry: decision.entry }, MESSAGE);
        }
        return;
      default:
    }
  }

  /** The fields of {@link fieldsOf}, serialised as pino would (undefined and empty optional ones left out). */
  #rejectionFields(decision: Decision, request: PolicyRequest): string {
    if (decision.action !== this.#action) {
      // The reject action is one configured text: quoted once, not per line.
      this.#action = decision.action;
      this.#quotedAction = jsonString(decision.action);
    }
    return (
      `,"verdict":"reject","action":${this.#quotedAction}` +
      optional(',"sender":', request.sender) +
      optional(',"recipient":', request.recipient) +
      optional(',"saslUsername":', request.saslUsername || undefined) +
      optional(',"mailbox":', decision.mailbox) +
      optional(',"list":', decision.list) +
      optional(',"entry":', decision.entry) +
      optional(',"reason":', decision.reason) +
      optional(',"instance":', request.instance) +
      optional(',"queueId":', request.queueId || undefined)
    );
  }
}

function optional(key: string, value: string | undefined): string {
  return value === undefined ? '' : key + jsonString(value);
}

function fieldsOf(decision: Decision, request: PolicyRequest): Record<string, string | undefined> {
  return {
    verdict: decision.verdict,
    action: decision.action,
    sender: request.sender,
    recipient: request.recipient,
    saslUsername: request.saslUsername || undefined,
    mailbox: decision.mailbox,
    list: decision.list,
    entry: decision.entry,
    reason: decision.reason,
    instance: request.instance,
    queueId: request.queueId || undefined,
  };
}
