import type { V1Container, V1Pod } from '@kubernetes/client-node';
import type { MailBackendSpec } from '../api/mail-backend.ts';
import { selectorMatches } from '../api/policy-daemon.ts';
import {
  CONTAINER_NAME,
  daemonContainer,
  daemonVolumes,
  INJECT_LABEL,
  INJECTED_ANNOTATION,
  POLICY_DAEMON_LABEL,
  type PolicyDaemonRef,
} from '../reconcilers/policy-daemon-objects.ts';

/**
 * Sidecar injection as a pure function: a pod and the PolicyDaemons of its namespace in, a
 * JSON Patch (RFC 6902) out. Nothing here can block a pod: every "not for us" is an empty patch.
 */

/** One JSON Patch operation; injection only ever adds. */
export interface PatchOperation {
  readonly op: 'add';
  readonly path: string;
  readonly value: unknown;
}

export interface InjectionContext {
  /** Sidecar-mode PolicyDaemons of the pod's namespace, with their specs validated. */
  readonly daemons: readonly PolicyDaemonRef[];
  /** The validated MailBackend spec a daemon names, or undefined when it is missing or invalid. */
  readonly backendOf: (daemon: PolicyDaemonRef) => MailBackendSpec | undefined;
  /** The daemon image when the PolicyDaemon names none. */
  readonly image: string;
  /** Pull secrets the daemon's image needs (names in the pod's namespace); added when missing. */
  readonly imagePullSecrets?: readonly string[];
}

export type InjectionResult =
  | { readonly injected: false; readonly reason: string; readonly warnings?: readonly string[] }
  | { readonly injected: true; readonly daemon: string; readonly patch: readonly PatchOperation[]; readonly warnings: readonly string[] };

/** What to add to `pod` so that it runs the daemon its labels select, if any. */
export function planInjection(pod: V1Pod, context: InjectionContext): InjectionResult {
  const podLabels = pod.metadata?.labels ?? {};
  if (podLabels[INJECT_LABEL] !== 'true') return { injected: false, reason: `no ${INJECT_LABEL}: "true" label` };
  if (pod.metadata?.annotations?.[INJECTED_ANNOTATION] !== undefined || hasDaemonContainer(pod)) {
    return { injected: false, reason: 'already injected' };
  }
  // The oldest-named first, so the choice among several matches is stable across replicas.
  const matching = context.daemons.filter((d) => d.spec.mode === 'Sidecar' && d.spec.podSelector !== undefined && selectorMatches(d.spec.podSelector, podLabels)).sort((a, b) => a.name.localeCompare(b.name));
  const daemon = matching[0];
  if (daemon === undefined) return { injected: false, reason: 'no Sidecar PolicyDaemon selects the pod' };
  const warnings = matching.length > 1 ? [`mailwarden: PolicyDaemons ${matching.map((d) => d.name).join(', ')} all select this pod; injected ${daemon.name}`] : [];
  // store Kubernetes needs no MailBackend (backend stays undefined).
  const backend = daemon.spec.backendRef === undefined ? undefined : context.backendOf(daemon);
  if (daemon.spec.backendRef !== undefined && backend === undefined) {
    return { injected: false, reason: `PolicyDaemon ${daemon.name}: its MailBackend is missing or invalid`, warnings: [`mailwarden: PolicyDaemon ${daemon.name} not injected: MailBackend ${daemon.spec.backendRef.name} is missing or invalid`] };
  }
  const container = daemonContainer(daemon, backend, context.image);
  const volumes = daemonVolumes(daemon, backend).filter((v) => !(pod.spec?.volumes ?? []).some((existing) => existing.name === v.name));
  // An ordinary container beside Postfix, never an init container (native sidecar): the kubelet
  // starts Postfix only after every init container has started, so a daemon whose image cannot
  // be pulled or that crash-loops would keep mail down. Beside it, Postfix starts whatever the
  // daemon does, and meets an unreachable daemon with its own default_action (docs/postfix.md).
  const patch: PatchOperation[] = [{ op: 'add', path: '/spec/containers/-', value: container }];
  patch.push(...appendAll('/spec/volumes', pod.spec?.volumes, volumes));
  const pullSecrets = (context.imagePullSecrets ?? []).filter((name) => !(pod.spec?.imagePullSecrets ?? []).some((s) => s.name === name)).map((name) => ({ name }));
  patch.push(...appendAll('/spec/imagePullSecrets', pod.spec?.imagePullSecrets, pullSecrets));
  patch.push(...setKey('/metadata/labels', pod.metadata?.labels, POLICY_DAEMON_LABEL, daemon.name));
  patch.push(...setKey('/metadata/annotations', pod.metadata?.annotations, INJECTED_ANNOTATION, daemon.name));
  return { injected: true, daemon: daemon.name, patch, warnings };
}

function hasDaemonContainer(pod: V1Pod): boolean {
  const named = (list: V1Container[] | undefined) => (list ?? []).some((c) => c.name === CONTAINER_NAME);
  return named(pod.spec?.initContainers) || named(pod.spec?.containers);
}

function appendAll<T>(path: string, existing: readonly T[] | undefined, items: readonly T[]): PatchOperation[] {
  if (items.length === 0) return [];
  if (existing === undefined || existing.length === 0) return [{ op: 'add', path, value: [...items] }];
  return items.map((value) => ({ op: 'add', path: `${path}/-`, value }));
}

function setKey(path: string, map: Readonly<Record<string, string>> | undefined, key: string, value: string): PatchOperation[] {
  if (map === undefined) return [{ op: 'add', path, value: { [key]: value } }];
  return [{ op: 'add', path: `${path}/${escapePointer(key)}`, value }];
}

/** RFC 6901: `~` and `/` in a key are written `~0` and `~1`. */
export function escapePointer(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}
