import { z } from 'zod';
import { asciiDomain } from '../restrictions/idn.ts';

/**
 * The tenancy boundary of a MailBackend: the mail domains whose mailboxes its restrictions may
 * touch. A MailBackend is created by a cluster admin (docs/tenancy.md); a namespace's
 * MailUserRestrictions reach only the mailboxes of the domains listed on the MailBackends of
 * their own namespace — checked at admission (the chart's ValidatingAdmissionPolicy) and by the
 * operator before every write and clear.
 */

/** A domain as the API server can compare it: lower-case ASCII (IDNs in their xn-- form). */
const DOMAIN_PATTERN = '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';

export const backendDomainSchema = z
  .string()
  .min(3)
  .max(253)
  .regex(new RegExp(DOMAIN_PATTERN), 'a lower-case domain name such as example.com (an IDN in its xn-- form)')
  .meta({
    // One spelling per domain, the one stores hold: admission (CEL, which has no punycode) can
    // then match a mailbox's domain in either form against it (docs/tenancy.md).
    'x-kubernetes-validations': [
      { rule: `!self.matches('[^\\\\x00-\\\\x7F]')`, message: 'is written in Unicode: list an internationalised domain in its ASCII (xn--) form; mailboxes may spell it either way' },
    ],
  })
  .describe('A mail domain, lower-case ASCII (an IDN in its xn-- form).');

export const backendDomainsSchema = z
  .array(backendDomainSchema)
  .min(1)
  .max(256)
  .describe(
    'The mail domains whose mailboxes restrictions naming this MailBackend may touch (exact domains, no sub-domains). Set by the cluster admin who creates the MailBackend; without it every mailbox of the store is reachable from this namespace.',
  );

/** The domain part of a mailbox in the form domains are listed in (lower-case ASCII). */
export function mailboxDomain(mailbox: string): string {
  const domain = mailbox.slice(mailbox.lastIndexOf('@') + 1).trim().toLowerCase();
  return asciiDomain(domain) ?? domain;
}

/** True when `mailbox` may be touched through a backend with `domains` (none listed: any). */
export function mailboxInDomains(mailbox: string, domains: readonly string[] | undefined): boolean {
  return domains === undefined || domains.includes(mailboxDomain(mailbox));
}

/** The status text of a restriction whose address reaches an entry of a domain outside the list. */
export function outsideDomainsEntryMessage(mailbox: string, primary: string, backend: string, domains: readonly string[]): string {
  return `mailbox ${mailbox} is an address of the directory entry of ${primary}, which is outside the domains of MailBackend ${backend} (${domains.join(', ')}); nothing is written or cleared`;
}

/** The status text of a restriction refused for its domain (admission says the same). */
export function outsideDomainsMessage(mailbox: string, backend: string, domains: readonly string[]): string {
  return `mailbox ${mailbox} is outside the domains of MailBackend ${backend} (${domains.join(', ')}); nothing is written or cleared`;
}
