import { codePoints, entryRegexes, matchesEntryGrammar, MAX_ENTRY, MAX_LABEL as LABEL_LIMIT, MAX_LOCAL_PART, refusedCharacter } from './entry-grammar.ts';
import { asciiDomain } from './idn.ts';
import { quoted } from './printable-text.ts';

/**
 * Restriction entries (spec §2): `@.`, `@domain`, `@.domain`, `user@domain`. An internationalised
 * domain is parsed into its ASCII (punycode) form, the one stores hold and requests are matched in.
 * Parsing is pure; both the schema (to refuse bad input) and the compiler (to ignore bad
 * stored data) use it, so "valid" means one thing everywhere. What is valid is the grammar of
 * entry-grammar.ts, which the CRD's CEL rule applies too; the checks here name the problem.
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

const MAX_LOCAL = MAX_LOCAL_PART;
const MAX_DOMAIN = 253;
const MAX_LABEL = LABEL_LIMIT;

/** A domain label: letters, digits, hyphen, underscore; any non-ASCII (IDN) character. */
const LABEL = /^(?:[a-z0-9_\u0080-\uffff](?:[a-z0-9_\u0080-\uffff-]*[a-z0-9_\u0080-\uffff])?)$/;
/** Local part: printable, no white space, no `@`, no `,` (the SQL list separator), no quotes. */
const LOCAL = /^[^\s@,"\u0000-\u001f\u007f]+$/;

/** Parses one entry (already trimmed or not); case is folded. */
export function parseEntry(raw: string): Entry | InvalidEntry {
  const written = raw.trim();
  const text = written.toLowerCase();
  if (text === '') return invalid(raw, 'is empty');
  if (text === '@.') return { kind: 'any', text };
  if (/\s/.test(text)) return invalid(raw, 'contains white space');
  const refused = refusedCharacter(text);
  if (refused !== undefined) return invalid(raw, `contains an invisible or control character (${refused})`);
  if (written.includes('\u0130')) return invalid(raw, 'contains "İ" (U+0130), whose lower case is two characters: write "i"');
  if (text.includes(',')) return invalid(raw, 'contains a comma (one entry per list item)');
  // Lengths count code points of the text as written, as the API server does.
  if (codePoints(written) > MAX_ENTRY) return invalid(raw, `is longer than ${MAX_ENTRY} characters`);
  const at = text.lastIndexOf('@');
  if (at < 0) {
    return invalid(raw, `is not an entry: write ${quoted(`@${text}`)} for the domain, ${quoted(`@.${text}`)} for it and its sub-domains, or a full address`);
  }
  if (at === 0) {
    const tree = text.startsWith('@.');
    const domain = asciiOf(text.slice(tree ? 2 : 1));
    const problem = domain === undefined ? NOT_IDN : domainProblem(domain);
    if (problem || domain === undefined) return invalid(raw, problem ?? NOT_IDN);
    if (!matchesEntryGrammar(written)) return invalid(raw, grammarProblem(text.slice(tree ? 2 : 1)));
    return tree ? { kind: 'domainTree', text: `@.${domain}`, domain } : { kind: 'domain', text: `@${domain}`, domain };
  }
  const local = text.slice(0, at);
  if (codePoints(written.slice(0, written.lastIndexOf('@'))) > MAX_LOCAL) return invalid(raw, `has a local part longer than ${MAX_LOCAL} characters`);
  if (!LOCAL.test(local)) return invalid(raw, 'has an invalid local part');
  const domain = asciiOf(text.slice(at + 1));
  const problem = domain === undefined ? NOT_IDN : domainProblem(domain);
  if (problem || domain === undefined) return invalid(raw, problem ?? NOT_IDN);
  if (!matchesEntryGrammar(written)) return invalid(raw, grammarProblem(text.slice(at + 1)));
  const address = `${local}@${domain}`;
  return { kind: 'address', text: address, address };
}

const NOT_IDN = 'has a domain that is not a valid internationalised domain name';

/** Why a text that passed the checks above is still outside the grammar: its Unicode domain. */
function grammarProblem(domain: string): string {
  const ascii = asciiDomain(domain);
  const hint = ascii === undefined || ascii === domain ? 'its ASCII (xn--) form' : `its ASCII form ${quoted(ascii)}`;
  return (
    'has a domain written in Unicode that only its ASCII form can express (Unicode domains: Latin, lower-case Greek, Cyrillic, kana, CJK or Hangul letters, ' +
    `labels of up to 12 characters, up to 48 characters, no "--", a top-level label starting with a letter): write ${hint}`
  );
}

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
    if (!LABEL.test(label)) return `has an invalid domain label ${quoted(label)}`;
  }
  return undefined;
}

/** A short message naming the entry and the problem, or undefined for a valid entry. */
export function entryProblem(raw: string): string | undefined {
  const parsed = parseEntry(raw);
  return parsed.kind === 'invalid' ? `${quoted(raw)} ${parsed.reason}` : undefined;
}

function invalid(text: string, reason: string): InvalidEntry {
  return { kind: 'invalid', text, reason };
}

/**
 * The shape of an entry and of an address as ECMAScript patterns (use them with the `u` flag).
 * The whole grammar adds size rules for Unicode domains: matchesEntryGrammar and entryCelRule
 * in entry-grammar.ts apply all of it.
 */
export const ENTRY_PATTERN = entryRegexes('ecmascript').entry;
export const ADDRESS_PATTERN = entryRegexes('ecmascript').address;
