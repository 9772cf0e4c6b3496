import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { domainToASCII } from 'node:url';
import { entrySchema, mailboxSchema } from '../../../src/api/mail-user-restriction.ts';
import { parseEntry } from '../../../src/restrictions/entry.ts';
import { IDN_LETTERS, MAX_IDN_DOMAIN, MAX_IDN_LABEL, matchesEntryGrammar } from '../../../src/restrictions/entry-grammar.ts';

/**
 * The grammar (what the CRD's CEL rule applies; test/integration/entry-grammar.test.ts compares
 * it with the real API server) and the parser must agree, or the API server and the operator
 * disagree.
 */
describe('the entry grammar agrees with parseEntry', () => {
  const corpus = [
    '@.', '@', '@.@', '', ' ', '@example.com', '@.example.com', 'user@example.com', 'USER@Example.COM', 'example.com',
    '@gmail.com.', '@gmail..com', '@-bad.com', '@bad-.com', '@a-b.com', '@_dmarc.example.com', 'a,b@example.com',
    '"q"@example.com', 'a b@example.com', '@bücher.example', 'ü@bücher.example', "o'neil@example.com", 'a@b@c.com',
    '@' + 'a'.repeat(63) + '.com', '@' + 'a'.repeat(64) + '.com', 'x'.repeat(64) + '@a.com', 'x'.repeat(65) + '@a.com',
    'user+tag@example.com', 'user@localhost', '@.a', '@..a', 'tab\t@a.com', 'nul\u0000@a.com', '@a.com;@b.com',
    '@exam\u200bple.com', 'a\u00a0b@example.com', 'a\ud800@example.com', '@例え.テスト', '@ü.123', '@xn--zz.ü',
  ];
  for (const text of corpus) {
    test(JSON.stringify(text), () => {
      const parsed = parseEntry(text);
      assert.equal(matchesEntryGrammar(text), parsed.kind !== 'invalid' && text === text.trim(), parsed.kind === 'invalid' ? parsed.reason : parsed.kind);
    });
  }

  test('random strings over the entry alphabet, Unicode included', () => {
    const alphabet = ['@', '.', 'a', 'B', '-', '_', ',', ' ', '"', 'ü', '1', '+', 'x', 'n', '例', 'я', '\u200b', '\u00a0', '\u202e', '\u0085', '😀', '\ud800', 'İ'];
    let seed = 42;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 20_000; i++) {
      const length = 1 + Math.floor(next() * 14);
      let text = '';
      for (let j = 0; j < length; j++) text += alphabet[Math.floor(next() * alphabet.length)];
      const parsed = parseEntry(text);
      assert.equal(matchesEntryGrammar(text), parsed.kind !== 'invalid' && text === text.trim(), `${JSON.stringify(text)}: ${parsed.kind}`);
    }
  });
});

describe('input that passed and must not (issue #25)', () => {
  const refused: [string, RegExp][] = [
    ['@exam\u200bple.com', /invisible or control character \(U\+200B\)/],
    ['ad\u200dmin@example.com', /U\+200D/],
    ['user\u202e@example.com', /U\+202E/],
    ['\u2066x\u2069@example.com', /U\+2066/],
    ['a\u0085b@example.com', /U\+0085/],
    ['a\u009bb@example.com', /U\+009B/],
    ['a\u00a0b@example.com', /white space/],
    ['a\ud800@example.com', /U\+D800/],
    ['a\ufffd@example.com', /U\+FFFD/],
    ['\u001b[31mred@example.com', /U\+001B/],
    ['tag\u{e0041}@example.com', /U\+E0041/],
  ];
  for (const [text, reason] of refused) {
    test(`refused by the schema: ${JSON.stringify(text)}`, () => {
      const result = entrySchema.safeParse(text);
      assert.equal(result.success, false);
      assert.match(result.error!.issues[0]!.message, reason);
      assert.equal(mailboxSchema.safeParse(text).success, false);
    });
  }

  test('a lone surrogate is refused under invalidEntries too (PostgreSQL would hold U+FFFD: apply would write it forever)', async () => {
    const { specSchema } = await import('../../../src/api/mail-user-restriction.ts');
    const spec = { mailbox: 'a@example.com', invalidEntries: { allowedSenders: ['bad\ud800value'] } };
    const result = specSchema.safeParse(spec);
    assert.equal(result.success, false);
    assert.match(result.error!.issues[0]!.message, /lone surrogate/);
  });

  test('lengths count characters as the API server does (code points)', () => {
    assert.equal(entrySchema.safeParse(`${'😀'.repeat(64)}@a.com`).success, true);
    assert.equal(entrySchema.safeParse(`${'😀'.repeat(65)}@a.com`).success, false);
  });
});

