/**
 * What `apply` would do to a store, mailbox by mailbox (`mailwarden diff`, `apply --dry-run`):
 * pure decisions over what was observed, and their text. Reading the store is read-plan.ts.
 */
import { changedLists, diffLists, type ListsDiff } from '../restrictions/list-diff.ts';
import { EMPTY_LISTS, LIST_NAMES, type RestrictionLists } from '../restrictions/lists.ts';

/** One mailbox of the plan. */
export type MailboxPlan =
  /** A document's mailbox; `diff` is empty when the store already matches. */
  | { readonly kind: 'declared'; readonly mailbox: string; readonly source: string; readonly diff: ListsDiff }
  /** A document's mailbox the store does not have: apply fails for it (it never creates one). */
  | { readonly kind: 'missing'; readonly mailbox: string; readonly source: string }
  /** A mailbox with lists that no document declares, inside the prune scope: its lists go. */
  | { readonly kind: 'prune'; readonly mailbox: string; readonly diff: ListsDiff };

export function declaredPlan(mailbox: string, source: string, stored: RestrictionLists, wanted: RestrictionLists): MailboxPlan {
  return { kind: 'declared', mailbox, source, diff: diffLists(stored, wanted) };
}

export function prunePlan(mailbox: string, stored: RestrictionLists): MailboxPlan {
  return { kind: 'prune', mailbox, diff: diffLists(stored, EMPTY_LISTS) };
}

/** Whether applying the plan would write (or fail to write) anything. */
export function planChanges(plan: MailboxPlan): boolean {
  return plan.kind === 'missing' || changedLists(plan.diff).length > 0;
}

/**
 * Where pruning may clear lists: mailboxes of these domains (lower-case) that no document
 * declares. A mailbox is declared when a document names it or one of its other addresses.
 */
export interface PruneScope {
  readonly domains: ReadonlySet<string>;
  readonly declared: ReadonlySet<string>;
}

export function pruneScope(declaredMailboxes: readonly string[], domains?: readonly string[]): PruneScope {
  const declared = new Set(declaredMailboxes.map((m) => m.toLowerCase()));
  const scope = domains !== undefined && domains.length > 0 ? domains : [...declared].map(domainOf);
  return { domains: new Set(scope.map((d) => d.toLowerCase().replace(/^@/, ''))), declared };
}

/** Whether a stored mailbox (with its other addresses) is one pruning clears. */
export function isPruned(scope: PruneScope, mailbox: string, aliases: readonly string[] = []): boolean {
  if (!scope.domains.has(domainOf(mailbox))) return false;
  return ![mailbox, ...aliases].some((address) => scope.declared.has(address));
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1);
}

/**
 * The plan as text: a line per mailbox that would change (`~` written, `-` pruned, `!` no such
 * mailbox), a line per entry added (`+`) or removed (`-`), and a summary. Mailboxes that already
 * match are only counted, so a large unchanged set stays quiet.
 */
export function formatPlan(plans: readonly MailboxPlan[]): string {
  const lines: string[] = [];
  let change = 0;
  let prune = 0;
  let missing = 0;
  let unchanged = 0;
  for (const plan of plans) {
    if (plan.kind === 'missing') {
      missing++;
      lines.push(`! ${plan.mailbox} (${plan.source}): no such mailbox in the store; apply fails for it (mailwarden never creates mailboxes)`);
      continue;
    }
    if (!planChanges(plan)) {
      unchanged++;
      continue;
    }
    if (plan.kind === 'prune') {
      prune++;
      lines.push(`- ${plan.mailbox}: no document declares it (pruned)`);
    } else {
      change++;
      lines.push(`~ ${plan.mailbox} (${plan.source})`);
    }
    lines.push(...diffLines(plan.diff));
  }
  const counts = [`${change} to change`, ...(prune > 0 ? [`${prune} to prune`] : []), ...(missing > 0 ? [`${missing} not found`] : []), `${unchanged} unchanged`];
  lines.push(change + prune + missing === 0 ? `no changes: ${unchanged} mailbox(es) match the store` : `${counts.join(', ')}`);
  return lines.join('\n') + '\n';
}

function diffLines(diff: ListsDiff): string[] {
  const width = Math.max(...LIST_NAMES.map((n) => n.length));
  const out: string[] = [];
  for (const name of LIST_NAMES) {
    for (const entry of diff[name].added) out.push(`    ${name.padEnd(width)}  + ${entry}`);
    for (const entry of diff[name].removed) out.push(`    ${name.padEnd(width)}  - ${entry}`);
  }
  return out;
}
