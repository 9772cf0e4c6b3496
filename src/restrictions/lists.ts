/**
 * The four per-mailbox lists (spec §1) and their names in each store.
 * One source of truth: every store, schema and explanation refers to these names.
 */
export const LIST_NAMES = ['allowedSenders', 'rejectedSenders', 'allowedRecipients', 'rejectedRecipients'] as const;

export type ListName = (typeof LIST_NAMES)[number];

/** The four lists as plain entry texts, in declaration order. */
export type RestrictionLists = { readonly [K in ListName]: readonly string[] };

/**
 * One mailbox as a store holds it. A list is `null` when the store has it unset
 * (SQL NULL or empty column, absent LDAP attribute, missing manifest field).
 */
export interface MailboxRecord {
  /** The key the store found the mailbox under, lower-cased. */
  readonly address: string;
  readonly lists: { readonly [K in ListName]: readonly string[] | null };
}

export const EMPTY_LISTS: RestrictionLists = Object.freeze({
  allowedSenders: [],
  rejectedSenders: [],
  allowedRecipients: [],
  rejectedRecipients: [],
});
