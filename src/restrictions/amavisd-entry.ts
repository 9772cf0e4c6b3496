/**
 * Entry forms of the amavisd white/blacklist tables and the priorities iRedAdmin writes for them
 * (../shared/spec/amavisd-wblist.md): `users.priority` for a local account, `mailaddr.priority`
 * for the other party. Pure.
 */
import { isIP } from 'node:net';
import { parseEntry } from './entry.ts';

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
    const local = entry.slice(0, -2);
    return local !== '' && !/[\s@,]/.test(local) ? 'anyDomainUser' : { problem: `"${entry}" has an invalid local part` };
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
