/**
 * Distinguished names (RFC 4514) for iRedMail's user entries. The stores find entries by search
 * and use the DN the server returns; building one is for tools and fixtures that create entries,
 * where an address is an attribute value and must be escaped, never spliced in.
 */

/**
 * Escapes an attribute value for a DN (RFC 4514 §2.4): `"`, `+`, `,`, `;`, `<`, `>`, `\` and `=`
 * are backslash-escaped, a leading `#` or space and a trailing space too, and NUL becomes `\00`.
 */
export function escapeDnValue(value: string): string {
  let out = '';
  const chars = [...value];
  chars.forEach((ch, i) => {
    if (ch === '\u0000') out += '\\00';
    else if ('"+,;<>\\='.includes(ch)) out += `\\${ch}`;
    else if (i === 0 && (ch === '#' || ch === ' ')) out += `\\${ch}`;
    else if (i === chars.length - 1 && ch === ' ') out += '\\ ';
    else out += ch;
  });
  return out;
}

/** The domain of an address: the text after its last `@`. */
function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1);
}

/**
 * Where iRedMail keeps a user: `mail=<address>,ou=Users,domainName=<domain>,<base DN>` (the base
 * DN being `o=domains,<suffix>`).
 */
export function iredmailUserDn(address: string, baseDn: string): string {
  return `mail=${escapeDnValue(address)},ou=Users,domainName=${escapeDnValue(domainOf(address))},${baseDn}`;
}

/** Where iRedMail keeps a domain: `domainName=<domain>,<base DN>`. */
export function iredmailDomainDn(domain: string, baseDn: string): string {
  return `domainName=${escapeDnValue(domain)},${baseDn}`;
}
