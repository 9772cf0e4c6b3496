import { z } from 'zod';
import { objectNameSchema } from './object-name.ts';
import { entryProblem, parseEntry } from '../restrictions/entry.ts';
import { codePoints, entryCelRules, hasLoneSurrogate, MAX_ENTRY } from '../restrictions/entry-grammar.ts';
import { asciiAddress } from '../restrictions/idn.ts';
import { quoted } from '../restrictions/printable-text.ts';
import { accountCelRules, entryCelRulesWithAmavisd, isAmavisdOnlyEntry } from '../restrictions/amavisd-entry.ts';
import { conditionSchema } from './conditions.ts';
import type { RestrictionLists } from '../restrictions/lists.ts';

/**
 * The MailUserRestriction document: the one definition shared by the manifests store, the CLI,
 * the operator and the generated CRD.
 */
export const API_GROUP = 'mailwarden.io';
export const API_VERSION = `${API_GROUP}/v1alpha1`;
export const MAIL_USER_RESTRICTION_KIND = 'MailUserRestriction';

/** One restriction entry (spec §2); the message names the entry and what is wrong with it. */
export const entrySchema = z
  .string()
  .superRefine((value, ctx) => {
    if (codePoints(value) > MAX_ENTRY) {
      ctx.addIssue({ code: 'custom', message: `an entry is at most ${MAX_ENTRY} characters long` });
      return;
    }
    if (value !== value.trim()) {
      ctx.addIssue({ code: 'custom', message: `${quoted(value)} has leading or trailing white space` });
      return;
    }
    const problem = entryProblem(value);
    // The amavisd schema's extra forms pass here; the operator checks them against the backend's schema.
    if (problem && !isAmavisdOnlyEntry(value)) ctx.addIssue({ code: 'custom', message: problem });
  })
  .meta({
    // Characters as the API server counts them: code points (zod's max counts UTF-16 units).
    maxLength: MAX_ENTRY,
    // The same grammar in RE2 (and the amavisd schema's extra forms); a test on a real API server proves both refuse the same texts.
    'x-kubernetes-validations': entryCelRulesWithAmavisd(
      'is not an entry: use @. (everyone), @domain, @.domain (the domain and its sub-domains) or user@domain (amavisd schema also: an IP, a network, user@*), without invisible or control characters',
    ),
  })
  .describe(
    'One entry: "@." (everyone, the null sender too), "@example.com" (that domain), "@.example.com" (the domain and its sub-domains) or "user@example.com" (one address). With a MailBackend of schema amavisd also an IP address, a network (192.0.2.0/24), a wildcard IPv4 (192.0.2.*) or "user@*" (that local part at any domain); an IP or network only among the senders. Case-insensitive.',
  );

/** Whether entrySchema accepts `value`, without zod's cost (an export checks every stored value). */
export function isEntry(value: string): boolean {
  return value === value.trim() && entryProblem(value) === undefined;
}


/** Whether invalidEntrySchema accepts `value`. */
export function isKeepableInvalidEntry(value: string): boolean {
  return value.length >= 1 && value.length <= 320 && !hasLoneSurrogate(value) && !/[,\u0000]/.test(value) && !isEntry(value);
}

function entryList(what: string) {
  return z.array(entrySchema).max(500).default([]).describe(what);
}

/**
 * A value a store already holds that is not an entry (`example.com`, `@`, text with spaces):
 * `mailwarden export` puts it here so that adopting a server changes nothing. It never matches.
 * It must be invalid (a valid one belongs in the list itself) and storable (no comma, no NUL).
 */
export const invalidEntrySchema = z
  .string()
  .min(1)
  .max(320)
  .superRefine((value, ctx) => {
    if (/[,\u0000]/.test(value)) ctx.addIssue({ code: 'custom', message: `${quoted(value)} contains a comma or NUL, which no store can hold as one entry` });
    // A lone surrogate: PostgreSQL would hold U+FFFD instead, and every apply would write it again.
    else if (hasLoneSurrogate(value)) ctx.addIssue({ code: 'custom', message: `${quoted(value)} is not valid Unicode (a lone surrogate), which no store can hold` });
    else if (isEntry(value)) {
      ctx.addIssue({ code: 'custom', message: `${quoted(value)} is a valid entry: put it in the list itself` });
    }
  })
  // Only the comma in CEL: a second regular expression over 4 × 500 values would spend the API
  // server's validation budget; the operator reports a valid entry here as InvalidSpec.
  .meta({ 'x-kubernetes-validations': [{ rule: `!self.contains(',')`, message: 'contains a comma, which no store can hold as one entry' }] });

const invalidEntriesSchema = z
  .object({
    allowedSenders: z.array(invalidEntrySchema).max(500).optional().describe('Invalid values of the store\'s allowedSenders list, kept as they are.'),
    rejectedSenders: z.array(invalidEntrySchema).max(500).optional().describe('Invalid values of the store\'s rejectedSenders list, kept as they are.'),
    allowedRecipients: z.array(invalidEntrySchema).max(500).optional().describe('Invalid values of the store\'s allowedRecipients list, kept as they are.'),
    rejectedRecipients: z.array(invalidEntrySchema).max(500).optional().describe('Invalid values of the store\'s rejectedRecipients list, kept as they are.'),
  })
  .strict()
  .describe(
    'Values the store already holds that are not valid entries, per list (mailwarden export puts them here). They are kept in the store as they are and never match anything; delete one here to remove it from the store.',
  );

