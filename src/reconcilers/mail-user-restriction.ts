import { findCondition, sameConditions, setCondition, type Condition } from '../api/conditions.ts';
import { ConflictError, type MailwardenKubeClient } from '../kube/kube-client.ts';
import { formatIssues } from '../api/issues.ts';
import { specSchema, storeListsOf, type MailUserRestrictionSpec } from '../api/mail-user-restriction.ts';
import { changedLists, diffLists } from '../restrictions/list-diff.ts';
import type { RestrictionLists } from '../restrictions/lists.ts';
import type { Logger } from '../observability/logger.ts';
import { StoreError } from '../stores/store.ts';
import type { BackendConnections } from './backend-connections.ts';
import { parseBackendSpec } from './backend-spec.ts';
import { backendSecretsOf, CredentialsError } from './credentials.ts';
import { ownerOf, targetKey } from '../api/restriction-owner.ts';
import type { BackendObject, EventSink, Lister, RestrictionObject, SecretLister } from './types.ts';
import { splitKey } from '../api/object-key.ts';

export const FINALIZER = 'mailwarden.io/cleanup';

/** Condition reasons, as the API conventions want them: CamelCase, stable, documented. */
export const Reason = {
  Applied: 'Applied',
  DriftCorrected: 'DriftCorrected',
  InvalidSpec: 'InvalidSpec',
  BackendNotFound: 'BackendNotFound',
  BackendUnavailable: 'BackendUnavailable',
  MailboxNotFound: 'MailboxNotFound',
  Conflict: 'Conflict',
  /** managementPolicy Observe: the store holds what the spec says (nothing written). */
  StoreMatches: 'StoreMatches',
  /** managementPolicy Observe: the store differs from the spec (nothing written; the message says how). */
  StoreDiffers: 'StoreDiffers',
  /** No backendRef: valid, owns its mailbox, and a PolicyDaemon with store Kubernetes serves it. */
  Served: 'Served',
  /** No backendRef and no PolicyDaemon with store Kubernetes in the namespace to decide from it. */
  NotServed: 'NotServed',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

/** A restriction's MailBackend spec is not valid, so its store cannot be opened. */
class InvalidBackendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidBackendError';
  }
}

/** Retry later with backoff, after the status said why. */
export class RetryError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RetryError';
  }
}

export interface RestrictionReconcilerDeps {
  readonly restrictions: Lister<RestrictionObject>;
  readonly backends: Lister<BackendObject>;
  readonly secrets: SecretLister;
  readonly connections: BackendConnections;
  readonly client: Pick<MailwardenKubeClient, 'patchStatus' | 'setFinalizers'>;
  readonly events: EventSink;
  readonly logger: Logger;
  readonly now?: () => Date;
  /** How soon a restriction whose mailbox does not exist yet looks again (default 30 s). */
  readonly mailboxRetryMs?: number;
  /** Counts drift corrections (a metric). */
  readonly onDriftCorrected?: () => void;
  /** The restrictions writing one target (an informer index); default a scan of the namespace. */
  readonly sameTarget?: (target: string) => RestrictionObject[];
  /**
   * The PolicyDaemons with store Kubernetes in a namespace (they decide from restrictions without
   * backendRef). Undefined when the operator does not manage PolicyDaemons: such restrictions
   * are then Ready once valid and owning their mailbox, for daemons set up by other means.
   */
  readonly kubernetesDaemons?: (namespace: string) => readonly string[];
}

interface Outcome {
  readonly ready: boolean;
  readonly reason: Reason;
  readonly message: string;
  /** The store now holds the spec (Synced). */
  readonly synced: boolean;
}

/**
 * MailUserRestriction → the four lists of one mailbox in the store its MailBackend names.
 *
 * Level-triggered and idempotent, in the provider-sql way: observe the store, write only on a
 * difference, report in status. The oldest restriction of a mailbox owns it; others report
 * Conflict. A finalizer clears the lists on delete under `deletionPolicy: Clear`.
 */
export class MailUserRestrictionReconciler {
  readonly #deps: RestrictionReconcilerDeps;

  constructor(deps: RestrictionReconcilerDeps) {
    this.#deps = deps;
  }

