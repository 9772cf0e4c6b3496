import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findDuplicateMailboxes, parseRestrictionFile } from '../../../src/api/documents.ts';
import { listsOf } from '../../../src/api/mail-user-restriction.ts';

const doc = (spec: string, name = 'r1') => `apiVersion: mailwarden.io/v1alpha1
kind: MailUserRestriction
metadata: { name: ${name}, namespace: mail }
spec:
${spec}`;

describe('MailUserRestriction documents', () => {
  test('a valid document parses with defaults', () => {
    const { restrictions, problems } = parseRestrictionFile('a.yaml', doc('  mailbox: Alice@Example.com\n  rejectedRecipients: ["@."]'));
    assert.deepEqual(problems, []);
    assert.equal(restrictions.length, 1);
    const spec = restrictions[0]!.document.spec;
    assert.equal(spec.deletionPolicy, 'Clear');
    assert.deepEqual(listsOf(spec), { allowedSenders: [], rejectedSenders: [], allowedRecipients: [], rejectedRecipients: ['@.'] });
  });

  test('a bad entry is named with the document, the field and the entry', () => {
    const { problems } = parseRestrictionFile('a.yaml', doc('  mailbox: alice@example.com\n  allowedSenders: ["@ok.test", "example.com"]'));
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.source, 'a.yaml');
    assert.match(problems[0]!.message, /^MailUserRestriction mail\/r1: spec\.allowedSenders\[1\]: "example\.com" is not an entry/);
  });

  test('every problem is reported, each on its own line', () => {
    const { problems } = parseRestrictionFile('a.yaml', doc('  mailbox: not-an-address\n  rejectedSenders: ["@", " @x.test"]\n  colour: blue'));
    const text = problems.map((p) => p.message).join('\n');
    assert.match(text, /spec\.mailbox: mailbox "not-an-address"/);
    assert.match(text, /spec\.rejectedSenders\[0\]: "@" has no domain/);
    assert.match(text, /spec\.rejectedSenders\[1\]: " @x\.test" has leading or trailing white space/);
    assert.match(text, /colour/);
  });

  test('multi-document files name each document by position', () => {
    const text = `${doc('  mailbox: a@example.com')}\n---\n${doc('  mailbox: b@example.com\n  rejectedSenders: [nope]', 'r2')}`;
    const { restrictions, problems } = parseRestrictionFile('multi.yaml', text);
    assert.equal(restrictions.length, 1);
    assert.equal(problems[0]!.source, 'multi.yaml#2');
  });

  test('documents of other kinds are passed over', () => {
    const text = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n${doc('  mailbox: a@example.com')}`;
    const { restrictions, problems, skipped } = parseRestrictionFile('mixed.yaml', text);
    assert.equal(restrictions.length, 1);
    assert.equal(skipped, 1);
    assert.deepEqual(problems, []);
  });

  test('invalid YAML is a problem of the file', () => {
    const { problems } = parseRestrictionFile('bad.yaml', 'kind: [unclosed');
    assert.equal(problems.length, 1);
    assert.match(problems[0]!.message, /invalid YAML/);
  });

  test('the wrong apiVersion is refused', () => {
    const { problems } = parseRestrictionFile('a.yaml', doc('  mailbox: a@example.com').replace('v1alpha1', 'v9'));
    assert.match(problems[0]!.message, /apiVersion/);
  });

  test('two documents for one mailbox are an error naming both files', () => {
    const a = parseRestrictionFile('one.yaml', doc('  mailbox: a@example.com', 'first')).restrictions;
    const b = parseRestrictionFile('two.yaml', doc('  mailbox: A@example.com', 'second')).restrictions;
    const problems = findDuplicateMailboxes([...a, ...b]);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!.message, /a@example\.com is restricted twice: by mail\/first in one\.yaml and by mail\/second in two\.yaml/);
    const unicode = parseRestrictionFile('three.yaml', doc('  mailbox: jörg@bücher.example', 'third')).restrictions;
    const ascii = parseRestrictionFile('four.yaml', doc('  mailbox: jörg@xn--bcher-kva.example', 'fourth')).restrictions;
    assert.match(findDuplicateMailboxes([...unicode, ...ascii])[0]?.message ?? 'none', /jörg@xn--bcher-kva\.example is restricted twice: by mail\/third in three\.yaml and by mail\/fourth in four\.yaml/);
  });
});
