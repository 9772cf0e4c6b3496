/**
 * YAML text for exported documents. The documents are small trees of strings, so they are
 * written directly, orders of magnitude faster than the general YAML library (docs/performance.md).
 * Strings are plain when YAML cannot read them as anything else, double-quoted (JSON escapes,
 * which YAML shares) otherwise; the unit test parses the output back with the YAML library.
 */

import { quoted } from '../restrictions/printable-text.ts';

type Node = string | readonly Node[] | { readonly [key: string]: Node };

/** One document, ending with a newline. */
export function documentYaml(document: { readonly [key: string]: Node }): string {
  return mapping(document, '');
}

function mapping(object: { readonly [key: string]: Node }, indent: string): string {
  let out = '';
  for (const [key, value] of Object.entries(object)) {
    out += `${indent}${scalar(key)}:`;
    if (typeof value === 'string') out += ` ${scalar(value)}\n`;
    else if (isList(value)) out += value.length === 0 ? ' []\n' : `\n${sequence(value, indent + '  ')}`;
    else out += Object.keys(value).length === 0 ? ' {}\n' : `\n${mapping(value, indent + '  ')}`;
  }
  return out;
}

function sequence(items: readonly Node[], indent: string): string {
  let out = '';
  for (const item of items) {
    if (typeof item !== 'string') throw new TypeError('exported lists hold strings only');
    out += `${indent}- ${scalar(item)}\n`;
  }
  return out;
}

function isList(value: Node): value is readonly Node[] {
  return Array.isArray(value);
}

/** Words YAML 1.1 or 1.2 would read as a boolean or null. */
const RESERVED = new Set(['true', 'false', 'yes', 'no', 'on', 'off', 'y', 'n', 'null', '~']);

function scalar(text: string): string {
  const plain = /^[A-Za-z][A-Za-z0-9._/-]*$/.test(text) && !RESERVED.has(text.toLowerCase());
  // Escaped beyond JSON: invisible and control characters as \u escapes, which YAML reads back.
  return plain ? text : quoted(text);
}
