import { z } from 'zod';

/**
 * Status conditions per the Kubernetes API conventions: one entry per type, a CamelCase reason,
 * a human message, and the generation the condition was computed for.
 */
export const conditionSchema = z.object({
  type: z.string().describe('Ready (the one condition mailwarden sets).'),
  status: z.enum(['True', 'False', 'Unknown']).describe('True, False or Unknown.'),
  reason: z.string().describe('A CamelCase reason, e.g. Applied, Conflict, MailboxNotFound.'),
  message: z.string().describe('What happened, for a person.'),
  lastTransitionTime: z.string().describe('When status last changed.'),
  observedGeneration: z.number().int().optional().describe('The spec generation the condition was computed for.'),
});

export type Condition = z.infer<typeof conditionSchema>;
export type ConditionStatus = Condition['status'];

/**
 * Returns `conditions` with `next` set: the transition time is kept when the status did not
 * change (so a retry does not look like a transition).
 */
export function setCondition(conditions: readonly Condition[] | undefined, next: Omit<Condition, 'lastTransitionTime'>, now: Date): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === next.type);
  const previous = index >= 0 ? list[index] : undefined;
  const lastTransitionTime = previous !== undefined && previous.status === next.status ? previous.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const condition: Condition = { ...next, lastTransitionTime };
  if (index >= 0) list[index] = condition;
  else list.push(condition);
  return list;
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/**
 * True when two condition lists say the same, ignoring transition times. Fields are compared in
 * a fixed order, not as serialised objects: the API server returns them in its own key order
 * (alphabetical), so serialised lists would always differ, and each reconcile would write status
 * again and so queue its object again, without end.
 */
export function sameConditions(a: readonly Condition[] | undefined, b: readonly Condition[] | undefined): boolean {
  const strip = (list: readonly Condition[] | undefined) =>
    JSON.stringify(
      (list ?? [])
        .map((c) => [c.type, c.status, c.reason, c.message, c.observedGeneration ?? null])
        .sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    );
  return strip(a) === strip(b);
}
