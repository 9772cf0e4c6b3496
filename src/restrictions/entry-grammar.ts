/**
 * The entry grammar as regular expressions, written once and rendered for two engines: ECMAScript
 * (with the `u` flag: code points, as the API server counts them) for zod and the parser, and RE2
 * for the CRD's CEL rule. Both engines then refuse the same texts (a test creates each text of a
 * random and hostile corpus on a real API server and compares).
 *
 * What it admits:
 * - local parts: 1–64 characters, printable, no space, `@`, `,` or `"`, and none of the invisible
 *   or control characters below (a look-alike `exam\u200bple` must not pass for `example`);
 * - domains in ASCII: labels of letters, digits, `_` and inner `-`, up to 63 characters;
 * - domains written with non-ASCII letters: only letters whose ASCII (punycode) form is always
 *   valid (Latin-1, Latin Extended-A, lower-case Greek, Cyrillic, kana, CJK, Hangul), such labels of at most
 *   12 characters, at most 48 characters after the `@`, no `--` (no `xn--` label inside a Unicode
 *   domain) and a top-level label that starts with a letter (not a number). Within
 *   those bounds every such domain has an ASCII form of valid length (the unit test searches for
 *   the longest), which is what stores hold. Anything else is written in its ASCII form.
 */

/** An inclusive range of code points. */
type Range = readonly [number, number];

/** Engines the grammar is rendered for. */
export type RegexDialect = 'ecmascript' | 're2';

/**
 * Characters no entry may hold: C0 and C1 controls, space, DEL, no-break and other spaces,
 * zero-width and joiner characters, bidirectional marks, embeddings, overrides and isolates,
 * invisible operators, fillers, variation selectors, tags, surrogates (a lone one becomes U+FFFD
 * in the API server and in PostgreSQL), non-characters and the specials block (U+FFFD among them).
 */
export const REFUSED_CHARACTERS: readonly Range[] = [
  [0x0000, 0x0020],
  [0x007f, 0x00a0],
  [0x00ad, 0x00ad],
  [0x034f, 0x034f],
  [0x061c, 0x061c],
  [0x115f, 0x1160],
  [0x1680, 0x1680],
  [0x17b4, 0x17b5],
  [0x180b, 0x180f],
  [0x2000, 0x200f],
  [0x2028, 0x202f],
  [0x205f, 0x206f],
  [0x3000, 0x3000],
  [0x3164, 0x3164],
  [0xd800, 0xdfff],
  [0xfdd0, 0xfdef],
  [0xfe00, 0xfe0f],
  [0xfeff, 0xfeff],
  [0xffa0, 0xffa0],
  [0xfff0, 0xffff],
  [0x1bca0, 0x1bca3],
  [0x1d173, 0x1d17a],
  [0xe0000, 0xe0fff],
];

/**
 * Non-ASCII letters a domain may be written with: each one's lower case is in the set and its
 * ASCII form converts back to that lower case (no letter that maps to two, like `ŉ` or `Ŀ`).
 */
export const IDN_LETTERS: readonly Range[] = [
  [0x00c0, 0x00d6],
  [0x00d8, 0x00f6],
  [0x00f8, 0x012f],
  [0x0131, 0x0131],
  [0x0134, 0x013e],
  [0x0141, 0x0148],
  [0x014a, 0x017e],
  [0x03ac, 0x03ce],
  [0x0400, 0x045f],
  [0x3041, 0x3096],
  [0x30a1, 0x30fa],
  [0x30fc, 0x30fc],
  [0x4e00, 0x9fa5],
  [0xac00, 0xd7a3],
];

export const MAX_LOCAL_PART = 64;
export const MAX_LABEL = 63;
/** Longest label with a non-ASCII letter, as written. */
export const MAX_IDN_LABEL = 12;
/** Longest text after the `@` when it holds a non-ASCII character. */
export const MAX_IDN_DOMAIN = 48;
/** Longest entry: the longest address SMTP carries; it also keeps the CEL cost in budget. */
export const MAX_ENTRY = 254;

