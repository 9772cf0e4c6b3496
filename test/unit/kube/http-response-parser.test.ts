import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HttpResponseError, HttpResponseParser, type ResponseHead } from '../../../src/kube/http-response-parser.ts';

// The Kubernetes client's reader of API server responses, fed the bytes as a socket may deliver
// them: whole, one byte at a time, or cut at every position.

interface Read {
  head?: ResponseHead;
  body: string;
  ended: boolean;
  used: number;
  parser: HttpResponseParser;
}

/** Feeds `reads` in turn (each a fresh buffer, overwritten after the call as the socket's is). */
function parse(reads: readonly string[]): Read {
  const out: Read = { body: '', ended: false, used: 0, parser: undefined! };
  out.parser = new HttpResponseParser({
    head: (head) => void (out.head = head),
    body: (view) => void (out.body += view.toString('latin1')),
    end: () => void (out.ended = true),
  });
  for (const read of reads) {
    const buffer = Buffer.from(read, 'latin1');
    out.used += out.parser.feed(buffer);
    buffer.fill(0x21);
  }
  return out;
}

/** Every way of cutting `text` in two, and one byte at a time. */
function cuts(text: string): string[][] {
  const ways: string[][] = [[...text]];
  for (let at = 0; at <= text.length; at++) ways.push([text.slice(0, at), text.slice(at)]);
  return ways;
}

const chunked = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n' + '5;name=value\r\n{"a":\r\n' + 'B\r\n1}\n{"b":22}\r\n' + '0\r\nX-Trailer: t\r\n\r\n';

describe('HttpResponseParser', () => {
  test('a Content-Length body, however the reads cut it: the same head, body and end, and the connection reusable', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Length: 11\r\nRetry-After: 3\r\n\r\nhello world';
    for (const reads of cuts(text)) {
      const r = parse(reads);
      assert.equal(r.head?.statusCode, 200);
      assert.equal(r.head?.headers.get('retry-after'), '3');
      assert.equal(r.body, 'hello world', JSON.stringify(reads));
      assert.ok(r.ended && r.parser.complete && r.parser.reusable);
      assert.equal(r.used, text.length);
    }
  });

  test('a chunked body with chunk extensions and trailers, however the reads cut it', () => {
    for (const reads of cuts(chunked)) {
      const r = parse(reads);
      assert.equal(r.body, '{"a":1}\n{"b":22}', JSON.stringify(reads));
      assert.ok(r.ended && r.parser.reusable);
    }
  });

  test('the bytes after a complete response are not taken', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n';
    const r = parse([text]);
    assert.equal(r.body, 'ok');
    assert.equal(r.used, text.indexOf('okHTTP') + 2);
  });

  test('Connection: close, or HTTP/1.0 without keep-alive, ends the connection with the response', () => {
    assert.equal(parse(['HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n']).parser.reusable, false);
    assert.equal(parse(['HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n']).parser.reusable, false);
    assert.equal(parse(['HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n']).parser.reusable, true);
  });

  test('a body without length or coding runs to the connection end, which completes it', () => {
    const r = parse(['HTTP/1.1 200 OK\r\n\r\npart one, ', 'part two']);
    assert.equal(r.ended, false);
    r.parser.eof();
    assert.equal(r.body, 'part one, part two');
    assert.ok(r.ended && r.parser.complete);
    assert.equal(r.parser.reusable, false);
  });

  test('a connection that ends inside the head or a delimited body cut the response off', () => {
    for (const reads of [['HTTP/1.1 200 OK\r\nContent-Len'], ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab'], [chunked.slice(0, -3)]]) {
      const r = parse(reads);
      assert.throws(() => r.parser.eof(), (e: unknown) => e instanceof HttpResponseError && /cut off/.test(e.message));
      assert.equal(r.ended, false);
    }
    assert.throws(() => parse([]).parser.eof(), /closed before a response/);
  });

  test('an interim 100 Continue is passed over for the response that follows', () => {
    const r = parse(['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 410 Gone\r\nContent-Length: 4\r\n\r\ngone']);
    assert.equal(r.head?.statusCode, 410);
    assert.equal(r.body, 'gone');
  });

  test('a repeated header is one value, its parts joined; names in lower case', () => {
    const r = parse(['HTTP/1.1 200 OK\r\nWarning: a\r\nWARNING:  b \r\nContent-Length: 0\r\n\r\n']);
    assert.equal(r.head?.headers.get('warning'), 'a, b');
  });

  test('bytes that are not an HTTP/1.1 response are refused with where it went wrong, and nothing after is read', () => {
    const refused: [string, RegExp][] = [
      ['HTTP/2 200\r\n\r\n', /status line/],
      ['SSH-2.0-OpenSSH\r\n\r\n', /status line/],
      ['HTTP/1.1 200 OK\r\nno colon here\r\n\r\n', /header line/],
      ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', /Content-Length/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', /transfer coding/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /chunk size/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n', /longer than its size/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n', /without CRLF/],
      [`HTTP/1.1 200 OK\r\nX: ${'x'.repeat(70_000)}`, /head is longer/],
      [`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${'1'.repeat(5000)}`, /line longer/],
    ];
    for (const [text, message] of refused) {
      assert.throws(() => parse([text]), (e: unknown) => e instanceof HttpResponseError && message.test(e.message), text.slice(0, 60));
    }
  });
});
