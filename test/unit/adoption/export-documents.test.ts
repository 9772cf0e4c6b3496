import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { documentName, exportDocuments } from '../../../src/adoption/export-documents.ts';
import { mailUserRestrictionSchema, storeListsOf } from '../../../src/api/mail-user-restriction.ts';
import { changedLists, diffLists } from '../../../src/restrictions/list-diff.ts';
import { EMPTY_LISTS, type RestrictionLists } from '../../../src/restrictions/lists.ts';
import type { StoredMailbox } from '../../../src/stores/store.ts';

const stored = (mailbox: string, lists: Partial<RestrictionLists>, more: Partial<StoredMailbox> = {}): StoredMailbox => ({ mailbox, lists: { ...EMPTY_LISTS, ...lists }, ...more });

describe('export: a store as MailUserRestriction documents', () => {
  test('one valid document per mailbox, sorted, with namespace, backend and policy filled in', () => {
    const { documents, notes } = exportDocuments(
      [stored('bob@example.com', { rejectedSenders: ['@spam.test'] }), stored('alice@example.com', { allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'] })],
      { namespace: 'mail', backend: 'iredmail', managementPolicy: 'Observe' },
    );
    assert.deepEqual(notes, []);
    assert.deepEqual(documents.map((d) => d.name), ['alice-at-example.com', 'bob-at-example.com']);
    assert.deepEqual(documents[0]!.document, {
      apiVersion: 'mailwarden.io/v1alpha1',
      kind: 'MailUserRestriction',
      metadata: { name: 'alice-at-example.com', namespace: 'mail' },
      spec: { mailbox: 'alice@example.com', backendRef: { name: 'iredmail' }, managementPolicy: 'Observe', allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'] },
    });
    for (const d of documents) assert.ok(mailUserRestrictionSchema.safeParse(d.document).success);
  });

  test('awkward values are exported so the documents mean exactly what is stored, each one reported', () => {
    const raw = [' @Example.COM ', '@example.com', 'example.org', '', ' bad entry ', 'x@y.test'];
    const { documents, notes } = exportDocuments([stored('carol@example.com', { allowedSenders: raw })]);
    const spec = documents[0]!.document.spec as Record<string, unknown>;
    assert.deepEqual(spec.allowedSenders, ['@Example.COM', '@example.com', 'x@y.test']);
    assert.deepEqual(spec.invalidEntries, { allowedSenders: ['example.org', ' bad entry '] });
    const parsed = mailUserRestrictionSchema.parse(documents[0]!.document);
    // Applying the export to the store it came from changes nothing.
    assert.deepEqual(changedLists(diffLists({ ...EMPTY_LISTS, allowedSenders: raw }, storeListsOf(parsed.spec))), []);
    const messages = notes.map((n) => `${n.severity} ${n.message}`);
    assert.ok(messages.some((m) => m.startsWith('info " @Example.COM ": white space around it (exported trimmed), upper case')), messages.join('\n'));
    assert.ok(messages.some((m) => m.startsWith('info "@example.com": a repeat')), messages.join('\n'));
    assert.ok(messages.some((m) => m.startsWith('invalid "example.org" is not an entry')), messages.join('\n'));
    assert.ok(messages.some((m) => m.startsWith('invalid " bad entry " contains white space')), messages.join('\n'));
    assert.ok(messages.some((m) => m.startsWith('info "" is blank')), messages.join('\n'));
    assert.equal(notes.length, 5);
  });

  test('a value that cannot be kept is reported as lost, never dropped silently', () => {
    const { documents, notes } = exportDocuments([stored('dan@example.com', { rejectedSenders: ['@a.test', 'x'.repeat(400)] })]);
    assert.deepEqual((documents[0]!.document.spec as Record<string, unknown>).rejectedSenders, ['@a.test']);
    assert.deepEqual(notes.map((n) => n.severity), ['lost']);
  });

  test('a mailbox that is not an address is reported, and one stored with capitals is noted', () => {
    const { documents, notes } = exportDocuments([stored('not-an-address', { allowedSenders: ['@a.test'] }), stored('eve@example.com', { allowedSenders: ['@a.test'] }, { storedAs: 'Eve@Example.com' })]);
    assert.deepEqual(documents.map((d) => d.mailbox), ['eve@example.com']);
    assert.deepEqual(notes.map((n) => [n.mailbox, n.severity]), [['eve@example.com', 'info'], ['not-an-address', 'lost']]);
  });

  test('a list longer than a restriction may hold is exported whole and reported as refused; one at the limit is valid', () => {
    const entries = (n: number) => Array.from({ length: n }, (_, i) => `@d${i}.test`);
    const { documents, notes } = exportDocuments([stored('long@example.com', { rejectedSenders: entries(501) }), stored('full@example.com', { allowedRecipients: entries(500) })]);
    const long = documents.find((d) => d.mailbox === 'long@example.com')!;
    assert.deepEqual((long.document.spec as Record<string, unknown>).rejectedSenders, entries(501), 'nothing cut');
    assert.deepEqual(notes.map((n) => [n.mailbox, n.severity]), [['long@example.com', 'refused']]);
    assert.match(notes[0]!.message, /^exported whole, but mailwarden refuses the document \(apply, diff and the API server will\): spec\.rejectedSenders: .*500/);
    const full = documents.find((d) => d.mailbox === 'full@example.com')!;
    assert.ok(mailUserRestrictionSchema.safeParse(full.document).success);
  });

  test('amavisd tables: a client address in a recipient list, and text that is no entry, are kept under invalidEntries; the document is accepted and means what is stored', () => {
    const raw = { allowedSenders: ['10.0.0.0/8', 'Friend@Partner.TEST', ' @spaced.test'], rejectedSenders: ['not an address'], rejectedRecipients: ['192.168.1.1', '@.xyz'] };
    const { documents, notes } = exportDocuments([stored('bob@example.com', raw)], { schema: 'amavisd' });
    const spec = documents[0]!.document.spec as Record<string, unknown>;
    assert.deepEqual(spec.allowedSenders, ['10.0.0.0/8', 'Friend@Partner.TEST', '@spaced.test']);
    assert.deepEqual(spec.rejectedRecipients, ['@.xyz']);
    assert.deepEqual(spec.invalidEntries, { rejectedSenders: ['not an address'], rejectedRecipients: ['192.168.1.1'] });
    assert.deepEqual(notes.filter((n) => n.severity !== 'info'), [
      { mailbox: 'bob@example.com', list: 'rejectedSenders', severity: 'invalid', message: '"not an address" contains white space: exported as stored under spec.invalidEntries' },
      { mailbox: 'bob@example.com', list: 'rejectedRecipients', severity: 'invalid', message: '"192.168.1.1" is a client address or network: a sender, never a recipient: exported as stored under spec.invalidEntries' },
    ]);
    assert.ok(notes.some((n) => n.message === '"Friend@Partner.TEST": upper case (exported as stored; it compares in lower case), as stored, nothing matches it (the tables compare bytes)'), JSON.stringify(notes));
    assert.ok(mailUserRestrictionSchema.safeParse(documents[0]!.document).success);
    assert.deepEqual(changedLists(diffLists({ ...EMPTY_LISTS, ...raw }, storeListsOf(mailUserRestrictionSchema.parse(documents[0]!.document).spec))), []);
  });

  test('amavisd tables: an account stored with capitals is exported under its address and noted; a second spelling the writer never addresses is reported as not exported', () => {
    const { documents, notes } = exportDocuments(
      [
        stored('dora@example.com', { rejectedSenders: ['@a.test'] }, { storedAs: 'Dora@Example.COM' }),
        stored('erin@example.com', { rejectedSenders: ['@b.test'] }, { storedAs: 'Erin@Example.com', unaddressed: 'another users row, "erin@example.com", is the one mailwarden writes for erin@example.com' }),
      ],
      { schema: 'amavisd' },
    );
    assert.deepEqual(documents.map((d) => d.mailbox), ['dora@example.com']);
    assert.deepEqual(notes.map((n) => [n.mailbox, n.severity]), [['dora@example.com', 'info'], ['erin@example.com', 'lost']]);
    assert.match(notes[0]!.message, /^stored as "Dora@Example.COM", not as "dora@example.com"; mailwarden writes this users row/);
    assert.match(notes[1]!.message, /^stored as "Erin@Example.com": another users row, "erin@example.com", is the one mailwarden writes for erin@example.com, so its lists are not exported/);
  });

  test('a Unicode domain is exported as stored and noted as such (not as upper case)', () => {
    const { documents, notes } = exportDocuments([stored('hal@example.com', { allowedRecipients: ['@bücher.example'] })], { schema: 'amavisd' });
    assert.deepEqual((documents[0]!.document.spec as Record<string, unknown>).allowedRecipients, ['@bücher.example']);
    assert.deepEqual(notes.map((n) => n.message), ['"@bücher.example": a Unicode domain (exported as stored; it compares in its ASCII form), as stored, nothing matches it (the tables compare bytes)']);
  });

  test('document names are Kubernetes names, unique per mailbox', () => {
    assert.equal(documentName('alice@example.com'), 'alice-at-example.com');
    const odd = documentName("O'Neil_x@example.com");
    assert.match(odd, /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/);
    // a_b and a-b would share a name: the replaced one, and a taken one, get the address's hash.
    assert.match(documentName('a_b@x.test'), /^a-b-at-x\.test-[0-9a-f]{8}$/);
    assert.match(documentName('a-b@x.test', new Set(['a-b-at-x.test'])), /^a-b-at-x\.test-[0-9a-f]{8}$/);
  });
});
