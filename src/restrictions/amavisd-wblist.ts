/**
 * The decision of iRedAPD 6.1's `amavisd_wblist` plugin over the `amavisd` white/blacklist tables
 * (../shared/spec/amavisd-wblist.md), pure: the store brings the rows, this decides. Pair by pair
 * in priority order, so the most specific (account, party) pair decides; not the "allowed list
 * beats rejected list" rule of the vmail.mailbox columns.
 *
 * One deliberate deviation: iRedAPD appends the client's CIDR `mailaddr` ids to the outbound
 * account ids (`outbound_wblist.sid` holds `users` ids), so a network row triggers the lists of
 * whichever account has the same id number. Here client networks match nothing outbound.
 */
import { stripExtension } from './decide.ts';
import { asciiAddress } from './idn.ts';
import { trimAscii } from './sql-list.ts';

export interface WblistInput {
  readonly protocolState: string | undefined;
  readonly sender: string | undefined;
  readonly recipient: string | undefined;
  readonly saslUsername: string | undefined;
  readonly clientAddress: string | undefined;
}

export interface WblistOptions {
  /** Postfix's recipient_delimiter; '' keeps extensions. */
  readonly recipientDelimiter: string;
  /** WBLIST_BYPASS_OUTGOING_EMAIL: no outbound step. */
  readonly bypassOutgoing: boolean;
  /** WBLIST_DISCARD_INSTEAD_OF_REJECT. */
  readonly discardInsteadOfReject: boolean;
}

export const DEFAULT_WBLIST_OPTIONS: WblistOptions = Object.freeze({ recipientDelimiter: '+', bypassOutgoing: false, discardInsteadOfReject: false });

/** A `users` or `mailaddr` row as the decision needs it. */
export interface WblistRow {
  readonly id: number;
  readonly priority: number;
  readonly email: string;
}

/** What the store (and the vmail database) say about one request's candidates. */
export interface WblistFacts {
  /** `users` rows whose email is one of the plan's candidate forms, by email. */
  readonly users: ReadonlyMap<string, WblistRow>;
  /** `mailaddr` rows whose email is one of the candidate forms, by email. */
  readonly mailaddr: ReadonlyMap<string, WblistRow>;
  /** `mailaddr` rows that begin with the IPv4 client's first octet and a dot (network candidates). */
  readonly networks: readonly WblistRow[];
  /** `wblist` (inbound) by `${rid}/${sid}` (rid: users.id, sid: mailaddr.id). */
  readonly inbound: ReadonlyMap<string, 'W' | 'B'>;
  /** `outbound_wblist` by `${rid}/${sid}` (rid: mailaddr.id, sid: users.id). */
  readonly outbound: ReadonlyMap<string, 'W' | 'B'>;
  /** The active target of an alias domain (vmail.alias_domain), or undefined. */
  aliasTarget(domain: string): string | undefined;
  /** An active vmail.domain row (backup MX included) or the server's own host name. */
  isLocalDomain(domain: string): boolean;
}

/** One request, normalised, and the candidate forms to fetch (before alias domains). */
export interface WblistPlan {
  /** The sending identity: the envelope sender without extension, or `sasl_username` as it is. */
  readonly sender: string;
  readonly senderDomain: string;
  readonly recipient: string;
  readonly recipientDomain: string;
  readonly sasl: boolean;
  readonly clientAddress: string;
}

export type WblistVerdict = 'whitelist' | 'blacklist' | 'none' | 'skip';

export interface WblistDecision {
  readonly verdict: WblistVerdict;
  /** `OK`, `REJECT Blacklisted`, `DISCARD Policy discard` or `DUNNO`. */
  readonly action: string;
  readonly direction?: 'outbound' | 'inbound';
  /** The deciding pair: the local account (users.email), the other party (mailaddr.email), W/B. */
  readonly account?: string;
  readonly party?: string;
  readonly wb?: 'W' | 'B';
  /** An outbound whitelist met on the way (iRedAPD's internal `DUNNO outbound_wblist=…`). */
  readonly outboundWhitelist?: { readonly account: string; readonly party: string };
  readonly reason?: string;
}

