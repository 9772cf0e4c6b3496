import { decide, failed, planDecision, skipped, type Decision, type DecisionPlan } from '../restrictions/decide.ts';
import type { DecisionOptions } from '../restrictions/options.ts';
import type { Logger } from '../observability/logger.ts';
import type { PolicyMetrics } from '../observability/metrics.ts';
import { DecisionLog } from './decision-log.ts';
import { RESOLVED, type MailboxResolver, type Resolution } from './mailbox-resolver.ts';
import type { PolicyHandler, PolicyRequest } from './request.ts';

/**
 * Decides one request end to end: plan → resolve mailboxes → decide. Returns the full
 * decision (for `decide --explain`); {@link createPolicyHandler} adapts it to the server.
 */
export class DecisionService {
  readonly #resolver: MailboxResolver;
  readonly #options: DecisionOptions;
  readonly #metrics: PolicyMetrics | undefined;
  readonly #log: DecisionLog | undefined;

  constructor(params: { resolver: MailboxResolver; options: DecisionOptions; metrics?: PolicyMetrics; logger?: Logger }) {
    this.#resolver = params.resolver;
    this.#options = params.options;
    this.#metrics = params.metrics;
    this.#log = params.logger === undefined ? undefined : new DecisionLog(params.logger);
  }

  get options(): DecisionOptions {
    return this.#options;
  }

  /** Synchronous when every mailbox is cached. Never rejects: failures become the failure action. */
  decide(request: PolicyRequest): Decision | Promise<Decision> {
    const plan = planDecision(request, this.#options);
    if (typeof plan === 'string') return this.#record(skipped(plan), request);
    if (this.#resolver.inMemory) return this.#finish(plan, RESOLVED, request);
    const resolution = this.#resolver.resolve(plan.keys);
    if (!(resolution instanceof Promise)) return this.#finish(plan, resolution, request);
    return resolution.then(
      (r) => this.#finish(plan, r, request),
      (error: unknown) => this.#record(failed(`unexpected error: ${(error as Error)?.message}`, this.#options), request),
    );
  }

  #finish(plan: DecisionPlan, resolution: Resolution, request: PolicyRequest): Decision {
    const mailboxes = resolution.mailboxes;
    const decision =
      resolution.failed !== undefined
        ? failed(resolution.failed.message, this.#options)
        : decide(plan, mailboxes === undefined ? this.#resolver.lookup : (key) => mailboxes.get(key) ?? undefined, this.#options);
    return this.#record(decision, request);
  }

  #record(decision: Decision, request: PolicyRequest): Decision {
    this.#metrics?.decisions[decision.verdict].inc();
    this.#log?.record(decision, request);
    return decision;
  }
}

/** The server-facing handler: the action text only. */
export function createPolicyHandler(service: DecisionService): PolicyHandler {
  return (request) => {
    const decision = service.decide(request);
    return decision instanceof Promise ? decision.then(actionOf) : decision.action;
  };
}

function actionOf(decision: Decision): string {
  return decision.action;
}