  async reconcile(key: string): Promise<{ requeueAfterMs?: number } | void> {
    const [namespace, name] = splitKey(key);
    const restriction = this.#deps.restrictions.get(namespace, name);
    if (restriction === undefined) return; // deleted and finalized: nothing left to do
    if (restriction.metadata.deletionTimestamp) return this.#finalize(restriction);

    const parsed = specSchema.safeParse(restriction.spec);
    if (!parsed.success) {
      return this.#report(restriction, { ready: false, synced: false, reason: Reason.InvalidSpec, message: formatIssues(parsed.error).join('; ') });
    }
    const spec = parsed.data;
    if (spec.backendRef === undefined) return this.#report(restriction, this.#served(restriction, spec));
    const backend = this.#deps.backends.get(namespace, spec.backendRef.name);
    if (backend === undefined) {
      return this.#report(restriction, { ready: false, synced: false, reason: Reason.BackendNotFound, message: `MailBackend ${namespace}/${spec.backendRef.name} not found` });
    }
    const owner = this.#ownerOf(namespace, targetKey(restriction)!);
    if (owner !== undefined && owner.metadata.name !== name) {
      return this.#report(restriction, {
        ready: false,
        synced: false,
        reason: Reason.Conflict,
        message: `mailbox ${spec.mailbox} in MailBackend ${spec.backendRef.name} is already managed by MailUserRestriction ${owner.metadata.name} (the oldest wins); this one writes nothing`,
      });
    }

    // The finalizer goes on before the first write, so no write can outlive its restriction;
    // an observed restriction never writes, so it needs none.
    if (spec.managementPolicy !== 'Observe' && !(restriction.metadata.finalizers ?? []).includes(FINALIZER)) {
      const present = await this.#deps.client.setFinalizers('MailUserRestriction', namespace, name, [...(restriction.metadata.finalizers ?? []), FINALIZER], restriction.metadata.resourceVersion!);
      // Deleted between the cache read and the patch (no finalizer held it): writing now would
      // leave lists in the store that no restriction declares.
      if (present === false) return;
    }

    let result: Outcome;
    try {
      result = await this.#sync(restriction, spec, backend);
    } catch (error) {
      const outcome = this.#failure(error, backend);
      await this.#report(restriction, outcome);
      if (outcome.reason === Reason.MailboxNotFound) return { requeueAfterMs: this.#deps.mailboxRetryMs ?? 30_000 };
      if (outcome.reason === Reason.InvalidSpec) return;
      throw new RetryError(outcome.message, { cause: error });
    }
    return this.#report(restriction, result);
  }

  /**
   * No backendRef: the resource itself is the store, read by the PolicyDaemons with store
   * Kubernetes of its namespace, which apply the same oldest-wins rule (restriction-owner.ts),
   * so what this reports is what they decide. Nothing to write, so no finalizer.
   */
  #served(restriction: RestrictionObject, spec: MailUserRestrictionSpec): Outcome {
    const namespace = restriction.metadata.namespace ?? '';
    const owner = this.#ownerOf(namespace, targetKey(restriction)!);
    if (owner !== undefined && owner.metadata.name !== restriction.metadata.name) {
      return {
        ready: false,
        synced: false,
        reason: Reason.Conflict,
        message: `mailbox ${spec.mailbox} is already restricted by MailUserRestriction ${owner.metadata.name} (the oldest wins); policy daemons ignore this one`,
      };
    }
    const daemons = this.#deps.kubernetesDaemons?.(namespace);
    if (daemons === undefined) {
      return { ready: true, synced: true, reason: Reason.Served, message: `the lists of ${spec.mailbox} are served to policy daemons reading the MailUserRestrictions of ${namespace}` };
    }
    if (daemons.length === 0) {
      return { ready: false, synced: false, reason: Reason.NotServed, message: `no PolicyDaemon with store Kubernetes in ${namespace} decides from this restriction; create one, or name a MailBackend in spec.backendRef` };
    }
    return { ready: true, synced: true, reason: Reason.Served, message: `the lists of ${spec.mailbox} are served by PolicyDaemon ${[...daemons].sort().join(', ')}` };
  }

  #ownerOf(namespace: string, target: string): RestrictionObject | undefined {
    return ownerOf(this.#deps.sameTarget?.(target) ?? this.#deps.restrictions.list(namespace), target);
  }

  /** Apply the spec's lists; the store compares under its lock and writes only on a difference. */
  async #sync(restriction: RestrictionObject, spec: MailUserRestrictionSpec, backend: BackendObject): Promise<Outcome> {
    const { spec: backendSpec, problems } = parseBackendSpec(backend);
    if (backendSpec === undefined) {
      return { ready: false, synced: false, reason: Reason.BackendUnavailable, message: `MailBackend ${backend.metadata.name} is not valid: ${problems}` };
    }
    const store = await this.#deps.connections.get({ ...backend, spec: backendSpec }, backendSecretsOf(backend, this.#deps.secrets));
    if (spec.managementPolicy === 'Observe') return observedOutcome(spec, backend.metadata.name, await store.observe(spec.mailbox));
    const { changed } = await store.apply(spec.mailbox, storeListsOf(spec));
    if (changed.length === 0) {
      // Already Applied for this generation: keep its message, so the reconcile that follows every
      // write (its own status patch re-queues it) does not write status again only to reword it.
      const ready = findCondition(restriction.status?.conditions, 'Ready');
      const current = ready?.reason === Reason.Applied && ready.observedGeneration === restriction.metadata.generation ? ready.message : undefined;
      return { ready: true, synced: true, reason: Reason.Applied, message: current ?? `the lists of ${spec.mailbox} in ${backend.metadata.name} match the spec` };
    }
    const previouslySynced = findCondition(restriction.status?.conditions, 'Synced');
    const drift = restriction.status?.observedGeneration === restriction.metadata.generation && previouslySynced?.status === 'True';
    if (drift) {
      this.#deps.onDriftCorrected?.();
      this.#deps.events.warning(restriction, Reason.DriftCorrected, `the store's ${changed.join(', ')} of ${spec.mailbox} differed from the spec and was rewritten`);
      return { ready: true, synced: true, reason: Reason.DriftCorrected, message: `the store's ${changed.join(', ')} of ${spec.mailbox} had drifted and was rewritten` };
    }
    return { ready: true, synced: true, reason: Reason.Applied, message: `the lists of ${spec.mailbox} were written to ${backend.metadata.name}` };
  }

  #failure(error: unknown, backend: BackendObject): Outcome {
    if (error instanceof StoreError) {
      switch (error.kind) {
        case 'MailboxNotFound':
          return { ready: false, synced: false, reason: Reason.MailboxNotFound, message: `${error.message}; mailwarden never creates mailboxes and will apply the lists once it exists` };
        case 'InvalidValue':
          return { ready: false, synced: false, reason: Reason.InvalidSpec, message: error.message };
        default:
          return { ready: false, synced: false, reason: Reason.BackendUnavailable, message: `MailBackend ${backend.metadata.name}: ${error.message}` };
      }
    }
    if (error instanceof CredentialsError) {
      return { ready: false, synced: false, reason: Reason.BackendUnavailable, message: `MailBackend ${backend.metadata.name}: ${error.message}` };
    }
    if (error instanceof ConflictError) throw error;
    return { ready: false, synced: false, reason: Reason.BackendUnavailable, message: `MailBackend ${backend.metadata.name}: ${(error as Error)?.message ?? String(error)}` };
  }

  /** Delete: clear the lists when this restriction owns the mailbox and the policy says so, then let go. */
  async #finalize(restriction: RestrictionObject): Promise<void> {
    const finalizers = restriction.metadata.finalizers ?? [];
    if (!finalizers.includes(FINALIZER)) return;
    const { namespace = '', name } = restriction.metadata;
    const spec = specSchema.safeParse(restriction.spec);
    const target = targetKey(restriction);
    const owner = target === undefined ? undefined : this.#ownerOf(namespace, target);
    // An observed restriction never writes: not even the clear on delete.
    if (spec.success && spec.data.deletionPolicy === 'Clear' && spec.data.managementPolicy !== 'Observe' && owner?.metadata.name === name && spec.data.backendRef !== undefined) {
      const backend = this.#deps.backends.get(namespace, spec.data.backendRef.name);
      if (backend === undefined) {
        this.#deps.events.warning(restriction, Reason.BackendNotFound, `MailBackend ${spec.data.backendRef.name} is gone: the lists of ${spec.data.mailbox} could not be cleared`);
      } else {
        try {
          // The parsed spec, as #sync passes it: the raw one lacks the settings' defaults, so its
          // connection fingerprint differs and every clear would close the store others are using
          // (LDAP: the clear itself then timed out, and deletes hung).
          const { spec: backendSpec, problems } = parseBackendSpec(backend);
          if (backendSpec === undefined) throw new InvalidBackendError(`MailBackend ${backend.metadata.name} is not valid: ${problems}`);
          const store = await this.#deps.connections.get({ ...backend, spec: backendSpec }, backendSecretsOf(backend, this.#deps.secrets));
          const result = await store.clear(spec.data.mailbox);
          if (result.written) this.#deps.events.normal(restriction, 'Cleared', `the lists of ${spec.data.mailbox} were cleared in ${backend.metadata.name}`);
        } catch (error) {
          if (!(error instanceof StoreError && error.kind === 'MailboxNotFound')) {
            this.#deps.events.warning(restriction, Reason.BackendUnavailable, `cannot clear the lists of ${spec.data.mailbox} yet: ${(error as Error).message}`);
            throw new RetryError(`clearing ${spec.data.mailbox}: ${(error as Error).message}`, { cause: error });
          }
        }
      }
    }
    await this.#deps.client.setFinalizers(
      'MailUserRestriction',
      namespace,
      name,
      finalizers.filter((f) => f !== FINALIZER),
      restriction.metadata.resourceVersion!,
    );
  }

  /** One status write per reconcile, only when something changed; an Event on each transition. */
  async #report(restriction: RestrictionObject, outcome: Outcome): Promise<void> {
    const now = (this.#deps.now ?? (() => new Date()))();
    const generation = restriction.metadata.generation;
    const previous = restriction.status?.conditions;
    let conditions: Condition[] = setCondition(previous, { type: 'Ready', status: outcome.ready ? 'True' : 'False', reason: outcome.reason, message: outcome.message, observedGeneration: generation }, now);
    conditions = setCondition(conditions, { type: 'Synced', status: outcome.synced ? 'True' : 'False', reason: outcome.reason, message: outcome.message, observedGeneration: generation }, now);
    const backend = restriction.spec?.backendRef?.name;
    const unchanged =
      sameConditions(previous, conditions) && restriction.status?.observedGeneration === generation && restriction.status?.backend === backend;
    if (unchanged) return;
    const before = findCondition(previous, 'Ready');
    if (before?.reason !== outcome.reason && outcome.reason !== Reason.DriftCorrected) {
      if (outcome.ready) this.#deps.events.normal(restriction, outcome.reason, outcome.message);
      else this.#deps.events.warning(restriction, outcome.reason, outcome.message);
    }
    await this.#deps.client.patchStatus('MailUserRestriction', restriction.metadata.namespace ?? '', restriction.metadata.name, {
      observedGeneration: generation,
      conditions,
      backend,
      lastSyncTime: outcome.synced ? now.toISOString() : restriction.status?.lastSyncTime,
    });
  }
}

/**
 * managementPolicy Observe: whether the store holds the spec, and if not what enforcing would add
 * and remove, per list. Nothing is written; the reason changing is what raises an Event.
 */
function observedOutcome(spec: MailUserRestrictionSpec, backend: string, stored: RestrictionLists): Outcome {
  const diff = diffLists(stored, storeListsOf(spec));
  const changed = changedLists(diff);
  if (changed.length === 0) {
    return { ready: true, synced: true, reason: Reason.StoreMatches, message: `the lists of ${spec.mailbox} in ${backend} match the spec (managementPolicy Observe: nothing is written)` };
  }
  const what = changed
    .map((name) => [name, ...diff[name].added.map((e) => `+${e}`), ...diff[name].removed.map((e) => `-${e}`)].join(' '))
    .join('; ');
  return { ready: false, synced: false, reason: Reason.StoreDiffers, message: `the lists of ${spec.mailbox} in ${backend} differ from the spec (managementPolicy Observe: nothing is written): ${what}` };
}
