import { decide, failed, planDecision, skipped, type Decision, type DecisionPlan } from '../restrictions/decide.ts';
import type { DecisionOptions } from '../restrictions/options.ts';
import type { Logger } from '../observability/logger.ts';
import type { PolicyMetrics } from '../observability/metrics.ts';
import { DecisionLog } from './decision-log.ts';
import type { MailboxSource, Resolution } from './mailbox-source.ts';
import type { PolicyRequest } from './request.ts';

/** What the server asks: an answer per request, and what to answer when deciding fails. */
export interface Decider {
  readonly options: DecisionOptions;
  readonly failureAction: string;
  decide(request: PolicyRequest): Decision | Promise<Decision>;
}

/**
 * Decides one request end to end: plan → resolve its mailboxes → decide over them. Returns the
 * full decision (for `decide --explain`); {@link answerOf} gives the server the action text.
 *
 * It owns the decision options, the failure action among them: the daemon swaps the whole
 * service on reload, and the server asks the service in force what to answer when deciding
 * crashes, so every failure is answered by one configuration.
 */
export class DecisionService implements Decider {
  readonly #source: MailboxSource;
  readonly #options: DecisionOptions;
  readonly #metrics: PolicyMetrics | undefined;
  readonly #log: DecisionLog | undefined;

  constructor(params: { source: MailboxSource; options: DecisionOptions; metrics?: PolicyMetrics; logger?: Logger }) {
    this.#source = params.source;
    this.#options = params.options;
    this.#metrics = params.metrics;
    this.#log = params.logger === undefined ? undefined : new DecisionLog(params.logger);
  }

  get options(): DecisionOptions {
    return this.#options;
  }

  /** What is answered when the mailboxes cannot be known, or deciding itself fails. */
  get failureAction(): string {
    return this.#options.failureAction;
  }

  /** Synchronous when every mailbox is at hand. Never rejects: store failures become the failure action. */
  decide(request: PolicyRequest): Decision | Promise<Decision> {
    const plan = planDecision(request, this.#options);
    if (typeof plan === 'string') return this.#record(skipped(plan), request);
    const resolution = this.#source.resolve(plan);
    if (!(resolution instanceof Promise)) return this.#finish(plan, resolution, request);
    return resolution.then(
      (r) => this.#finish(plan, r, request),
      (error: unknown) => this.#record(failed(`unexpected error: ${(error as Error)?.message}`, this.#options), request),
    );
  }

  #finish(plan: DecisionPlan, resolution: Resolution, request: PolicyRequest): Decision {
    const decision = resolution.failed !== undefined ? failed(resolution.failed.message, this.#options) : decide(plan, resolution.mailboxes, this.#options);
    return this.#record(decision, request);
  }

  #record(decision: Decision, request: PolicyRequest): Decision {
    this.#metrics?.decisions[decision.verdict].inc();
    this.#log?.record(decision, request);
    return decision;
  }
}

/** The server-facing answer to `request`: the action text only. */
export function answerOf(service: Decider, request: PolicyRequest): string | Promise<string> {
  const decision = service.decide(request);
  return decision instanceof Promise ? decision.then(actionOf) : decision.action;
}

function actionOf(decision: Decision): string {
  return decision.action;
}
