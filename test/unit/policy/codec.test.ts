import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PolicyDecoder, encodeReply, isValidAction, type CodecLimits, type ProtocolErrorReason } from '../../../src/policy/codec.ts';
import type { PolicyRequest } from '../../../src/policy/request.ts';

const LIMITS: CodecLimits = { maxLineBytes: 64, maxRequestBytes: 400, maxAttributes: 12 };

/** Decodes `input` fed as the given chunks; returns the requests and the error reason, if any. */
function decodeChunks(chunks: readonly Buffer[], limits: CodecLimits = LIMITS): { requests: PolicyRequest[]; error: ProtocolErrorReason | undefined } {
  const decoder = new PolicyDecoder(limits);
  const requests: PolicyRequest[] = [];
  for (const chunk of chunks) {
    let offset = 0;
    while (offset < chunk.length) offset = decoder.decode(chunk, offset, (r) => (requests.push(r), true));
  }
  return { requests, error: decoder.error?.reason };
}

const decode = (input: string | Buffer, limits?: CodecLimits) => decodeChunks([Buffer.from(input)], limits);

const RCPT =
  'request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=192.0.2.1\n' +
  'client_name=mx.example.net\nhelo_name=mx.example.net\nsender=alice@example.net\nrecipient=bob@example.com\n' +
  'queue_id=4F3A21C0\ninstance=1a2b.5f.0\nsasl_username=alice\n\n';

const RCPT_FIELDS: PolicyRequest = {
  request: 'smtpd_access_policy',
  protocolState: 'RCPT',
  sender: 'alice@example.net',
  recipient: 'bob@example.com',
  saslUsername: 'alice',
  instance: '1a2b.5f.0',
  queueId: '4F3A21C0',
  clientAddress: '192.0.2.1',
  attributeCount: 11,
};

