import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApiException, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { entrySchema, mailboxSchema } from '../../src/api/mail-user-restriction.ts';
import { IDN_LETTERS, REFUSED_CHARACTERS } from '../../src/restrictions/entry-grammar.ts';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { installCrds } from '../harness/crds.ts';

/**
 * The entry grammar is enforced twice: by zod (documents, the CLI, the operator) and by the CRD's
 * CEL rule in the API server. Every text of a random and a hostile corpus, Unicode included, is
 * given to both: zod's verdict and the real API server's (dry-run creates) must be the same.
 */
const group = 'mailwarden.io';
const version = 'v1alpha1';
const namespace = 'grammar';
const LISTS = ['allowedSenders', 'rejectedSenders', 'allowedRecipients', 'rejectedRecipients'] as const;
/** Entries per dry-run object (4 lists of this many): well inside maxItems and the CEL budget. */
const PER_LIST = 50;

const cp = (n: number): string => String.fromCodePoint(n);

function hostileCorpus(): string[] {
  const texts = new Set<string>([
    '@.', '@', '@.@', '', ' ', '@example.com', '@.example.com', 'user@example.com', 'USER@Example.COM', 'example.com',
    '@gmail.com.', '@gmail..com', '@-bad.com', '@bad-.com', '@a-b.com', '@_dmarc.example.com', 'a,b@example.com',
    '"q"@example.com', 'a b@example.com', "o'neil@example.com", 'a@b@c.com', 'user+tag@example.com', 'user@localhost',
    '@.a', '@..a', 'tab\t@a.com', 'nul\u0000@a.com', '@a.com;@b.com', '@1.2.3.4', '@xn--zz.example', '@xn--bcher-kva.example',
    // The findings: look-alikes, bidi, C1, no-break space, lone surrogates, escapes.
    '@exam\u200bple.com', 'ad\u200bmin@example.com', '@example.com\u202e', 'user\u202e@example.com', '\u2066x\u2069@example.com',
    'a\u0085b@example.com', 'a\u009bb@example.com', 'a\u00a0b@example.com', '@a\u00a0b.com', '\u00a0@example.com', '@example.com\u00a0',
    'a\ud800@example.com', '@a\udc00.com', 'a\ufffd@example.com', '\u001b[31mred@example.com', '@x.com\u001b]0;title\u0007',
    'a\ufeff@example.com', '@\ufeffexample.com', 'a\u00ad@example.com', 'tag\u{e0041}@example.com', 'vs\ufe0f@example.com',
    // Unicode that belongs: SMTPUTF8 local parts, internationalised domains.
    '@bücher.example', '@.BÜCHER.example', 'jösé@exämple.test', 'ünïcode@例え.test', '@münchen.de', '@пример.рф', '@例え.テスト',
    '@한국.kr', '@αβγ.gr', '@ΑΒΓ.gr', '😀@example.com', '用户@例子.中国', 'İ@example.com', 'ı@example.com', '@ı.com',
    // Unicode domains at their bounds: labels of 12/13, 48/49 characters after the @, --, xn--, numbers.
    `@${'ü'.repeat(12)}.de`, `@${'ü'.repeat(13)}.de`, `@${'例'.repeat(12)}.jp`, `@${'例'.repeat(13)}.jp`,
    `@${'ab.'.repeat(14)}ü.de`, `@${'ab.'.repeat(15)}ü.de`, `@ab--c.ü`, `@xn--zz.ü`, `@ü.123`, `@ü.0x1f`, `@ü.a1`, `@1ü.de`,
    `@${'ü'.repeat(62)}.com`, `@ü-.de`, `@-ü.de`, `@ü_x.de`, '@ŉ.de', '@Ŀ.de', '@ĳ.de', '@ß.de', '@ς.gr', '@ü.ü',
    // Lengths: code points, not UTF-16 units.
    `${'x'.repeat(64)}@a.com`, `${'x'.repeat(65)}@a.com`, `${'😀'.repeat(64)}@a.com`, `${'😀'.repeat(65)}@a.com`,
    `${'😀'.repeat(60)}@${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(60)}`, `x@${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(59)}`,
    `x@${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(60)}`, `@${'a'.repeat(63)}.com`, `@${'a'.repeat(64)}.com`,
  ]);
  // Every refused character, at the start, inside the local part and inside the domain.
  for (const [from, to] of REFUSED_CHARACTERS) {
    for (const n of new Set([from, Math.floor((from + to) / 2), to])) {
      texts.add(`${cp(n)}a@example.com`).add(`a${cp(n)}b@example.com`).add(`@exa${cp(n)}mple.com`);
    }
  }
  // The edges of every range of IDN letters, and their neighbours outside.
  for (const [from, to] of IDN_LETTERS) {
    for (const n of [from - 1, from, to, to + 1]) texts.add(`@a${cp(n)}b.de`).add(`${cp(n)}@example.com`);
  }
  return [...texts];
}

