import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ENTRY_PATTERN, parseEntry } from '../../../src/restrictions/entry.ts';

/** The CRD's pattern and the parser must agree, or the API server and the operator disagree. */
describe('ENTRY_PATTERN agrees with parseEntry', () => {
  const pattern = new RegExp(ENTRY_PATTERN);
  const corpus = [
    '@.', '@', '@.@', '', ' ', '@example.com', '@.example.com', 'user@example.com', 'USER@Example.COM', 'example.com',
    '@gmail.com.', '@gmail..com', '@-bad.com', '@bad-.com', '@a-b.com', '@_dmarc.example.com', 'a,b@example.com',
    '"q"@example.com', 'a b@example.com', '@bücher.example', 'ü@bücher.example', "o'neil@example.com", 'a@b@c.com',
    '@' + 'a'.repeat(63) + '.com', '@' + 'a'.repeat(64) + '.com', 'x'.repeat(64) + '@a.com', 'x'.repeat(65) + '@a.com',
    'user+tag@example.com', 'user@localhost', '@.a', '@..a', 'tab\t@a.com', 'nul\u0000@a.com', '@a.com;@b.com',
  ];
  for (const text of corpus) {
    test(JSON.stringify(text), () => {
      const parsed = parseEntry(text);
      assert.equal(pattern.test(text), parsed.kind !== 'invalid' && text === text.trim(), parsed.kind === 'invalid' ? parsed.reason : parsed.kind);
    });
  }

  test('random strings over the entry alphabet', () => {
    const alphabet = ['@', '.', 'a', 'B', '-', '_', ',', ' ', '"', 'ü', '1', '+'];
    let seed = 42;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 20_000; i++) {
      const length = 1 + Math.floor(next() * 12);
      let text = '';
      for (let j = 0; j < length; j++) text += alphabet[Math.floor(next() * alphabet.length)];
      const parsed = parseEntry(text);
      assert.equal(pattern.test(text), parsed.kind !== 'invalid' && text === text.trim(), `${JSON.stringify(text)}: ${parsed.kind}`);
    }
  });
});
