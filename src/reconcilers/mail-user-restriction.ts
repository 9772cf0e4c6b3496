import { findCondition, type Condition } from '../api/conditions.ts';
import type { MailwardenKubeClient } from '../kube/kube-client.ts';
import { formatIssues } from '../api/issues.ts';
import type { MailBackendSpec } from '../api/mail-backend.ts';
import { listsOf, storeListsOf, specSchema, type MailUserRestrictionSpec } from '../api/mail-user-restriction.ts';
import { schemaProblems, type ListSchema } from '../restrictions/schema-forms.ts';
import { changedLists, diffLists } from '../restrictions/list-diff.ts';
import type { RestrictionLists } from '../restrictions/lists.ts';
import type { Logger } from '../observability/logger.ts';
import { StoreError, type MailboxWriter, type ReachedEntry } from '../stores/store.ts';
import type { BackendConnections } from './backend-connections.ts';
import { listSchemaOf, parseBackendSpec } from './backend-spec.ts';
import { backendSecretsOf } from './credentials.ts';
import { isOlder, mailboxName, ownerOf, targetKey } from '../api/restriction-owner.ts';
import { storeIdentity } from '../api/store-identity.ts';
import { RetryError, type Outcome, type StatusExtra, type StatusWriter } from './status.ts';
import type { BackendObject, Lister, RestrictionObject, SecretLister } from './types.ts';
import { keyOf, splitKey } from '../api/object-key.ts';
import { mailboxInDomains, outsideDomainsEntryMessage, outsideDomainsMessage } from '../api/backend-domains.ts';
import { statusText } from './status-text.ts';

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
  Cleared: 'Cleared',
  /** managementPolicy Observe: the store holds what the spec says (nothing written). */
  StoreMatches: 'StoreMatches',
  /** managementPolicy Observe: the store differs from the spec (nothing written; the message says how). */
  StoreDiffers: 'StoreDiffers',
  /** No backendRef: valid, owns its mailbox, and a ready PolicyDaemon with store Kubernetes serves it. */
  Served: 'Served',
  /** No backendRef and no ready PolicyDaemon with store Kubernetes in the namespace to decide from it. */
  NotServed: 'NotServed',
  /** The mailbox is outside the domains of its MailBackend (docs/tenancy.md): nothing written. */
  OutsideDomains: 'OutsideDomains',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

/** The texts status and Events carry, in one place (provider-sql's named error constants). */
export const Message = {
  backendNotFound: (namespace: string, backend: string) => `MailBackend ${namespace}/${backend} not found`,
  conflict: (mailbox: string, backend: string, owner: string) =>
    `mailbox ${mailbox} in MailBackend ${backend} is already managed by MailUserRestriction ${owner} (the oldest wins); this one writes nothing`,
  backendInvalid: (backend: string, issues: string) => `MailBackend ${backend} is not valid: ${issues}`,
  backendFailed: (backend: string, error: string) => `MailBackend ${backend}: ${error}`,
  mailboxNotFound: (error: string) => `${error}; mailwarden never creates mailboxes and will apply the lists once it exists`,
  match: (mailbox: string, backend: string) => `the lists of ${mailbox} in ${backend} match the spec`,
  written: (mailbox: string, backend: string) => `the lists of ${mailbox} were written to ${backend}`,
  drifted: (lists: string, mailbox: string) => `the store's ${lists} of ${mailbox} had drifted and was rewritten`,
  driftEvent: (lists: string, mailbox: string) => `the store's ${lists} of ${mailbox} differed from the spec and was rewritten`,
  cleared: (mailbox: string, backend: string) => `the lists of ${mailbox} were cleared in ${backend}`,
  clearBackendGone: (backend: string, mailbox: string) => `MailBackend ${backend} is gone: the lists of ${mailbox} could not be cleared`,
  clearFailed: (mailbox: string, error: string) => `cannot clear the lists of ${mailbox} yet: ${error}`,
  clearRetry: (mailbox: string, error: string) => `clearing ${mailbox}: ${error}`,
  sameStore: (mailbox: string, backend: string, owner: string, ownerBackend: string) =>
    `mailbox ${mailbox} is already managed by MailUserRestriction ${owner} through MailBackend ${ownerBackend}, which writes the same store as ${backend} (the oldest wins); this one writes nothing`,
  sameEntry: (mailbox: string, backend: string, ownerMailbox: string, owner: string, ownerBackend: string) =>
    `mailbox ${mailbox} in MailBackend ${backend} is an address of the same directory entry as ${ownerMailbox}, whose lists MailUserRestriction ${owner} already manages through MailBackend ${ownerBackend} (the oldest wins); this one writes nothing`,
  notClearedOwned: (mailbox: string, owner: string, ownerBackend: string) =>
    `the lists of ${mailbox} were left as they are: MailUserRestriction ${owner} manages them through MailBackend ${ownerBackend} (the same store or directory entry)`,
  unboundConflict: (mailbox: string, owner: string) => `mailbox ${mailbox} is already restricted by MailUserRestriction ${owner} (the oldest wins); policy daemons ignore this one`,
  servedToReaders: (mailbox: string, namespace: string) => `the lists of ${mailbox} are served to policy daemons reading the MailUserRestrictions of ${namespace}`,
  notServed: (namespace: string) => `no PolicyDaemon with store Kubernetes in ${namespace} decides from this restriction; create one, or name a MailBackend in spec.backendRef`,
  notReady: (namespace: string, daemons: readonly string[]) =>
    `no daemon of PolicyDaemon ${[...daemons].sort().join(', ')} (store Kubernetes) in ${namespace} is ready yet: no injected pod whose daemon has listed the MailUserRestrictions (Sidecar mode), no ready replica or none that a Postfix pod may reach (Service mode, NoClientsAdmitted)`,
  servedBy: (mailbox: string, daemons: readonly string[]) => `the lists of ${mailbox} are served by PolicyDaemon ${[...daemons].sort().join(', ')}`,
} as const;