describe('PolicyDecoder', () => {
  it('fills the kept attributes and counts all of them', () => {
    assert.deepEqual(decode(RCPT), { requests: [RCPT_FIELDS], error: undefined });
  });

  it('decodes the same request split at every byte boundary, and byte by byte', () => {
    const bytes = Buffer.from(RCPT + RCPT);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const { requests, error } = decodeChunks([bytes.subarray(0, cut), bytes.subarray(cut)]);
      assert.equal(error, undefined, `cut at ${cut}`);
      assert.deepEqual(requests, [RCPT_FIELDS, RCPT_FIELDS], `cut at ${cut}`);
    }
    const single = [...bytes].map((b) => Buffer.from([b]));
    assert.deepEqual(decodeChunks(single).requests, [RCPT_FIELDS, RCPT_FIELDS]);
  });

  it('tolerates CRLF line ends', () => {
    assert.deepEqual(decode(RCPT.replaceAll('\n', '\r\n')).requests, [RCPT_FIELDS]);
  });

  const cases: { name: string; input: string; expect: Partial<PolicyRequest>[] }[] = [
    { name: 'value keeps every = after the first', input: 'recipient=a=b==c@example.com\n\n', expect: [{ recipient: 'a=b==c@example.com', attributeCount: 1 }] },
    { name: 'empty value is the null sender, not missing', input: 'sender=\n\n', expect: [{ sender: '', attributeCount: 1 }] },
    { name: 'missing attributes stay undefined', input: 'protocol_state=RCPT\n\n', expect: [{ protocolState: 'RCPT', sender: undefined, recipient: undefined }] },
    { name: 'names are exact: no prefix or case match', input: 'Recipient=x\nrecipients=y\nsender_x=z\n\n', expect: [{ recipient: undefined, sender: undefined, attributeCount: 3 }] },
    { name: 'the last duplicate wins', input: 'recipient=a\nrecipient=b\n\n', expect: [{ recipient: 'b', attributeCount: 2 }] },
    { name: 'a lone empty line is an empty request', input: '\n', expect: [{ attributeCount: 0 }] },
    { name: 'only a trailing CR is stripped', input: 'recipient=a\rb\r\r\n\n', expect: [{ recipient: 'a\rb\r' }] },
    { name: 'UTF-8 values are decoded', input: 'recipient=jürgen@exämple.de\n\n', expect: [{ recipient: 'jürgen@exämple.de' }] },
    { name: 'an unfinished request is not reported', input: 'recipient=a\n\nrecipient=b\n', expect: [{ recipient: 'a' }] },
    { name: 'consecutive requests are independent', input: 'sender=a\n\nrecipient=b\n\n', expect: [{ sender: 'a', recipient: undefined }, { sender: undefined, recipient: 'b' }] },
  ];
  for (const { name, input, expect } of cases) {
    it(name, () => {
      const { requests, error } = decode(input);
      assert.equal(error, undefined);
      assert.equal(requests.length, expect.length);
      expect.forEach((fields, i) => {
        for (const [key, value] of Object.entries(fields)) assert.equal(requests[i]?.[key as keyof PolicyRequest], value, key);
      });
    });
  }

  const garbage: { name: string; input: string | Buffer; reason: ProtocolErrorReason; answered: number }[] = [
    { name: 'a line without =', input: 'sender=a\n\nhello\n\n', reason: 'malformed-attribute', answered: 1 },
    { name: 'an empty name', input: '=x\n\n', reason: 'malformed-attribute', answered: 0 },
    { name: 'binary bytes in a name', input: Buffer.from([0x73, 0x00, 0x3d, 0x61, 0x0a, 0x0a]), reason: 'malformed-attribute', answered: 0 },
    { name: 'an HTTP request', input: 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', reason: 'malformed-attribute', answered: 0 },
    { name: 'a line over the limit (with its LF)', input: `recipient=${'x'.repeat(60)}\n\n`, reason: 'line-too-long', answered: 0 },
    { name: 'a line over the limit (no LF yet)', input: 'a='.padEnd(200, 'x'), reason: 'line-too-long', answered: 0 },
    { name: 'too many attributes', input: 'a=1\n'.repeat(13) + '\n', reason: 'too-many-attributes', answered: 0 },
    { name: 'a request over the size limit', input: `sender=ok\n\n${'abcdefgh=0123456789012345678901234567890123456789\n'.repeat(9)}\n`, reason: 'request-too-large', answered: 1 },
  ];
  for (const { name, input, reason, answered } of garbage) {
    it(`refuses ${name}, after the requests before it`, () => {
      const { requests, error } = decode(input);
      assert.equal(error, reason);
      assert.equal(requests.length, answered);
    });
  }

  it('accepts a line of exactly the limit, with or without CR, split anywhere', () => {
    const line = `recipient=${'x'.repeat(LIMITS.maxLineBytes - 10)}`;
    for (const input of [`${line}\n\n`, `${line}\r\n\r\n`]) {
      const bytes = Buffer.from(input);
      for (let cut = 0; cut <= bytes.length; cut++) {
        const { requests, error } = decodeChunks([bytes.subarray(0, cut), bytes.subarray(cut)]);
        assert.equal(error, undefined, `cut ${cut}`);
        assert.equal(requests[0]?.recipient?.length, LIMITS.maxLineBytes - 10);
      }
    }
    assert.equal(decode(`${line}x\n\n`).error, 'line-too-long');
  });

  it('stops after a request when the sink asks, and resumes where it stopped', () => {
    const decoder = new PolicyDecoder(LIMITS);
    const bytes = Buffer.from('recipient=a\n\nrecipient=b\n\nrecipient=c\n\n');
    const seen: string[] = [];
    let offset = 0;
    let calls = 0;
    while (offset < bytes.length) {
      calls++;
      offset = decoder.decode(bytes, offset, (r) => (seen.push(r.recipient ?? '?'), false));
    }
    assert.deepEqual(seen, ['a', 'b', 'c']);
    assert.equal(calls, 3);
  });

  it('ignores everything after an error', () => {
    const decoder = new PolicyDecoder(LIMITS);
    const seen: PolicyRequest[] = [];
    decoder.decode(Buffer.from('junk\n'), 0, (r) => (seen.push(r), true));
    decoder.decode(Buffer.from('recipient=a\n\n'), 0, (r) => (seen.push(r), true));
    assert.equal(seen.length, 0);
    assert.equal(decoder.error?.reason, 'malformed-attribute');
  });

  it('knows when a request is in progress', () => {
    const decoder = new PolicyDecoder(LIMITS);
    const sink = () => true;
    assert.equal(decoder.inRequest, false);
    decoder.decode(Buffer.from('recip'), 0, sink);
    assert.equal(decoder.inRequest, true);
    decoder.decode(Buffer.from('ient=a\n'), 0, sink);
    assert.equal(decoder.inRequest, true);
    decoder.decode(Buffer.from('\n'), 0, sink);
    assert.equal(decoder.inRequest, false);
  });
});

describe('encodeReply / isValidAction', () => {
  it('writes action= and an empty line, LF only', () => {
    assert.equal(encodeReply('REJECT Not authorized'), 'action=REJECT Not authorized\n\n');
  });
  const actions: [unknown, boolean][] = [
    ['DUNNO', true],
    ['REJECT no\nway', false],
    ['OK\r', false],
    ['', false],
    [undefined, false],
    [42, false],
  ];
  for (const [action, valid] of actions) {
    it(`${JSON.stringify(action)} is ${valid ? 'valid' : 'refused'}`, () => assert.equal(isValidAction(action), valid));
  }
});
