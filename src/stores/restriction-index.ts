import { isOlder, mailboxName } from '../api/restriction-owner.ts';
import { formatIssues } from '../api/issues.ts';
import { listsOf, specSchema } from '../api/mail-user-restriction.ts';
import type { MailboxRecord } from '../restrictions/lists.ts';
import { ListsPool, type HeldLists, type StringInterner } from './in-memory-records.ts';

/**
 * What the Kubernetes store keeps of a MailUserRestriction: its identity, its age (for the
 * oldest-wins rule) and the lists decisions read — no managedFields, no status, no annotations.
 * One object per restriction, held by tens of thousands: its metadata is itself (`metadata`
 * returns it, for the informer and the oldest-wins rule), one that decides is its own
 * {@link MailboxRecord} (`address`, `lists`), and its lists are shared with every mailbox that
 * has the same ones (ListsPool).
 */
export class HeldRestriction {
  readonly name: string;
  readonly namespace: string | undefined;
  readonly resourceVersion: string | undefined;
  readonly creationTimestamp: string | undefined;
  /**
   * The mailbox it decides for, as decisions look it up (mailboxName); undefined when it names
   * none at all, or belongs to a MailBackend (backendRef: not this store's to serve).
   */
  readonly address: string | undefined;
  /** The lists to decide with; undefined when foreign or the spec is invalid (see `problem`). */
  readonly lists: HeldLists | undefined;
  /** Why the spec is invalid, one line; undefined when it is valid. */
  readonly problem: string | undefined;

  constructor(
    metadata: Pick<HeldRestriction, 'name' | 'namespace' | 'resourceVersion' | 'creationTimestamp'>,
    address: string | undefined,
    lists: HeldLists | undefined,
    problem: string | undefined,
  ) {
    this.name = metadata.name;
    this.namespace = metadata.namespace;
    this.resourceVersion = metadata.resourceVersion;
    this.creationTimestamp = metadata.creationTimestamp;
    this.address = address;
    this.lists = lists;
    this.problem = problem;
  }

  /** Its metadata as a Kubernetes object's: the object itself (no second object per restriction). */
  get metadata(): { readonly name: string; readonly namespace?: string; readonly resourceVersion?: string; readonly creationTimestamp?: string } {
    return this as { name: string; namespace?: string; resourceVersion?: string; creationTimestamp?: string };
  }
}

/** Where held restrictions share what they repeat: list sets, and strings (namespace, creation time, entries). */
export interface HoldPools {
  readonly lists: ListsPool;
  readonly strings: StringInterner;
}

const UNSHARED: HoldPools = { lists: new ListsPool({ max: 1 }), strings: { intern: (value) => value } };

/**
 * Reduces a MailUserRestriction as the API server sends it to a {@link HeldRestriction},
 * validating its spec with the same schema as admission, the operator and the manifests store:
 * an object that got past admission invalid (an older CRD, a schema change) is held with its
 * problem and never decides.
 */
export function holdRestriction(obj: unknown, pools: HoldPools = UNSHARED): HeldRestriction {
  const raw = (obj ?? {}) as { metadata?: Record<string, unknown>; spec?: Record<string, unknown> };
  const m = raw.metadata ?? {};
  const created = m.creationTimestamp instanceof Date ? m.creationTimestamp.toISOString() : m.creationTimestamp;
  const metadata = {
    name: String(m.name ?? ''),
    namespace: typeof m.namespace === 'string' ? pools.strings.intern(m.namespace) : undefined,
    resourceVersion: typeof m.resourceVersion === 'string' ? m.resourceVersion : undefined,
    creationTimestamp: typeof created === 'string' ? pools.strings.intern(created) : undefined,
  };
  const spec = raw.spec;
  // Keyed as requests are looked up: an internationalised domain in its ASCII form.
  const address = typeof spec?.mailbox === 'string' ? mailboxName(spec.mailbox) : undefined;
  if (spec?.backendRef !== undefined && spec.backendRef !== null) return new HeldRestriction(metadata, undefined, undefined, undefined);
  const parsed = specSchema.safeParse(spec);
  if (!parsed.success) return new HeldRestriction(metadata, address, undefined, formatIssues(parsed.error).join('; '));
  return new HeldRestriction(metadata, address, pools.lists.of(listsOf(parsed.data)), undefined);
}

/** The record `held` decides with, or undefined when it decides nothing (invalid, foreign). */
function recordOf(held: HeldRestriction): MailboxRecord | undefined {
  // A held restriction with lists has its address (a valid spec names a mailbox): it is its own record.
  return held.lists === undefined ? undefined : (held as MailboxRecord);
}

/**
 * The restrictions a Kubernetes store serves, by mailbox. Several for one mailbox: the oldest
 * owns it (the operator's rule, see restriction-owner.ts) and decides alone — even when it is
 * invalid, in which case the mailbox has no restrictions, as the operator reports (InvalidSpec
 * for the owner, Conflict for the others).
 */
export class RestrictionIndex {
  /** One holder, or several with the owner first (the usual case costs no array). */
  readonly #byMailbox = new Map<string, HeldRestriction | HeldRestriction[]>();

  /** Mailboxes with at least one restriction. */
  get size(): number {
    return this.#byMailbox.size;
  }

  /** The owner's record for `mailbox` (lower-case), or undefined when none decides for it. */
  get(mailbox: string): MailboxRecord | undefined {
    const held = this.#byMailbox.get(mailbox);
    if (held === undefined) return undefined;
    return recordOf(Array.isArray(held) ? held[0]! : held);
  }

  /** The restriction that owns `mailbox`, if any. */
  owner(mailbox: string): HeldRestriction | undefined {
    const held = this.#byMailbox.get(mailbox);
    return Array.isArray(held) ? held[0] : held;
  }

  /** Adds or replaces a restriction (`previous`: its former state); returns the mailboxes whose answer may have changed. */
  set(restriction: HeldRestriction, previous?: HeldRestriction): string[] {
    const changed = previous === undefined ? [] : this.delete(previous);
    if (restriction.address === undefined) return changed;
    const mailbox = restriction.address;
    const held = this.#byMailbox.get(mailbox);
    if (held === undefined) {
      this.#byMailbox.set(mailbox, restriction);
    } else {
      const all = (Array.isArray(held) ? held : [held]).filter((h) => !sameObject(h, restriction));
      all.push(restriction);
      all.sort((a, b) => (isOlder(a, b) ? -1 : isOlder(b, a) ? 1 : 0));
      this.#byMailbox.set(mailbox, all.length === 1 ? all[0]! : all);
    }
    if (!changed.includes(mailbox)) changed.push(mailbox);
    return changed;
  }

  /** Removes a restriction; returns the mailboxes whose answer may have changed. */
  delete(restriction: HeldRestriction): string[] {
    const mailbox = restriction.address;
    if (mailbox === undefined) return [];
    const held = this.#byMailbox.get(mailbox);
    if (held === undefined) return [];
    const rest = (Array.isArray(held) ? held : [held]).filter((h) => !sameObject(h, restriction));
    if (rest.length === 0) this.#byMailbox.delete(mailbox);
    else this.#byMailbox.set(mailbox, rest.length === 1 ? rest[0]! : rest);
    return [mailbox];
  }
}

function sameObject(a: HeldRestriction, b: HeldRestriction): boolean {
  return a.name === b.name && a.namespace === b.namespace;
}
