import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { resources, startOperatorEnv, type OperatorEnv } from '../../harness/operator-env.ts';
import { startOperatorProcess, type OperatorProcess } from '../../helpers/operator-process.ts';
import { repoPath } from '../../helpers/paths.ts';

/**
 * #25: a value a tenant writes into a resource reaches the operator's log lines; none may reach
 * the terminal of `kubectl logs` as a control sequence or a bidi override. The operator as users
 * run it, on a real API server.
 */
describe('operator log lines escape what a terminal would obey', () => {
  let env: OperatorEnv;
  let operator: OperatorProcess | undefined;
  before(async () => {
    assert.ok(existsSync(repoPath('dist/cli/main.js')), 'run `npm run build` first: the operator runs from dist/');
    env = await startOperatorEnv();
  });
  after(async () => {
    await operator?.kill('SIGKILL');
    await env?.stopAll();
  });

  // Object names have a grammar at admission (no such character gets in); a Secret's key name does
  // not, and the operator's error about it reaches its log through the restriction's reconcile.
  test('a Secret key name holding U+009B (CSI) and U+202E is logged escaped and parses back exactly', async () => {
    const ns = await env.namespace('logs');
    operator = await startOperatorProcess({ kubeconfig: env.cp.kubeconfigPath, namespaces: [ns], logLevel: 'debug' });
    const key = 'pass\u009b31m\u202e';
    await env.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'vmail-credentials' }, stringData: { password: 'x' } } });
    const r = resources(env, ns);
    await r.createBackend('vmail', { url: 'postgresql://mailwarden@127.0.0.1:1/vmail', credentialsSecretRef: { name: 'vmail-credentials', key } });
    await r.create('hostile', { mailbox: 'alice@example.com', backendRef: { name: 'vmail' } });
    // The reconcile's error (retried with backoff) carries the operator's sentence about the key.
    const record = await operator.waitForLog((r) => JSON.stringify(r).includes(`has no key \\"${key}\\"`));
    const line = operator.rawLines[operator.logs.indexOf(record)]!;
    assert.doesNotMatch(line, /[\u0080-\u009f\u202a-\u202e]/, 'no raw C1 or bidi character in the line');
    assert.match(line, /has no key \\"pass\\u009B31m\\u202E\\"/);
  });
});
