/**
 * Entry forms of the amavisd white/blacklist tables and the priorities iRedAdmin writes for them
 * (../shared/spec/amavisd-wblist.md): `users.priority` for a local account, `mailaddr.priority`
 * for the other party. Pure.
 */
import { isIP } from 'node:net';
import { parseEntry } from './entry.ts';
import { celString, entryCelRules, entryRegexes, type CelRule, type RegexDialect } from './entry-grammar.ts';

export type AmavisdForm = 'address' | 'anyDomainUser' | 'ip' | 'wildcardIp' | 'cidr' | 'domain' | 'domainTree' | 'tld' | 'any';

const ACCOUNT_PRIORITY: Readonly<Record<AmavisdForm, number>> = { address: 100, anyDomainUser: 90, ip: 80, wildcardIp: 70, cidr: 70, domain: 60, domainTree: 50, tld: 40, any: 0 };
const PARTY_PRIORITY: Readonly<Record<AmavisdForm, number>> = { address: 10, ip: 9, wildcardIp: 8, cidr: 7, anyDomainUser: 7, domain: 5, domainTree: 3, tld: 2, any: 0 };

/** The form of a lower-cased entry, or a reason it is none. */
export function amavisdForm(entry: string): AmavisdForm | { readonly problem: string } {
  if (entry === '@.') return 'any';
  if (isIP(entry) !== 0) return 'ip';
  if (/^\d{1,3}\.\d{1,3}\.(?:\d{1,3}|\*)\.(?:\d{1,3}|\*)$/.test(entry) && entry.includes('*')) return 'wildcardIp';
  const slash = entry.indexOf('/');
  if (slash > 0 && isIP(entry.slice(0, slash)) !== 0) {
    const bits = Number(entry.slice(slash + 1));
    const max = isIP(entry.slice(0, slash)) === 4 ? 32 : 128;
    return /^\d{1,3}$/.test(entry.slice(slash + 1)) && bits <= max ? 'cidr' : { problem: `"${entry}" has an invalid network prefix` };
  }
  if (entry.endsWith('@*')) {
    return LOCAL_PART.test(entry.slice(0, -2)) ? 'anyDomainUser' : { problem: `"${entry}" has an invalid local part` };
  }
  // `@.com`: a top-level domain, which the general parser accepts as a domain tree.
  if (/^@\.[a-z0-9-]+$/.test(entry)) return 'tld';
  const parsed = parseEntry(entry);
  switch (parsed.kind) {
    case 'invalid':
      return { problem: `"${entry}" ${parsed.reason}` };
    case 'any':
      return 'any';
    case 'domain':
      return 'domain';
    case 'domainTree':
      return 'domainTree';
    case 'address':
      return 'address';
  }
}

export function accountPriority(form: AmavisdForm): number {
  return ACCOUNT_PRIORITY[form];
}

export function partyPriority(form: AmavisdForm): number {
  return PARTY_PRIORITY[form];
}

/** IP forms name a connecting client: they can be a sender, never a recipient. */
export function isClientForm(form: AmavisdForm): boolean {
  return form === 'ip' || form === 'wildcardIp' || form === 'cidr';
}

/** Forms a MailUserRestriction's mailbox (a `users` row) may take: an address, `@domain`, `@.`. */
const ACCOUNT_FORMS: readonly AmavisdForm[] = ['address', 'domain', 'any'];

/** Why `entry` (of form `form`) cannot be an account of the amavisd schema, or undefined. */
export function accountFormProblem(entry: string, form: AmavisdForm): string | undefined {
  if (ACCOUNT_FORMS.includes(form)) return undefined;
  return `mailbox "${entry}" is not an account of the amavisd schema: use an address, @domain (the domain's list) or @. (the server-wide list)`;
}

/** The forms only the amavisd schema knows: client addresses and networks, `user@*`. */
export function isAmavisdOnlyForm(form: AmavisdForm): boolean {
  return isClientForm(form) || form === 'anyDomainUser';
}

/** `entry` (any case) is valid in the amavisd schema only: an IP, a network, a wildcard IPv4 or `user@*`. */
export function isAmavisdOnlyEntry(entry: string): boolean {
  const form = amavisdForm(entry.trim().toLowerCase());
  return typeof form === 'string' && isAmavisdOnlyForm(form);
}

/** `entry` (any case) is an IP address, a network or a wildcard IPv4: a client, never a recipient. */
export function isClientEntry(entry: string): boolean {
  const form = amavisdForm(entry.trim().toLowerCase());
  return typeof form === 'string' && isClientForm(form);
}

/** Words for a form, in messages. */
export const FORM_WORDS: Readonly<Record<AmavisdForm, string>> = {
  address: 'an address',
  anyDomainUser: 'a local part at any domain (user@*)',
  ip: 'an IP address',
  wildcardIp: 'a wildcard IPv4 address',
  cidr: 'a network (CIDR)',
  domain: 'a domain',
  domainTree: 'a domain and its sub-domains',
  tld: 'a top-level domain',
  any: 'everyone (@.)',
};

/** The entry grammar's local part (entry-grammar.ts), so `user@*` refuses what an address refuses. */
const LOCAL_PART = new RegExp(`^${entryRegexes('ecmascript').localPart}$`, 'u');

/**
 * A loose pattern of the amavisd-only forms for the CRD (the operator checks them strictly):
 * IPv4 with optional wildcards and prefix, IPv6 with optional prefix, `user@*`.
 */
export function amavisdOnlyPattern(dialect: RegexDialect): string {
  const ipv4 = '[0-9]{1,3}[.][0-9]{1,3}[.](?:[0-9]{1,3}|[*])[.](?:[0-9]{1,3}|[*])(?:/[0-9]{1,2})?';
  const ipv6 = '[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:/[0-9]{1,3})?';
  return `^(?:${ipv4}|${ipv6}|${entryRegexes(dialect).localPart}@[*])$`;
}

/**
 * The entry grammar's CEL rules (entry-grammar.ts) widened by the amavisd-only forms: the shape
 * rule admits them too, and the Unicode domain-size rule does not apply to a text without `@`.
 */
export function entryCelRulesWithAmavisd(shapeMessage: string): CelRule[] {
  const [shape, size, ...rest] = entryCelRules('entry', shapeMessage);
  return [
    { ...shape!, rule: `${shape!.rule} || self.matches(${celString(amavisdOnlyPattern('re2'))})` },
    { ...size!, rule: `!self.contains('@') || ${size!.rule}` },
    ...rest,
  ];
}

/** The address rules widened by the amavisd schema's accounts `@domain` and `@.`. */
export function accountCelRules(shapeMessage: string): CelRule[] {
  const [shape, ...rest] = entryCelRules('address', shapeMessage);
  const entry = celString(entryRegexes('re2').entry);
  return [{ ...shape!, rule: `${shape!.rule} || self == '@.' || (!self.startsWith('@.') && self.matches(${entry}))` }, ...rest];
}
