import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { storeIdentity } from '../../../src/api/store-identity.ts';

describe('storeIdentity: which MailBackends write the same rows', () => {
  const same: [string, Parameters<typeof storeIdentity>[0], string, Parameters<typeof storeIdentity>[0], string][] = [
    ['a Service by its short and long names, default port', { url: 'postgres://vmail@db/vmail' }, 'mail', { url: 'postgresql://other@DB.mail.svc.cluster.local:5432/vmail' }, 'mail'],
    ['the default table and its schema-qualified name', { url: 'postgres://u@db.mail:5432/vmail' }, 'a', { url: 'postgres://u@db.mail:5432/vmail', sql: { table: 'public.mailbox' } as never }, 'b'],
    ['MySQL: the table qualified by the URL database', { url: 'mysql://u@db.mail/vmail' }, 'mail', { url: 'mariadb://u@db.mail:3306/vmail', sql: { table: 'vmail.mailbox' } as never }, 'mail'],
    ['LDAP: the base DN in any case and spacing', { url: 'ldap://ldap.mail', ldap: { baseDn: 'o=domains,dc=example,dc=com' } as never }, 'mail', { url: 'ldap://LDAP.mail:389', ldap: { baseDn: 'O=Domains, DC=Example, DC=Com' } as never }, 'x'],
  ];
  for (const [name, a, nsA, b, nsB] of same) {
    test(`the same store: ${name}`, () => assert.equal(storeIdentity(a, nsA), storeIdentity(b, nsB)));
  }
  const different: [string, Parameters<typeof storeIdentity>[0], string, Parameters<typeof storeIdentity>[0], string][] = [
    ['a short Service name in two namespaces', { url: 'postgres://u@db/vmail' }, 'a', { url: 'postgres://u@db/vmail' }, 'b'],
    ['another database', { url: 'postgres://u@db.mail/vmail' }, 'mail', { url: 'postgres://u@db.mail/vmail2' }, 'mail'],
    ['another table', { url: 'postgres://u@db.mail/vmail' }, 'mail', { url: 'postgres://u@db.mail/vmail', sql: { table: 'users' } as never }, 'mail'],
    ['another port', { url: 'mysql://u@db.mail:3306/vmail' }, 'mail', { url: 'mysql://u@db.mail:3307/vmail' }, 'mail'],
    ['another LDAP base', { url: 'ldap://ldap.mail', ldap: { baseDn: 'o=domains,dc=a,dc=com' } as never }, 'mail', { url: 'ldap://ldap.mail', ldap: { baseDn: 'o=domains,dc=b,dc=com' } as never }, 'mail'],
  ];
  for (const [name, a, nsA, b, nsB] of different) {
    test(`different stores: ${name}`, () => assert.notEqual(storeIdentity(a, nsA), storeIdentity(b, nsB)));
  }
});
