import { isOlder, mailboxName } from '../api/restriction-owner.ts';
import { formatIssues } from '../api/issues.ts';
import { listsOf, specSchema } from '../api/mail-user-restriction.ts';
import type { MailboxRecord } from '../restrictions/lists.ts';

/**
 * What the Kubernetes store keeps of a MailUserRestriction: its identity, its age (for the
 * oldest-wins rule) and the mailbox record decisions read — no managedFields, no status, no
 * annotations. About a third of the object the API server sends.
 */
export interface HeldRestriction {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly resourceVersion?: string;
    readonly creationTimestamp?: string;
  };
  /** The mailbox it names, lower-cased; undefined when it names none at all. */
  readonly mailbox: string | undefined;
  /** Set on restrictions written to a MailBackend (backendRef): not this store's to serve. */
  readonly foreign: boolean;
  /** The lists to decide with; undefined when the spec is invalid (see `problem`). */
  readonly record: MailboxRecord | undefined;
  /** Why the spec is invalid, one line; undefined when it is valid. */
  readonly problem: string | undefined;
}

/** Interns the strings thousands of restrictions repeat (`@example.com`, the namespace). */
export interface StringInterner {
  intern(value: string): string;
}

const NO_INTERNING: StringInterner = { intern: (value) => value };

/**
 * Reduces a MailUserRestriction as the API server sends it to a {@link HeldRestriction},
 * validating its spec with the same schema as admission, the operator and the manifests store:
 * an object that got past admission invalid (an older CRD, a schema change) is held with its
 * problem and never decides.
 */
export function holdRestriction(obj: unknown, strings: StringInterner = NO_INTERNING): HeldRestriction {
  const raw = (obj ?? {}) as { apiVersion?: unknown; kind?: unknown; metadata?: Record<string, unknown>; spec?: Record<string, unknown> };
  const m = raw.metadata ?? {};
  const created = m.creationTimestamp instanceof Date ? m.creationTimestamp.toISOString() : m.creationTimestamp;
  const metadata = {
    name: String(m.name ?? ''),
    namespace: typeof m.namespace === 'string' ? strings.intern(m.namespace) : undefined,
    resourceVersion: typeof m.resourceVersion === 'string' ? m.resourceVersion : undefined,
    creationTimestamp: typeof created === 'string' ? strings.intern(created) : undefined,
  };
  const spec = raw.spec;
  // Keyed as requests are looked up: an internationalised domain in its ASCII form.
  const mailbox = typeof spec?.mailbox === 'string' ? mailboxName(spec.mailbox) : undefined;
  const foreign = spec?.backendRef !== undefined && spec.backendRef !== null;
  if (foreign) return { metadata, mailbox, foreign, record: undefined, problem: undefined };
  const parsed = specSchema.safeParse(spec);
  if (!parsed.success) return { metadata, mailbox, foreign, record: undefined, problem: formatIssues(parsed.error).join('; ') };
  const lists = listsOf(parsed.data);
  const list = (entries: readonly string[]) => (entries.length > 0 ? entries.map((e) => strings.intern(e)) : null);
  const record: MailboxRecord = {
    address: mailbox!,
    lists: {
      allowedSenders: list(lists.allowedSenders),
      rejectedSenders: list(lists.rejectedSenders),
      allowedRecipients: list(lists.allowedRecipients),
      rejectedRecipients: list(lists.rejectedRecipients),
    },
  };
  return { metadata, mailbox, foreign, record, problem: undefined };
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
    return (Array.isArray(held) ? held[0]! : held).record;
  }

  /** The restriction that owns `mailbox`, if any. */
  owner(mailbox: string): HeldRestriction | undefined {
    const held = this.#byMailbox.get(mailbox);
    return Array.isArray(held) ? held[0] : held;
  }

  /** Adds or replaces a restriction (`previous`: its former state); returns the mailboxes whose answer may have changed. */
  set(restriction: HeldRestriction, previous?: HeldRestriction): string[] {
    const changed = previous === undefined ? [] : this.delete(previous);
    if (restriction.foreign || restriction.mailbox === undefined) return changed;
    const mailbox = restriction.mailbox;
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
    const mailbox = restriction.mailbox;
    if (restriction.foreign || mailbox === undefined) return [];
    const held = this.#byMailbox.get(mailbox);
    if (held === undefined) return [];
    const rest = (Array.isArray(held) ? held : [held]).filter((h) => !sameObject(h, restriction));
    if (rest.length === 0) this.#byMailbox.delete(mailbox);
    else this.#byMailbox.set(mailbox, rest.length === 1 ? rest[0]! : rest);
    return [mailbox];
  }
}

function sameObject(a: HeldRestriction, b: HeldRestriction): boolean {
  return a.metadata.name === b.metadata.name && a.metadata.namespace === b.metadata.namespace;
}
