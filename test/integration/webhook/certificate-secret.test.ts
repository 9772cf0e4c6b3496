import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AdmissionregistrationV1Api, ApiException } from '@kubernetes/client-node';
import { verifyChain } from '../../../src/webhook/certificates.ts';
import { webhookConfiguration } from '../../../src/webhook/configuration.ts';
import { OPERATOR_NAMESPACE, startOperatorEnv, type OperatorEnv } from '../../harness/operator-env.ts';
import { startOperatorProcess } from '../../helpers/operator-process.ts';
import { freePort, installChartWebhookSecret, localWebhook } from './support.ts';

// #25, least privilege: the operator holds no Secret `create` in its own namespace (RBAC cannot
// narrow that verb to a name). The chart creates the webhook's certificate Secret, empty; the
// operator, as the chart's ServiceAccount with the chart's RBAC, fills it and never creates one.
// Run `npm run build` first: the first case runs the CLI.

const CONFIGURATION = 'mw-mailwarden';
const SECRET = 'mw-mailwarden-webhook-tls';

describe('the webhook certificate Secret: created by the chart, filled by the operator', () => {
  let env: OperatorEnv;
  let ns: string;
  let port: number;

  before(async () => {
    env = await startOperatorEnv();
    ns = await env.namespace('cert-secret');
    port = await freePort();
    await env.kc.makeApiClient(AdmissionregistrationV1Api).createMutatingWebhookConfiguration({ body: webhookConfiguration(CONFIGURATION, { url: `https://127.0.0.1:${port}` }, '') });
  });
  after(async () => env?.stopAll());

  const secretMissing = (error: unknown) => error instanceof ApiException && error.code === 404;

  test('without it the operator exits non-zero saying which Secret is missing and how to restore it, and creates none', async () => {
    const credentials = await env.chartServiceAccount([ns]);
    const operator = await startOperatorProcess({
      kubeconfig: credentials.path,
      namespaces: [ns],
      waitFor: 'started',
      extraArgs: ['--webhook-listen', `127.0.0.1:${port}`, '--webhook-url', `https://127.0.0.1:${port}`, '--webhook-namespace', OPERATOR_NAMESPACE, '--webhook-configuration', CONFIGURATION],
    });
    const exit = await Promise.race([operator.exited, new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 60_000))]);
    if (exit === 'running') await operator.kill('SIGKILL');
    assert.deepEqual(exit, { code: 1, signal: null }, `the operator exits with status 1\n${operator.stderr()}`);
    const record = operator.logs.find((r) => r.certificateSecret === `${OPERATOR_NAMESPACE}/${SECRET}`);
    assert.ok(record, `a log record names the Secret: ${JSON.stringify(operator.logs.slice(-5))}`);
    assert.equal(record.level, 'error');
    assert.match(record.msg ?? '', /does not exist\. The Helm chart creates it, empty; the operator fills and rotates it but never creates a Secret\. Restore it with `helm upgrade`/);
    await assert.rejects(env.core.readNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: SECRET }), secretMissing, 'no Secret was created');
  });

  test('the chart\'s empty Secret is filled with a CA and a serving certificate it signs; its labels and type stay the chart\'s', async () => {
    await installChartWebhookSecret(env.cp);
    const empty = await env.core.readNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: SECRET });
    assert.equal(empty.data, undefined, 'the chart creates it without data');
    const operator = await env.operator([ns], { policyDaemons: localWebhook(port, { secretName: SECRET, configurationName: CONFIGURATION }) });
    const serving = await operator.webhook!.keeper!.check();
    const filled = await env.core.readNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: SECRET });
    const text = (key: string) => Buffer.from(filled.data?.[key] ?? '', 'base64').toString('utf8');
    assert.deepEqual(Object.keys(filled.data ?? {}).sort(), ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    assert.equal(text('tls.crt'), serving.cert);
    assert.ok(verifyChain(text('tls.crt'), text('ca.crt'), new Date()), 'the serving certificate chains to the CA in the Secret');
    assert.equal(filled.type, 'Opaque');
    assert.deepEqual(filled.metadata?.labels, empty.metadata?.labels, 'the chart\'s labels (Helm\'s ownership) untouched');
  });
});
