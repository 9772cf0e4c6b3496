// The SQL stores over TLS against a real PostgreSQL 15 and MariaDB 10.11 serving a certificate
// for 127.0.0.1 from a test CA: each `tls.mode` connects as it says and a wrong CA is refused.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { WritableMailboxStore } from '../../../src/stores/store.ts';
import { openUrlStore } from '../../../src/stores/url-store.ts';
import { createCa, issueServing } from '../../../src/webhook/certificates.ts';
import { type SqlServer, startMariadb, startPostgres } from '../../harness/containers.ts';
import { lists, storeError } from './helpers.ts';

const DAY = 86_400_000;

for (const kind of ['postgres', 'mariadb'] as const) {
  const product = kind === 'postgres' ? 'PostgreSQL 15' : 'MariaDB 10.11';

  describe(`${product} store over TLS`, () => {
    let db: SqlServer;
    let dir: string;
    let caFile: string;
    let otherCaFile: string;
    const opened: WritableMailboxStore[] = [];
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    const open = async (tls: object): Promise<WritableMailboxStore> => {
      const store = await openUrlStore(db.url, { tls, poolSize: 1 }, { semantics: 'default', password: db.password });
      opened.push(store);
      return store;
    };

    /**
     * A server-side count that grows with each TLS session of the store's user: PostgreSQL's live
     * TLS sessions of that user (the store's pool keeps its connection open), MariaDB's TLS
     * handshakes accepted (its per-session TLS state is not in a table by default).
     */
    const tlsCount = async (): Promise<number> => {
      if (kind === 'postgres') {
        const rows = await db.query<{ n: string }>(
          'SELECT count(*) AS n FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.usename = $1',
          [db.user],
          db.admin,
        );
        return Number(rows[0]?.n);
      }
      const rows = await db.query<{ Value: string }>("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'", [], db.admin);
      return Number(rows[0]?.Value);
    };

    before(async () => {
      process.on('warning', onWarning);
      const now = new Date();
      const ca = createCa('mailwarden test CA', now, DAY);
      const serving = issueServing(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }, now, DAY);
      const other = createCa('another CA', now, DAY);
      dir = await mkdtemp(join(tmpdir(), 'mw-tls-'));
      caFile = join(dir, 'ca.pem');
      otherCaFile = join(dir, 'other-ca.pem');
      await writeFile(caFile, ca.cert);
      await writeFile(otherCaFile, other.cert);
      db = kind === 'postgres' ? await startPostgres({ tls: { certificate: serving.cert, key: serving.key } }) : await startMariadb({ tls: { certificate: serving.cert, key: serving.key } });
      await db.insertMailboxes([{ username: 'tls@example.com', allowedsenders: '@partner.example' }]);
    });
    after(async () => {
      process.off('warning', onWarning);
      for (const store of opened) await store.close();
      await db?.stop();
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    });

    test('verify-full with the CA: reads over a verified TLS session', async () => {
      const before = await tlsCount();
      const store = await open({ mode: 'verify-full', caFile });
      const found = await store.lookup(['tls@example.com'], AbortSignal.timeout(10_000));
      assert.deepEqual(found.get('tls@example.com')?.lists.allowedSenders, ['@partner.example']);
      assert.ok((await tlsCount()) > before, 'the server saw a TLS session');
    });

    test('verify-full refuses a server whose certificate another CA signed', async () => {
      const store = await open({ mode: 'verify-full', caFile: otherCaFile });
      await assert.rejects(store.lookup(['tls@example.com'], AbortSignal.timeout(10_000)), storeError('Misconfigured', /certificate/i, [db.password]));
      await assert.rejects(store.apply('tls@example.com', lists({ rejectedSenders: ['@spam.example'] })), storeError('Misconfigured', /certificate/i));
      assert.deepEqual((await db.getMailbox('tls@example.com'))?.rejectedsenders, '', 'nothing written');
    });

    if (kind === 'postgres') {
      test('verify-full checks the host name: a certificate for another name is refused', async () => {
        const store = await open({ mode: 'verify-full', caFile, serverName: 'db.example.net' });
        await assert.rejects(store.lookup(['tls@example.com'], AbortSignal.timeout(10_000)), storeError('Misconfigured', /db\.example\.net/));
      });
    } else {
      test('verify-full: a server name other than the URL host is refused at once (mysql2 checks the URL host)', async () => {
        await assert.rejects(open({ mode: 'verify-full', caFile, serverName: 'db.example.net' }), storeError('Misconfigured', /tls\.serverName is not supported/));
      });
    }

    test('require: TLS without checking the certificate', async () => {
      const before = await tlsCount();
      const store = await open({ mode: 'require' });
      const found = await store.lookup(['tls@example.com'], AbortSignal.timeout(10_000));
      assert.ok(found.has('tls@example.com'));
      assert.ok((await tlsCount()) > before, 'the server saw a TLS session');
    });

    test('no process warning (an IP address is never sent as the TLS server name)', () => {
      assert.deepEqual(warnings.map((w) => `${w.name}: ${w.message}`), []);
    });
  });
}
