// The LDAP store over StartTLS and ldaps:// against a real OpenLDAP 2.5 serving a certificate for
// 127.0.0.1 from a test CA: verified sessions read, another CA or another host name is refused.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openUrlStore, type UrlStore } from '../../../src/stores/url-store.ts';
import { type LdapServer, startOpenldap } from '../../harness/containers.ts';
import { recordWarnings, storeError, testTls, type TestTls } from './helpers.ts';

describe('OpenLDAP 2.5 store over TLS', () => {
  let ldap: LdapServer;
  let tls: TestTls;
  let warnings: ReturnType<typeof recordWarnings>;
  const opened: UrlStore[] = [];
  const open = async (tlsSettings: object, url = ldap.url): Promise<UrlStore> => {
    const settings = { baseDn: ldap.domainsDn, bindDn: ldap.bindDn, startTls: url.startsWith('ldap:'), tls: tlsSettings };
    const store = await openUrlStore(url, settings, { semantics: 'default', password: ldap.password });
    opened.push(store);
    return store;
  };
  const lookup = (store: UrlStore) => store.lookup(['tls@example.com'], AbortSignal.timeout(10_000));

  before(async () => {
    warnings = recordWarnings();
    tls = await testTls();
    ldap = await startOpenldap({ tls: tls.serving });
    await ldap.addLdapDomain('example.com');
    await ldap.addLdapUser({ mail: 'tls@example.com', amavisWhitelistSender: ['@partner.example'] });
  });
  after(async () => {
    warnings?.stop();
    for (const store of opened) await store.close();
    await ldap?.stop();
    await tls?.remove();
  });

  test('verify-full with the CA: reads over verified sessions, every pooled connection', async () => {
    const store = await open({ mode: 'verify-full', caFile: tls.caFile });
    // Concurrent lookups open both pooled connections, each with its own handshake.
    for (const found of await Promise.all(Array.from({ length: 8 }, () => lookup(store)))) {
      assert.deepEqual(found.get('tls@example.com')?.lists.allowedSenders, ['@partner.example']);
    }
  });

  test('verify-full refuses a certificate another CA signed, and another host name', async () => {
    await assert.rejects(lookup(await open({ mode: 'verify-full', caFile: tls.otherCaFile })), storeError('Misconfigured', /certificate/i, [ldap.password]));
    await assert.rejects(lookup(await open({ mode: 'verify-full', caFile: tls.caFile, serverName: 'ldap.example.net' })), storeError('Misconfigured', /ldap\.example\.net/));
  });

  test('ldaps://: verified with the CA, refused with another CA', async () => {
    const ldaps = ldap.ldapsUrl as string;
    const found = await lookup(await open({ mode: 'verify-full', caFile: tls.caFile }, ldaps));
    assert.deepEqual(found.get('tls@example.com')?.lists.allowedSenders, ['@partner.example']);
    await assert.rejects(lookup(await open({ mode: 'verify-full', caFile: tls.otherCaFile }, ldaps)), storeError('Misconfigured', /certificate/i, [ldap.password]));
  });

  test('require: TLS without checking the certificate', async () => {
    const found = await lookup(await open({ mode: 'require' }));
    assert.ok(found.has('tls@example.com'));
  });

  test('no process warning (an IP address is never sent as the TLS server name)', () => {
    assert.deepEqual(warnings.warnings, []);
  });
});
