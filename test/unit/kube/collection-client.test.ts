import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ApiStatusError, CollectionClient } from '../../../src/kube/collection-client.ts';
import { HttpsConnections } from '../../../src/kube/https-connections.ts';
import { createCa, issueServing } from '../../../src/webhook/certificates.ts';

// The daemon's list client against a local HTTPS server that answers as a kube-apiserver whose
// watch cache is behind a continued page's resourceVersion (504 with a retry delay).

const PATH = '/apis/mailwarden.io/v1alpha1/namespaces/mail/mailuserrestrictions';
const tooLarge = JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'Timeout: Too large resource version: 1028, current: 723', reason: 'Timeout', details: { causes: [{ reason: 'ResourceVersionTooLarge' }], retryAfterSeconds: 1 }, code: 504 });

/** Watch answers by the collection's last path segment. */
function watchAnswer(kind: string, res: import('node:http').ServerResponse): void {
  const event = (type: string, name: string): string => `${JSON.stringify({ type, object: { metadata: { name } } })}\n`;
  if (kind === 'gone') {
    res.writeHead(410, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' }));
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  if (kind === 'split') {
    // Two events cut inside a two-byte character and between them, then a bookmark's blank line.
    const bytes = Buffer.from(event('ADDED', 'bé') + event('MODIFIED', 'c') + '\n');
    const at = bytes.indexOf(0xc3) + 1;
    res.write(bytes.subarray(0, at));
    setTimeout(() => {
      res.write(bytes.subarray(at, at + 30));
      setTimeout(() => res.end(bytes.subarray(at + 30)), 5);
    }, 5);
  } else if (kind === 'cut') {
    res.write(event('ADDED', 'a'));
    setTimeout(() => res.socket?.destroy(), 5);
  } else {
    res.end('this is not JSON\n');
  }
}

describe('CollectionClient.watch', () => {
  let server: Server;
  let connections: HttpsConnections;
  let client: CollectionClient;

  before(async () => {
    const now = new Date();
    const ca = createCa('test-ca', now, 3_600_000);
    const serving = issueServing(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }, now, 3_600_000);
    server = createServer({ cert: serving.cert, key: serving.key }, (req, res) => watchAnswer(new URL(req.url!, 'https://127.0.0.1').pathname.split('/').pop()!, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    connections = new HttpsConnections({ ca: Buffer.from(ca.cert), rejectUnauthorized: true });
    client = new CollectionClient({ server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, namespace: 'mail', connections, authorization: () => undefined });
  });
  after(() => {
    connections.destroy();
    server.close();
  });

  function watch(kind: string): Promise<{ events: string[]; end: unknown }> {
    return new Promise((resolve) => {
      const events: string[] = [];
      void client.watch(`/w/${kind}`, { resourceVersion: '1' }, (type, object) => events.push(`${type} ${(object as { metadata: { name: string } }).metadata.name}`), (end) => resolve({ events, end }));
    });
  }

  test("events cut anywhere by the network, even inside a character, arrive whole and in order; the stream's end is a clean end", async () => {
    const seen = await watch('split');
    assert.deepEqual(seen.events, ['ADDED bé', 'MODIFIED c']);
    assert.equal(seen.end, null);
  });

  test('an expired history (410) ends the watch with that status, for the informer to list again', async () => {
    const seen = await watch('gone');
    assert.ok(seen.end instanceof ApiStatusError && seen.end.statusCode === 410, String(seen.end));
    assert.deepEqual(seen.events, []);
  });

  test('a connection cut mid-stream is an error, not a clean end; what came before it was delivered', async () => {
    const seen = await watch('cut');
    assert.deepEqual(seen.events, ['ADDED a']);
    assert.match(String((seen.end as Error).message), /was cut off/);
  });

  test('a line that is not JSON ends the watch with an error saying so', async () => {
    const seen = await watch('garbage');
    assert.match(String((seen.end as Error).message), /not JSON/);
  });
});

describe('CollectionClient.list', () => {
  let server: Server;
  let client: CollectionClient;
  let connections: HttpsConnections;
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
    connections = new HttpsConnections({ ca: Buffer.from(ca.cert), rejectUnauthorized: true });
    const credentials = { server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, namespace: 'mail', connections, authorization: () => undefined };
    client = new CollectionClient(credentials, async (ms) => void waits.push(ms));
  });
  after(() => {
    connections.destroy();
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
