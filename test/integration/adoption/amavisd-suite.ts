// Adopting the amavisd white/blacklist tables (iRedMail since 2015) as iRedAdmin and hands left
// them: export → apply writes 0 rows → diff exits 0, on a real PostgreSQL and MariaDB. Writes are
// counted by triggers on the four tables (every INSERT, UPDATE and DELETE), so a delete and
// re-insert of the same pair is seen too.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { documentName } from '../../../src/adoption/export-documents.ts';
import { main } from '../../../src/cli/main.ts';
import { startMariadb, startPostgres, type SqlServer } from '../../harness/containers.ts';
import { loadAmavisdTables } from '../stores/helpers.ts';
import { accountsLike, countTableWrites, pairsOf, seed, seedBulk, tableWrites } from './amavisd-tables.ts';

export function amavisdAdoptionSuite(kind: 'postgres' | 'mariadb'): void {
  describe(`adopting the amavisd tables on ${kind}`, () => {
    let db: SqlServer;
    let work: string;
    const run = async (args: string[]) => {
      let stdout = '';
      let stderr = '';
      const code = await main([...args, '--store', db.url, '--store-schema', 'amavisd'], {
        stdout: { write: (t: string) => (stdout += t) },
        stderr: { write: (t: string) => (stderr += t) },
        stdin: Readable.from([]),
        env: { MAILWARDEN_STORE_PASSWORD: db.password },
      });
      return { code, stdout, stderr };
    };

    before(async () => {
      db = kind === 'postgres' ? await startPostgres() : await startMariadb();
      await loadAmavisdTables(db);
      await countTableWrites(db);
      work = await mkdtemp(path.join(tmpdir(), 'mw-adopt-amavisd-'));
      await seed(db, [
        // As iRedAdmin writes them: every form of party, both directions.
        {
          email: 'alice@example.com',
          priority: 100,
          inbound: [['boss@partner.test', 'W'], ['@.', 'B'], ['10.0.0.0/8', 'B'], ['192.168.*.*', 'B'], ['spam@*', 'B'], ['172.16.1.1', 'W']],
          outbound: [['@.xyz', 'B'], ['@example.com', 'W']],
        },
        // A domain's and the server's own lists.
        { email: '@example.com', priority: 60, inbound: [['@evil.test', 'B']] },
        { email: '@.', priority: 0, inbound: [['@.spam.test', 'B']] },
        // Typed by hand: capitals in a party's email, a lower-case w, the same party in two
        // spellings, white space, and values that are no entry (text, a bare domain, an IP as a recipient).
        {
          email: 'bob@example.com',
          priority: 100,
          inbound: [['Friend@Partner.TEST', 'w'], ['friend@partner.test', 'W'], [' @spam.test', 'B'], ['@spam.test', 'B'], ['not an address', 'B'], ['example.org', 'W']],
          outbound: [['192.168.1.1', 'B']],
        },
        // An account stored with capitals (iRedAPD and amavisd never match it, but it is there).
        { email: 'Dora@Example.COM', priority: 100, inbound: [['@dora.test', 'B']] },
        // An account whose domain is stored in Unicode (mailwarden writes domains in ASCII form).
        { email: 'hal@bücher.example', priority: 100, outbound: [['@bücher.example', 'W']] },
        // An account with no pairs is no restriction.
        { email: 'carol@example.com', priority: 100 },
      ]);
    });
    after(async () => {
      await db?.stop();
      if (work !== undefined) await rm(work, { recursive: true, force: true });
    });

    test('export writes one document per account with pairs, every form as stored; apply of it writes 0 rows; diff exits 0', async () => {
      const dir = path.join(work, 'restrictions');
      const exported = await run(['export', '--namespace', 'mail', '--backend', 'amavisd', '--output-dir', dir]);
      assert.equal(exported.code, 0, exported.stderr);
      assert.match(exported.stderr, /6 mailbox\(es\) exported to .*, 3 invalid value\(s\) kept under spec.invalidEntries\n$/);
      assert.doesNotMatch(exported.stderr, /carol/);
      // Invalid values exported as they are, each reported; the document is one mailwarden accepts.
      const bob = parseYaml(await readFile(path.join(dir, 'bob-at-example.com.yaml'), 'utf8'));
      assert.deepEqual(bob.spec, {
        mailbox: 'bob@example.com',
        backendRef: { name: 'amavisd' },
        allowedSenders: ['Friend@Partner.TEST', 'friend@partner.test'],
        rejectedSenders: ['@spam.test', '@spam.test'],
        invalidEntries: { allowedSenders: ['example.org'], rejectedSenders: ['not an address'], rejectedRecipients: ['192.168.1.1'] },
      });
      assert.match(exported.stderr, /bob@example.com rejectedRecipients: "192.168.1.1" is a client address or network: a sender, never a recipient: exported as stored under spec.invalidEntries\n/);
      assert.match(exported.stderr, /bob@example.com rejectedSenders: "not an address" contains white space: exported as stored under spec.invalidEntries\n/);
      assert.match(exported.stderr, /bob@example.com allowedSenders: "example.org" is not an entry.*exported as stored under spec.invalidEntries\n/);
      assert.match(exported.stderr, /bob@example.com rejectedSenders: " @spam.test": white space around it \(exported trimmed\), as stored, nothing matches it\n/);
      assert.match(exported.stderr, /bob@example.com allowedSenders: "Friend@Partner.TEST": upper case \(exported as stored; it compares in lower case\), as stored, nothing matches it/);
      assert.doesNotMatch(exported.stderr, /refuses/);
      // The account stored with capitals: its own document, under its address.
      const dora = parseYaml(await readFile(path.join(dir, 'dora-at-example.com.yaml'), 'utf8'));
      assert.deepEqual(dora.spec, { mailbox: 'dora@example.com', backendRef: { name: 'amavisd' }, rejectedSenders: ['@dora.test'] });
      assert.match(exported.stderr, /dora@example.com: stored as "Dora@Example.COM", not as "dora@example.com"; mailwarden writes this users row/);
      // An account whose domain is stored in Unicode: its own document, under that address.
      const hal = parseYaml(await readFile(path.join(dir, `${documentName('hal@bücher.example')}.yaml`), 'utf8'));
      assert.deepEqual(hal.spec, { mailbox: 'hal@bücher.example', backendRef: { name: 'amavisd' }, allowedRecipients: ['@bücher.example'] });
      assert.match(exported.stderr, /hal@bücher.example: stored as "hal@bücher.example", not as "hal@xn--bcher-kva.example"/);
      const alice = parseYaml(await readFile(path.join(dir, 'alice-at-example.com.yaml'), 'utf8'));
      assert.deepEqual(alice.spec, {
        mailbox: 'alice@example.com',
        backendRef: { name: 'amavisd' },
        allowedSenders: ['172.16.1.1', 'boss@partner.test'],
        rejectedSenders: ['10.0.0.0/8', '192.168.*.*', '@.', 'spam@*'],
        allowedRecipients: ['@example.com'],
        rejectedRecipients: ['@.xyz'],
      });

      const before = await tableWrites(db);
      const applied = await run(['apply', '-f', dir]);
      assert.equal(applied.code, 0, applied.stderr + applied.stdout);
      assert.ok(applied.stdout.trim().split('\n').every((line) => line.endsWith(': unchanged')), applied.stdout);
      assert.equal(await tableWrites(db), before, 'apply of the export writes 0 rows');

      const diff = await run(['diff', '-f', dir]);
      assert.deepEqual([diff.code, diff.stdout], [0, 'no changes: 6 mailbox(es) match the store\n']);

      // The counter sees writes: an edit is shown by diff and written by apply.
      const aliceFile = path.join(dir, 'alice-at-example.com.yaml');
      await writeFile(aliceFile, JSON.stringify({ ...alice, spec: { ...alice.spec, rejectedRecipients: ['@.xyz', '@new.test'] } }));
      const edited = await run(['diff', '-f', dir]);
      assert.equal(edited.code, 1);
      assert.match(edited.stdout, /^~ alice@example\.com .*\n {4}rejectedRecipients {2}\+ @new\.test\n1 to change, 5 unchanged\n$/);
      const applied2 = await run(['apply', '-f', dir]);
      assert.match(applied2.stdout, /^alice@example\.com: written \(rejectedRecipients\)$/m);
      assert.equal(await tableWrites(db), before + 2, 'exactly the difference: the new mailaddr row and its pair');
    });

    test('diff: added, removed, unchanged, an account without a users row, and what --prune would clear; apply --dry-run prints the same; nothing written', async () => {
      const dir = path.join(work, 'diff');
      await cp(path.join(work, 'restrictions'), dir, { recursive: true });
      const aliceFile = path.join(dir, 'alice-at-example.com.yaml');
      const alice = parseYaml(await readFile(aliceFile, 'utf8'));
      await writeFile(aliceFile, JSON.stringify({ ...alice, spec: { ...alice.spec, allowedRecipients: ['@example.com', '@partner.test'], rejectedRecipients: ['@new.test'] } }));
      await writeFile(path.join(dir, 'ghost.yaml'), JSON.stringify({ ...alice, metadata: { name: 'ghost' }, spec: { mailbox: 'ghost@example.com', rejectedSenders: ['@.'] } }));
      await rm(path.join(dir, 'dora-at-example.com.yaml'));
      const before = await tableWrites(db);

      const plain = await run(['diff', '-f', dir]);
      assert.equal(plain.code, 1);
      assert.match(plain.stdout, /^~ alice@example\.com \(.*\)\n {4}allowedRecipients {3}\+ @partner\.test\n {4}rejectedRecipients {2}- @\.xyz\n/m);
      // The writer creates a users row for an account that has none: no "not found" here.
      assert.match(plain.stdout, /^~ ghost@example\.com \(.*ghost\.yaml\)\n {4}rejectedSenders {5}\+ @\.\n/m);
      assert.match(plain.stdout, /\n2 to change, 4 unchanged\n$/);
      assert.doesNotMatch(plain.stdout, /dora|bob/);

      const pruning = await run(['diff', '-f', dir, '--prune']);
      assert.equal(pruning.code, 1);
      assert.match(pruning.stdout, /\n- dora@example\.com: no document declares it \(pruned\)\n {4}rejectedSenders {5}- @dora\.test\n2 to change, 1 to prune, 4 unchanged\n$/);
      const dryRun = await run(['apply', '-f', dir, '--prune', '--dry-run']);
      assert.deepEqual([dryRun.code, dryRun.stdout], [0, pruning.stdout]);
      assert.equal(await tableWrites(db), before, 'diff and --dry-run only read');
      await rm(dir, { recursive: true });
    });

    test('a change to adopted accounts writes exactly the difference: values that stay keep their stored spelling, invalid ones stay, the account stored with capitals is the row written', async () => {
      const dir = path.join(work, 'restrictions');
      const bobFile = path.join(dir, 'bob-at-example.com.yaml');
      const bob = parseYaml(await readFile(bobFile, 'utf8'));
      bob.spec.rejectedSenders.push('@bob-new.test');
      delete bob.spec.invalidEntries.allowedSenders;
      await writeFile(bobFile, JSON.stringify(bob));
      const doraFile = path.join(dir, 'dora-at-example.com.yaml');
      const dora = parseYaml(await readFile(doraFile, 'utf8'));
      dora.spec.rejectedSenders.push('@dora2.test');
      await writeFile(doraFile, JSON.stringify(dora));

      const before = await tableWrites(db);
      const { code, stdout, stderr } = await run(['apply', '-f', dir]);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /^bob@example\.com: written \(allowedSenders, rejectedSenders\)$/m);
      assert.match(stdout, /^dora@example\.com: written \(rejectedSenders\)$/m);
      // bob: one pair deleted (example.org), a mailaddr row and a pair added; dora: a mailaddr row and a pair.
      assert.equal(await tableWrites(db), before + 5);
      assert.deepEqual(await pairsOf(db, 'bob@example.com'), {
        inbound: [' @spam.test B', '@bob-new.test B', '@spam.test B', 'Friend@Partner.TEST w', 'friend@partner.test W', 'not an address B'],
        outbound: ['192.168.1.1 B'],
      });
      assert.deepEqual(await accountsLike(db, 'dora@example.com'), ['Dora@Example.COM'], 'no second users row');
      assert.deepEqual(await pairsOf(db, 'Dora@Example.COM'), { inbound: ['@dora.test B', '@dora2.test B'], outbound: [] });
    });

    test('an invalid value the store does not hold is refused, with nothing written', async () => {
      const bobFile = path.join(work, 'restrictions', 'bob-at-example.com.yaml');
      const text = await readFile(bobFile, 'utf8');
      const bob = parseYaml(text);
      bob.spec.invalidEntries.rejectedSenders.push('more junk');
      bob.spec.invalidEntries.rejectedRecipients.push('10.1.1.1');
      await writeFile(bobFile, JSON.stringify(bob));
      const before = await tableWrites(db);
      const { code, stderr } = await run(['apply', '-f', bobFile]);
      assert.equal(code, 1);
      assert.match(stderr, /bob@example\.com: InvalidValue: rejectedSenders: "more junk" contains white space; .*never adds one; rejectedRecipients: "10.1.1.1" is an IP address: a client is a sender, never a recipient/);
      assert.equal(await tableWrites(db), before);
      await writeFile(bobFile, text);
    });

    test('two users rows spelling one account: the lower-case one is written, the other is reported and never touched', async () => {
      await seed(db, [{ email: 'Erin@Example.com', priority: 100, inbound: [['@erin.test', 'B']] }, { email: 'erin@example.com', priority: 100 }]);
      const dir = path.join(work, 'erin');
      const exported = await run(['export', '--output-dir', dir]);
      assert.equal(exported.code, 1, 'lists not exported are an error');
      assert.match(exported.stderr, /erin@example\.com: stored as "Erin@Example\.com": another users row, "erin@example\.com", is the one mailwarden writes for erin@example\.com, so its lists are not exported \(apply never touches them\)\n/);
      assert.ok(!existsSync(path.join(dir, 'erin-at-example.com.yaml')));
      const before = await tableWrites(db);
      const applied = await run(['apply', '-f', dir]);
      assert.equal(applied.code, 0, applied.stderr);
      assert.equal(await tableWrites(db), before, 'apply of the export writes 0 rows');
      const pruned = await run(['diff', '-f', dir, '--prune-domain', 'example.com']);
      assert.doesNotMatch(pruned.stdout, /erin/, 'nor would --prune clear it');
    });

    test('apply --prune clears exactly the undeclared account (in the users row it is stored in), and no spelling no write reaches', async () => {
      const dir = path.join(work, 'prune');
      await cp(path.join(work, 'erin'), dir, { recursive: true });
      await rm(path.join(dir, 'dora-at-example.com.yaml'));
      const before = await tableWrites(db);
      const { code, stdout, stderr } = await run(['apply', '-f', dir, '--prune']);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /^dora@example\.com: cleared \(pruned: no document declares it\)$/m);
      assert.equal(stdout.match(/cleared/g)?.length, 1, stdout);
      assert.equal(await tableWrites(db), before + 2, 'its two pairs deleted, nothing else');
      assert.deepEqual(await pairsOf(db, 'Dora@Example.COM'), { inbound: [], outbound: [] });
      assert.deepEqual(await pairsOf(db, 'Erin@Example.com'), { inbound: ['@erin.test B'], outbound: [] });
      const again = await run(['diff', '-f', dir, '--prune']);
      assert.equal(again.code, 0, again.stdout);
    });

    // The time is printed, not asserted: a test is no benchmark (the goal, at most 10 s, is read from this line).
    test('a 10,000-account export: one document each, and how long it took', async () => {
      await seedBulk(db, 10_000);
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const { code, stdout, stderr } = await run(['export', '--namespace', 'mail', '--backend', 'amavisd']);
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      assert.equal(code, 0, stderr.slice(-2000));
      console.log(`amavisd-${kind}: export of 10,000 accounts (3 pairs each) took ${Math.round(ms)} ms (this process: ${Math.round((cpu.user + cpu.system) / 1000)} ms CPU)`);
      assert.equal(stdout.split('\n---\n').length, 10_000);
      assert.match(stderr, /10000 mailbox\(es\) exported/);
    });
  });
}
