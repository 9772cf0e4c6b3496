import type { WblistDecision } from './amavisd-wblist.ts';
import { domainOf } from './list-index.ts';
import { LIST_NAMES, type ListName } from './lists.ts';
import { LIST_NUMBER, type CompiledMailbox } from './mailbox.ts';
import type { DecisionOptions } from './options.ts';
import { asciiAddress } from './idn.ts';
import { trimAscii } from './sql-list.ts';

/** What the decision reads of a policy request (a `PolicyRequest` fits). */
export interface DecisionInput {
  readonly protocolState: string | undefined;
  readonly sender: string | undefined;
  readonly recipient: string | undefined;
  readonly saslUsername: string | undefined;
}

/** The normalised addresses of one request and the mailbox keys to fetch for it. */
export class DecisionPlan {
  /** Envelope sender, '' for the null sender. */
  readonly sender: string;
  /** The sender without its extension (recipient_delimiter), when it has one. */
  readonly senderBase: string | undefined;
  readonly recipient: string;
  readonly recipientBase: string | undefined;
  /** The domain parts (see domainOf), taken once per request rather than once per list checked. */
  readonly senderDomain: string;
  readonly senderBaseDomain: string | undefined;
  readonly recipientDomain: string;
  readonly recipientBaseDomain: string | undefined;
  /** The sending identity whose outbound lists apply ('' when there is none). */
  readonly identity: string;
  readonly identityBase: string | undefined;
  #keys: string[] | undefined;

  constructor(sender: string, senderBase: string | undefined, recipient: string, recipientBase: string | undefined, identity: string, identityBase: string | undefined) {
    this.sender = sender;
    this.senderBase = senderBase;
    this.recipient = recipient;
    this.recipientBase = recipientBase;
    this.identity = identity;
    this.identityBase = identityBase;
    this.senderDomain = domainOf(sender);
    this.senderBaseDomain = senderBase === undefined ? undefined : domainOf(senderBase);
    this.recipientDomain = domainOf(recipient);
    this.recipientBaseDomain = recipientBase === undefined ? undefined : domainOf(recipientBase);
  }

