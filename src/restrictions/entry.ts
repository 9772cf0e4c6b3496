import { asciiDomain } from './idn.ts';

/**
 * Restriction entries (spec §2): `@.`, `@domain`, `@.domain`, `user@domain`. An internationalised
 * domain is parsed into its ASCII (punycode) form, the one stores hold and requests are matched in.
 * Parsing is pure; both the schema (to refuse bad input) and the compiler (to ignore bad
 * stored data) use it, so "valid" means one thing everywhere.
 */
export type Entry =
  | { readonly kind: 'any'; readonly text: string }
  | { readonly kind: 'domain'; readonly text: string; readonly domain: string }
  | { readonly kind: 'domainTree'; readonly text: string; readonly domain: string }
  | { readonly kind: 'address'; readonly text: string; readonly address: string };

export interface InvalidEntry {
  readonly kind: 'invalid';
  readonly text: string;
  /** Why, in words a mail admin understands. */
  readonly reason: string;
}

const MAX_ADDRESS = 320;
const MAX_LOCAL = 64;
const MAX_DOMAIN = 253;
const MAX_LABEL = 63;

/** A domain label: letters, digits, hyphen, underscore; any non-ASCII (IDN) character. */
const LABEL = /^(?:[a-z0-9_\u0080-\uffff](?:[a-z0-9_\u0080-\uffff-]*[a-z0-9_\u0080-\uffff])?)$/;
/** Local part: printable, no white space, no `@`, no `,` (the SQL list separator), no quotes. */
const LOCAL = /^[^\s@,"\u0000-\u001f\u007f]+$/;

/** Parses one entry (already trimmed or not); case is folded. */
export function parseEntry(raw: string): Entry | InvalidEntry {
  const text = raw.trim().toLowerCase();
  if (text === '') return invalid(raw, 'is empty');
  if (text === '@.') return { kind: 'any', text };
  if (/\s/.test(text)) return invalid(raw, 'contains white space');
  if (text.includes(',')) return invalid(raw, 'contains a comma (one entry per list item)');
  const at = text.lastIndexOf('@');
  if (at < 0) {
    return invalid(raw, `is not an entry: write "@${text}" for the domain, "@.${text}" for it and its sub-domains, or a full address`);
  }
  if (at === 0) {
    const tree = text.startsWith('@.');
    const domain = asciiOf(text.slice(tree ? 2 : 1));
    const problem = domain === undefined ? NOT_IDN : domainProblem(domain);
    if (problem || domain === undefined) return invalid(raw, problem ?? NOT_IDN);
    return tree ? { kind: 'domainTree', text: `@.${domain}`, domain } : { kind: 'domain', text: `@${domain}`, domain };
  }
  const local = text.slice(0, at);
  if (text.length > MAX_ADDRESS) return invalid(raw, `is longer than ${MAX_ADDRESS} characters`);
  if (local.length > MAX_LOCAL) return invalid(raw, `has a local part longer than ${MAX_LOCAL} characters`);
  if (!LOCAL.test(local)) return invalid(raw, 'has an invalid local part');
  const domain = asciiOf(text.slice(at + 1));
  const problem = domain === undefined ? NOT_IDN : domainProblem(domain);
  if (problem || domain === undefined) return invalid(raw, problem ?? NOT_IDN);
  const address = `${local}@${domain}`;
  return { kind: 'address', text: address, address };
}

const NOT_IDN = 'has a domain that is not a valid internationalised domain name';

/** The ASCII form of a domain that passes the label rules; undefined when it has none. */
function asciiOf(domain: string): string | undefined {
  // The rules first on the text as written, so an empty label or a trailing dot keeps its own message.
  if (domainProblem(domain) !== undefined) return domain;
  return asciiDomain(domain);
}

/** The reason `domain` is not a valid domain name, or undefined when it is. */
export function domainProblem(domain: string): string | undefined {
  if (domain === '') return 'has no domain';
  if (domain.length > MAX_DOMAIN) return `has a domain longer than ${MAX_DOMAIN} characters`;
  if (domain.endsWith('.')) return 'has a domain ending in a dot';
  for (const label of domain.split('.')) {
    if (label === '') return 'has an empty domain label (two dots in a row or a leading dot)';
    if (label.length > MAX_LABEL) return `has a domain label longer than ${MAX_LABEL} characters`;
    if (!LABEL.test(label)) return `has an invalid domain label "${label}"`;
  }
  return undefined;
}

/** A short message naming the entry and the problem, or undefined for a valid entry. */
export function entryProblem(raw: string): string | undefined {
  const parsed = parseEntry(raw);
  return parsed.kind === 'invalid' ? `"${raw}" ${parsed.reason}` : undefined;
}

function invalid(text: string, reason: string): InvalidEntry {
  return { kind: 'invalid', text, reason };
}

/**
 * The entry grammar as one regular expression that means the same in ECMAScript and in RE2
 * (the API server's CEL and OpenAPI `pattern`), so the CRD refuses what {@link parseEntry}
 * refuses. Domain length (253) is left to the parser; everything else matches it.
 */
const LABEL_CHAR = '(?:[A-Za-z0-9_]|[^\\x00-\\x7F])';
const LABEL_RE = `${LABEL_CHAR}(?:(?:${LABEL_CHAR}|-){0,61}${LABEL_CHAR})?`;
const DOMAIN_RE = `${LABEL_RE}(?:\\.${LABEL_RE})*`;
const LOCAL_RE = '[^ \\t\\n\\v\\f\\r@,"\\x00-\\x1F\\x7F]{1,64}';
export const ENTRY_PATTERN = `^(?:@\\.|@\\.?${DOMAIN_RE}|${LOCAL_RE}@${DOMAIN_RE})$`;
export const ADDRESS_PATTERN = `^${LOCAL_RE}@${DOMAIN_RE}$`;
