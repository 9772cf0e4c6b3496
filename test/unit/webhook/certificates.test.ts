import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import { createCa, issueServing, splitBundle, validityOf, verifyChain } from '../../../src/webhook/certificates.ts';

const DAY = 86_400_000;
const now = new Date('2026-01-01T00:00:00Z');

describe('webhook certificates', () => {
  const ca = createCa('test-ca', now, 365 * DAY);

  test('the CA is a CA, self-signed', () => {
    const x = new X509Certificate(ca.cert);
    assert.equal(x.ca, true);
    assert.ok(x.checkIssued(x));
  });

  test('the serving certificate is signed by the CA and names the Service and the IP', () => {
    const serving = issueServing(ca, { dnsNames: ['hook.mail.svc'], ipAddresses: ['127.0.0.1'] }, now, 90 * DAY);
    const x = new X509Certificate(serving.cert);
    assert.equal(x.ca, false);
    assert.match(x.subjectAltName ?? '', /DNS:hook\.mail\.svc/);
    assert.match(x.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
    assert.ok(verifyChain(serving.cert, ca.cert, new Date(now.getTime() + DAY)));
    assert.equal(verifyChain(serving.cert, createCa('other', now, DAY).cert, now), false);
    assert.ok(x.checkPrivateKey(createPrivateKey(serving.key)));
  });

  test('a serving certificate never outlives its CA', () => {
    const shortCa = createCa('short', now, 10 * DAY);
    const serving = issueServing(shortCa, { dnsNames: ['x'], ipAddresses: [] }, now, 90 * DAY);
    assert.ok(validityOf(serving.cert).notAfter <= validityOf(shortCa.cert).notAfter);
  });

  test('bundles split into their certificates', () => {
    const other = createCa('other', now, DAY);
    assert.deepEqual(splitBundle(ca.cert + other.cert), [ca.cert, other.cert]);
  });
});

