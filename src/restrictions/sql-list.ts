import type { Semantics } from './options.ts';

/**
 * SQL stores keep a list as one comma-separated string (spec §1). How it splits depends on the
 * semantics (spec §5): the `iredapd` preset keeps empty pieces and treats a column of only blanks
 * as set; the default semantics drop empty pieces. NULL and '' are unset under both.
 */
export function splitSqlList(column: string | null | undefined, semantics: Semantics): string[] | null {
  if (column === null || column === undefined || column === '') return null;
  const pieces = column.split(',');
  const out: string[] = [];
  for (const piece of pieces) {
    const entry = trimAscii(piece).toLowerCase();
    if (entry === '' && semantics !== 'iredapd') continue;
    out.push(entry);
  }
  return out.length === 0 ? null : out;
}

/** The canonical SQL form written by the operator: comma-joined, no spaces, lower-case. */
export function joinSqlList(entries: readonly string[]): string {
  return entries.map((e) => trimAscii(e).toLowerCase()).join(',');
}

/** Python's str.strip() on ASCII white space, which is what iRedAPD used. */
export function trimAscii(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isAsciiSpace(text.charCodeAt(start))) start++;
  while (end > start && isAsciiSpace(text.charCodeAt(end - 1))) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

function isAsciiSpace(c: number): boolean {
  // space, \t, \n, \v, \f, \r
  return c === 32 || (c >= 9 && c <= 13);
}
