import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../../../src/observability/logger.ts';
import { createCa, issueServing, type KeyPair } from '../../../src/webhook/certificates.ts';
import { MountedCertificate } from '../../../src/webhook/mounted-certificate.ts';

// The webhook certificate cert-manager writes into a Secret, mounted as tls.crt and tls.key.
const DAY = 86_400_000;
const now = new Date('2026-01-01T00:00:00Z');
const ca = createCa('ca', now, 365 * DAY);
const issue = () => issueServing(ca, { dnsNames: ['mailwarden-webhook.mailwarden-system.svc'], ipAddresses: [] }, now, 90 * DAY);

describe('MountedCertificate', () => {
  let dir: string;
  const write = async (pair: KeyPair) => {
    await writeFile(path.join(dir, 'tls.crt'), pair.cert);
    await writeFile(path.join(dir, 'tls.key'), pair.key);
  };
  before(async () => (dir = await mkdtemp(path.join(tmpdir(), 'mw-mounted-cert-'))));
  after(async () => rm(dir, { recursive: true, force: true }));

  test('missing files: start fails with a message naming the directory', async () => {
    const mounted = new MountedCertificate({ dir, onCertificate: () => assert.fail('no certificate'), logger: silentLogger });
    await assert.rejects(mounted.start(), (e: Error) => e.name === 'CertificateError' && e.message.includes(dir));
  });

  test('serves the pair, hands over a renewed one once, and never a key of another certificate', async () => {
    const first = issue();
    await write(first);
    const seen: string[] = [];
    const mounted = new MountedCertificate({ dir, onCertificate: (p) => seen.push(p.cert), logger: silentLogger });
    try {
      assert.deepEqual(await mounted.start(), first);
      await mounted.check();
      assert.deepEqual(seen, [], 'unchanged: nothing handed over');

      const renewed = issue();
      // Half-swapped: the new certificate with the old key.
      await writeFile(path.join(dir, 'tls.crt'), renewed.cert);
      await assert.rejects(mounted.check(), /does not belong/);
      assert.deepEqual(seen, []);

      await write(renewed);
      await mounted.check();
      await mounted.check();
      assert.deepEqual(seen, [renewed.cert]);
    } finally {
      mounted.stop();
    }
  });
});