/** Step 1: which requests are judged, and the addresses that decide. A string is a skip reason. */
export function planWblist(input: WblistInput, options: WblistOptions): WblistPlan | string {
  if (input.protocolState === undefined || input.protocolState.toUpperCase() !== 'RCPT') return `protocol_state is ${input.protocolState ?? 'missing'}, not RCPT`;
  if (input.recipient === undefined || input.sender === undefined) return 'the request has no sender or recipient';
  const envelopeSender = normalise(input.sender);
  const recipientFull = normalise(input.recipient);
  const recipient = stripExtension(recipientFull, options.recipientDelimiter) ?? recipientFull;
  const sasl = input.saslUsername === undefined ? '' : normalise(input.saslUsername);
  // SASL replaces the sender as it is: its extension is kept.
  const sender = sasl !== '' ? sasl : (stripExtension(envelopeSender, options.recipientDelimiter) ?? envelopeSender);
  if (sender === '') return 'no sender (null sender without SASL login)';
  if (sender === recipient) return 'the sender is the recipient';
  return {
    sender,
    senderDomain: domainOf(sender),
    recipient,
    recipientDomain: domainOf(recipient),
    sasl: sasl !== '',
    clientAddress: trimAscii(input.clientAddress ?? '').toLowerCase(),
  };
}

/**
 * Candidate forms of an address (iRedAPD's get_policy_addresses_from_email): `user@a.b.c`,
 * `@a.b.c`, `@.`, `@.a.b.c`, `@.b.c`, `@.c`; only `@.` for something that is not an address.
 */
export function addressForms(address: string): string[] {
  const at = address.indexOf('@');
  if (at <= 0 || at === address.length - 1 || address.indexOf('@', at + 1) >= 0) return ['@.'];
  const domain = address.slice(at + 1);
  const forms = [address, `@${domain}`, '@.'];
  const parts = domain.split('.');
  for (let i = 0; i < parts.length; i++) forms.push(`@.${parts.slice(i).join('.')}`);
  return forms;
}

/** `a.b.c.*` and `a.b.*.d` (iRedAPD's wildcard_ipv4 without ENABLE_ALL_WILDCARD_IP). */
export function wildcardIpv4(ip: string): string[] {
  const octets = ipv4Octets(ip);
  if (octets === undefined) return [];
  const [a, b, c, d] = octets;
  return [`${a}.${b}.${c}.*`, `${a}.${b}.*.${d}`];
}

/** The forms the sender and recipient may be listed under, alias-domain forms included. */
export function candidateForms(plan: WblistPlan, aliasTarget: (domain: string) => string | undefined): { sender: string[]; recipient: string[] } {
  const sender = addressForms(plan.sender);
  if (!plan.sasl) {
    const local = plan.sender.slice(0, Math.max(0, plan.sender.indexOf('@')));
    sender.push(`${local.split('+', 1)[0]}@*`);
  }
  if (plan.clientAddress !== '') sender.push(plan.clientAddress, ...wildcardIpv4(plan.clientAddress));
  const senderTarget = aliasTarget(plan.senderDomain);
  if (senderTarget !== undefined) sender.push(...addressForms(`${localOf(plan.sender)}@${senderTarget}`));
  const recipient = addressForms(plan.recipient);
  const recipientTarget = aliasTarget(plan.recipientDomain);
  if (recipientTarget !== undefined) recipient.push(...addressForms(`${localOf(plan.recipient)}@${recipientTarget}`));
  return { sender: unique(sender), recipient: unique(recipient) };
}

/** The first octet and dot the network candidates begin with (`10.`), for an IPv4 client only. */
export function networkPrefix(clientAddress: string): string | undefined {
  const octets = ipv4Octets(clientAddress);
  return octets === undefined ? undefined : `${octets[0]}.`;
}

/** Steps 3–5 over the fetched rows. */
export function decideWblist(plan: WblistPlan, facts: WblistFacts, options: WblistOptions): WblistDecision {
  const forms = candidateForms(plan, (d) => facts.aliasTarget(d));
  let outboundWhitelist: WblistDecision['outboundWhitelist'];
  if (plan.sasl && !options.bypassOutgoing) {
    // Outbound: the sender's account rows, then the recipient's party rows; networks match nothing.
    const accounts = byPriority(forms.sender, facts.users);
    const parties = accounts.length === 0 ? [] : byPriority(forms.recipient, facts.mailaddr);
    const hit = firstPair(accounts, parties, (account, party) => facts.outbound.get(`${party.id}/${account.id}`));
    if (hit !== undefined) {
      if (hit.wb === 'B') return listed('outbound', hit, options);
      outboundWhitelist = { account: hit.account.email, party: hit.party.email };
    }
  }
  const inbound =
    !plan.sasl ||
    plan.senderDomain === plan.recipientDomain ||
    facts.aliasTarget(plan.recipientDomain) !== undefined ||
    facts.isLocalDomain(plan.recipientDomain);
  if (inbound) {
    const accounts = byPriority(forms.recipient, facts.users);
    const parties = accounts.length === 0 ? [] : [...byPriority(forms.sender, facts.mailaddr), ...networksContaining(plan.clientAddress, facts.networks)];
    const hit = firstPair(accounts, parties, (account, party) => facts.inbound.get(`${account.id}/${party.id}`));
    if (hit !== undefined) return listed('inbound', hit, options);
  }
  return {
    verdict: 'none',
    action: 'DUNNO',
    reason: inbound ? 'no white/blacklist pair of the sender and recipient' : 'outbound only: the recipient domain is not local',
    ...(outboundWhitelist === undefined ? {} : { outboundWhitelist }),
  };
}