/** A restriction's MailBackend spec is not valid, so its store cannot be opened. */
class InvalidBackendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidBackendError';
  }
}

/** A PolicyDaemon with store Kubernetes; ready when one of its daemons has listed the restrictions. */
export interface ServingDaemon {
  readonly name: string;
  readonly ready: boolean;
}

export interface RestrictionReconcilerDeps {
  readonly restrictions: Lister<RestrictionObject>;
  readonly backends: Lister<BackendObject>;
  readonly secrets: SecretLister;
  readonly connections: Pick<BackendConnections, 'get'>;
  readonly client: Pick<MailwardenKubeClient, 'setFinalizers' | 'read'>;
  /** Writes the outcome to status (kind MailUserRestriction). */
  readonly status: StatusWriter;
  readonly logger: Logger;
  /** How soon a restriction whose mailbox does not exist yet looks again (default 30 s). */
  readonly mailboxRetryMs?: number;
  /** Counts drift corrections (a metric). */
  readonly onDriftCorrected?: () => void;
  /** The restrictions writing one target (an informer index); default a scan of the namespace. */
  readonly sameTarget?: (target: string) => RestrictionObject[];
  /** The restrictions naming one mailbox (lower-case), in every namespace (an informer index); default a scan. */
  readonly sameMailbox?: (mailbox: string) => RestrictionObject[];
  /**
   * The PolicyDaemons with store Kubernetes in a namespace (they decide from restrictions without
   * backendRef), and whether a daemon of each is ready (has listed them) as its status says.
   * Undefined when the operator does not manage PolicyDaemons: such restrictions are then Ready
   * once valid and owning their mailbox, for daemons set up by other means.
   */
  readonly kubernetesDaemons?: (namespace: string) => readonly ServingDaemon[];
}

/**
 * MailUserRestriction → the four lists of one mailbox in the store its MailBackend names.
 *
 * Level-triggered and idempotent, in the provider-sql way: observe the store, write only on a
 * difference, return an Outcome that the StatusWriter reports. The oldest restriction of a
 * mailbox owns it; others report Conflict. A finalizer clears the lists on delete under
 * `deletionPolicy: Clear`.
 */
export class MailUserRestrictionReconciler {
  readonly #deps: RestrictionReconcilerDeps;

  constructor(deps: RestrictionReconcilerDeps) {
    this.#deps = deps;
  }

