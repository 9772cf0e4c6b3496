/**
 * A store's lists as MailUserRestriction documents (`mailwarden export`), so that applying them to
 * the same store writes nothing: valid entries go into the lists as stored (case and repeats kept,
 * only the white space around them trimmed, which the readers of the vmail columns and LDAP
 * ignore; the amavisd tables' readers compare bytes, so such a value is noted as matching
 * nothing), values that are not entries of that list go under `spec.invalidEntries` exactly as
 * stored. Everything unusual is reported as a note; nothing is left out without one.
 */
import { createHash } from 'node:crypto';
import {
  API_VERSION,
  isEntry,
  isKeepableInvalidEntry,
  MAIL_USER_RESTRICTION_KIND,
  mailboxSchema,
  listsOf,
  mailUserRestrictionSchema,
  type ManagementPolicy,
} from '../api/mail-user-restriction.ts';
import { formatIssues } from '../api/issues.ts';
import { isAmavisdOnlyEntry, isClientEntry } from '../restrictions/amavisd-entry.ts';
import { schemaProblems, type ListSchema } from '../restrictions/schema-forms.ts';
import { parseEntry } from '../restrictions/entry.ts';
import { entryKey } from '../restrictions/list-diff.ts';
import { LIST_NAMES, type ListName } from '../restrictions/lists.ts';
import { trimAscii } from '../restrictions/sql-list.ts';
import type { StoredMailbox } from '../stores/store.ts';

export interface ExportOptions {
  readonly namespace?: string | undefined;
  /** The MailBackend name for spec.backendRef. */
  readonly backend?: string | undefined;
  readonly managementPolicy?: ManagementPolicy | undefined;
  /** The tables the store keeps (default vmail): the amavisd ones also hold IPs, networks and user@*. */
  readonly schema?: ListSchema | undefined;
}

/** Something about a stored value the person exporting should know. */
export interface ExportNote {
  readonly mailbox: string;
  readonly list?: ListName;
  readonly message: string;
  /**
   * `lost`: what the store holds is not in the export, so applying it would change the store.
   * `refused`: the document holds everything, but mailwarden (and the CRD) will not accept it.
   */
  readonly severity: 'info' | 'invalid' | 'lost' | 'refused';
}

export interface ExportedDocument {
  /** metadata.name, also the file name (without .yaml) in a directory export. */
  readonly name: string;
  readonly mailbox: string;
  readonly document: RestrictionDocument;
}

/** A plain tree of strings (what documentYaml writes). */
export type RestrictionDocument = { readonly [key: string]: string | readonly string[] | RestrictionDocument };

export interface ExportResult {
  readonly documents: ExportedDocument[];
  readonly notes: ExportNote[];
}

/** Documents for every mailbox that has a list, sorted by mailbox. */
export function exportDocuments(mailboxes: readonly StoredMailbox[], options: ExportOptions = {}): ExportResult {
  const documents: ExportedDocument[] = [];
  const notes: ExportNote[] = [];
  const names = new Set<string>();
  const schema = options.schema ?? 'vmail';
  for (const stored of [...mailboxes].sort((a, b) => compare(a.mailbox, b.mailbox))) {
    const mailbox = stored.mailbox;
    if (!mailboxSchema.safeParse(mailbox).success) {
      notes.push({ mailbox, severity: 'lost', message: `${JSON.stringify(stored.storedAs ?? mailbox)} is not a mailbox address (user@domain): its lists are not exported` });
      continue;
    }
    if (stored.unaddressed !== undefined) {
      notes.push({ mailbox, severity: 'lost', message: `stored as ${JSON.stringify(stored.storedAs ?? mailbox)}: ${stored.unaddressed}, so its lists are not exported (apply never touches them)` });
      continue;
    }
    if (stored.storedAs !== undefined && schema === 'amavisd') {
      const message = `stored as ${JSON.stringify(stored.storedAs)}, not as ${JSON.stringify(entryKey(mailbox))}; mailwarden writes this users row, but iRedAPD, amavisd and the policy daemon compare its bytes and never match it`;
      notes.push({ mailbox, severity: 'info', message });
    } else if (stored.storedAs !== undefined) {
      notes.push({ mailbox, severity: 'info', message: `stored with capitals as ${JSON.stringify(stored.storedAs)}; mailwarden looks mailboxes up in lower case (PostgreSQL will not find this one)` });
    }
    const lists: Partial<Record<ListName, string[]>> = {};
    const invalid: Partial<Record<ListName, string[]>> = {};
    for (const list of LIST_NAMES) {
      const seen = new Set<string>();
      for (const value of stored.lists[list]) {
        const placed = placeValue(value, seen, schema, list);
        if (placed.note !== undefined) notes.push({ mailbox, list, ...placed.note });
        if (placed.into === 'list') (lists[list] ??= []).push(placed.text);
        else if (placed.into === 'invalid') (invalid[list] ??= []).push(placed.text);
      }
    }
    if (Object.keys(lists).length === 0 && Object.keys(invalid).length === 0) {
      notes.push({ mailbox, severity: 'info', message: 'holds only blank values: no document' });
      continue;
    }
    const name = documentName(mailbox, names);
    names.add(name);
    const document = restrictionDocument(name, mailbox, lists, invalid, options);
    // Exported whole all the same: cutting a list would make the export mean less than the store.
    const checked = mailUserRestrictionSchema.safeParse(document);
    // The lists only: invalidEntries are kept as stored in every schema.
    const problems = checked.success ? schemaProblems(mailbox, listsOf(checked.data.spec), schema) : formatIssues(checked.error);
    if (problems.length > 0) {
      notes.push({ mailbox, severity: 'refused', message: `exported whole, but mailwarden refuses the document (apply, diff and the API server will): ${problems.join('; ')}` });
    }
    documents.push({ name, mailbox, document });
  }
  return { documents, notes };
}

