import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mailboxInDomains } from '../../../src/api/backend-domains.ts';
import { mailBackendSpecSchema } from '../../../src/api/mail-backend.ts';
import { policyDaemonSpecSchema } from '../../../src/api/policy-daemon.ts';
import { daemonRefusal } from '../../../src/reconcilers/daemon-allowance.ts';

const issues = (spec: object) => JSON.stringify(mailBackendSpecSchema.safeParse(spec).error?.issues ?? []);

describe('tenancy: a MailBackend bounds the mailboxes of its namespace (#25)', () => {
  test('a mailbox is inside when its domain (lower-case, IDN as xn--) is listed exactly', () => {
    assert.equal(mailboxInDomains('Alice@Example.COM', ['example.com']), true);
    assert.equal(mailboxInDomains('kim@bücher.example', ['xn--bcher-kva.example']), true);
    assert.equal(mailboxInDomains('postmaster@other.org', ['example.com']), false);
    assert.equal(mailboxInDomains('a@sub.example.com', ['example.com']), false, 'no sub-domains');
    assert.equal(mailboxInDomains('a@evil-example.com', ['example.com']), false);
    assert.equal(mailboxInDomains('postmaster@other.org', undefined), true, 'no domains: the whole store');
  });

  test('domains are lower-case ASCII names, at least one', () => {
    assert.match(issues({ url: 'postgres://v@db/vmail', domains: [] }), /domains/);
    assert.match(issues({ url: 'postgres://v@db/vmail', domains: ['Example.com'] }), /lower-case domain name/);
    assert.match(issues({ url: 'postgres://v@db/vmail', domains: ['bücher.example'] }), /xn-- form/);
    assert.equal(issues({ url: 'postgres://v@db/vmail', domains: ['example.com', 'xn--bcher-kva.example'] }), '[]');
  });
});

describe('settings a tenant cannot abuse (#25)', () => {
  const pg = (sql: object) => issues({ url: 'postgres://v@db/vmail', sql });
  const ldap = (settings: object) => issues({ url: 'ldap://ldap:389', ldap: settings });

  test('no tls.caFile in a MailBackend, with or without caSecretRef', () => {
    assert.match(pg({ tls: { mode: 'verify-full', caFile: '/dev/zero' } }), /tls\.caFile is not accepted in a MailBackend/);
    assert.match(ldap({ tls: { mode: 'require', caFile: '/run/pipe' } }), /tls\.caFile is not accepted/);
  });

  test('no credential column, in any case, and five different columns', () => {
    for (const column of ['password', 'PASSWORD', 'passwd', 'password_hash']) {
      assert.match(pg({ columns: { allowedSenders: column } }), /holds credentials: it cannot be a mailwarden column/, column);
    }
    assert.match(pg({ columns: { username: 'password' } }), /holds credentials/);
    assert.match(pg({ columns: { rejectedRecipients: 'username' } }), /five different columns/);
    assert.match(pg({ columns: { allowedSenders: 'AllowedRecipients' } }), /five different columns/);
    assert.match(pg({ columns: { allowedSenders: 'a$b' } }), /letters, digits and _/);
    assert.match(pg({ table: 'vmail.mail$box' }), /table name/);
    assert.equal(pg({ table: 'vmail.mailbox', columns: { allowedSenders: 'white_senders' } }), '[]');
  });

  test('no LDAP list attribute holding credentials, identity or addresses', () => {
    assert.match(ldap({ attributes: { allowedSenders: 'userPassword' } }), /holds credentials or identity/);
    assert.match(ldap({ attributes: { allowedSenders: 'objectClass' } }), /holds credentials or identity/);
    assert.match(ldap({ attributes: { rejectedSenders: 'shadowaddress' } }), /from addressAttributes/);
    assert.match(ldap({ attributes: { rejectedSenders: 'mailWhitelistRecipient' } }), /differ from each other/);
    assert.equal(ldap({}), '[]');
  });

  test('a PolicyDaemon image or a diverting action needs the cluster admin', () => {
    const spec = (extra: object) => policyDaemonSpecSchema.parse({ mode: 'Service', backendRef: { name: 'vmail' }, ...extra });
    const allowance = { defaultImage: 'ghcr.io/mailwarden/mailwarden:1' };
    assert.equal(daemonRefusal(spec({}), allowance), undefined);
    assert.equal(daemonRefusal(spec({ image: 'ghcr.io/mailwarden/mailwarden:1' }), allowance), undefined);
    assert.match(daemonRefusal(spec({ image: 'evil.example/steal:latest' }), allowance) ?? '', /image evil\.example\/steal:latest is not one the cluster admin allows/);
    assert.equal(daemonRefusal(spec({ image: 'mirror.example/mailwarden:1' }), { ...allowance, images: ['mirror.example/mailwarden:1'] }), undefined);
    for (const word of ['REDIRECT', 'BCC', 'FILTER', 'HOLD', 'DISCARD']) {
      const s = spec({ policy: { rejectAction: `${word} spy@evil.example` } });
      assert.match(daemonRefusal(s, allowance) ?? '', new RegExp(`policy\\.rejectAction ${word} is not an action`), word);
      assert.equal(daemonRefusal(s, { ...allowance, actions: [word] }), undefined);
    }
    assert.equal(daemonRefusal(spec({ policy: { rejectAction: 'REJECT REDIRECT is a word here' } }), allowance), undefined);
  });
});