  async reconcile(key: string): Promise<{ requeueAfterMs?: number } | void> {
    const [namespace, name] = splitKey(key);
    const restriction = this.#deps.restrictions.get(namespace, name);
    if (restriction === undefined) {
      this.#deps.logger.debug({ key }, 'restriction gone and finalized: nothing to do');
      return;
    }
    if (restriction.metadata.deletionTimestamp) return this.#finalize(restriction);
    const outcome = await this.#outcome(restriction, namespace, name);
    if (outcome === undefined) return;
    // status.backend names the MailBackend the spec names, whatever the outcome (null: none).
    return this.#deps.status.settle(restriction, { ...outcome, fields: { backend: restriction.spec?.backendRef?.name } });
  }

  /** What this reconcile concludes; undefined when there is nothing to report (deleted meanwhile). */
  async #outcome(restriction: RestrictionObject, namespace: string, name: string): Promise<Outcome | undefined> {
    const parsed = specSchema.safeParse(restriction.spec);
    if (!parsed.success) return this.#early(restriction, { ready: false, reason: Reason.InvalidSpec, message: formatIssues(parsed.error).join('; ') });
    const spec = parsed.data;
    if (spec.backendRef === undefined) return this.#served(restriction, spec);
    const backend = this.#deps.backends.get(namespace, spec.backendRef.name);
    if (backend === undefined) return this.#early(restriction, { ready: false, reason: Reason.BackendNotFound, message: Message.backendNotFound(namespace, spec.backendRef.name) });
    // The tenancy boundary, before anything else touches the store (no finalizer, no write).
    const domains = backend.spec?.domains;
    if (!mailboxInDomains(spec.mailbox, domains)) {
      return this.#early(restriction, { ready: false, reason: Reason.OutsideDomains, message: outsideDomainsMessage(spec.mailbox, spec.backendRef.name, domains!) });
    }
    const owner = this.#ownerOf(namespace, targetKey(restriction)!);
    if (owner !== undefined && owner.metadata.name !== name) {
      return this.#early(restriction, { ready: false, reason: Reason.Conflict, message: Message.conflict(spec.mailbox, spec.backendRef.name, owner.metadata.name) });
    }
    const rival = this.#sameStoreOwner(restriction, spec.mailbox, backend);
    if (rival !== undefined) {
      return this.#early(restriction, { ready: false, reason: Reason.Conflict, message: Message.sameStore(spec.mailbox, spec.backendRef.name, keyOf(rival.metadata.namespace, rival.metadata.name), rival.backend) });
    }

    let store: MailboxWriter;
    try {
      // Nothing is opened for forms the store's schema cannot hold.
      const opened = await this.#storeFor(backend, (backendSpec) => schemaOutcome(spec, listSchemaOf(backendSpec)));
      if ('outcome' in opened) return this.#early(restriction, opened.outcome);
      store = opened.store;
      // Looked up once: the tenancy check and the alias check below both need it.
      const entry = await store.entryOf?.(spec.mailbox);
      // The tenancy boundary again where one entry has several addresses: a shadowAddress in a
      // listed domain must not reach the lists of an account of another domain.
      if (domains !== undefined && entry !== undefined && !mailboxInDomains(entry.primary, domains)) {
        return this.#early(restriction, { ready: false, reason: Reason.OutsideDomains, message: outsideDomainsEntryMessage(spec.mailbox, entry.primary, spec.backendRef.name, domains) });
      }
      // The same entry through another of its addresses (an LDAP user's shadowAddress): one target.
      const alias = await this.#aliasOwner(restriction, spec.mailbox, backend, store, entry);
      if (alias !== undefined) {
        const message = Message.sameEntry(spec.mailbox, spec.backendRef.name, alias.spec!.mailbox!, keyOf(alias.metadata.namespace, alias.metadata.name), alias.backend);
        return this.#early(restriction, { ready: false, reason: Reason.Conflict, message });
      }
    } catch (error) {
      return this.#failure(error, backend);
    }

    // The finalizer goes on before the first write, so no write can outlive its restriction;
    // an observed restriction never writes, so it needs none.
    if (spec.managementPolicy !== 'Observe' && !(restriction.metadata.finalizers ?? []).includes(FINALIZER)) {
      const present = await this.#deps.client.setFinalizers('MailUserRestriction', namespace, name, [...(restriction.metadata.finalizers ?? []), FINALIZER], restriction.metadata.resourceVersion!);
      // Deleted between the cache read and the patch (no finalizer held it): writing now would
      // leave lists in the store that no restriction declares.
      if (present === false) {
        this.#deps.logger.debug({ namespace, name }, 'restriction deleted before its finalizer went on: nothing written');
        return undefined;
      }
    }