describe('Unicode domains the grammar admits always have a valid ASCII form', () => {
  const letters: number[] = [];
  for (const [from, to] of IDN_LETTERS) for (let cp = from; cp <= to; cp++) letters.push(cp);

  test('every IDN letter converts, alone and inside a label, and its lower case is an IDN letter', () => {
    const set = new Set(letters);
    for (const cp of letters) {
      const ch = String.fromCodePoint(cp);
      assert.notEqual(domainToASCII(`${ch}.de`), '', `U+${cp.toString(16)}`);
      assert.notEqual(domainToASCII(`a${ch}-${ch}1.de`), '', `U+${cp.toString(16)}`);
      const lower = ch.toLowerCase();
      assert.ok(lower.length === ch.length && (lower.codePointAt(0)! < 0x80 || set.has(lower.codePointAt(0)!)), `U+${cp.toString(16)} lower-cases outside the set`);
    }
  });

  test(`the longest ASCII forms found for ${MAX_IDN_LABEL}-letter labels and ${MAX_IDN_DOMAIN}-character domains fit DNS (63 / 253)`, (t) => {
    let seed = 7;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const letter = () => String.fromCodePoint(letters[Math.floor(next() * letters.length)]!);
    const asciiLength = (domain: string): number => domainToASCII(domain).length;
    // The longest ASCII form of an n-letter label, for n up to the bound, by hill climbing
    // (spread-out code points cost most).
    const longest = [0];
    for (let n = 1; n <= MAX_IDN_LABEL; n++) {
      let best = 0;
      for (let round = 0; round < 3; round++) {
        let label = Array.from({ length: n }, letter);
        let length = asciiLength(`${label.join('')}.de`) - 3;
        for (let step = 0; step < 800; step++) {
          const candidate = [...label];
          candidate[Math.floor(next() * n)] = letter();
          const l = asciiLength(`${candidate.join('')}.de`) - 3;
          if (l >= length) [label, length] = [candidate, l];
        }
        best = Math.max(best, length);
      }
      longest.push(best);
    }
    assert.ok(longest[MAX_IDN_LABEL]! <= 63, `a ${MAX_IDN_LABEL}-letter label took ${longest[MAX_IDN_LABEL]} ASCII characters`);
    // The longest domain of at most MAX_IDN_DOMAIN characters: the best split into labels.
    const most = new Array<number>(MAX_IDN_DOMAIN + 2).fill(-Infinity);
    most[0] = 0;
    for (let written = 0; written <= MAX_IDN_DOMAIN; written++) {
      for (let n = 1; n <= MAX_IDN_LABEL && written + n + 1 <= MAX_IDN_DOMAIN + 1; n++) {
        most[written + n + 1] = Math.max(most[written + n + 1]!, most[written]! + longest[n]! + 1);
      }
    }
    const worstDomain = Math.max(...most.filter(Number.isFinite)) - 1;
    t.diagnostic(`longest ASCII label found: ${longest[MAX_IDN_LABEL]}; longest domain: ${worstDomain}`);
    assert.ok(worstDomain <= 253, `a ${MAX_IDN_DOMAIN}-character Unicode domain may take ${worstDomain} ASCII characters`);
  });
});
