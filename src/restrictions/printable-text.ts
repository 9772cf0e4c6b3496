import { REFUSED_CHARACTERS } from './entry-grammar.ts';

/**
 * Text for a terminal or a message: stored values, request fields and file contents reach the CLI's output
 * (an entry, a sender address, a YAML key), and a terminal obeys the escape sequences, bidi
 * overrides and invisible characters they may hold. Each such character is written as an escape
 * instead (`\u001B`, `\u202E`, `\U000E0041`), which YAML's double-quoted strings read back as the
 * character: export's documents stay exact. Newline and tab are kept; the CLI's own lines use them.
 */
export function escapeControlCharacters(text: string): string {
  return ESCAPED.test(text) ? text.replace(ESCAPED_ALL, escape) : text;
}

/** The characters entries refuse, but tab, newline and space. */
const ESCAPED_RANGES = [[0x00, 0x08], [0x0b, 0x1f], ...REFUSED_CHARACTERS.filter(([from]) => from > 0x20)] as const;
const ESCAPED_CLASS = `[${ESCAPED_RANGES.map(([from, to]) => `\\u{${from.toString(16)}}-\\u{${to.toString(16)}}`).join('')}]`;
const ESCAPED = new RegExp(ESCAPED_CLASS, 'u');
const ESCAPED_ALL = new RegExp(ESCAPED_CLASS, 'gu');

function escape(ch: string): string {
  const cp = ch.codePointAt(0)!;
  return cp <= 0xffff ? `\\u${cp.toString(16).toUpperCase().padStart(4, '0')}` : `\\U${cp.toString(16).toUpperCase().padStart(8, '0')}`;
}

/**
 * A line of JSON (a log record) with the same characters escaped, as JSON escapes (`\u009B`; a
 * pair for one beyond U+FFFF): the line stays valid JSON and parses back to the exact values, while
 * `kubectl logs` on a terminal shows the escape instead of obeying the character. Outside strings
 * JSON is ASCII, so every such character is inside a string and its escape means the same.
 */
export function escapeControlCharactersInJson(json: string): string {
  return ESCAPED.test(json) ? json.replace(ESCAPED_ALL, jsonEscape) : json;
}

function jsonEscape(ch: string): string {
  let out = '';
  for (let i = 0; i < ch.length; i++) out += `\\u${ch.charCodeAt(i).toString(16).toUpperCase().padStart(4, '0')}`;
  return out;
}

/** `text` in double quotes for a message: JSON escapes, then the characters above escaped too. */
export function quoted(text: string): string {
  return escapeControlCharacters(JSON.stringify(text));
}