    try {
      return await this.#sync(restriction, spec, backend, store);
    } catch (error) {
      return this.#failure(error, backend);
    }
  }

  /**
   * No backendRef: the resource itself is the store, read by the PolicyDaemons with store
   * Kubernetes of its namespace, which apply the same oldest-wins rule (restriction-owner.ts),
   * so what this reports is what they decide. Nothing to write, so no finalizer.
   */
  #served(restriction: RestrictionObject, spec: MailUserRestrictionSpec): Outcome {
    const invalid = this.#schemaCheck(restriction, spec, 'vmail');
    if (invalid !== undefined) return invalid;
    const namespace = restriction.metadata.namespace ?? '';
    const owner = this.#ownerOf(namespace, targetKey(restriction)!);
    if (owner !== undefined && owner.metadata.name !== restriction.metadata.name) {
      return this.#early(restriction, { ready: false, reason: Reason.Conflict, message: Message.unboundConflict(spec.mailbox, owner.metadata.name) });
    }
    const served = { stamps: (now: Date) => ({ lastSyncTime: now.toISOString() }) };
    const daemons = this.#deps.kubernetesDaemons?.(namespace);
    if (daemons === undefined) return { ready: true, reason: Reason.Served, message: Message.servedToReaders(spec.mailbox, namespace), ...served };
    if (daemons.length === 0) return this.#early(restriction, { ready: false, reason: Reason.NotServed, message: Message.notServed(namespace) });
    // Served means decided from: a daemon that has listed the restrictions, not one that may.
    const ready = daemons.filter((d) => d.ready).map((d) => d.name);
    if (ready.length === 0) return this.#early(restriction, { ready: false, reason: Reason.NotServed, message: Message.notReady(namespace, daemons.map((d) => d.name)) });
    return { ready: true, reason: Reason.Served, message: Message.servedBy(spec.mailbox, ready), ...served };
  }

  /** An outcome decided before touching the store, logged as cert-manager logs its guards. */
  #early(restriction: RestrictionObject, outcome: Outcome): Outcome {
    this.#deps.logger.debug({ namespace: restriction.metadata.namespace, name: restriction.metadata.name, reason: outcome.reason }, 'restriction not synced: ' + outcome.message);
    return outcome;
  }

  /** InvalidSpec when the mailbox or an entry is not a form the store's schema holds. */
  #schemaCheck(restriction: RestrictionObject, spec: MailUserRestrictionSpec, schema: ListSchema): Outcome | undefined {
    const invalid = schemaOutcome(spec, schema);
    return invalid === undefined ? undefined : this.#early(restriction, invalid);
  }

  /**
   * The oldest restriction older than `restriction` that names the same mailbox through another
   * MailBackend writing the same store (storeIdentity: same database and table, or LDAP base), in
   * any watched namespace; undefined when there is none.
   */
  #sameStoreOwner(restriction: RestrictionObject, mailbox: string, backend: BackendObject): Rival | undefined {
    const identity = identityOf(backend);
    if (identity === undefined) return undefined;
    const ownBackend = keyOf(backend.metadata.namespace, backend.metadata.name);
    let oldest: Rival | undefined;
    for (const rival of this.#olderOnSameStore(restriction, mailboxName(mailbox), identity)) {
      if (rival.backend !== ownBackend && (oldest === undefined || isOlder(rival, oldest))) oldest = rival;
    }
    return oldest;
  }

  /**
   * The oldest restriction older than `restriction` that names another address of the stored
   * entry `mailbox` reaches (an LDAP user's `mail` and `shadowAddress` values), through any
   * MailBackend writing the same store, this one included; undefined when there is none, or when
   * the store keys each mailbox by one address (no `entry`: the store's entryOf, undefined when it
   * has none). Each candidate is resolved by the store: its address may reach another entry (one
   * whose primary address it is).
   */
  async #aliasOwner(restriction: RestrictionObject, mailbox: string, backend: BackendObject, store: MailboxWriter, entry: ReachedEntry | undefined): Promise<Rival | undefined> {
    const identity = identityOf(backend);
    if (store.entryOf === undefined || entry === undefined || identity === undefined) return undefined;
    const name = mailboxName(mailbox);
    const candidates = entry.addresses.filter((address) => address !== name).flatMap((address) => this.#olderOnSameStore(restriction, address, identity));
    candidates.sort((a, b) => (isOlder(a, b) ? -1 : isOlder(b, a) ? 1 : 0));
    for (const candidate of candidates) {
      try {
        if ((await store.entryOf(candidate.spec!.mailbox!)).id === entry.id) return candidate;
      } catch (error) {
        // Gone from the directory since: it reaches nothing, so it owns nothing.
        if (!(error instanceof StoreError && error.kind === 'MailboxNotFound')) throw error;
      }
    }
    return undefined;
  }

  /**
   * The restrictions older than `restriction` naming `address` (mailboxName) through a MailBackend
   * with store identity `identity`, each with its backend as `namespace/name`. One whose mailbox
   * is outside its own MailBackend's domains writes nothing, so it owns nothing either.
   */
  #olderOnSameStore(restriction: RestrictionObject, address: string, identity: string): Rival[] {
    const out: Rival[] = [];
    for (const other of this.#deps.sameMailbox?.(address) ?? this.#deps.restrictions.list()) {
      const name = other.spec?.backendRef?.name;
      if (typeof name !== 'string' || typeof other.spec?.mailbox !== 'string' || mailboxName(other.spec.mailbox) !== address) continue;
      if (!isOlder(other, restriction)) continue;
      const otherNamespace = other.metadata.namespace ?? '';
      const otherBackend = this.#deps.backends.get(otherNamespace, name);
      if (otherBackend === undefined || identityOf(otherBackend) !== identity) continue;
      if (!mailboxInDomains(other.spec.mailbox, otherBackend.spec?.domains)) continue;
      out.push({ ...other, backend: keyOf(otherNamespace, name) });
    }
    return out;
  }

  #ownerOf(namespace: string, target: string): RestrictionObject | undefined {
    return ownerOf(this.#deps.sameTarget?.(target) ?? this.#deps.restrictions.list(namespace), target);
  }

  /**
   * The store of `backend`, or the outcome (not yet logged) when its spec does not parse or
   * `admit`, given the parsed spec, rules the store out before it is opened. Opened with the
   * parsed spec, never the raw one: that lacks the settings' defaults, so its connection
   * fingerprint differs and opening it would close the store others are using (LDAP: clears
   * then timed out, and deletes hung).
   */
  async #storeFor(backend: BackendObject, admit?: (backendSpec: MailBackendSpec) => Outcome | undefined): Promise<{ store: MailboxWriter } | { outcome: Outcome }> {
    const { spec: backendSpec, problems } = parseBackendSpec(backend);
    if (backendSpec === undefined) return { outcome: { ready: false, reason: Reason.BackendUnavailable, message: Message.backendInvalid(backend.metadata.name, problems) } };
    const refused = admit?.(backendSpec);
    if (refused !== undefined) return { outcome: refused };
    return { store: await this.#deps.connections.get({ ...backend, spec: backendSpec }, backendSecretsOf(backend, this.#deps.secrets)) };
  }

  /** Apply the spec's lists; the store compares under its lock and writes only on a difference. */
  async #sync(restriction: RestrictionObject, spec: MailUserRestrictionSpec, backend: BackendObject, store: MailboxWriter): Promise<Outcome> {
    const backendName = backend.metadata.name;
    if (spec.managementPolicy === 'Observe') return observedOutcome(spec, backendName, await store.observe(spec.mailbox));
    const { changed } = await store.apply(spec.mailbox, storeListsOf(spec));
    const synced = { stamps: (now: Date) => ({ lastSyncTime: now.toISOString() }) };
    if (changed.length === 0) {
      // Already Applied for this generation: keep its message, so the reconcile that follows every
      // write (its own status patch re-queues it) does not write status again only to reword it.
      const ready = findCondition(restriction.status?.conditions, 'Ready');
      const current = ready?.reason === Reason.Applied && ready.observedGeneration === restriction.metadata.generation ? ready.message : undefined;
      return { ready: true, reason: Reason.Applied, message: current ?? Message.match(spec.mailbox, backendName), ...synced };
    }
    // Written although this generation was already applied: someone changed the store by hand.
    const ready = findCondition(restriction.status?.conditions, 'Ready');
    const drift = restriction.status?.observedGeneration === restriction.metadata.generation && ready?.status === 'True';
    if (drift) {
      this.#deps.onDriftCorrected?.();
      const lists = changed.join(', ');
      return { ready: true, reason: Reason.DriftCorrected, message: Message.drifted(lists, spec.mailbox), event: { type: 'Warning', message: Message.driftEvent(lists, spec.mailbox) }, ...synced };
    }
    return { ready: true, reason: Reason.Applied, message: Message.written(spec.mailbox, backendName), ...synced };
  }

  /** A failed sync as an outcome: what status says, and whether to look again or back off. */
  #failure(error: unknown, backend: BackendObject): Outcome {
    if (error instanceof StoreError && error.kind === 'MailboxNotFound') {
      return { ready: false, reason: Reason.MailboxNotFound, message: Message.mailboxNotFound(error.message), requeueAfterMs: this.#deps.mailboxRetryMs ?? 30_000 };
    }
    // Retrying cannot make a value storable: the spec has to change, which queues it anyway.
    if (error instanceof StoreError && error.kind === 'InvalidValue') return { ready: false, reason: Reason.InvalidSpec, message: error.message };
    const text = statusText(error, this.#deps.logger, backend);
    return { ready: false, reason: Reason.BackendUnavailable, message: Message.backendFailed(backend.metadata.name, text), retry: { cause: error } };
  }

  /** Delete: clear the lists when this restriction owns the mailbox and the policy says so, then let go. */
  async #finalize(cached: RestrictionObject): Promise<void> {
    const { namespace = '', name } = cached.metadata;
    if (!(cached.metadata.finalizers ?? []).includes(FINALIZER)) {
      this.#deps.logger.debug({ namespace, name }, 'restriction being deleted without our finalizer: nothing to clean up');
      return;
    }
    // The cache may be behind: a reconcile queued while the last one let go runs on the copy from
    // before, whose mailbox the next owner may have written since (it takes over once the object
    // is gone from its cache). Clearing on that copy's word wipes those lists; so the clear, and
    // the deletionPolicy it follows, go by the object as the API server has it now.
    const restriction = (await this.#deps.client.read('MailUserRestriction', namespace, name)) as RestrictionObject | undefined;
    if (restriction === undefined || restriction.metadata.uid !== cached.metadata.uid || !(restriction.metadata.finalizers ?? []).includes(FINALIZER)) {
      this.#deps.logger.debug({ namespace, name }, 'restriction already finalized (the cached copy was behind): nothing to clean up');
      return;
    }
    const finalizers = restriction.metadata.finalizers ?? [];
    const spec = specSchema.safeParse(restriction.spec);
    const target = targetKey(restriction);
    const owner = target === undefined ? undefined : this.#ownerWith(restriction, target);
    // An observed restriction never writes: not even the clear on delete.
    if (spec.success && spec.data.deletionPolicy === 'Clear' && spec.data.managementPolicy !== 'Observe' && owner?.metadata.name === name && spec.data.backendRef !== undefined) {
      await this.#clear(restriction, spec.data.mailbox, spec.data.backendRef.name);
    } else {
      this.#deps.logger.debug({ namespace, name }, 'restriction deleted: lists left as they are (not the owner, or deletionPolicy Keep)');
    }
    await this.#deps.client.setFinalizers(
      'MailUserRestriction',
      namespace,
      name,
      finalizers.filter((f) => f !== FINALIZER),
      restriction.metadata.resourceVersion!,
    );
  }

  /** The owner of `target` among the cached restrictions, `restriction` counted as it is now rather than as cached. */
  #ownerWith(restriction: RestrictionObject, target: string): RestrictionObject | undefined {
    const { namespace = '', name } = restriction.metadata;
    const others = (this.#deps.sameTarget?.(target) ?? this.#deps.restrictions.list(namespace)).filter((r) => (r.metadata.namespace ?? '') !== namespace || r.metadata.name !== name);
    return ownerOf([...others, restriction], target);
  }

  /** Empties the mailbox's lists; a failure is retried, so the finalizer holds until it is done. */
  async #clear(restriction: RestrictionObject, mailbox: string, backendName: string): Promise<void> {
    const namespace = restriction.metadata.namespace ?? '';
    const backend = this.#deps.backends.get(namespace, backendName);
    if (backend === undefined) {
      this.#deps.status.event(restriction, 'Warning', Reason.BackendNotFound, Message.clearBackendGone(backendName, mailbox));
      return;
    }
    // Creating and deleting a restriction must not clear a mailbox the namespace may not touch.
    if (!mailboxInDomains(mailbox, backend.spec?.domains)) {
      this.#deps.status.event(restriction, 'Warning', Reason.OutsideDomains, outsideDomainsMessage(mailbox, backendName, backend.spec.domains!));
      return;
    }
    try {
      const opened = await this.#storeFor(backend);
      if ('outcome' in opened) throw new InvalidBackendError(opened.outcome.message);
      const { store } = opened;
      // An older restriction owning the same row or entry another way (this one was in Conflict):
      // clearing would wipe its lists.
      const owner = this.#sameStoreOwner(restriction, mailbox, backend) ?? (await this.#aliasOwner(restriction, mailbox, backend, store, await store.entryOf?.(mailbox)));
      if (owner !== undefined) {
        this.#deps.status.event(restriction, 'Normal', Reason.Conflict, Message.notClearedOwned(mailbox, keyOf(owner.metadata.namespace, owner.metadata.name), owner.backend));
        return;
      }
      const result = await store.clear(mailbox);
      if (result.written) this.#deps.status.event(restriction, 'Normal', Reason.Cleared, Message.cleared(mailbox, backend.metadata.name));
    } catch (error) {
      // A mailbox that is gone has no lists left to clear; one the store cannot hold never had any.
      if (error instanceof StoreError && (error.kind === 'MailboxNotFound' || error.kind === 'InvalidValue')) return;
      const text = statusText(error, this.#deps.logger, backend);
      this.#deps.status.event(restriction, 'Warning', Reason.BackendUnavailable, Message.clearFailed(mailbox, text));
      throw new RetryError(Message.clearRetry(mailbox, text), { cause: error });
    }
  }
}

