/**
 * Internationalised domain names in their ASCII (punycode) form. Stores hold them so (LDAP's
 * IA5String attributes cannot hold anything else) and requests are matched so, whichever form
 * a document, a store row or a Postfix request carries.
 */
import { domainToASCII } from 'node:url';

const NON_ASCII = /[^\x00-\x7f]/;

/** `bücher.example` → `xn--bcher-kva.example`; ASCII is returned as is; undefined when not a valid IDN. */
export function asciiDomain(domain: string): string | undefined {
  if (!NON_ASCII.test(domain)) return domain;
  const ascii = domainToASCII(domain);
  return ascii === '' ? undefined : ascii;
}

/**
 * An address, an entry (`@d`, `@.d`, `user@d`) or any text with its domain part (after the last
 * `@`) in ASCII form. The local part is kept (SMTPUTF8 local parts have no ASCII form). Text whose
 * domain has no valid ASCII form is returned unchanged, for the caller's validation to refuse.
 */
export function asciiAddress(text: string): string {
  if (!NON_ASCII.test(text)) return text;
  const at = text.lastIndexOf('@');
  if (at < 0) return text;
  const tree = text.startsWith('.', at + 1);
  const domain = text.slice(at + (tree ? 2 : 1));
  if (domain === '') return text;
  const ascii = asciiDomain(domain);
  return ascii === undefined ? text : text.slice(0, at + (tree ? 2 : 1)) + ascii;
}
