// `mailwarden decide --explain --store-schema amavisd` as a person runs it: the built CLI
// (bin/mailwarden.js, so `npm run build` first) against real PostgreSQL 15 and MariaDB 10.11
// amavisd tables (bytea / varbinary emails) holding rows as iRedAdmin leaves them, read with the
// read-only account. The second line must name the pair that decided: account, party and W/B.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { type SqlServer, startMariadb, startPostgres } from '../../harness/containers.ts';
import { repoPath } from '../../helpers/paths.ts';
import { loadAmavisdTables } from './helpers.ts';

const run = promisify(execFile);

for (const kind of ['postgres', 'mariadb'] as const) {
  describe(`decide --explain over the amavisd tables (${kind === 'postgres' ? 'PostgreSQL 15' : 'MariaDB 10.11'})`, () => {
    let db: SqlServer;
    const bytes = (text: string) => (kind === 'postgres' ? `convert_to('${text}', 'UTF8')` : `'${text}'`);

    /** The CLI's exit code and output for one request; `extra` adds --sasl-username and the like. */
    const decide = async (sender: string, recipient: string, ...extra: string[]) => {
      const args = [repoPath('bin/mailwarden.js'), 'decide', '--store', db.urlFor(db.readOnly), '--store-schema', 'amavisd', '--sender', sender, '--recipient', recipient, ...extra, '--explain'];
      try {
        const { stdout, stderr } = await run(process.execPath, args, { env: { ...process.env, MAILWARDEN_STORE_PASSWORD: db.readOnly.password } });
        return { code: 0, stdout, stderr };
      } catch (error) {
        const failed = error as { code?: number; stdout?: string; stderr?: string };
        return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
      }
    };

    before(async () => {
      db = kind === 'postgres' ? await startPostgres() : await startMariadb();
      await loadAmavisdTables(db);
      // Written as iRedAdmin writes them (the spec's priorities), not through mailwarden's writer:
      // alice whitelists boss@partner.test, her domain blacklists @partner.test, she blacklists
      // spam@evil.test inbound and @.xyz outbound.
      await db.query(`INSERT INTO users (priority, policy_id, email) VALUES (100, 0, ${bytes('alice@example.com')}), (60, 0, ${bytes('@example.com')})`);
      await db.query(`INSERT INTO mailaddr (priority, email) VALUES (10, ${bytes('boss@partner.test')}), (5, ${bytes('@partner.test')}), (10, ${bytes('spam@evil.test')}), (2, ${bytes('@.xyz')})`);
      const pair = (table: 'wblist' | 'outbound_wblist', account: string, party: string, wb: 'W' | 'B') =>
        table === 'wblist'
          ? db.query(`INSERT INTO wblist (rid, sid, wb) SELECT u.id, m.id, '${wb}' FROM users u, mailaddr m WHERE u.email = ${bytes(account)} AND m.email = ${bytes(party)}`)
          : db.query(`INSERT INTO outbound_wblist (rid, sid, wb) SELECT m.id, u.id, '${wb}' FROM users u, mailaddr m WHERE u.email = ${bytes(account)} AND m.email = ${bytes(party)}`);
      await pair('wblist', 'alice@example.com', 'boss@partner.test', 'W');
      await pair('wblist', '@example.com', '@partner.test', 'B');
      await pair('wblist', 'alice@example.com', 'spam@evil.test', 'B');
      await pair('outbound_wblist', 'alice@example.com', '@.xyz', 'B');
    });
    after(async () => {
      await db?.stop();
    });

    const cases = [
      {
        name: "a whitelist: the account's own W pair, over its domain's B for the sender's domain",
        request: ['boss@partner.test', 'alice@example.com'],
        stdout: 'OK\nOK (inbound: account alice@example.com, party boss@partner.test, W)\n',
      },
      {
        name: 'a blacklist decided by the domain-wide account: the pair named is @example.com, @partner.test',
        request: ['other@partner.test', 'alice@example.com'],
        stdout: 'REJECT Blacklisted\nREJECT Blacklisted (inbound: account @example.com, party @partner.test, B)\n',
      },
      {
        name: "a blacklist of the account's own: alice@example.com, spam@evil.test",
        request: ['spam@evil.test', 'alice@example.com'],
        stdout: 'REJECT Blacklisted\nREJECT Blacklisted (inbound: account alice@example.com, party spam@evil.test, B)\n',
      },
      {
        name: 'an outbound blacklist (SASL sender): account alice@example.com, party @.xyz',
        request: ['alice@example.com', 'someone@shop.xyz', '--sasl-username', 'alice@example.com'],
        stdout: 'REJECT Blacklisted\nREJECT Blacklisted (outbound: account alice@example.com, party @.xyz, B)\n',
      },
      {
        name: 'no pair: DUNNO, and the explanation says that no pair matched',
        request: ['friend@else.test', 'alice@example.com'],
        stdout: 'DUNNO\nDUNNO (none: no white/blacklist pair of the sender and recipient)\n',
      },
    ];
    for (const c of cases) {
      test(c.name, async () => {
        const [sender, recipient, ...extra] = c.request;
        const result = await decide(sender!, recipient!, ...extra);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout, c.stdout);
        assert.equal(result.stderr, '');
      });
    }
  });
}