/**
 * managementPolicy Observe: whether the store holds the spec, and if not what enforcing would add
 * and remove, per list. Nothing is written. The reason changing raises an Event (StatusWriter);
 * so does a new difference while the store still differs, since that is news for whoever watches.
 */
function observedOutcome(spec: MailUserRestrictionSpec, backend: string, stored: RestrictionLists): Outcome {
  const diff = diffLists(stored, storeListsOf(spec));
  const changed = changedLists(diff);
  if (changed.length === 0) {
    return { ready: true, reason: Reason.StoreMatches, message: `the lists of ${spec.mailbox} in ${backend} match the spec (managementPolicy Observe: nothing is written)`, stamps: (now) => ({ lastSyncTime: now.toISOString() }) };
  }
  const what = changed
    .map((name) => [name, ...diff[name].added.map((e) => `+${e}`), ...diff[name].removed.map((e) => `-${e}`)].join(' '))
    .join('; ');
  const message = `the lists of ${spec.mailbox} in ${backend} differ from the spec (managementPolicy Observe: nothing is written): ${what}`;
  return { ready: false, reason: Reason.StoreDiffers, message, extra: ({ conditions, status }) => ({ conditions, fields: {}, event: newDifference(status?.conditions, message) }) };
}

/** A Warning when the store already differed but now differs in another way (the same reason: no transition Event). */
function newDifference(previous: readonly Condition[] | undefined, message: string): StatusExtra['event'] {
  const ready = findCondition(previous, 'Ready');
  if (ready?.reason !== Reason.StoreDiffers || ready.message === message) return undefined;
  return { type: 'Warning', reason: Reason.StoreDiffers, message };
}

/** InvalidSpec when the mailbox or an entry is not a form `schema` holds. */
function schemaOutcome(spec: MailUserRestrictionSpec, schema: ListSchema): Outcome | undefined {
  // The lists only: invalidEntries are kept as stored (the amavisd writer refuses to add one: InvalidValue).
  const problems = schemaProblems(spec.mailbox, listsOf(spec), schema);
  return problems.length === 0 ? undefined : { ready: false, reason: Reason.InvalidSpec, message: problems.join('; ') };
}

/** An older restriction that owns what another one names, with its MailBackend as `namespace/name`. */
type Rival = RestrictionObject & { readonly backend: string };

/** Which rows or entries `backend` writes (storeIdentity); undefined for a spec that does not parse. */
function identityOf(backend: BackendObject): string | undefined {
  const spec = parseBackendSpec(backend).spec;
  return spec === undefined ? undefined : storeIdentity(spec, backend.metadata.namespace ?? '');
}
