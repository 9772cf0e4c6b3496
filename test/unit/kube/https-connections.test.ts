import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { HttpsConnections, type ExchangeHandlers } from '../../../src/kube/https-connections.ts';
import type { ResponseHead } from '../../../src/kube/http-response-parser.ts';
import { createCa, issueServing } from '../../../src/webhook/certificates.ts';

// The daemon's HTTPS connections to the API server against a local HTTPS server: keep-alive,
// a kept connection the server has closed, abort, and what is refused.

interface Outcome {
  head?: ResponseHead;
  body: string;
  error?: Error;
}

function get(connections: HttpsConnections, url: string, headers: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { body: '' };
    const handlers: ExchangeHandlers = {
      head: (head) => void (out.head = head),
      body: (view) => void (out.body += view.toString('utf8')),
      end: () => resolve(out),
      error: (error) => resolve({ ...out, error }),
    };
    connections.get(new URL(url), headers, handlers);
  });
}

describe('HttpsConnections', () => {
  let server: Server;
  let base: string;
  let ca: Buffer;
  let otherCa: Buffer;
  /** Server-side sockets, in the order they connected; the requests each carried. */
  const sockets: Socket[] = [];
  const requests: { socket: number; path: string; authorization?: string }[] = [];

  before(async () => {
    const now = new Date();
    const authority = createCa('test-ca', now, 3_600_000);
    const serving = issueServing(authority, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }, now, 3_600_000);
    ca = Buffer.from(authority.cert);
    otherCa = Buffer.from(createCa('other-ca', now, 3_600_000).cert);
    server = createServer({ cert: serving.cert, key: serving.key, keepAliveTimeout: 60_000 }, (req, res) => {
      requests.push({ socket: sockets.indexOf(req.socket), path: req.url!, authorization: req.headers.authorization });
      if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('first\n');
        return; // left open: the client aborts it
      }
      const body = req.url === '/big' ? 'é'.repeat(100_000) : `answer to ${req.url}`;
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(body);
    });
    server.on('secureConnection', (socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  test('requests one after another share one kept connection; a body larger than one read arrives whole', async () => {
    const connections = new HttpsConnections({ ca, rejectUnauthorized: true });
    const first = sockets.length;
    try {
      const a = await get(connections, `${base}/a?x=1`, { authorization: 'Bearer t' });
      const big = await get(connections, `${base}/big`);
      const c = await get(connections, `${base}/c`);
      assert.equal(a.head?.statusCode, 200);
      assert.equal(a.body, 'answer to /a?x=1');
      assert.equal(big.body, 'é'.repeat(100_000));
      assert.equal(c.body, 'answer to /c');
      assert.equal(sockets.length - first, 1);
      assert.deepEqual(requests.slice(-3).map((r) => r.socket), [first, first, first]);
      assert.equal(requests.at(-3)?.authorization, 'Bearer t');
    } finally {
      connections.destroy();
    }
  });

  test('a kept connection the server closed is not an error: the request goes again on a new connection', async () => {
    const connections = new HttpsConnections({ ca, rejectUnauthorized: true });
    try {
      await get(connections, `${base}/before`);
      const kept = sockets.length - 1;
      // The server drops the idle connection; the client learns of it only when it next writes.
      await new Promise<void>((resolve) => {
        sockets[kept]!.once('close', () => resolve());
        sockets[kept]!.destroy();
      });
      const again = await get(connections, `${base}/after`);
      assert.equal(again.error, undefined);
      assert.equal(again.body, 'answer to /after');
      assert.equal(requests.at(-1)?.socket, sockets.length - 1);
      assert.notEqual(sockets.length - 1, kept);
    } finally {
      connections.destroy();
    }
  });

  test('abort closes the connection and calls no handler afterwards', async () => {
    const connections = new HttpsConnections({ ca, rejectUnauthorized: true });
    const calls: string[] = [];
    const open = sockets.length;
    let exchange: { abort(): void } | undefined;
    await new Promise<void>((resolve) => {
      exchange = connections.get(new URL(`${base}/stream`), {}, {
        head: () => void calls.push('head'),
        body: () => {
          calls.push('body');
          resolve();
        },
        end: () => void calls.push('end'),
        error: () => void calls.push('error'),
      });
    });
    const closed = new Promise((resolve) => sockets[open]!.once('close', resolve));
    exchange!.abort();
    await closed;
    assert.deepEqual(calls, ['head', 'body']);
    connections.destroy();
  });

  test('a server whose certificate the CA did not sign is an error, not an answer', async () => {
    const connections = new HttpsConnections({ ca: otherCa, rejectUnauthorized: true });
    const out = await get(connections, `${base}/a`);
    assert.equal(out.head, undefined);
    assert.match(String(out.error?.message), /certificate/);
    connections.destroy();
  });

  test('a header value with a line break is refused before anything is sent', async () => {
    const connections = new HttpsConnections({ ca, rejectUnauthorized: true });
    const seen = requests.length;
    const out = await get(connections, `${base}/a`, { authorization: 'Bearer t\r\nX-Injected: 1' });
    assert.match(String(out.error?.message), /authorization header holds a line break/);
    assert.equal(requests.length, seen);
    connections.destroy();
  });

  test('after destroy, a request fails at once', async () => {
    const connections = new HttpsConnections({ ca, rejectUnauthorized: true });
    connections.destroy();
    const out = await get(connections, `${base}/a`);
    assert.match(String(out.error?.message), /closed/);
  });
});
