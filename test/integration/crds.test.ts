import assert from 'node:assert/strict';
import { request, type RequestOptions } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { ApiException, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { installCrds } from '../harness/crds.ts';
import { objectNameSchema } from '../../src/api/object-name.ts';

const group = 'mailwarden.io';
const version = 'v1alpha1';

function restriction(name: string, spec: Record<string, unknown>) {
  return { apiVersion: `${group}/${version}`, kind: 'MailUserRestriction', metadata: { name }, spec };
}

describe('CRDs on a real API server', () => {
  let cp: ControlPlane;
  let objects: CustomObjectsApi;
  const namespace = 'crd-test';

  before(async () => {
    cp = await startControlPlane();
    const kc = cp.kubeConfig();
    await installCrds(kc);
    objects = kc.makeApiClient(CustomObjectsApi);
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  });
  after(async () => cp?.stop());

  async function create(body: Record<string, unknown>, plural = 'mailuserrestrictions') {
    return objects.createNamespacedCustomObject({ group, version, namespace, plural, body });
  }

  async function refusal(body: Record<string, unknown>, plural?: string): Promise<string> {
    try {
      await create(body, plural);
    } catch (error) {
      assert.ok(error instanceof ApiException, String(error));
      assert.equal(error.code, 422);
      return (JSON.parse(String(error.body)) as { message: string }).message;
    }
    assert.fail('the API server accepted an invalid object');
  }

  test('a valid restriction is accepted and defaulted', async () => {
    const created = (await create(
      restriction('ok', { mailbox: 'alice@example.com', allowedRecipients: ['@example.com', '@.Partner.test', 'boss@example.com'], rejectedRecipients: ['@.'], backendRef: { name: 'vmail' } }),
    )) as { spec: { deletionPolicy: string; allowedSenders: unknown[] } };
    assert.equal(created.spec.deletionPolicy, 'Clear');
    assert.deepEqual(created.spec.allowedSenders, []);
  });

  const invalid: [string, Record<string, unknown>, RegExp][] = [
    ['a bare domain', { mailbox: 'a@example.com', rejectedSenders: ['example.com'] }, /spec\.rejectedSenders\[0\].*"example\.com" is not an entry: use @\. \(everyone\), @domain/],
    ['a lone @', { mailbox: 'a@example.com', allowedRecipients: ['@ok.test', '@'] }, /spec\.allowedRecipients\[1\].*"@" is not an entry/],
    ['a trailing dot', { mailbox: 'a@example.com', rejectedRecipients: ['@gmail.com.'] }, /"@gmail\.com\." is not an entry/],
    ['white space', { mailbox: 'a@example.com', rejectedRecipients: [' @gmail.com'] }, /is not an entry/],
    ['a mailbox that is not an address', { mailbox: 'example.com' }, /spec\.mailbox.*"example\.com" is not a full address/],
    // Issue #25: look-alikes and invisible characters passed the CEL rule.
    ['a zero-width space', { mailbox: 'a@example.com', rejectedSenders: ['@exam\u200bple.com'] }, /spec\.rejectedSenders\[0\]: Invalid value: "string": holds an invisible or control character, so it is not an entry/],
    ['a bidi override', { mailbox: 'a@example.com', allowedSenders: ['boss\u202e@example.com'] }, /spec\.allowedSenders\[0\].*is not an entry/],
    ['a C1 control', { mailbox: 'a@example.com', allowedSenders: ['a\u009bb@example.com'] }, /spec\.allowedSenders\[0\].*is not an entry/],
    ['a no-break space', { mailbox: 'a@example.com', allowedSenders: ['a\u00a0b@example.com'] }, /spec\.allowedSenders\[0\].*is not an entry/],
    ['a lone surrogate', { mailbox: 'a@example.com', allowedSenders: ['a\ud800@example.com'] }, /spec\.allowedSenders\[0\].*is not an entry/],
    ['a terminal escape (never echoed)', { mailbox: 'a@example.com', allowedSenders: ['\u001b[2Ja@example.com'] }, /spec\.allowedSenders\[0\]: Invalid value: "string": holds an invisible or control character/],
    ['a mailbox with a zero-width joiner', { mailbox: 'ad\u200dmin@example.com' }, /spec\.mailbox.*is not a full address/],
    ['a Unicode label over 12 letters', { mailbox: 'a@example.com', allowedSenders: [`@${'ü'.repeat(13)}.de`] }, /spec\.allowedSenders\[0\].*Unicode longer than 12/],
    ['an unknown deletion policy', { mailbox: 'a@example.com', deletionPolicy: 'Keep' }, /spec\.deletionPolicy.*Unsupported value: "Keep"/],
  ];
  for (const [name, spec, message] of invalid) {
    test(`refused with a clear message: ${name}`, async () => {
      assert.match(await refusal(restriction(`bad-${Math.random().toString(36).slice(2, 8)}`, spec)), message);
    });
  }

  const backend = (name: string, spec: Record<string, unknown>) => ({ apiVersion: `${group}/${version}`, kind: 'MailBackend', metadata: { name }, spec });

  test('a MailBackend is accepted with iRedMail defaults', async () => {
    const created = (await create(backend('vmail', { url: 'postgres://vmail@db.mail.svc:5432/vmail', credentialsSecretRef: { name: 'vmail-db' } }), 'mailbackends')) as {
      spec: { credentialsSecretRef: { key: string } };
    };
    assert.equal(created.spec.credentialsSecretRef.key, 'password');
  });

  test('a MailBackend with a password in its URL is refused', async () => {
    assert.match(await refusal(backend('pw', { url: 'mysql://vmail:hunter2@db:3306/vmail' }), 'mailbackends'), /must not contain a password/);
  });

  test('a MailBackend caSecretRef needs tls.mode verify-full and no tls.caFile (CEL, at apply time)', async () => {
    const url = 'postgres://vmail@db.mail.svc:5432/vmail';
    assert.match(await refusal(backend('ca-none', { url, caSecretRef: { name: 'db-ca' } }), 'mailbackends'), /caSecretRef needs tls\.mode verify-full/);
    assert.match(await refusal(backend('ca-require', { url, caSecretRef: { name: 'db-ca' }, sql: { tls: { mode: 'require' } } }), 'mailbackends'), /caSecretRef needs tls\.mode verify-full/);
    assert.match(
      await refusal(backend('ca-both', { url: 'ldaps://ldap.mail.svc', caSecretRef: { name: 'ldap-ca' }, ldap: { tls: { mode: 'verify-full', caFile: '/ca.pem' } } }), 'mailbackends'),
      /tls\.caFile is not accepted in a MailBackend/,
    );
    const created = (await create(backend('ca-ok', { url, caSecretRef: { name: 'db-ca' }, sql: { tls: { mode: 'verify-full' } } }), 'mailbackends')) as { spec: { caSecretRef: { key: string } } };
    assert.equal(created.spec.caSecretRef.key, 'ca.crt');
  });

  // #25: settings a namespace cannot abuse — each of these was accepted before.
  const abusive: [string, Record<string, unknown>, RegExp][] = [
    ['tls.caFile alone (/dev/zero read into memory, a pipe stalling the I/O pool)', { url: 'postgres://vmail@db:5432/vmail', sql: { tls: { mode: 'verify-full', caFile: '/dev/zero' } } }, /tls\.caFile is not accepted in a MailBackend/],
    ['a list written into the password column', { url: 'postgres://vmail@db:5432/vmail', sql: { columns: { allowedSenders: 'password' } } }, /'password' holds credentials: it cannot be a mailwarden column/],
    ['the key column probing password hashes', { url: 'mysql://vmail@db:3306/vmail', sql: { columns: { username: 'PassWord' } } }, /'PassWord' holds credentials/],
    ['a list written into the key column', { url: 'postgres://vmail@db:5432/vmail', sql: { columns: { allowedSenders: 'username' } } }, /five different columns/],
    ['a $ in a column name', { url: 'postgres://vmail@db:5432/vmail', sql: { columns: { allowedSenders: 'a$b' } } }, /spec\.sql\.columns\.allowedSenders/],
    ['a list written into userPassword', { url: 'ldap://ldap:389', ldap: { attributes: { rejectedRecipients: 'userPassword' } } }, /'userPassword' holds credentials or identity: it cannot be a list attribute/],
    ['a list written over the addresses', { url: 'ldap://ldap:389', ldap: { attributes: { allowedSenders: 'shadowAddress' } } }, /must differ from each other and from addressAttributes/],
    ['a domain that is not lower-case ASCII', { url: 'postgres://vmail@db:5432/vmail', domains: ['Example.COM'] }, /spec\.domains\[0\]/],
  ];
  for (const [name, spec, message] of abusive) {
    test(`a MailBackend is refused at admission: ${name}`, async () => {
      assert.match(await refusal(backend(`abuse-${Math.random().toString(36).slice(2, 8)}`, spec), 'mailbackends'), message);
    });
  }

  test('a MailBackend with domains is accepted', async () => {
    const created = (await create(backend('tenant-a', { url: 'postgres://vmail@db:5432/vmail', domains: ['a.example', 'xn--bcher-kva.example'] }), 'mailbackends')) as { spec: { domains: string[] } };
    assert.deepEqual(created.spec.domains, ['a.example', 'xn--bcher-kva.example']);
  });

  test('a MailBackend with an unknown scheme is refused', async () => {
    assert.match(await refusal(backend('scheme', { url: 'http://db:5432/vmail' }), 'mailbackends'), /spec\.url/);
  });

  // Object-name references (#25 review): a name no object can have is refused at admission, as
  // Kubernetes refuses it for the object itself (DNS-1123 subdomain, at most 253 characters).
  const NOT_A_NAME = /Invalid value: "string": is not a Kubernetes object name: lower-case letters, digits, "-" and "\."/;
  const policyDaemon = (name: string, spec: Record<string, unknown>) => ({ apiVersion: `${group}/${version}`, kind: 'PolicyDaemon', metadata: { name }, spec });
  const badNames: [string, string, () => [Record<string, unknown>, string | undefined], RegExp][] = [
    ['upper case', 'MailUserRestriction backendRef', () => [restriction('ref-upper', { mailbox: 'a@example.com', backendRef: { name: 'Vmail' } }), undefined], /spec\.backendRef\.name/],
    ['an underscore', 'MailUserRestriction backendRef', () => [restriction('ref-underscore', { mailbox: 'a@example.com', backendRef: { name: 'vmail_db' } }), undefined], /spec\.backendRef\.name/],
    ['a path', 'MailUserRestriction backendRef', () => [restriction('ref-path', { mailbox: 'a@example.com', backendRef: { name: '../other-ns/vmail' } }), undefined], /spec\.backendRef\.name/],
    ['a trailing dot', 'PolicyDaemon backendRef', () => [policyDaemon('ref-dot', { backendRef: { name: 'vmail.' } }), 'policydaemons'], /spec\.backendRef\.name/],
    ['a leading hyphen', 'MailBackend credentialsSecretRef', () => [backend('ref-hyphen', { url: 'postgres://vmail@db:5432/vmail', credentialsSecretRef: { name: '-vmail-db' } }), 'mailbackends'], /spec\.credentialsSecretRef\.name/],
    ['white space', 'MailBackend caSecretRef', () => [backend('ref-space', { url: 'postgres://vmail@db:5432/vmail', caSecretRef: { name: 'db ca' }, sql: { tls: { mode: 'verify-full' } } }), 'mailbackends'], /spec\.caSecretRef\.name/],
  ];
  for (const [what, field, object, path] of badNames) {
    test(`an object-name reference that is no object name is refused at admission: ${field}, ${what}`, async () => {
      const [body, plural] = object();
      const message = await refusal(body, plural);
      assert.match(message, path);
      assert.match(message, NOT_A_NAME);
    });
  }

  test('object-name references: zod and the API server agree on every name of a corpus (dotted names accepted)', async () => {
    const names = ['vmail', 'vmail-db', 'vmail.db', 'a', '0', 'a.b.c', 'a-1.b-2', 'x'.repeat(253), 'x'.repeat(254), 'Vmail', 'vmail_db', '-a', 'a-', '.a', 'a.', 'a..b', 'a.-b', 'a b', 'ä', 'a/b', 'a:b', 'a\u200b', '', 'a@b'];
    const disagreements: string[] = [];
    let accepted = 0;
    for (const [index, name] of names.entries()) {
      const zod = objectNameSchema('').safeParse(name).success;
      let server: boolean;
      try {
        await objects.createNamespacedCustomObject({ group, version, namespace, plural: 'mailuserrestrictions', body: restriction(`corpus-${index}`, { mailbox: 'a@example.com', backendRef: { name } }), dryRun: 'All' });
        server = true;
      } catch (error) {
        assert.ok(error instanceof ApiException && error.code === 422, String(error));
        server = false;
      }
      if (server !== zod) disagreements.push(`${JSON.stringify(name)}: zod ${zod}, API server ${server}`);
      if (server) accepted++;
    }
    assert.deepEqual(disagreements, []);
    assert.equal(accepted, 8, 'the first eight are names');
  });

  test('status is a subresource and printer columns are served', async () => {
    await create(restriction('cols', { mailbox: 'cols@example.com' }));
    const table = await fetchTable(cp, `/apis/${group}/${version}/namespaces/${namespace}/mailuserrestrictions/cols`);
    assert.deepEqual(table, ['Name', 'Mailbox', 'Backend', 'Ready', 'Reason', 'Age']);
  });
});

async function fetchTable(cp: ControlPlane, path: string): Promise<string[]> {
  const options: RequestOptions = { method: 'GET', headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' } };
  await cp.kubeConfig().applyToHTTPSOptions(options);
  const body = await new Promise<string>((resolve, reject) => {
    const req = request(`${cp.server}${path}`, options, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve(text));
    });
    req.on('error', reject).end();
  });
  return (JSON.parse(body) as { columnDefinitions: { name: string }[] }).columnDefinitions.map((c) => c.name);
}