/**
 * One code point in a pattern. RE2's patterns reach the API server inside CEL string literals
 * (celString): there a character costs one unit of the CEL cost budget and an escape like
 * `\x{200B}` eight, and the budget (500 entries per list, 254 characters each) has no room for
 * eight.
 */
function codePoint(cp: number, dialect: RegexDialect): string {
  if (cp < 0x80) return `\\x${cp.toString(16).toUpperCase().padStart(2, '0')}`;
  return dialect === 're2' ? String.fromCodePoint(cp) : `\\u{${cp.toString(16).toUpperCase()}}`;
}

function ranges(list: readonly Range[], dialect: RegexDialect): string {
  return (
    list
      // Go strings hold no surrogates (the API server's JSON decoder turns a lone one into U+FFFD).
      .filter(([from]) => dialect === 'ecmascript' || from < 0xd800 || from > 0xdfff)
      .map(([from, to]) => (from === to ? codePoint(from, dialect) : `${codePoint(from, dialect)}-${codePoint(to, dialect)}`))
      .join('')
  );
}

/** `text` as a CEL string literal: non-ASCII characters as \u escapes, so the CRD's YAML shows no invisible ones. */
export function celString(text: string): string {
  let out = "'";
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === '\\' || ch === "'") out += `\\${ch}`;
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else if (cp <= 0xffff) out += `\\u${cp.toString(16).toUpperCase().padStart(4, '0')}`;
    else out += `\\U${cp.toString(16).toUpperCase().padStart(8, '0')}`;
  }
  return `${out}'`;
}

/** The grammar's regular expressions in one engine's syntax. */
export interface EntryRegexes {
  /** The whole entry: `@.`, `@domain`, `@.domain` or `local@domain`. */
  readonly entry: string;
  /** A full address (a mailbox). */
  readonly address: string;
  /** A local part, unanchored (the amavisd schema's `user@*` builds on it). */
  readonly localPart: string;
  /** Must match: the text after the `@` is ASCII or at most MAX_IDN_DOMAIN characters. */
  readonly idnDomainSize: string;
  /** Must not match: a label longer than MAX_LABEL, or one with a non-ASCII letter longer than MAX_IDN_LABEL. */
  readonly longIdnLabel: string;
}

export function entryRegexes(dialect: RegexDialect): EntryRegexes {
  const idn = ranges(IDN_LETTERS, dialect);
  const ascii = 'A-Za-z0-9_';
  // ASCII domains: letters, digits, underscore, inner hyphens.
  const a = `[${ascii}]`;
  const asciiLabel = `${a}(?:[${ascii}-]{0,${MAX_LABEL - 2}}${a})?`;
  const asciiDomain = `${asciiLabel}(?:\\.${asciiLabel})*`;
  // Domains with non-ASCII letters: no `--` (so no `xn--` label inside a Unicode domain); their
  // lengths are bounded by idnDomainSize and longIdnLabel.
  const x = `[${ascii}${idn}]`;
  const letter = `[A-Za-z${idn}]`;
  const idnDomain = `(?:${x}(?:-?${x})*\\.)*${letter}(?:-?${x})*`;
  const domain = `(?:${asciiDomain}|${idnDomain})`;
  // U+0130 (İ) too: its lower case is two characters, so the canonical form could outgrow 64.
  const local = `[^${ranges(REFUSED_CHARACTERS, dialect)}${codePoint(0x130, dialect)}@,"]{1,${MAX_LOCAL_PART}}`;
  const window: string[] = [];
  for (let before = 0; before <= MAX_IDN_LABEL; before++) {
    // Any non-ASCII character: the entry rule, applied together, admits only IDN letters there.
    const count = (n: number): string => (n === 0 ? '' : n === 1 ? '[^.@]' : `[^.@]{${n}}`);
    window.push(`${count(before)}[^\\x00-\\x7F]${count(MAX_IDN_LABEL - before)}`);
  }
  return {
    entry: `^(?:@\\.|(?:@\\.?|${local}@)${domain})$`,
    address: `^${local}@${domain}$`,
    localPart: local,
    idnDomainSize: `@(?:[\\x00-\\x7F]*|[^@]{1,${MAX_IDN_DOMAIN}})$`,
    // A label of 64 characters too: the Unicode branch of `entry` does not count ASCII labels.
    longIdnLabel: `@[^@]*(?:[^.@]{${MAX_LABEL + 1}}|${window.join('|')})`,
  };
}

