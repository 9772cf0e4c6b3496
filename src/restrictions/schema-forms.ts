/**
 * Which mailbox and entry forms a store schema can hold, checked before anything is written.
 * The document schema (and the CRD) admits the union of every schema's forms; this says, for
 * the schema a restriction is written to, what is not valid there and why. Pure.
 *
 * - `vmail` (the vmail.mailbox columns, LDAP, the Kubernetes and manifests stores): a full address
 *   as mailbox, and the entries `@.`, `@domain`, `@.domain`, `user@domain`.
 * - `amavisd` (the amavisd white/blacklist tables): a mailbox may also be `@domain` (the domain's
 *   list) or `@.` (the server-wide list); entries may also be an IP address, a network, a wildcard
 *   IPv4 or `user@*`, but a client address or network is a sender, never a recipient; and one
 *   party is either allowed or rejected in one direction (one pair holds one of W and B).
 */
import { accountFormProblem, amavisdForm, FORM_WORDS, isAmavisdOnlyForm, isClientForm } from './amavisd-entry.ts';
import { parseEntry } from './entry.ts';
import { asciiAddress } from './idn.ts';
import { LIST_NAMES, type ListName, type RestrictionLists } from './lists.ts';

export type ListSchema = 'vmail' | 'amavisd';

const TWIN: Readonly<Record<ListName, ListName>> = {
  allowedSenders: 'rejectedSenders',
  rejectedSenders: 'allowedSenders',
  allowedRecipients: 'rejectedRecipients',
  rejectedRecipients: 'allowedRecipients',
};

/** Every reason `mailbox` and `lists` cannot be written to a store of `schema` (empty: they can). */
export function schemaProblems(mailbox: string, lists: RestrictionLists, schema: ListSchema): string[] {
  return schema === 'amavisd' ? amavisdProblems(mailbox, lists) : vmailProblems(mailbox, lists);
}

function vmailProblems(mailbox: string, lists: RestrictionLists): string[] {
  const problems: string[] = [];
  const account = parseEntry(mailbox);
  if (account.kind !== 'address') {
    problems.push(`mailbox "${mailbox}" is not a full address (user@domain)${account.kind === 'domain' || account.kind === 'any' ? ': domain-wide and server-wide lists need a MailBackend of schema amavisd' : ''}`);
  }
  for (const name of LIST_NAMES) {
    for (const entry of lists[name]) {
      if (parseEntry(entry).kind !== 'invalid') continue;
      const form = amavisdForm(canonical(entry));
      if (typeof form === 'string' && isAmavisdOnlyForm(form)) problems.push(`${name}: "${entry}" is ${FORM_WORDS[form]}: valid only in a MailBackend of schema amavisd`);
    }
  }
  return problems;
}

function amavisdProblems(mailbox: string, lists: RestrictionLists): string[] {
  const problems: string[] = [];
  const key = canonical(mailbox);
  const account = amavisdForm(key);
  const accountProblem = typeof account === 'string' ? accountFormProblem(key, account) : `mailbox ${account.problem}`;
  if (accountProblem !== undefined) problems.push(accountProblem);
  for (const name of LIST_NAMES) {
    const twin = new Set(lists[TWIN[name]].map(canonical));
    for (const raw of lists[name]) {
      const entry = canonical(raw);
      const form = amavisdForm(entry);
      if (typeof form !== 'string') problems.push(`${name}: ${form.problem}`);
      else if (name.endsWith('Recipients') && isClientForm(form)) problems.push(`${name}: "${entry}" is ${FORM_WORDS[form]}: a client is a sender, never a recipient`);
      else if (name.startsWith('allowed') && twin.has(entry)) problems.push(`"${entry}" is in both ${name} and ${TWIN[name]}: one pair holds one of W and B`);
    }
  }
  return problems;
}

function canonical(entry: string): string {
  return asciiAddress(entry.trim().toLowerCase());
}