/** Random texts over an alphabet of entry characters, IDN letters and arbitrary code points. */
function randomCorpus(count: number, seed: number): string[] {
  let state = seed;
  const next = (): number => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const ascii = ['@', '.', 'a', 'B', 'x', 'n', '-', '-', '_', ',', ' ', '"', '1', '+', '0'];
  const anyCodePoint = (): string => {
    const n = Math.floor(next() * 0x10ffff);
    return cp(n);
  };
  const idnLetter = (): string => {
    const [from, to] = pick(IDN_LETTERS);
    return cp(from + Math.floor(next() * (to - from + 1)));
  };
  const refused = (): string => {
    const [from, to] = pick(REFUSED_CHARACTERS);
    return cp(from + Math.floor(next() * (to - from + 1)));
  };
  const char = (): string => {
    const r = next();
    if (r < 0.6) return pick(ascii);
    if (r < 0.85) return idnLetter();
    if (r < 0.93) return refused();
    return anyCodePoint();
  };
  const word = (max: number): string => {
    let text = '';
    for (let i = 1 + Math.floor(next() * max); i > 0; i--) text += next() < 0.7 ? pick(['a', 'b', 'z', '1']) : char();
    return text;
  };
  const texts: string[] = [];
  while (texts.length < count) {
    const shape = next();
    if (shape < 0.3) {
      let text = '';
      for (let i = 1 + Math.floor(next() * 14); i > 0; i--) text += char();
      texts.push(text);
    } else {
      const labels: string[] = [];
      for (let i = 1 + Math.floor(next() * 3); i > 0; i--) labels.push(word(next() < 0.2 ? 20 : 8));
      const domain = labels.join('.');
      texts.push(shape < 0.5 ? `@${domain}` : shape < 0.6 ? `@.${domain}` : `${word(10)}@${domain}`);
    }
  }
  return texts;
}

describe('one entry grammar: zod and the API server (CEL) agree', () => {
  let control: ControlPlane;
  let objects: CustomObjectsApi;
  let counter = 0;

  before(async () => {
    control = await startControlPlane();
    const kc = control.kubeConfig();
    await installCrds(kc);
    objects = kc.makeApiClient(CustomObjectsApi);
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  });
  after(async () => control?.stop());

  /** The fields (`spec.allowedSenders[3]`, `spec.mailbox`) the API server refuses in a dry-run create. */
  async function refusedFields(spec: Record<string, unknown>): Promise<Set<string>> {
    const body = { apiVersion: `${group}/${version}`, kind: 'MailUserRestriction', metadata: { name: `g${counter++}` }, spec };
    try {
      await objects.createNamespacedCustomObject({ group, version, namespace, plural: 'mailuserrestrictions', body, dryRun: 'All' });
      return new Set();
    } catch (error) {
      assert.ok(error instanceof ApiException && error.code === 422, String(error));
      const status = JSON.parse(String(error.body)) as { message: string; details?: { causes?: { field?: string; message?: string }[] } };
      assert.doesNotMatch(status.message, /cost|budget/i, 'the CEL rule ran out of its cost budget');
      return new Set((status.details?.causes ?? []).map((c) => c.field ?? ''));
    }
  }

  async function disagreementsOnEntries(corpus: readonly string[]): Promise<string[]> {
    const disagreements: string[] = [];
    for (let start = 0; start < corpus.length; start += PER_LIST * LISTS.length) {
      const batch = corpus.slice(start, start + PER_LIST * LISTS.length);
      const spec: Record<string, unknown> = { mailbox: 'grammar@example.com' };
      LISTS.forEach((list, l) => (spec[list] = batch.slice(l * PER_LIST, (l + 1) * PER_LIST)));
      const refused = await refusedFields(spec);
      batch.forEach((text, i) => {
        const field = `spec.${LISTS[Math.floor(i / PER_LIST)]}[${i % PER_LIST}]`;
        const api = !refused.has(field);
        const zod = entrySchema.safeParse(text).success;
        if (api !== zod) disagreements.push(`${JSON.stringify(text)}: API server ${api ? 'accepts' : 'refuses'}, zod ${zod ? 'accepts' : 'refuses'}`);
      });
    }
    return disagreements;
  }

  test('on the hostile corpus (every refused character, every IDN range edge, the bounds)', async () => {
    const corpus = hostileCorpus();
    const disagreements = await disagreementsOnEntries(corpus);
    assert.deepEqual(disagreements, []);
    // The corpus means something only if both verdicts occur.
    const accepted = corpus.filter((t) => entrySchema.safeParse(t).success).length;
    assert.ok(accepted > 20 && accepted < corpus.length - 100, `${accepted} of ${corpus.length} accepted`);
  });

  test('on 4,000 random texts', async () => {
    const corpus = randomCorpus(4000, 20261204);
    const disagreements = await disagreementsOnEntries(corpus);
    assert.deepEqual(disagreements.slice(0, 20), []);
    const accepted = corpus.filter((t) => entrySchema.safeParse(t).success).length;
    assert.ok(accepted > 200, `only ${accepted} of ${corpus.length} random texts are entries: the corpus tests little`);
  });

  test('the mailbox field too (an address, never a domain)', async () => {
    const corpus = [...hostileCorpus().filter((t) => t.includes('@') && !t.startsWith('@')), ...randomCorpus(300, 7).filter((t) => !t.startsWith('@'))].slice(0, 400);
    const disagreements: string[] = [];
    for (const text of corpus) {
      const api = !(await refusedFields({ mailbox: text })).has('spec.mailbox');
      const zod = mailboxSchema.safeParse(text).success;
      if (api !== zod) disagreements.push(`${JSON.stringify(text)}: API server ${api ? 'accepts' : 'refuses'}, zod ${zod ? 'accepts' : 'refuses'}`);
    }
    assert.deepEqual(disagreements, []);
  });
});