const ECMA = entryRegexes('ecmascript');
const ENTRY = new RegExp(ECMA.entry, 'u');
const ADDRESS = new RegExp(ECMA.address, 'u');
const IDN_DOMAIN_SIZE = new RegExp(ECMA.idnDomainSize, 'u');
const LONG_IDN_LABEL = new RegExp(ECMA.longIdnLabel, 'u');

/** Length in code points, as the API server counts a string's characters. */
export function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** Whether `text` holds a lone surrogate (PostgreSQL and the API server would hold U+FFFD). */
export function hasLoneSurrogate(text: string): boolean {
  return /[\uD800-\uDFFF]/u.test(text);
}

/** Whether `text`, exactly as written, is an entry of the grammar (the CRD's rule, in ECMAScript). */
export function matchesEntryGrammar(text: string): boolean {
  return codePoints(text) <= MAX_ENTRY && ENTRY.test(text) && IDN_DOMAIN_SIZE.test(text) && !LONG_IDN_LABEL.test(text);
}

/** Whether `text`, exactly as written, is a full address of the grammar. */
export function matchesAddressGrammar(text: string): boolean {
  return codePoints(text) <= MAX_ENTRY && ADDRESS.test(text) && IDN_DOMAIN_SIZE.test(text) && !LONG_IDN_LABEL.test(text);
}

/** An x-kubernetes-validations rule. */
export interface CelRule {
  readonly rule: string;
  readonly message?: string;
  readonly messageExpression?: string;
}

/**
 * The CEL rules that together admit what matchesEntryGrammar (or, for `address`,
 * matchesAddressGrammar) admits. Three rules, not one: each rule has its own cost budget.
 * Messages quote the value with strings.quote, which escapes control characters (kubectl
 * prints them to terminals).
 */
export function entryCelRules(kind: 'entry' | 'address', shapeMessage: string): CelRule[] {
  const re2 = entryRegexes('re2');
  // strings.quote leaves zero-width and bidi characters as they are: such a value is not shown.
  const refused = celString(`[${ranges(REFUSED_CHARACTERS, 're2')}]`);
  const shape =
    `self.matches(${refused}) ? ${JSON.stringify(`holds an invisible or control character, so it ${shapeMessage}`)} : ` +
    `strings.quote(self) + ${JSON.stringify(` ${shapeMessage}`)}`;
  return [
    { rule: `self.matches(${celString(kind === 'entry' ? re2.entry : re2.address)})`, messageExpression: shape },
    {
      rule: `self.matches(${celString(re2.idnDomainSize)})`,
      messageExpression: `strings.quote(self) + " has a domain in Unicode longer than ${MAX_IDN_DOMAIN} characters: write it in its ASCII (xn--) form"`,
    },
    {
      rule: `!self.matches(${celString(re2.longIdnLabel)})`,
      messageExpression: `strings.quote(self) + " has a domain label longer than ${MAX_LABEL} characters, or one in Unicode longer than ${MAX_IDN_LABEL} (write such a domain in its ASCII (xn--) form)"`,
    },
  ];
}

/** The first refused character of `text` as `U+200B`, or undefined. */
export function refusedCharacter(text: string): string | undefined {
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0x20) continue;
    if (REFUSED_CHARACTERS.some(([from, to]) => cp >= from && cp <= to)) return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  return undefined;
}
