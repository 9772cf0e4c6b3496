// `mailwarden migrate-to-amavisd` against a real PostgreSQL 15 and MariaDB 10.11: the iRedMail vmail
// schema with the four list columns (test/fixtures/iredmail-*.sql) and the amavisd tables
// (test/fixtures/amavisd-*.sql, bytea / varbinary emails) in one server, the command run in this
// process as a person would run it. The decisions after the move are the amavisd store's own,
// read back in one statement.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { after, before, beforeEach, describe, test } from 'node:test';
import { main } from '../../../src/cli/main.ts';
import { DEFAULT_WBLIST_OPTIONS, decideWblist, planWblist } from '../../../src/restrictions/amavisd-wblist.ts';
import { openAmavisdStore, type AmavisdWblistStore } from '../../../src/stores/amavisd-sql.ts';
import { type MailboxRow, type SqlServer, startMariadb, startPostgres, TEST_PASSWORD } from '../../harness/containers.ts';
import { repoPath } from '../../helpers/paths.ts';
import { clearAmavisdTables, lists, loadAmavisdTables } from '../stores/helpers.ts';

/** The dry run's output as docs/vmail-to-amavisd.md shows it (its text block that starts with alice's line). */
async function documentedDryRun(): Promise<string> {
  const doc = await readFile(repoPath('docs/vmail-to-amavisd.md'), 'utf8');
  const block = /```text\n(alice@example\.com: would write[\s\S]*?\n)```/.exec(doc);
  assert.ok(block, 'docs/vmail-to-amavisd.md shows a dry run');
  return block[1]!;
}

