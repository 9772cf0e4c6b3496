import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { z } from 'zod';
import { LdapStoreSettingsSchema, SqlStoreSettingsSchema } from '../../../src/api/store-settings.ts';
import { parseStoreSettings } from '../../../src/stores/common.ts';
import { StoreError } from '../../../src/stores/store.ts';

describe('SQL store settings', () => {
  test("defaults are iRedMail's vmail.mailbox", () => {
    assert.deepEqual(SqlStoreSettingsSchema.parse({}), {
      schema: 'vmail',
      table: 'mailbox',
      columns: {
        username: 'username',
        allowedSenders: 'allowedsenders',
        rejectedSenders: 'rejectedsenders',
        allowedRecipients: 'allowedrecipients',
        rejectedRecipients: 'rejectedrecipients',
      },
      poolSize: 4,
      connectTimeoutMs: 3000,
      operationTimeoutMs: 5000,
      tls: { mode: 'disable' },
    });
  });

  test('a renamed column keeps the other defaults', () => {
    const s = SqlStoreSettingsSchema.parse({ columns: { username: 'email' } });
    assert.equal(s.columns.username, 'email');
    assert.equal(s.columns.allowedSenders, 'allowedsenders');
  });

  const refused: [string, unknown][] = [
    ['an identifier with a quote', { table: 'mail"box' }],
    ['an identifier with a space', { columns: { username: 'user name' } }],
    ['a three-part table name', { table: 'a.b.c' }],
    ['an unknown key (a typo)', { tabel: 'mailbox' }],
    ['a pool of zero', { poolSize: 0 }],
    ['an unknown TLS mode', { tls: { mode: 'prefer' } }],
  ];
  for (const [name, input] of refused) {
    test(`refuses ${name}`, () => assert.equal(SqlStoreSettingsSchema.safeParse(input).success, false));
  }
});

describe('LDAP store settings', () => {
  test("defaults are iRedMail's attributes and object classes", () => {
    const s = LdapStoreSettingsSchema.parse({});
    assert.equal(s.baseDn, 'o=domains,dc=example,dc=com');
    assert.equal(s.bindDn, 'cn=vmail,dc=example,dc=com');
    assert.equal(s.userFilter, '(objectClass=mailUser)');
    assert.deepEqual(s.addressAttributes, ['mail', 'shadowAddress']);
    assert.deepEqual(s.attributes, {
      allowedSenders: 'amavisWhitelistSender',
      rejectedSenders: 'amavisBlacklistSender',
      allowedRecipients: 'mailWhitelistRecipient',
      rejectedRecipients: 'mailBlacklistRecipient',
    });
    assert.deepEqual(s.objectClasses, { senderLists: 'amavisAccount', recipientLists: 'mailUser' });
    assert.equal(s.scope, 'sub');
    assert.equal(s.startTls, false);
  });

  test('attribute names may be OIDs; other text is refused', () => {
    assert.equal(LdapStoreSettingsSchema.safeParse({ attributes: { allowedSenders: '1.3.6.1.4.1.15312.2.2.1.9' } }).success, true);
    assert.equal(LdapStoreSettingsSchema.safeParse({ attributes: { allowedSenders: 'mail)(x' } }).success, false);
    assert.equal(LdapStoreSettingsSchema.safeParse({ addressAttributes: [] }).success, false);
  });
});

describe('parseStoreSettings', () => {
  test('every problem in one Misconfigured error', () => {
    assert.throws(
      () => parseStoreSettings(SqlStoreSettingsSchema, { table: 'a b', poolSize: 0 }, 'PostgreSQL store'),
      (err: unknown) =>
        err instanceof StoreError &&
        err.kind === 'Misconfigured' &&
        err.message.startsWith('PostgreSQL store settings are not valid: ') &&
        err.message.includes('table: ') &&
        err.message.includes('poolSize: '),
    );
  });

  test('undefined settings mean the defaults', () => {
    assert.equal(parseStoreSettings(SqlStoreSettingsSchema, undefined, 'x').table, 'mailbox');
  });

  test('the schemas convert to JSON Schema with their descriptions (for the MailBackend CRD)', () => {
    const json = z.toJSONSchema(SqlStoreSettingsSchema, { io: 'input' }) as { properties: Record<string, { description?: string }> };
    assert.match(json.properties.table?.description ?? '', /Table/);
    const ldap = z.toJSONSchema(LdapStoreSettingsSchema, { io: 'input' }) as { properties: Record<string, { description?: string }> };
    assert.match(ldap.properties.baseDn?.description ?? '', /searched/);
  });
});