/** Enforce writes the store; Observe only compares it with the spec and reports. */
export const MANAGEMENT_POLICIES = ['Enforce', 'Observe'] as const;
export type ManagementPolicy = (typeof MANAGEMENT_POLICIES)[number];

/**
 * The local mailbox the lists belong to: a full address, or (amavisd schema only, checked by the
 * operator against the backend's schema) `@domain` or `@.`.
 */
export const mailboxSchema = z
  .string()
  .min(2)
  .superRefine((value, ctx) => {
    const entry = parseEntry(value);
    if (value !== value.trim() || (entry.kind !== 'address' && entry.kind !== 'domain' && entry.kind !== 'any')) {
      const reason = entry.kind === 'invalid' ? entry.reason : 'is not a full address (user@domain), @domain or @.';
      ctx.addIssue({ code: 'custom', message: `mailbox ${quoted(value)} ${reason}` });
    }
  })
  .meta({
    maxLength: MAX_ENTRY,
    'x-kubernetes-validations': accountCelRules('is not a full address (user@domain), @domain or @. for a mailbox'),
  })
  .describe(
    'The local mailbox (its full address, e.g. alice@example.com) whose lists these are. With a MailBackend of schema amavisd also "@example.com" (the domain-wide list) or "@." (the server-wide list).',
  );

export const specSchema = z
  .object({
    mailbox: mailboxSchema,
    allowedSenders: entryList('Who may send to this mailbox; consulted before rejectedSenders.'),
    rejectedSenders: entryList('Who may not send to this mailbox.'),
    allowedRecipients: entryList('Whom this mailbox may send to; consulted before rejectedRecipients.'),
    rejectedRecipients: entryList('Whom this mailbox may not send to.'),
    backendRef: z
      .object({ name: objectNameSchema('Name of a MailBackend in the same namespace.') })
      .strict()
      .optional()
      .describe('The MailBackend (store) these lists are written to. Without it the resource itself is the store: policy daemons with store Kubernetes in this namespace decide from it (and the manifests store reads it).'),
    invalidEntries: invalidEntriesSchema.optional(),
    managementPolicy: z
      .enum(MANAGEMENT_POLICIES)
      .default('Enforce')
      .describe(
        'Enforce makes the store hold the spec. Observe never writes the store (nor clears it on delete): the operator only reports in status and an Event whether the store matches the spec and what differs.',
      ),
    deletionPolicy: z
      .enum(['Clear', 'Orphan'])
      .default('Clear')
      .describe('On delete, Clear empties the four lists in the store; Orphan leaves them as they are.'),
  })
  .strict();

export const metadataSchema = z
  .object({
    name: z.string().min(1).max(253),
    namespace: z.string().min(1).max(63).optional(),
  })
  .passthrough();

export const mailUserRestrictionSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(MAIL_USER_RESTRICTION_KIND),
  metadata: metadataSchema,
  spec: specSchema,
  status: z.lazy(() => mailUserRestrictionStatusSchema).optional(),
});

export const mailUserRestrictionStatusSchema = z.object({
  observedGeneration: z.number().int().optional().describe('The spec generation the status describes.'),
  conditions: z.array(conditionSchema).optional().describe('Ready: whether the store holds the spec, and if not, why.'),
  backend: z.string().optional().describe('The MailBackend written to.'),
  lastSyncTime: z.string().optional().describe('When the store was last seen to match the spec.'),
});

export type MailUserRestriction = z.infer<typeof mailUserRestrictionSchema>;
export type MailUserRestrictionSpec = z.infer<typeof specSchema>;

/** The four lists of a spec in canonical form (trimmed, lower-case, de-duplicated, order kept). */
export function listsOf(spec: MailUserRestrictionSpec): RestrictionLists {
  return {
    allowedSenders: canonical(spec.allowedSenders),
    rejectedSenders: canonical(spec.rejectedSenders),
    allowedRecipients: canonical(spec.allowedRecipients),
    rejectedRecipients: canonical(spec.rejectedRecipients),
  };
}

/**
 * The four lists as a store should hold them: the spec's lists in canonical form, then the values
 * kept under `invalidEntries` as they are.
 */
export function storeListsOf(spec: MailUserRestrictionSpec): RestrictionLists {
  const lists = listsOf(spec);
  const kept = spec.invalidEntries;
  if (kept === undefined) return lists;
  return {
    allowedSenders: [...lists.allowedSenders, ...(kept.allowedSenders ?? [])],
    rejectedSenders: [...lists.rejectedSenders, ...(kept.rejectedSenders ?? [])],
    allowedRecipients: [...lists.allowedRecipients, ...(kept.allowedRecipients ?? [])],
    rejectedRecipients: [...lists.rejectedRecipients, ...(kept.rejectedRecipients ?? [])],
  };
}

function canonical(entries: readonly string[]): string[] {
  return [...new Set(entries.map((e) => asciiAddress(e.trim().toLowerCase())))];
}

/** `name` or `namespace/name`, for messages. */
export function displayName(doc: { metadata?: { name?: unknown; namespace?: unknown } }): string {
  const name = typeof doc.metadata?.name === 'string' ? doc.metadata.name : '(unnamed)';
  return typeof doc.metadata?.namespace === 'string' ? `${doc.metadata.namespace}/${name}` : name;
}
