import type { MailboxRecord, RestrictionLists } from '../restrictions/lists.ts';

// What the stores that hold their records in memory (manifests, kubernetes) share: one copy of
// each set of lists, and lookup over peek.

/** The four lists as an in-memory store holds them: an empty list is unset (null). */
export type HeldLists = MailboxRecord['lists'];

/** Interns strings many records repeat (`@example.com`); see controller/cached-object.ts's StringPool. */
export interface StringInterner {
  intern(value: string): string;
}

const NO_INTERNING: StringInterner = { intern: (value) => value };

/**
 * One frozen copy of each set of four lists that several mailboxes have: most mailboxes of a
 * domain share a few shapes ("internal only", "block these senders"), and each copy held per
 * mailbox is an object and up to four arrays. Entries of a new set go through `strings`.
 * Bounded: forgotten and restarted when full, which only costs sharing.
 */
export class ListsPool {
  readonly #sets = new Map<string, HeldLists>();
  readonly #strings: StringInterner;
  readonly #max: number;

  constructor(options: { strings?: StringInterner; max?: number } = {}) {
    this.#strings = options.strings ?? NO_INTERNING;
    this.#max = options.max ?? 10_000;
  }

  /** `lists` as a store holds them (canonical already: see listsOf), shared with every equal set. */
  of(lists: RestrictionLists): HeldLists {
    // JSON: unambiguous whatever the entries hold.
    const key = JSON.stringify([lists.allowedSenders, lists.rejectedSenders, lists.allowedRecipients, lists.rejectedRecipients]);
    const known = this.#sets.get(key);
    if (known !== undefined) return known;
    if (this.#sets.size >= this.#max) this.#sets.clear();
    const held = (entries: readonly string[]): readonly string[] | null => (entries.length === 0 ? null : Object.freeze(entries.map((e) => this.#strings.intern(e))));
    const set: HeldLists = Object.freeze({
      allowedSenders: held(lists.allowedSenders),
      rejectedSenders: held(lists.rejectedSenders),
      allowedRecipients: held(lists.allowedRecipients),
      rejectedRecipients: held(lists.rejectedRecipients),
    });
    this.#sets.set(key, set);
    return set;
  }

  /** Distinct sets held. */
  get size(): number {
    return this.#sets.size;
  }
}

/** `lookup` of a store that holds its records in memory: the records of the keys it has. */
export function peekEach(keys: readonly string[], peek: (key: string) => MailboxRecord | undefined): Map<string, MailboxRecord> {
  const found = new Map<string, MailboxRecord>();
  for (const key of keys) {
    const record = peek(key);
    if (record !== undefined) found.set(key, record);
  }
  return found;
}
