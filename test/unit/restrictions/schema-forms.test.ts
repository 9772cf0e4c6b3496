// Which mailbox and entry forms each store schema holds (src/restrictions/schema-forms.ts): the
// document schema admits the union, and these are the problems the operator, apply and validate
// report for the schema a restriction is written to.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mailUserRestrictionSchema } from '../../../src/api/mail-user-restriction.ts';
import { schemaProblems } from '../../../src/restrictions/schema-forms.ts';
import { amavisdOnlyPattern, isAmavisdOnlyEntry } from '../../../src/restrictions/amavisd-entry.ts';
import { EMPTY_LISTS, type RestrictionLists } from '../../../src/restrictions/lists.ts';

const lists = (l: Partial<RestrictionLists>): RestrictionLists => ({ ...EMPTY_LISTS, ...l });

describe('store schema forms', () => {
  const amavisdOnly = ['192.0.2.1', '2001:db8::1', '192.0.2.0/24', '2001:db8::/32', '192.0.2.*', '192.0.*.7', 'spam@*'];

  test('the document schema admits the amavisd forms (mailbox @domain and @.; IP, network, wildcard, user@*)', () => {
    for (const mailbox of ['alice@example.com', '@example.com', '@.']) {
      const doc = { apiVersion: 'mailwarden.io/v1alpha1', kind: 'MailUserRestriction', metadata: { name: 'x' }, spec: { mailbox, rejectedSenders: amavisdOnly } };
      assert.equal(mailUserRestrictionSchema.safeParse(doc).success, true, mailbox);
    }
    for (const bad of ['300.1.1.1/99x', 'spam@', 'not an entry', '@', '192.0.2.1 ']) {
      const doc = { apiVersion: 'mailwarden.io/v1alpha1', kind: 'MailUserRestriction', metadata: { name: 'x' }, spec: { mailbox: 'a@example.com', rejectedSenders: [bad] } };
      assert.equal(mailUserRestrictionSchema.safeParse(doc).success, false, bad);
    }
    const doc = { apiVersion: 'mailwarden.io/v1alpha1', kind: 'MailUserRestriction', metadata: { name: 'x' }, spec: { mailbox: '@.example.com' } };
    assert.equal(mailUserRestrictionSchema.safeParse(doc).success, false, 'a domain tree is no account');
  });

  test("the CRD's pattern admits every amavisd-only form the parser accepts, and no general entry twice over", () => {
    const pattern = new RegExp(amavisdOnlyPattern('ecmascript'), 'u');
    for (const entry of amavisdOnly) {
      assert.ok(isAmavisdOnlyEntry(entry), entry);
      assert.match(entry, pattern);
    }
    for (const entry of ['@.', '@example.com', 'a@example.com', 'a b@*', '1.2.3', 'a@*.com']) assert.doesNotMatch(entry, pattern);
  });

  test('vmail: every amavisd-only form is named as such, and a domain or server-wide mailbox is refused', () => {
    for (const entry of amavisdOnly) {
      const [problem] = schemaProblems('alice@example.com', lists({ allowedSenders: [entry] }), 'vmail');
      assert.match(problem ?? '', /allowedSenders: ".*" is .*: valid only in a MailBackend of schema amavisd/, entry);
    }
    assert.match(schemaProblems('@example.com', EMPTY_LISTS, 'vmail')[0] ?? '', /not a full address .*need a MailBackend of schema amavisd/);
    assert.match(schemaProblems('@.', EMPTY_LISTS, 'vmail')[0] ?? '', /not a full address/);
    assert.deepEqual(schemaProblems('alice@example.com', lists({ allowedSenders: ['@.', '@x.test', '@.x.test', 'a@x.test'], rejectedRecipients: ['@.com'] }), 'vmail'), []);
  });

  test('amavisd: every form as a sender; a client form never as a recipient; one party not in both lists of a direction', () => {
    assert.deepEqual(schemaProblems('@.', lists({ rejectedSenders: amavisdOnly, allowedRecipients: ['spam@*', '@.com'] }), 'amavisd'), []);
    for (const entry of amavisdOnly.filter((e) => !e.includes('@'))) {
      for (const list of ['allowedRecipients', 'rejectedRecipients'] as const) {
        assert.match(schemaProblems('alice@example.com', lists({ [list]: [entry] }), 'amavisd')[0] ?? '', /a client is a sender, never a recipient/, `${list} ${entry}`);
      }
    }
    assert.deepEqual(schemaProblems('alice@example.com', lists({ allowedSenders: ['@X.test'], rejectedSenders: ['@x.test'] }), 'amavisd'), ['"@x.test" is in both allowedSenders and rejectedSenders: one pair holds one of W and B']);
    assert.deepEqual(schemaProblems('alice@example.com', lists({ allowedRecipients: ['b@x.test'], rejectedRecipients: ['b@x.test'] }), 'amavisd'), ['"b@x.test" is in both allowedRecipients and rejectedRecipients: one pair holds one of W and B']);
    // The same party allowed inbound and rejected outbound is two pairs, in two tables.
    assert.deepEqual(schemaProblems('alice@example.com', lists({ allowedSenders: ['b@x.test'], rejectedRecipients: ['b@x.test'] }), 'amavisd'), []);
  });

  test('amavisd accounts: an address, @domain or @.; nothing else', () => {
    for (const ok of ['alice@example.com', '@example.com', '@.']) assert.deepEqual(schemaProblems(ok, EMPTY_LISTS, 'amavisd'), [], ok);
    for (const bad of ['@.example.com', '192.0.2.1', 'spam@*', '@.com']) assert.match(schemaProblems(bad, EMPTY_LISTS, 'amavisd')[0] ?? '', /not an account of the amavisd schema/, bad);
  });
});
