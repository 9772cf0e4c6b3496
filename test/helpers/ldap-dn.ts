/**
 * Distinguished names (RFC 4514) for iRedMail's user entries, for the tests' fixtures. The stores
 * never build one (they find entries by search and use the DN the server returns); a fixture that
 * creates an entry must escape the address, an attribute value, never splice it in.
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
