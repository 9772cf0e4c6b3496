import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { setCondition, type Condition } from '../api/conditions.ts';
import { CONTAINER_NAME, POLICY_DAEMON_LABEL } from './policy-daemon-objects.ts';

/**
 * Which injected pods run without their policy daemon, as plain data from the pods the informer
 * holds. Postfix keeps running when the sidecar fails (it answers with its default_action), so
 * without this nobody would notice: the PolicyDaemon's status and an Event say it.
 */

/** The condition type on a Sidecar-mode PolicyDaemon. */
export const SIDECARS_CONDITION = 'SidecarsRunning';
export const SIDECAR_NOT_RUNNING = 'SidecarNotRunning';
export const SIDECARS_RUNNING = 'AllSidecarsRunning';
/** At most this many pod names in the status; the count is always whole. */
export const MAX_NAMED_PODS = 20;

export interface SidecarProblem {
  readonly pod: string;
  /** The kubelet's word for it: ErrImageNeverPull, ImagePullBackOff, CrashLoopBackOff, Error… */
  readonly reason: string;
}

export interface SidecarHealth {
  /** Injected pods that are live (not finished, not being deleted). */
  readonly injected: number;
  /** Of those, the pods whose daemon container the kubelet reports ready. */
  readonly ready: number;
  readonly notRunning: readonly SidecarProblem[];
}

// Waiting for these is a start in progress, not a failure.
const STARTING = new Set(['ContainerCreating', 'PodInitializing']);

/** The daemon container's status in a pod: an ordinary container, or (pods injected by an
 *  earlier version) a native sidecar among the init containers. */
function daemonStatus(pod: V1Pod): V1ContainerStatus | undefined {
  const named = (list: V1ContainerStatus[] | undefined) => list?.find((s) => s.name === CONTAINER_NAME);
  return named(pod.status?.containerStatuses) ?? named(pod.status?.initContainerStatuses);
}

/** Why the daemon of this pod is not running, or undefined when it runs or is still starting. */
export function sidecarProblem(pod: V1Pod): string | undefined {
  const status = daemonStatus(pod);
  if (status === undefined) return undefined; // not started by the kubelet yet (or not scheduled)
  if (status.state?.running !== undefined) {
    // Running again after a failure but not yet listening (its startup probe has not passed): a
    // crash loop spends much of each round here, so this is still the failure, not a recovery.
    if (status.started === false && (status.restartCount ?? 0) > 0) return status.lastState?.terminated?.reason ?? 'Restarting';
    return undefined;
  }
  const waiting = status.state?.waiting?.reason;
  if (waiting !== undefined) return STARTING.has(waiting) ? undefined : waiting;
  if (status.state?.terminated !== undefined) return status.state.terminated.reason ?? 'Terminated';
  return undefined;
}

export function sidecarHealth(pods: readonly V1Pod[], daemonName: string): SidecarHealth {
  const live = pods.filter(
    (p) => p.metadata?.labels?.[POLICY_DAEMON_LABEL] === daemonName && p.metadata?.deletionTimestamp === undefined && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed',
  );
  const notRunning: SidecarProblem[] = [];
  for (const pod of live) {
    const reason = sidecarProblem(pod);
    if (reason !== undefined) notRunning.push({ pod: pod.metadata?.name ?? '', reason });
  }
  notRunning.sort((a, b) => a.pod.localeCompare(b.pod));
  return { injected: live.length, ready: live.filter((p) => daemonStatus(p)?.ready === true).length, notRunning };
}

/** The condition's message: how many, and which pods with the kubelet's reason. */
export function sidecarMessage(health: SidecarHealth): string {
  if (health.notRunning.length === 0) return `the policy daemon runs in all ${health.injected} injected pods`;
  const named = health.notRunning.slice(0, MAX_NAMED_PODS).map((p) => `${p.pod} (${p.reason})`);
  const more = health.notRunning.length > MAX_NAMED_PODS ? ` and ${health.notRunning.length - MAX_NAMED_PODS} more` : '';
  return `${health.notRunning.length} of ${health.injected} injected pods run without the policy daemon (Postfix answers them with its default_action): ${named.join(', ')}${more}`;
}

/** What the sidecars add to a PolicyDaemon's status: a condition, two fields, maybe an Event. */
export interface SidecarReport {
  readonly conditions: Condition[];
  readonly fields: { readonly sidecarsNotRunning: number | null; readonly sidecarsNotRunningPods: readonly string[] | null };
  readonly event?: { readonly type: 'Normal' | 'Warning'; readonly reason: string; readonly message: string };
}

/**
 * The SidecarsRunning condition and fields for `health` (undefined outside Sidecar mode: both
 * go away). A Warning Event whenever the set of pods without their daemon changes to a
 * non-empty one, so each new failure is news; a Normal one when the last of them recovers.
 */
export function sidecarReport(conditions: readonly Condition[] | undefined, previousPods: readonly string[] | undefined, health: SidecarHealth | undefined, generation: number | undefined, now: Date): SidecarReport {
  if (health === undefined) {
    return { conditions: (conditions ?? []).filter((c) => c.type !== SIDECARS_CONDITION), fields: { sidecarsNotRunning: null, sidecarsNotRunningPods: null } };
  }
  const failing = health.notRunning.length > 0;
  const message = sidecarMessage(health);
  const reason = failing ? SIDECAR_NOT_RUNNING : SIDECARS_RUNNING;
  const next = setCondition(conditions, { type: SIDECARS_CONDITION, status: failing ? 'False' : 'True', reason, message, observedGeneration: generation }, now);
  const pods = health.notRunning.slice(0, MAX_NAMED_PODS).map((p) => p.pod);
  const before = previousPods ?? [];
  const changed = pods.length !== before.length || pods.some((p, i) => p !== before[i]);
  let event: SidecarReport['event'];
  if (failing && changed) event = { type: 'Warning', reason, message };
  else if (!failing && before.length > 0) event = { type: 'Normal', reason, message };
  return { conditions: next, fields: { sidecarsNotRunning: health.notRunning.length, sidecarsNotRunningPods: pods }, ...(event ? { event } : {}) };
}
