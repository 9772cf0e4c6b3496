import assert from 'node:assert/strict';
import { Agent, createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ApiStatusError, CollectionClient } from '../../../src/kube/collection-client.ts';
import { createCa, issueServing } from '../../../src/webhook/certificates.ts';

// The daemon's list client against a local HTTPS server that answers as a kube-apiserver whose
// watch cache is behind a continued page's resourceVersion (504 with a retry delay).

const PATH = '/apis/mailwarden.io/v1alpha1/namespaces/mail/mailuserrestrictions';
const tooLarge = JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'Timeout: Too large resource version: 1028, current: 723', reason: 'Timeout', details: { causes: [{ reason: 'ResourceVersionTooLarge' }], retryAfterSeconds: 1 }, code: 504 });

describe('CollectionClient.list', () => {
  let server: Server;
  let client: CollectionClient;
  let agent: Agent;
  /** Refusals left before the continued page is served; each request seen. */
  let refusals = 0;
  const seen: string[] = [];
  const waits: number[] = [];

  before(async () => {
    const now = new Date();
    const ca = createCa('test-ca', now, 3_600_000);
    const serving = issueServing(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }, now, 3_600_000);
    server = createServer({ cert: serving.cert, key: serving.key }, (req, res) => {
      const url = new URL(req.url!, 'https://127.0.0.1');
      seen.push(url.searchParams.get('continue') ?? 'first');
      if (url.searchParams.get('continue') === 'p2' && refusals-- > 0) {
        res.writeHead(504, { 'content-type': 'application/json' }).end(tooLarge);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ metadata: { resourceVersion: '1028' }, items: [{ metadata: { name: url.searchParams.get('continue') ?? 'a' } }] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    agent = new Agent({ keepAlive: true, ca: ca.cert });
    const credentials = { server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, namespace: 'mail', agent, authorization: () => undefined };
    client = new CollectionClient(credentials, async (ms) => void waits.push(ms));
  });
  after(() => {
    agent.destroy();
    server.close();
  });

  test('a page the server refuses with a retry delay is asked again after it, not the list started over', async () => {
    refusals = 2;
    seen.length = 0;
    waits.length = 0;
    const page = await client.list<{ metadata: { name: string } }>(PATH, { limit: 500, _continue: 'p2' });
    assert.deepEqual(page.items.map((i) => i.metadata.name), ['p2']);
    assert.deepEqual(seen, ['p2', 'p2', 'p2']);
    assert.deepEqual(waits, [1000, 1000]);
  });

  test('after ten retries the refusal is the error, with its status', async () => {
    refusals = 100;
    waits.length = 0;
    await assert.rejects(client.list(PATH, { limit: 500, _continue: 'p2' }), (e: unknown) => e instanceof ApiStatusError && e.statusCode === 504);
    assert.equal(waits.length, 10);
  });
});
