import type { PolicyDaemonSpec } from '../api/policy-daemon.ts';

/**
 * What a PolicyDaemon may ask for beyond the defaults, as the cluster admin set it in the chart's
 * values (the operator's --policyd-allowed-image and --policyd-allowed-action flags). A
 * PolicyDaemon's image runs with its MailBackend's credentials inside every Postfix pod it
 * selects, and REDIRECT, BCC, FILTER, HOLD or DISCARD answers divert or drop mail: neither is a
 * namespace's to choose on its own.
 */
export interface DaemonAllowance {
  /** The operator's own image (always allowed). */
  readonly defaultImage: string;
  /** Further images a PolicyDaemon may name. */
  readonly images?: readonly string[];
  /** Restricted action words a PolicyDaemon may answer with. */
  readonly actions?: readonly string[];
}

/** Postfix access(5) actions that divert, copy, queue-hold or drop mail. */
export const RESTRICTED_ACTIONS: readonly string[] = Object.freeze(['REDIRECT', 'BCC', 'FILTER', 'HOLD', 'DISCARD']);

/** Why this PolicyDaemon is refused (one line for its status), or undefined when allowed. */
export function daemonRefusal(spec: PolicyDaemonSpec, allowance: DaemonAllowance): string | undefined {
  const problems: string[] = [];
  if (spec.image !== undefined && spec.image !== allowance.defaultImage && !(allowance.images ?? []).includes(spec.image)) {
    problems.push(`image ${spec.image} is not one the cluster admin allows (chart value policyDaemon.allowedImages)`);
  }
  for (const field of ['allowAction', 'rejectAction', 'failureAction'] as const) {
    const action = spec.policy[field];
    if (action === undefined) continue;
    const word = action.split(' ', 1)[0]!;
    if (RESTRICTED_ACTIONS.includes(word) && !(allowance.actions ?? []).includes(word)) {
      problems.push(`policy.${field} ${word} is not an action the cluster admin allows (chart value policyDaemon.allowedActions)`);
    }
  }
  return problems.length === 0 ? undefined : problems.join('; ');
}