interface Placement {
  readonly into: 'list' | 'invalid' | 'none';
  readonly text: string;
  readonly note?: { readonly severity: ExportNote['severity']; readonly message: string };
}

/** Where one stored value of `list` goes; `seen` holds the entry keys already placed in this list. */
function placeValue(value: string, seen: Set<string>, schema: ListSchema, list: ListName): Placement {
  const text = trimAscii(value);
  const quoted = JSON.stringify(value);
  if (text === '') {
    return { into: 'none', text, note: { severity: 'info', message: `${quoted} is blank, not an entry (only the iredapd preset reads it, as the null sender): not exported; a write of this list drops it` } };
  }
  const key = entryKey(text);
  const repeated = seen.has(key);
  seen.add(key);
  const client = schema === 'amavisd' && list.endsWith('Recipients') && isClientEntry(text);
  if (!client && (isEntry(text) || (schema === 'amavisd' && isAmavisdOnlyEntry(text)))) {
    const odd: string[] = [];
    if (text !== value) odd.push('white space around it (exported trimmed)');
    if (text !== text.toLowerCase()) odd.push('upper case (exported as stored; it compares in lower case)');
    if (key !== text.toLowerCase()) odd.push('a Unicode domain (exported as stored; it compares in its ASCII form)');
    if (repeated) odd.push('a repeat (exported as stored)');
    // The amavisd tables are read byte for byte, by iRedAPD and amavisd as by the policy daemon.
    if (schema === 'amavisd' && text !== value) odd.push('as stored, nothing matches it');
    else if (schema === 'amavisd' && text !== key) odd.push('as stored, nothing matches it (the tables compare bytes)');
    return odd.length === 0 ? { into: 'list', text } : { into: 'list', text, note: { severity: 'info', message: `${quoted}: ${odd.join(', ')}` } };
  }
  const parsed = parseEntry(text);
  const reason = client ? 'is a client address or network: a sender, never a recipient' : parsed.kind === 'invalid' ? parsed.reason : 'is longer than 254 characters';
  if (isKeepableInvalidEntry(value)) {
    return { into: 'invalid', text: value, note: { severity: 'invalid', message: `${quoted} ${reason}: exported as stored under spec.invalidEntries` } };
  }
  return { into: 'none', text, note: { severity: 'lost', message: `${quoted} ${reason}, and cannot be kept either (too long, or a comma or NUL in it): not exported; applying the export would remove it` } };
}

function restrictionDocument(
  name: string,
  mailbox: string,
  lists: Partial<Record<ListName, string[]>>,
  invalid: Partial<Record<ListName, string[]>>,
  options: ExportOptions,
): RestrictionDocument {
  const metadata: Record<string, string> = { name };
  if (options.namespace !== undefined) metadata.namespace = options.namespace;
  const spec: Record<string, RestrictionDocument[string]> = { mailbox };
  if (options.backend !== undefined) spec.backendRef = { name: options.backend };
  if (options.managementPolicy !== undefined) spec.managementPolicy = options.managementPolicy;
  for (const list of LIST_NAMES) if (lists[list] !== undefined) spec[list] = lists[list]!;
  if (Object.keys(invalid).length > 0) spec.invalidEntries = invalid as RestrictionDocument;
  return { apiVersion: API_VERSION, kind: MAIL_USER_RESTRICTION_KIND, metadata, spec };
}

/**
 * A Kubernetes name (DNS subdomain) for a mailbox: `alice@example.com` → `alice-at-example.com`.
 * When characters had to be replaced, or the name is taken, a short hash of the address makes it
 * unique, so every mailbox gets its own document and file.
 */
export function documentName(mailbox: string, taken: ReadonlySet<string> = new Set()): string {
  const at = mailbox.lastIndexOf('@');
  const plain = `${mailbox.slice(0, at)}-at-${mailbox.slice(at + 1)}`;
  let name = plain
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .replace(/[^a-z0-9]+$/, '')
    .slice(0, 240);
  if (name !== plain || taken.has(name) || name === '') {
    const hash = createHash('sha256').update(mailbox).digest('hex').slice(0, 8);
    name = name === '' ? hash : `${name}-${hash}`;
  }
  return name;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