  /**
   * Every distinct mailbox key the decision may read, for one batched store lookup; computed
   * on first use (an in-memory store never needs it).
   */
  get keys(): readonly string[] {
    if (this.#keys !== undefined) return this.#keys;
    const keys: string[] = [];
    if (this.identity !== '') addKey(keys, this.identity);
    if (this.identityBase !== undefined) addKey(keys, this.identityBase);
    addKey(keys, this.recipient);
    if (this.recipientBase !== undefined) addKey(keys, this.recipientBase);
    this.#keys = keys;
    return keys;
  }
}

export type Verdict = 'allow' | 'reject' | 'none' | 'skip' | 'failure';

/** One decision and why: which mailbox, list and entry decided (spec §6, `--explain`). */
export interface Decision {
  readonly verdict: Verdict;
  /** The policy action text, e.g. `DUNNO` or `REJECT Not authorized`. */
  readonly action: string;
  readonly direction?: 'outbound' | 'inbound';
  readonly mailbox?: string;
  readonly list?: ListName;
  readonly entry?: string;
  /** The address the entry matched. */
  readonly matched?: string;
  /** Words for skip / none / failure decisions. */
  readonly reason?: string;
  /** The amavisd schema's decision, with the (account, party, W/B) pair that decided. */
  readonly wblist?: WblistDecision;
}

/** Looks a key up among the mailboxes fetched for a plan; undefined when it has none. */
export type MailboxLookup = (key: string) => CompiledMailbox | undefined;

/**
 * Step 0 of the decision (spec §3): is the request judged at all, and which mailboxes does it
 * need. Returns a reason string for requests answered `DUNNO` without a lookup.
 */
export function planDecision(input: DecisionInput, options: DecisionOptions): DecisionPlan | string {
  if (input.protocolState === undefined) return 'the request has no protocol_state';
  // Postfix sends upper case; the comparison that allocates runs only for anything else.
  if (input.protocolState !== 'RCPT' && input.protocolState.toUpperCase() !== 'RCPT') return `protocol_state is ${input.protocolState}, not RCPT`;
  if (input.recipient === undefined) return 'the request has no recipient';
  if (input.sender === undefined) return 'the request has no sender';
  const recipient = normalise(input.recipient);
  if (recipient === '') return 'the recipient is empty';
  const sender = normalise(input.sender);
  const sasl = options.identityFromSasl && input.saslUsername !== undefined ? normalise(input.saslUsername) : '';
  const identity = sasl !== '' ? sasl : sender;

  const delimiter = options.recipientDelimiter;
  const senderBase = stripExtension(sender, delimiter);
  const recipientBase = stripExtension(recipient, delimiter);
  const identityBase = identity === sender ? senderBase : stripExtension(identity, delimiter);
  return new DecisionPlan(sender, senderBase, recipient, recipientBase, identity, identityBase);
}

/** Most requests match no list: one shared answer rather than an object per request. */
const NO_MATCH: Decision = Object.freeze({ verdict: 'none', action: 'DUNNO', reason: 'no list of the sending identity or the recipient matched' });

/**
 * Steps 2–4 of spec §3 over already-fetched mailboxes: outbound (the sending identity's
 * recipient lists), then inbound (the recipient's sender lists); the first hit wins and an
 * allowed list is consulted before its rejected twin.
 */
export function decide(plan: DecisionPlan, lookup: MailboxLookup, options: DecisionOptions): Decision {
  if (plan.identity !== '') {
    const mailbox = findMailbox(lookup, plan.identity, plan.identityBase);
    if (mailbox !== undefined) {
      const hit = firstHit(mailbox, ALLOWED_RECIPIENTS, REJECTED_RECIPIENTS, true, plan.recipient, plan.recipientDomain, plan.recipientBase, plan.recipientBaseDomain, options);
      if (hit !== undefined) return verdictOf(hit, 'outbound', mailbox.address, options);
    }
  }
  const mailbox = findMailbox(lookup, plan.recipient, plan.recipientBase);
  if (mailbox !== undefined) {
    const exempt = options.nullSenderExemption && plan.sender === '';
    const hit = firstHit(mailbox, ALLOWED_SENDERS, REJECTED_SENDERS, !exempt, plan.sender, plan.senderDomain, plan.senderBase, plan.senderBaseDomain, options);
    if (hit !== undefined) return verdictOf(hit, 'inbound', mailbox.address, options);
  }
  return NO_MATCH;
}

/** The answer for a request not judged (see {@link planDecision}). */
export function skipped(reason: string): Decision {
  return { verdict: 'skip', action: 'DUNNO', reason };
}

/** The answer when the store failed and no last known good data covers the request (spec §4). */
export function failed(reason: string, options: DecisionOptions): Decision {
  return { verdict: 'failure', action: options.failureAction, reason };
}

/** One line for a person: the action, then which mailbox, list and entry decided. */
export function explain(decision: Decision): string {
  switch (decision.verdict) {
    case 'allow':
    case 'reject':
      return (
        `${decision.action} (${decision.verdict}: ${decision.direction}, mailbox ${decision.mailbox}, ` +
        `${decision.list} entry "${decision.entry}" matched ${decision.matched === '' ? 'the null sender <>' : decision.matched})`
      );
    default:
      return `${decision.action} (${decision.verdict}: ${decision.reason})`;
  }
}

interface Hit {
  readonly list: ListName;
  readonly entry: string;
  readonly matched: string;
}

const ALLOWED_SENDERS = LIST_NUMBER.allowedSenders;
const REJECTED_SENDERS = LIST_NUMBER.rejectedSenders;
const ALLOWED_RECIPIENTS = LIST_NUMBER.allowedRecipients;
const REJECTED_RECIPIENTS = LIST_NUMBER.rejectedRecipients;

/**
 * One direction of spec §3: the allowed list, then (unless exempt) the rejected one, each for
 * the address and then for its base (without the extension). The address's and domain's index
 * bits are read once for both lists.
 */
function firstHit(
  mailbox: CompiledMailbox,
  allowed: number,
  rejected: number,
  checkRejected: boolean,
  address: string,
  domain: string,
  base: string | undefined,
  baseDomain: string | undefined,
  options: DecisionOptions,
): Hit | undefined {
  const wanted = (1 << allowed) | (checkRejected ? 1 << rejected : 0);
  if ((mailbox.lists & wanted) === 0) return undefined;
  const subdomains = options.subdomainMatching;
  const addressBits = mailbox.bits(address);
  const domainBits = mailbox.bits(domain);
  let baseBits = 0;
  let baseDomainBits = 0;
  if (base !== undefined) {
    baseBits = mailbox.bits(base);
    baseDomainBits = baseDomain === domain ? domainBits : mailbox.bits(baseDomain as string);
  }
  for (let i = 0; i < 2; i++) {
    const list = i === 0 ? allowed : rejected;
    if ((mailbox.lists & wanted & (1 << list)) === 0) continue;
    let entry = mailbox.entryFor(list, address, addressBits, domain, domainBits, subdomains);
    if (entry !== undefined) return { list: LIST_NAMES[list] as ListName, entry, matched: address };
    if (base === undefined) continue;
    entry = mailbox.entryFor(list, base, baseBits, baseDomain as string, baseDomainBits, subdomains);
    if (entry !== undefined) return { list: LIST_NAMES[list] as ListName, entry, matched: base };
  }
  return undefined;
}

function verdictOf(hit: Hit, direction: 'outbound' | 'inbound', mailbox: string, options: DecisionOptions): Decision {
  const allow = hit.list === 'allowedRecipients' || hit.list === 'allowedSenders';
  return {
    verdict: allow ? 'allow' : 'reject',
    action: allow ? options.allowAction : options.rejectAction,
    direction,
    mailbox,
    list: hit.list,
    entry: hit.entry,
    matched: hit.matched,
  };
}

function findMailbox(lookup: MailboxLookup, key: string, base: string | undefined): CompiledMailbox | undefined {
  return lookup(key) ?? (base === undefined ? undefined : lookup(base));
}

function normalise(address: string): string {
  // A UTF-8 domain (SMTPUTF8) matches the entries, which hold it in ASCII form.
  return asciiAddress(trimAscii(address).toLowerCase());
}

/** `alice+news@example.com` → `alice@example.com` for delimiter `+` (any of its characters). */
export function stripExtension(address: string, delimiter: string): string | undefined {
  if (delimiter === '' || address === '') return undefined;
  const at = address.lastIndexOf('@');
  const localEnd = at < 0 ? address.length : at;
  if (delimiter.length === 1) {
    // The usual case (`+`), without a loop over the local part; an address that begins with
    // the delimiter is kept as it is, as below.
    const i = address.indexOf(delimiter);
    if (i <= 0 || i >= localEnd) return undefined;
    return address.slice(0, i) + address.slice(localEnd);
  }
  for (let i = 0; i < localEnd; i++) {
    if (delimiter.includes(address[i]!)) {
      // Postfix keeps an address that begins with the delimiter as it is.
      if (i === 0) return undefined;
      return address.slice(0, i) + address.slice(localEnd);
    }
  }
  return undefined;
}

function addKey(keys: string[], key: string): void {
  if (!keys.includes(key)) keys.push(key);
}
