/**
 * LDAP search filters for user lookups (RFC 4515). Addresses are data: every value is escaped,
 * so `*`, `(`, `)`, `\` and NUL in an address never become filter syntax.
 */

/**
 * Escapes an assertion value (RFC 4515 §3): NUL, `(`, `)`, `*` and `\` become `\XX`. Other
 * characters, non-ASCII included, stay as they are: the filter travels as UTF-8 and escaping a
 * multi-byte character byte by byte would be decoded back as separate Latin-1 characters by
 * some client libraries (ldapts among them).
 */
export function escapeFilterValue(value: string): string {
  let out = '';
  for (const ch of value) {
    switch (ch) {
      case '\u0000':
        out += '\\00';
        break;
      case '(':
        out += '\\28';
        break;
      case ')':
        out += '\\29';
        break;
      case '*':
        out += '\\2a';
        break;
      case '\\':
        out += '\\5c';
        break;
      default:
        out += ch;
    }
  }
  return out;
}

/**
 * The one filter of a lookup: any of the keys in any of the address attributes, ANDed with the
 * configured user filter — `(&(|(mail=a)(shadowAddress=a)(mail=b)(shadowAddress=b))(objectClass=mailUser))`.
 */
export function lookupFilter(keys: readonly string[], addressAttributes: readonly string[], userFilter: string): string {
  if (keys.length === 0) throw new RangeError('lookupFilter needs at least one key');
  let any = '';
  for (const key of keys) {
    const value = escapeFilterValue(key);
    for (const attribute of addressAttributes) any += `(${attribute}=${value})`;
  }
  const terms = keys.length * addressAttributes.length;
  const match = terms === 1 ? any : `(|${any})`;
  return `(&${match}${normaliseUserFilter(userFilter)})`;
}

/** A configured filter with its outer parentheses, as `(&…)` needs its parts. */
export function normaliseUserFilter(filter: string): string {
  const trimmed = filter.trim();
  return trimmed.startsWith('(') ? trimmed : `(${trimmed})`;
}

/**
 * Why a configured user filter cannot be used, or undefined. Parentheses must balance (values
 * escape theirs as `\28`/`\29`); some parsers quietly accept a missing `)` at the end, and a
 * filter that means something other than what was written is worse than a refusal.
 */
export function userFilterProblem(filter: string, parse: (text: string) => unknown): string | undefined {
  const text = normaliseUserFilter(filter);
  let depth = 0;
  for (const ch of text) {
    if (ch === '(') depth++;
    else if (ch === ')' && --depth < 0) return 'a ")" has no matching "("';
  }
  if (depth !== 0) return 'a "(" is never closed';
  try {
    parse(text);
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}
