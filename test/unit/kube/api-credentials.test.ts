import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { CredentialsError, kubeconfigCredentials, mountedTokenCredentials } from '../../../src/kube/api-credentials.ts';

// Credentials the policy daemon's Kubernetes store reads without @kubernetes/client-node.

const dir = mkdtempSync(path.join(tmpdir(), 'mw-credentials-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfig(name: string, user: Record<string, unknown>, extra: { namespace?: string; server?: string } = {}): string {
  const file = path.join(dir, name);
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: extra.server ?? 'https://127.0.0.1:6443/', 'certificate-authority-data': Buffer.from('not checked here').toString('base64') } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u', ...(extra.namespace ? { namespace: extra.namespace } : {}) } }],
    'current-context': 'ctx',
  };
  writeFileSync(file, JSON.stringify(config));
  return file;
}

describe('kubeconfigCredentials', () => {
  test('a token: the server without its trailing slash, the context namespace, a bearer header', () => {
    const c = kubeconfigCredentials(kubeconfig('token.yaml', { token: 'abc' }, { namespace: 'mail' }));
    assert.equal(c.server, 'https://127.0.0.1:6443');
    assert.equal(c.namespace, 'mail');
    assert.equal(c.authorization(), 'Bearer abc');
    c.connections.destroy();
  });

  test('a token file, relative to the kubeconfig, is read on every request: a rotated token is used at once', () => {
    writeFileSync(path.join(dir, 'sa-token'), 'first\n');
    const c = kubeconfigCredentials(kubeconfig('file.yaml', { tokenFile: 'sa-token' }));
    assert.equal(c.authorization(), 'Bearer first');
    writeFileSync(path.join(dir, 'sa-token'), 'second\n');
    assert.equal(c.authorization(), 'Bearer second');
    assert.equal(c.namespace, undefined);
    c.connections.destroy();
  });

  test('a client certificate: no Authorization header', () => {
    const c = kubeconfigCredentials(kubeconfig('cert.yaml', { 'client-certificate-data': 'Y2VydA==', 'client-key-data': 'a2V5' }));
    assert.equal(c.authorization(), undefined);
    c.connections.destroy();
  });

  test('refused with a message that says why: exec plugins, a missing user, no https server, no file', () => {
    assert.throws(() => kubeconfigCredentials(kubeconfig('exec.yaml', { exec: { command: 'aws' } })), (e: Error) => e instanceof CredentialsError && /exec plugin or auth provider/.test(e.message));
    assert.throws(() => kubeconfigCredentials(kubeconfig('http.yaml', { token: 'x' }, { server: 'http://127.0.0.1:8080' })), /names no https:\/\/ server/);
    const missing = path.join(dir, 'missing-user.yaml');
    writeFileSync(missing, JSON.stringify({ clusters: [{ name: 'c', cluster: { server: 'https://x' } }], contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'nobody' } }], 'current-context': 'ctx' }));
    assert.throws(() => kubeconfigCredentials(missing), /has no user "nobody"/);
    assert.throws(() => kubeconfigCredentials(path.join(dir, 'absent.yaml')), /absent\.yaml cannot be read: ENOENT/);
  });
});

describe('mountedTokenCredentials', () => {
  test('token, CA and namespace from the directory; the address from the in-cluster environment', () => {
    const mount = path.join(dir, 'mount');
    mkdirSync(mount);
    writeFileSync(path.join(mount, 'token'), 'tok');
    writeFileSync(path.join(mount, 'ca.crt'), 'ca');
    writeFileSync(path.join(mount, 'namespace'), 'mail\n');
    const c = mountedTokenCredentials(mount, { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' });
    assert.equal(c.server, 'https://[fd00::1]:443');
    assert.equal(c.namespace, 'mail');
    assert.equal(c.authorization(), 'Bearer tok');
    c.connections.destroy();
    assert.throws(() => mountedTokenCredentials(mount, {}), /KUBERNETES_SERVICE_HOST/);
  });

  test('a projected token the kubelet renews (a ..data symlink swapped) is read on every request: the new token is used at once', () => {
    // The kubelet's atomic writer: files are links into a timestamped directory named by ..data.
    const mount = path.join(dir, 'projected');
    mkdirSync(path.join(mount, '..2026_12_04_first'), { recursive: true });
    writeFileSync(path.join(mount, '..2026_12_04_first', 'token'), 'first');
    writeFileSync(path.join(mount, '..2026_12_04_first', 'ca.crt'), 'ca');
    symlinkSync('..2026_12_04_first', path.join(mount, '..data'));
    for (const file of ['token', 'ca.crt']) symlinkSync(path.join('..data', file), path.join(mount, file));
    const c = mountedTokenCredentials(mount, { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: '6443' });
    assert.equal(c.authorization(), 'Bearer first');
    mkdirSync(path.join(mount, '..2026_12_04_second'));
    writeFileSync(path.join(mount, '..2026_12_04_second', 'token'), 'second');
    symlinkSync('..2026_12_04_second', path.join(mount, '..data_tmp'));
    renameSync(path.join(mount, '..data_tmp'), path.join(mount, '..data'));
    assert.equal(c.authorization(), 'Bearer second');
    c.connections.destroy();
  });
});
