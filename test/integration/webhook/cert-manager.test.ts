import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { AdmissionregistrationV1Api, ApiException } from '@kubernetes/client-node';
import { createCa, issueServing, type KeyPair } from '../../../src/webhook/certificates.ts';
import { webhookConfiguration } from '../../../src/webhook/configuration.ts';
import { eventually, OPERATOR_NAMESPACE, startOperatorEnv, type OperatorEnv } from '../../harness/operator-env.ts';
import { createBackendAndDaemon, createPod, freePort, INJECT, localWebhook, sidecarOf } from './support.ts';

// The chart's webhook.certManager mode on a real API server: someone else (cert-manager, here
// the test) issues the serving certificate into a Secret mounted as files and puts its CA into
// the configuration's caBundle. The operator serves that certificate, picks up a renewal, and
// writes neither a certificate Secret nor the configuration.

const CONFIGURATION = 'cm-mailwarden';
const SECRET = 'cm-mailwarden-webhook-tls';
const DAY = 86_400_000;


/** The certificate a TLS client is served on 127.0.0.1:port. */
function servedCertificate(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, checkServerIdentity: () => undefined }, () => {
      resolve(socket.getPeerX509Certificate()!.toString());
      socket.end();
    });
    socket.once('error', reject);
  });
}

describe('sidecar webhook with a certificate issued by cert-manager (mounted Secret)', () => {
  let env: OperatorEnv;
  let ns: string;
  let port: number;
  let dir: string;
  let ca: KeyPair;
  let configurationVersion: string | undefined;
  const issue = () => issueServing(ca, { dnsNames: [], ipAddresses: ['127.0.0.1'] }, new Date(), 90 * DAY);
  const mount = async (pair: KeyPair) => {
    // One file after the other: a read in between sees a mismatched pair, which is not served.
    await writeFile(path.join(dir, 'tls.key'), pair.key);
    await writeFile(path.join(dir, 'tls.crt'), pair.cert);
  };

  before(async () => {
    env = await startOperatorEnv();
    ns = await env.namespace('certmanager');
    await createBackendAndDaemon(env.objects, env.core, ns, { name: 'postfix', spec: { backendRef: { name: 'vmail' }, mode: 'Sidecar', podSelector: { matchLabels: { app: 'postfix' } } } });
    dir = await mkdtemp(path.join(tmpdir(), 'mw-webhook-tls-'));
    ca = createCa('cert-manager-stand-in', new Date(), 365 * DAY);
    await mount(issue());
    port = await freePort();
    const admission = env.kc.makeApiClient(AdmissionregistrationV1Api);
    // cert-manager's CA injector would have written this caBundle.
    const created = await admission.createMutatingWebhookConfiguration({ body: webhookConfiguration(CONFIGURATION, { url: `https://127.0.0.1:${port}` }, ca.cert) });
    configurationVersion = created.metadata?.resourceVersion;
    await env.operator([ns], { policyDaemons: localWebhook(port, { secretName: SECRET, configurationName: CONFIGURATION }, { certificateDir: dir, certificateCheckIntervalMs: 100 }) });
    await eventually('the API server to call the webhook', async () => sidecarOf(await createPod(env.core, ns, `warmup-${Date.now()}`, { ...INJECT, app: 'postfix' })) !== undefined, 30_000);
  });
  after(async () => {
    await env?.stopAll();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('pods are injected through the mounted certificate', async () => {
    const pod = await createPod(env.core, ns, 'injected', { ...INJECT, app: 'postfix' });
    assert.ok(sidecarOf(pod));
  });

  test('the operator wrote neither a certificate Secret nor the configuration', async () => {
    await assert.rejects(env.core.readNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: SECRET }), (e: unknown) => e instanceof ApiException && e.code === 404);
    const configuration = await env.kc.makeApiClient(AdmissionregistrationV1Api).readMutatingWebhookConfiguration({ name: CONFIGURATION });
    assert.equal(configuration.metadata?.resourceVersion, configurationVersion);
  });

  test('a renewed certificate is served without a restart, and pods are still injected', async () => {
    const renewed = issue();
    await mount(renewed);
    const expected = new X509Certificate(renewed.cert).toString();
    await eventually('the renewed certificate to be served', async () => (await servedCertificate(port, ca.cert)) === expected, 10_000);
    const pod = await createPod(env.core, ns, 'after-renewal', { ...INJECT, app: 'postfix' });
    assert.ok(sidecarOf(pod));
  });
});
