// The SQL stores over TLS against a real PostgreSQL 15 and MariaDB 10.11 serving a certificate
// for 127.0.0.1 from a test CA: each `tls.mode` connects as it says and a wrong CA is refused.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { UrlStore } from '../../../src/stores/url-store.ts';
import { openUrlStore } from '../../../src/stores/url-store.ts';
import { type SqlServer, startMariadb, startPostgres } from '../../harness/containers.ts';
import { lists, recordWarnings, storeError, testTls, type TestTls } from './helpers.ts';

/** The server's URL by the name "localhost" (in its certificate) rather than 127.0.0.1. */
const byName = (url: string): string => url.replace('@127.0.0.1:', '@localhost:');

for (const kind of ['postgres', 'mariadb'] as const) {
  const product = kind === 'postgres' ? 'PostgreSQL 15' : 'MariaDB 10.11';

  describe(`${product} store over TLS`, () => {
    let db: SqlServer;
    let tls: TestTls;
    let warnings: ReturnType<typeof recordWarnings>;
    const opened: UrlStore[] = [];
    const open = async (tlsSettings: object): Promise<UrlStore> => {
      const store = await openUrlStore(kind === 'mariadb' ? byName(db.url) : db.url, { tls: tlsSettings, poolSize: 1 }, { semantics: 'default', password: db.password });
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
      warnings = recordWarnings();
      tls = await testTls();
      db = kind === 'postgres' ? await startPostgres({ tls: tls.serving }) : await startMariadb({ tls: tls.serving });
      await db.insertMailboxes([{ username: 'tls@example.com', allowedsenders: '@partner.example' }]);
    });
    after(async () => {
      warnings?.stop();
      for (const store of opened) await store.close();
      await db?.stop();
      await tls?.remove();
    });

    test('verify-full with the CA: reads over a verified TLS session', async () => {
      const before = await tlsCount();
      const store = await open({ mode: 'verify-full', caFile: tls.caFile });
      const found = await store.lookup(['tls@example.com'], AbortSignal.timeout(10_000));
      assert.deepEqual(found.get('tls@example.com')?.lists.allowedSenders, ['@partner.example']);
      assert.ok((await tlsCount()) > before, 'the server saw a TLS session');
    });

    test('verify-full refuses a server whose certificate another CA signed', async () => {
      const store = await open({ mode: 'verify-full', caFile: tls.otherCaFile });
      await assert.rejects(store.lookup(['tls@example.com'], AbortSignal.timeout(10_000)), storeError('Misconfigured', /certificate/i, [db.password]));
      await assert.rejects(store.apply('tls@example.com', lists({ rejectedSenders: ['@spam.example'] })), storeError('Misconfigured', /certificate/i));
      assert.deepEqual((await db.getMailbox('tls@example.com'))?.rejectedsenders, '', 'nothing written');
    });

    if (kind === 'postgres') {
      test('verify-full checks the host name: a certificate for another name is refused', async () => {
        const store = await open({ mode: 'verify-full', caFile: tls.caFile, serverName: 'db.example.net' });
        await assert.rejects(store.lookup(['tls@example.com'], AbortSignal.timeout(10_000)), storeError('Misconfigured', /db\.example\.net/));
      });
    } else {
      test('verify-full: a server name other than the URL host is refused at once (mysql2 checks the URL host)', async () => {
        await assert.rejects(open({ mode: 'verify-full', caFile: tls.caFile, serverName: 'db.example.net' }), storeError('Misconfigured', /tls\.serverName is not supported/));
      });

      test('verify-full with an IP address in the URL is refused at once (mysql2 would check the certificate against "localhost")', async () => {
        await assert.rejects(
          openUrlStore(db.url, { tls: { mode: 'verify-full', caFile: tls.caFile } }, { semantics: 'default', password: db.password }),
          storeError('Misconfigured', /verify-full needs a host name in the URL/),
        );
      });

      test('verify-full checks the host name: a server whose certificate (same CA) names another host is refused, nothing written', async () => {
        const other = await startMariadb({ tls: tls.servingOtherName });
        try {
          await other.insertMailboxes([{ username: 'tls@example.com' }]);
          const store = await openUrlStore(byName(other.url), { tls: { mode: 'verify-full', caFile: tls.caFile }, poolSize: 1 }, { semantics: 'default', password: other.password });
          opened.push(store);
          await assert.rejects(store.lookup(['tls@example.com'], AbortSignal.timeout(10_000)), storeError('Misconfigured', /does not match certificate's altnames.*db\.example\.net/, [other.password]));
          await assert.rejects(store.apply('tls@example.com', lists({ rejectedSenders: ['@spam.example'] })), storeError('Misconfigured'));
          assert.deepEqual((await other.getMailbox('tls@example.com'))?.rejectedsenders, '', 'nothing written');
        } finally {
          await other.stop();
        }
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
      assert.deepEqual(warnings.warnings, []);
    });
  });
}
