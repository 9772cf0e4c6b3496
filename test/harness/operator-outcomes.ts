// How often the operator has concluded a reconcile of a MailUserRestriction with a reason, read
// from its own metric: a test waits for "the operator looked at the store N more times" instead of
// sleeping.
import type { Counter } from 'prom-client';
import type { Operator } from '../../src/operator/manager.ts';
import { eventually } from './operator-env.ts';

/** How many reconciles of a MailUserRestriction have concluded `reason` so far. */
export async function restrictionOutcomes(operator: Operator, reason: string): Promise<number> {
  const metric = operator.registry.getSingleMetric('mailwarden_operator_outcomes_total') as Counter | undefined;
  const values = (await metric?.get())?.values ?? [];
  return values.filter((v) => v.labels.kind === 'MailUserRestriction' && v.labels.reason === reason).reduce((sum, v) => sum + v.value, 0);
}

/** Waits until `n` more reconciles of MailUserRestrictions concluded `reason`. */
export async function moreReconciles(operator: Operator, reason: string, n: number): Promise<void> {
  const start = await restrictionOutcomes(operator, reason);
  await eventually(`${n} more ${reason} reconciles`, async () => (await restrictionOutcomes(operator, reason)) >= start + n);
}
