import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { entryProblem, parseEntry } from '../../../src/restrictions/entry.ts';
import { splitSqlList, joinSqlList } from '../../../src/restrictions/sql-list.ts';

describe('entry formats (spec §2)', () => {
  const valid: [string, string, string][] = [
    ['@.', 'any', '@.'],
    ['@example.com', 'domain', '@example.com'],
    ['@.example.com', 'domainTree', '@.example.com'],
    ['user@example.com', 'address', 'user@example.com'],
    ['User@EXAMPLE.com', 'address', 'user@example.com'],
    ['first.last+tag@sub.example.co.uk', 'address', 'first.last+tag@sub.example.co.uk'],
    ['@xn--bcher-kva.example', 'domain', '@xn--bcher-kva.example'],
    // Internationalised domains in their ASCII form, as stores hold them and requests are matched.
    ['@bücher.example', 'domain', '@xn--bcher-kva.example'],
    ['@.BÜCHER.example', 'domainTree', '@.xn--bcher-kva.example'],
    ['jösé@exämple.test', 'address', 'jösé@xn--exmple-cua.test'],
    ['ünïcode@例え.test', 'address', 'ünïcode@xn--r8jz45g.test'],
    ["o'neil@example.com", 'address', "o'neil@example.com"],
  ];
  for (const [text, kind, canonical] of valid) {
    test(`valid: ${text}`, () => {
      const entry = parseEntry(text);
      assert.equal(entry.kind, kind);
      assert.equal(entry.text, canonical);
    });
  }
  const invalid: [string, RegExp][] = [
    ['example.com', /write "@example.com"/],
    ['@', /has no domain/],
    ['@.@', /invalid local part/],
    ['', /empty/],
    ['user @example.com', /white space/],
    ['@gmail.com.', /ending in a dot/],
    ['@gmail..com', /empty domain label/],
    ['@-bad.com', /invalid domain label/],
    ['a,b@example.com', /comma/],
    ['@example.com;@x.com', /invalid local part/],
    ['"quoted"@example.com', /local part/],
    [`${'x'.repeat(65)}@example.com`, /local part longer/],
    [`@${'a'.repeat(64)}.com`, /label longer/],
    // 62 characters as written, 64 once in ASCII form.
    [`@${'ü'.repeat(62)}.com`, /label longer/],
  ];
  for (const [text, reason] of invalid) {
    test(`invalid: ${JSON.stringify(text)}`, () => {
      const entry = parseEntry(text);
      assert.equal(entry.kind, 'invalid');
      assert.match(entryProblem(text) ?? '', reason);
    });
  }
});

describe('SQL lists', () => {
  const table: [string | null, 'default' | 'iredapd', string[] | null][] = [
    [null, 'default', null],
    ['', 'default', null],
    ['', 'iredapd', null],
    ['  ', 'default', null],
    ['  ', 'iredapd', ['']],
    ['@a.com,@B.com', 'default', ['@a.com', '@b.com']],
    ['@a.com,,@b.com,', 'default', ['@a.com', '@b.com']],
    ['@a.com,,@b.com,', 'iredapd', ['@a.com', '', '@b.com', '']],
    [' @a.com ,\n\t@b.com\r\n', 'default', ['@a.com', '@b.com']],
    ['@a.com;@b.com', 'default', ['@a.com;@b.com']],
  ];
  for (const [column, semantics, expected] of table) {
    test(`${JSON.stringify(column)} under ${semantics}`, () => assert.deepEqual(splitSqlList(column, semantics), expected));
  }
  test('canonical form round-trips', () => {
    const written = joinSqlList(['@A.com', ' x@b.com']);
    assert.equal(written, '@a.com,x@b.com');
    assert.deepEqual(splitSqlList(written, 'default'), ['@a.com', 'x@b.com']);
  });
});
