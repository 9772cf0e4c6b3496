// A MailBackend whose store serves a certificate from a private CA: the operator checks it against
// the CA in the Secret that caSecretRef names (real PostgreSQL, MariaDB and OpenLDAP over TLS).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { BACKEND_KINDS, startBackend, type BackendFixture } from '../../harness/backends.ts';
import { eventually, resources, startOperatorEnv, type OperatorEnv } from '../../harness/operator-env.ts';
import { testTls, type TestTls } from '../stores/helpers.ts';

const empty = { allowedSenders: [], rejectedSenders: [], allowedRecipients: [], rejectedRecipients: [] };

describe('operator: a store certificate checked against the CA of caSecretRef', () => {
  let env: OperatorEnv;
  let tls: TestTls;
  before(async () => {
    tls = await testTls();
    env = await startOperatorEnv();
  });
  after(async () => {
    await env?.stopAll();
    await tls?.remove();
  });

  for (const kind of BACKEND_KINDS) {
    describe(kind, () => {
      let backend: BackendFixture;
      let r: ReturnType<typeof resources>;
      let ns: string;
      const backendReady = async () => {
        const obj = (await env.objects.getNamespacedCustomObject({ group: 'mailwarden.io', version: 'v1alpha1', namespace: ns, plural: 'mailbackends', name: 'vmail' })) as {
          status?: { conditions?: { type: string; status: string; reason: string; message: string }[] };
        };
        return obj.status?.conditions?.find((c) => c.type === 'Ready');
      };
      const setCa = (pem: string) => env.core.replaceNamespacedSecret({ namespace: ns, name: 'store-ca', body: { metadata: { name: 'store-ca' }, stringData: { 'ca.crt': pem } } });

      before(async () => {
        backend = await startBackend(kind, { tls: tls.serving });
        ns = await env.namespace(`ca-${kind}`);
        r = resources(env, ns);
        // First a CA that did not sign the server's certificate.
        await env.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'store-ca' }, stringData: { 'ca.crt': await readFile(tls.otherCaFile, 'utf8') } } });
        const settings = kind === 'openldap' ? 'ldap' : 'sql';
        // MySQL checks a certificate only against a host name: the name in the server's certificate.
        const url = kind === 'mariadb' ? String(backend.spec.url).replace('@127.0.0.1:', '@localhost:') : backend.spec.url;
        const spec = { ...backend.spec, url, [settings]: { ...(backend.spec[settings] as object | undefined), tls: { mode: 'verify-full' } }, caSecretRef: { name: 'store-ca' } };
        await r.createBackend('vmail', spec, backend.password);
        await env.operator([ns], { resyncMs: 1_500 });
      });
      after(async () => backend?.stop());

      test('another CA: refused and nothing written; the signing CA put in the Secret: applied without a restart', async () => {
        await backend.addMailbox('ca@example.com');
        await r.create('ca', { mailbox: 'ca@example.com', backendRef: { name: 'vmail' }, rejectedSenders: ['@spam.test'] });
        const { ready } = await r.waitReason('ca', 'BackendUnavailable');
        assert.match(ready.message, /certificate/i);
        assert.doesNotMatch(ready.message, /needs a host name/);
        const refused = await eventually('MailBackend not ready', async () => ((await backendReady())?.status === 'False' ? backendReady() : undefined));
        assert.equal(refused?.reason, 'Misconfigured', refused?.message);
        assert.deepEqual(await backend.readLists('ca@example.com'), empty, 'nothing written over an unverified connection');

        await setCa(await readFile(tls.caFile, 'utf8'));
        await r.waitReason('ca', 'Applied', 30_000);
        assert.deepEqual(await backend.readLists('ca@example.com'), { ...empty, rejectedSenders: ['@spam.test'] });
        await eventually('MailBackend Connected', async () => (await backendReady())?.reason === 'Connected');
      });

      test('a Secret key without a PEM certificate is reported on the MailBackend', async () => {
        await setCa('not a certificate');
        const bad = await eventually('MailBackend reports the CA', async () => {
          const ready = await backendReady();
          return ready?.status === 'False' ? ready : undefined;
        });
        assert.equal(bad.reason, 'SecretInvalid');
        assert.match(bad.message, /holds no PEM certificate/);
        await setCa(await readFile(tls.caFile, 'utf8'));
        await eventually('MailBackend Connected again', async () => (await backendReady())?.reason === 'Connected');
      });
    });
  }
});