/** One line for a person: the action and the pair that decided it. */
export function explainWblist(decision: WblistDecision): string {
  if (decision.verdict === 'whitelist' || decision.verdict === 'blacklist') {
    return `${decision.action} (${decision.direction}: account ${decision.account}, party ${decision.party}, ${decision.wb})`;
  }
  const outbound = decision.outboundWhitelist === undefined ? '' : `; outbound whitelist: account ${decision.outboundWhitelist.account}, party ${decision.outboundWhitelist.party}, W`;
  return `${decision.action} (${decision.verdict}: ${decision.reason}${outbound})`;
}

interface Pair {
  readonly account: WblistRow;
  readonly party: WblistRow;
  readonly wb: 'W' | 'B';
}

function firstPair(accounts: readonly WblistRow[], parties: readonly WblistRow[], wbOf: (account: WblistRow, party: WblistRow) => 'W' | 'B' | undefined): Pair | undefined {
  for (const account of accounts) {
    for (const party of parties) {
      const wb = wbOf(account, party);
      if (wb !== undefined) return { account, party, wb };
    }
  }
  return undefined;
}

function listed(direction: 'outbound' | 'inbound', pair: Pair, options: WblistOptions): WblistDecision {
  const black = pair.wb === 'B';
  return {
    verdict: black ? 'blacklist' : 'whitelist',
    action: black ? (options.discardInsteadOfReject ? 'DISCARD Policy discard' : 'REJECT Blacklisted') : 'OK',
    direction,
    account: pair.account.email,
    party: pair.party.email,
    wb: pair.wb,
  };
}

/** The rows of `forms` that exist, highest priority first (ties: in candidate order). */
function byPriority(forms: readonly string[], rows: ReadonlyMap<string, WblistRow>): WblistRow[] {
  const found: WblistRow[] = [];
  for (const form of forms) {
    const row = rows.get(form);
    if (row !== undefined && !found.includes(row)) found.push(row);
  }
  return found.sort((a, b) => b.priority - a.priority);
}

/** Network rows (parsed strictly; a plain address is a /32) that contain an IPv4 client. */
export function networksContaining(clientAddress: string, rows: readonly WblistRow[]): WblistRow[] {
  const client = ipv4Number(clientAddress);
  if (client === undefined) return [];
  return rows.filter((row) => {
    const net = ipv4Network(row.email);
    return net !== undefined && (client & net.mask) >>> 0 === net.base;
  });
}

function ipv4Network(text: string): { base: number; mask: number } | undefined {
  const slash = text.indexOf('/');
  const base = ipv4Number(slash < 0 ? text : text.slice(0, slash));
  if (base === undefined) return undefined;
  const prefixText = slash < 0 ? '32' : text.slice(slash + 1);
  if (!/^(?:[0-9]|[12][0-9]|3[0-2])$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  // Host bits set (10.1.2.7/24) is not a network, as Python's ip_network(strict=True) says.
  if ((base & mask) >>> 0 !== base) return undefined;
  return { base, mask };
}

function ipv4Octets(text: string): [number, number, number, number] | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (match === null) return undefined;
  const octets = match.slice(1).map((part) => (part.length > 1 && part.startsWith('0') ? NaN : Number(part)));
  if (octets.some((o) => !(o >= 0 && o <= 255))) return undefined;
  return octets as [number, number, number, number];
}

function ipv4Number(text: string): number | undefined {
  const octets = ipv4Octets(text);
  return octets === undefined ? undefined : ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
}

function normalise(address: string): string {
  return asciiAddress(trimAscii(address).toLowerCase());
}

function domainOf(address: string): string {
  const at = address.indexOf('@');
  return at < 0 ? '' : address.slice(at + 1);
}

function localOf(address: string): string {
  const at = address.indexOf('@');
  return at < 0 ? address : address.slice(0, at);
}

function unique(forms: string[]): string[] {
  return [...new Set(forms)];
}
