import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import type { PeerCertificate } from 'node:tls';
import { sqlTlsOptions, verifyingTlsOptions } from '../../../src/stores/endpoint.ts';
import { mysqlSslOptions } from '../../../src/stores/mysql.ts';

/** The parts of a peer certificate Node's identity check reads. */
const certFor = (altNames: string): PeerCertificate => ({ subject: { CN: 'db' }, subjectaltname: altNames }) as unknown as PeerCertificate;

describe('store TLS options', () => {
  it('send a host name as SNI, never an IP address (RFC 6066)', () => {
    assert.equal(verifyingTlsOptions('db.example.net', undefined).servername, 'db.example.net');
    assert.equal(verifyingTlsOptions('127.0.0.1', undefined).servername, undefined);
    assert.equal(verifyingTlsOptions('::1', 'PEM').servername, undefined);
    assert.equal(verifyingTlsOptions('::1', 'PEM').ca, 'PEM');
  });

  it('check the certificate against the expected name, whatever host the driver passes', () => {
    const check = verifyingTlsOptions('db.example.net', undefined).checkServerIdentity!;
    assert.equal(check('10.1.2.3', certFor('DNS:db.example.net')), undefined);
    assert.ok(check('db.example.net', certFor('DNS:other.example.net')) instanceof Error);
    const byIp = verifyingTlsOptions('127.0.0.1', undefined).checkServerIdentity!;
    assert.equal(byIp('127.0.0.1', certFor('DNS:localhost, IP Address:127.0.0.1')), undefined);
    assert.ok(byIp('127.0.0.1', certFor('DNS:localhost')) instanceof Error);
  });

  it('follow tls.mode for SQL drivers', async () => {
    assert.equal(await sqlTlsOptions({ mode: 'disable' }, 'db'), false);
    assert.deepEqual(await sqlTlsOptions({ mode: 'require' }, 'db'), { rejectUnauthorized: false });
    const full = await sqlTlsOptions({ mode: 'verify-full', serverName: 'name.example' }, '127.0.0.1');
    assert.ok(full !== false && full.rejectUnauthorized && full.servername === 'name.example');
  });

  it('turn mysql2 identity checking on exactly when the certificate is verified', async () => {
    assert.equal(mysqlSslOptions(false), false);
    assert.deepEqual(mysqlSslOptions(await sqlTlsOptions({ mode: 'require' }, 'db')), { rejectUnauthorized: false, verifyIdentity: false });
    assert.deepEqual(mysqlSslOptions(verifyingTlsOptions('db', 'PEM')), { rejectUnauthorized: true, verifyIdentity: true, ca: 'PEM' });
  });
});