export function migrateToAmavisdSuite(kind: 'postgres' | 'mariadb'): void {
  describe(`migrate-to-amavisd on ${kind === 'postgres' ? 'PostgreSQL 15' : 'MariaDB 10.11'}`, () => {
    let db: SqlServer;
    let amavisd: AmavisdWblistStore;
    const env = { MAILWARDEN_FROM_PASSWORD: TEST_PASSWORD, MAILWARDEN_TO_PASSWORD: TEST_PASSWORD };
    const migrate = async (...extra: string[]) => {
      let stdout = '';
      let stderr = '';
      const code = await main(['migrate-to-amavisd', '--from', db.url, '--to', db.url, ...extra], {
        stdout: { write: (t: string) => (stdout += t) },
        stderr: { write: (t: string) => (stderr += t) },
        stdin: Readable.from([]),
        env,
      });
      return { code, stdout, stderr };
    };
    const text = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));
    /** Every pair as `table account party wb`, with the rows' priorities, sorted. */
    const pairs = async (): Promise<string[]> => {
      const rows = await db.query<Record<string, unknown>>(
        "SELECT 'wblist' AS t, u.email AS account, u.priority AS up, u.policy_id AS policy, m.email AS party, m.priority AS mp, w.wb FROM wblist w JOIN users u ON u.id = w.rid JOIN mailaddr m ON m.id = w.sid " +
          "UNION ALL SELECT 'outbound_wblist', u.email, u.priority, u.policy_id, m.email, m.priority, o.wb FROM outbound_wblist o JOIN users u ON u.id = o.sid JOIN mailaddr m ON m.id = o.rid",
      );
      return rows.map((r) => `${text(r.t)} ${text(r.account)}(${r.up},${r.policy}) ${text(r.party)}(${r.mp}) ${text(r.wb)}`).sort();
    };
    const tableRows = async (): Promise<string> => JSON.stringify(await Promise.all(['users', 'mailaddr', 'wblist', 'outbound_wblist'].map((t) => db.query(`SELECT * FROM ${t} ORDER BY 1, 2`))), (_k, v) => (v?.type === 'Buffer' ? Buffer.from(v.data).toString('utf8') : v));
    const seed = (rows: MailboxRow[]) => db.insertMailboxes(rows);
    const decide = async (request: { sender: string; recipient: string; sasl?: string }) => {
      const plan = planWblist({ protocolState: 'RCPT', sender: request.sender, recipient: request.recipient, saslUsername: request.sasl, clientAddress: '203.0.113.9' }, DEFAULT_WBLIST_OPTIONS);
      assert.ok(typeof plan !== 'string', String(plan));
      return decideWblist(plan, await amavisd.facts(plan, AbortSignal.timeout(5000)), DEFAULT_WBLIST_OPTIONS).action;
    };

    before(async () => {
      db = kind === 'postgres' ? await startPostgres() : await startMariadb();
      await loadAmavisdTables(db);
      amavisd = await openAmavisdStore(db.url, {}, { semantics: 'default', password: db.password });
    });
    after(async () => {
      await amavisd?.close();
      await db?.stop();
    });
    beforeEach(async () => {
      await db.clearMailboxes();
      await clearAmavisdTables(db);
    });

    test('a dry run prints every pair it would write (as docs/vmail-to-amavisd.md shows) and writes nothing; the run writes them as iRedAdmin would; a second run writes 0', async () => {
      await seed([
        { username: 'alice@example.com', allowedsenders: '@.example.com,boss@partner.test', rejectedsenders: '@.,spam@example.com' },
        { username: 'bob@example.com', allowedrecipients: '@example.com', rejectedrecipients: '@.,gmail.com', allowedsenders: '' },
        { username: 'carol@example.com' },
      ]);
      const dry = await migrate('--dry-run');
      assert.equal(dry.code, 0, dry.stdout + dry.stderr);
      assert.equal(dry.stdout, await documentedDryRun());
      assert.deepEqual(await pairs(), []);

      const run = await migrate();
      assert.equal(run.code, 0, run.stdout + run.stderr);
      // The same lines, said of what was done.
      const done = dry.stdout.replace(/^(\S+): would write (\d+ pair\(s\))$/gm, '$1: $2 written').replaceAll('would add', 'added').replace('dry run, nothing written: ', '').replace('would be written', 'written');
      assert.equal(run.stdout, done);
      assert.deepEqual(await pairs(), [
        'outbound_wblist bob@example.com(100,0) @.(0) B',
        'outbound_wblist bob@example.com(100,0) @example.com(5) W',
        'wblist alice@example.com(100,0) @.(0) B',
        'wblist alice@example.com(100,0) @.example.com(3) W',
        'wblist alice@example.com(100,0) boss@partner.test(10) W',
        'wblist alice@example.com(100,0) spam@example.com(10) B',
      ]);
      const before = await tableRows();

      const again = await migrate();
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.match(again.stdout, /^alice@example\.com: nothing to write \(already in the amavisd tables\)$/m);
      assert.match(again.stdout, /: 2 mailbox\(es\) with lists read, 0 pair\(s\) written for 0 account\(s\)\n$/);
      assert.equal(await tableRows(), before, 'the second run changed no row');
    });

    test('the amavisd answers after the move, and the notes where they differ from the columns', async () => {
      await seed([
        // Only the domain and a partner may send; "allowed beats rejected" let spam@example.com in.
        { username: 'alice@example.com', allowedsenders: '@.example.com,boss@partner.test', rejectedsenders: '@.,spam@example.com' },
        // Only internal recipients; the same entry in both lists was allowed.
        { username: 'bob@example.com', allowedrecipients: '@example.com,@x.test', rejectedrecipients: '@.,@x.test' },
        // carol may send within the domain, dave refuses her: the columns' outbound allow was final.
        { username: 'carol@example.com', allowedrecipients: '@example.com' },
        { username: 'dave@example.com', rejectedsenders: 'carol@example.com' },
      ]);
      const { code, stdout } = await migrate();
      assert.equal(code, 0, stdout);
      assert.match(stdout, /meaning: rejectedSenders: a sender matching "spam@example\.com" was allowed by allowedSenders "@\.example\.com" \(the allowed list won\); in amavisd the more specific B pair "spam@example\.com" wins: now rejected/);
      assert.match(stdout, /info: rejectedRecipients: "@x\.test" is in allowedRecipients too, which won under the vmail columns: only its W pair is written/);
      assert.doesNotMatch(stdout, /meaning: rejectedSenders: any was allowed/, '@. is less specific than every allowed entry: no change');
      assert.deepEqual(await amavisd.observe('bob@example.com'), lists({ allowedRecipients: ['@example.com', '@x.test'], rejectedRecipients: ['@.'] }));
      const cases: [request: Parameters<typeof decide>[0], action: string][] = [
        [{ sender: 'colleague@example.com', recipient: 'alice@example.com' }, 'OK'],
        [{ sender: 'x@sub.example.com', recipient: 'alice@example.com' }, 'OK'],
        [{ sender: 'boss@partner.test', recipient: 'alice@example.com' }, 'OK'],
        [{ sender: 'spam@example.com', recipient: 'alice@example.com' }, 'REJECT Blacklisted'],
        [{ sender: 'stranger@else.test', recipient: 'alice@example.com' }, 'REJECT Blacklisted'],
        [{ sender: 'bob@example.com', sasl: 'bob@example.com', recipient: 'carol@example.com' }, 'DUNNO'],
        [{ sender: 'bob@example.com', sasl: 'bob@example.com', recipient: 'y@x.test' }, 'DUNNO'],
        [{ sender: 'bob@example.com', sasl: 'bob@example.com', recipient: 'friend@gmail.test' }, 'REJECT Blacklisted'],
        [{ sender: 'carol@example.com', sasl: 'carol@example.com', recipient: 'dave@example.com' }, 'REJECT Blacklisted'],
      ];
      for (const [request, action] of cases) assert.equal(await decide(request), action, JSON.stringify(request));
    });

    test('pairs already in the amavisd tables stay; the opposite W/B for a party refuses that account only (exit 1)', async () => {
      await amavisd.apply('alice@example.com', lists({ allowedSenders: ['@partner.test'] }));
      await amavisd.apply('bob@example.com', lists({ allowedSenders: ['spam@evil.test'] }));
      await seed([
        { username: 'alice@example.com', rejectedsenders: 'spam@evil.test' },
        { username: 'bob@example.com', rejectedsenders: 'spam@evil.test,@ads.test' },
      ]);
      const { code, stdout } = await migrate();
      assert.equal(code, 1, stdout);
      assert.match(stdout, /^bob@example\.com: refused, nothing written\n {2}conflict: rejectedSenders: "spam@evil\.test" is W in the amavisd tables \(allowedSenders\) but in rejectedSenders in the vmail columns/m);
      assert.match(stdout, /1 pair\(s\) written for 1 account\(s\), 1 account\(s\) refused\n$/);
      assert.deepEqual(await amavisd.observe('alice@example.com'), lists({ allowedSenders: ['@partner.test'], rejectedSenders: ['spam@evil.test'] }));
      assert.deepEqual(await amavisd.observe('bob@example.com'), lists({ allowedSenders: ['spam@evil.test'] }));
    });

    test('values that are not entries are reported and not copied; an internationalised domain is written in its ASCII form', async () => {
      await seed([{ username: 'alice@example.com', rejectedsenders: ' @Spam.TEST , spam.org,,@bücher.example', rejectedrecipients: 'bad entry' }]);
      const { code, stdout } = await migrate();
      assert.equal(code, 0, stdout);
      assert.match(stdout, /skipped: rejectedSenders: " spam\.org" is not an entry/);
      assert.match(stdout, /skipped: rejectedRecipients: "bad entry" contains white space/);
      assert.deepEqual(await amavisd.observe('alice@example.com'), lists({ rejectedSenders: ['@spam.test', '@xn--bcher-kva.example'] }));
      assert.equal(await decide({ sender: 'x@bücher.example', recipient: 'alice@example.com' }), 'REJECT Blacklisted');
    });

    test('without --from or --to it is a usage error; an unreachable amavisd database fails with nothing written', async () => {
      let stderr = '';
      const code = await main(['migrate-to-amavisd', '--from', db.url], { stdout: { write: () => true }, stderr: { write: (t: string) => (stderr += t) }, stdin: Readable.from([]), env });
      assert.equal(code, 2);
      assert.match(stderr, /needs --from URL \(the vmail store\) and --to URL/);
      await seed([{ username: 'alice@example.com', rejectedsenders: '@spam.test' }]);
      const unreachable = db.url.replace(/:\d+\//, ':1/');
      const failed = await main(['migrate-to-amavisd', '--from', db.url, '--to', unreachable], { stdout: { write: () => true }, stderr: { write: (t: string) => (stderr += t) }, stdin: Readable.from([]), env });
      assert.equal(failed, 1);
      assert.match(stderr, /^mailwarden: /m);
      assert.deepEqual(await pairs(), []);
    });
  });
}
