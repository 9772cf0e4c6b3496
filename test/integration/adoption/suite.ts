// The adoption specification (export → apply writes nothing → diff → prune), run against a real
// PostgreSQL, MariaDB and OpenLDAP (postgres.test.ts, mariadb.test.ts, openldap.test.ts).
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { parseRestrictionFile } from '../../../src/api/documents.ts';
import { main } from '../../../src/cli/main.ts';
import { type AdoptedKind, type AdoptedStore, type SeedMailbox, startAdoptedStore, written } from './adopted-stores.ts';

/** Runs the CLI in this process, as a person would run it, with the store's password in the environment. */
export async function cli(store: AdoptedStore, args: string[], settingsFile?: string) {
  let stdout = '';
  let stderr = '';
  const storeArgs = ['--store', store.url, ...(settingsFile === undefined ? [] : ['--settings', settingsFile])];
  const code = await main([...args, ...storeArgs], {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    stdin: Readable.from([]),
    env: store.env,
  });
  return { code, stdout, stderr };
}

/** The same mailboxes in every store; SQL and LDAP differ only where the store cannot hold a value. */
function seedFor(kind: AdoptedKind): SeedMailbox[] {
  const seed: SeedMailbox[] = [
    { mail: 'alice@example.com', sql: { allowedRecipients: '@example.com', rejectedRecipients: '@.' }, ldap: { allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'] } },
    // Typed by hand over the years: spacing, capitals, a repeat, a blank piece, a bare domain, text.
    { mail: 'bob@example.com', sql: { rejectedSenders: ' @Spam.TEST , @spam.test,,spam.org,bad entry', allowedSenders: null }, ldap: { rejectedSenders: [' @Spam.TEST', 'spam.org', 'bad entry'] } },
    { mail: 'carol@example.com', sql: { allowedSenders: null, rejectedSenders: '' } },
    { mail: 'erin@other.test', sql: { rejectedRecipients: '@.' }, ldap: { rejectedRecipients: ['@.'] } },
    { mail: 'frank@example.com', sql: { allowedSenders: '@partner.test' }, ldap: { allowedSenders: ['@partner.test'] } },
  ];
  // A column of blanks is set for iRedAPD, and no entry for mailwarden (LDAP cannot hold it).
  if (kind !== 'openldap') seed.push({ mail: 'dave@example.com', sql: { allowedSenders: '   ' } });
  // Stored with capitals: found by MariaDB's collation and LDAP's matching rule, not by PostgreSQL.
  if (kind !== 'postgres') seed.push({ mail: 'Gina@Example.com', sql: { rejectedSenders: '@x.test' }, ldap: { rejectedSenders: ['@x.test'] } });
  return seed;
}

export function adoptionSuite(kind: AdoptedKind): void {
  describe(`adopting a ${kind} store`, () => {
    let store: AdoptedStore;
    let work: string;
    let settingsFile: string | undefined;
    let dir: string;
    const run = (args: string[]) => cli(store, args, settingsFile);

    before(async () => {
      store = await startAdoptedStore(kind);
      work = await mkdtemp(path.join(tmpdir(), 'mw-adopt-'));
      dir = path.join(work, 'restrictions');
      if (store.settings !== undefined) {
        settingsFile = path.join(work, 'settings.yaml');
        await writeFile(settingsFile, store.settings);
      }
      await store.seed(seedFor(kind));
    });
    after(async () => {
      await store?.stop();
      if (work !== undefined) await rm(work, { recursive: true, force: true });
    });

    test('export writes one document per mailbox with lists, awkward values as they are, and reports them', async () => {
      const { code, stderr } = await run(['export', '--namespace', 'mail', '--backend', 'iredmail', '--output-dir', dir]);
      assert.equal(code, 0, stderr);
      const expected = ['alice-at-example.com.yaml', 'bob-at-example.com.yaml', 'erin-at-other.test.yaml', 'frank-at-example.com.yaml'];
      if (kind !== 'postgres') expected.push('gina-at-example.com.yaml');
      assert.deepEqual((await readdir(dir)).sort(), expected.sort());
      const bob = parseYaml(await readFile(path.join(dir, 'bob-at-example.com.yaml'), 'utf8'));
      assert.deepEqual(bob.metadata, { name: 'bob-at-example.com', namespace: 'mail' });
      assert.deepEqual(bob.spec, {
        mailbox: 'bob@example.com',
        backendRef: { name: 'iredmail' },
        rejectedSenders: kind === 'openldap' ? ['@Spam.TEST'] : ['@Spam.TEST', '@spam.test'],
        invalidEntries: { rejectedSenders: ['spam.org', 'bad entry'] },
      });
      assert.match(stderr, /bob@example.com rejectedSenders: "spam.org" is not an entry.*exported as stored under spec.invalidEntries/);
      assert.match(stderr, /bob@example.com rejectedSenders: "bad entry" contains white space: exported as stored/);
      assert.match(stderr, /bob@example.com rejectedSenders: " @Spam.TEST( )?": white space around it \(exported trimmed\), upper case/);
      if (kind !== 'openldap') {
        assert.match(stderr, /bob@example.com rejectedSenders: " @spam.test": white space around it \(exported trimmed\), a repeat/);
        assert.match(stderr, /bob@example.com rejectedSenders: "" is blank/);
        assert.match(stderr, /dave@example.com allowedSenders: "   " is blank/);
      }
      if (kind !== 'postgres') assert.match(stderr, /gina@example.com: stored with capitals as "Gina@Example.com"/);
      assert.match(stderr, new RegExp(`${expected.length} mailbox\\(es\\) exported to .*, 2 invalid value\\(s\\) kept under spec.invalidEntries\\n$`));
      assert.doesNotMatch(stderr, /carol/);
    });

    test('the export to stdout is the same documents as one stream', async () => {
      const { code, stdout } = await run(['export', '--namespace', 'mail', '--backend', 'iredmail']);
      assert.equal(code, 0);
      const files = (await readdir(dir)).sort();
      const fromFiles = await Promise.all(files.map(async (f) => parseYaml(await readFile(path.join(dir, f), 'utf8'))));
      const parsed = parseRestrictionFile('stdout', stdout);
      assert.deepEqual(parsed.problems, []);
      assert.deepEqual(parsed.restrictions.map((r) => r.document.spec.mailbox), fromFiles.map((d) => d.spec.mailbox));
    });

    test('apply of the export writes nothing, awkward values included', async () => {
      const before = await store.writeMarks();
      const { code, stdout, stderr } = await run(['apply', '-f', dir]);
      assert.equal(code, 0, stderr);
      assert.ok(stdout.trim().split('\n').every((line) => line.endsWith(': unchanged')), stdout);
      assert.deepEqual(written(before, await store.writeMarks()), []);
      const bob = await store.raw('bob@example.com');
      assert.deepEqual(bob.rejectedSenders, kind === 'openldap' ? [' @Spam.TEST', 'spam.org', 'bad entry'] : ' @Spam.TEST , @spam.test,,spam.org,bad entry');
    });

    test('diff of the export: nothing would change, exit 0', async () => {
      const { code, stdout } = await run(['diff', '-f', dir]);
      assert.deepEqual([code, stdout], [0, `no changes: ${kind === 'postgres' ? 4 : 5} mailbox(es) match the store\n`]);
    });

    test('diff after edits: added, removed, unchanged, a mailbox that does not exist, and what --prune would clear; apply --dry-run prints the same', async () => {
      const aliceFile = path.join(dir, 'alice-at-example.com.yaml');
      const alice = parseYaml(await readFile(aliceFile, 'utf8'));
      alice.spec.allowedRecipients = ['@example.com', '@Partner.test'];
      delete alice.spec.rejectedRecipients;
      await writeFile(aliceFile, JSON.stringify(alice));
      await writeFile(path.join(dir, 'ghost.yaml'), JSON.stringify({ ...alice, metadata: { name: 'ghost' }, spec: { mailbox: 'ghost@example.com', rejectedSenders: ['@.'] } }));
      await unlink(path.join(dir, 'frank-at-example.com.yaml'));
      const before = await store.writeMarks();

      const plain = await run(['diff', '-f', dir]);
      const unchanged = kind === 'postgres' ? 2 : 3;
      assert.deepEqual([plain.code, plain.stdout], [
        1,
        [
          `~ alice@example.com (${aliceFile})`,
          '    allowedRecipients   + @partner.test',
          '    rejectedRecipients  - @.',
          `! ghost@example.com (${path.join(dir, 'ghost.yaml')}): no such mailbox in the store; apply fails for it (mailwarden never creates mailboxes)`,
          `1 to change, 1 not found, ${unchanged} unchanged`,
          '',
        ].join('\n'),
      ]);
      const pruning = await run(['diff', '-f', dir, '--prune']);
      assert.equal(pruning.code, 1);
      assert.match(pruning.stdout, /\n- frank@example.com: no document declares it \(pruned\)\n {4}allowedSenders {6}- @partner.test\n1 to change, 1 to prune, 1 not found, /);
      assert.doesNotMatch(pruning.stdout, /erin|carol/, 'another domain, and a mailbox without lists, are outside the prune');
      const dryRun = await run(['apply', '-f', dir, '--prune', '--dry-run']);
      assert.deepEqual([dryRun.code, dryRun.stdout], [1, pruning.stdout]);
      assert.deepEqual(written(before, await store.writeMarks()), [], 'diff and --dry-run only read');
    });

    test('apply --prune writes exactly the changed mailbox and clears the undeclared one, nothing else', async () => {
      await unlink(path.join(dir, 'ghost.yaml'));
      const before = await store.writeMarks();
      const { code, stdout, stderr } = await run(['apply', '-f', dir, '--prune']);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /^alice@example.com: written \(allowedRecipients, rejectedRecipients\)$/m);
      assert.match(stdout, /^frank@example.com: cleared \(pruned: no document declares it\)$/m);
      assert.deepEqual(written(before, await store.writeMarks()), ['alice@example.com', 'frank@example.com']);
      const frank = await store.raw('frank@example.com');
      assert.deepEqual(frank.allowedSenders, kind === 'openldap' ? [] : '');
      const again = await run(['diff', '-f', dir, '--prune']);
      assert.equal(again.code, 0, again.stdout);
    });

    test('a change to an adopted list writes exactly the difference: the stored text of what stays is kept', async () => {
      const bobFile = path.join(dir, 'bob-at-example.com.yaml');
      const bob = parseYaml(await readFile(bobFile, 'utf8'));
      bob.spec.rejectedSenders.push('@new.test');
      bob.spec.invalidEntries.rejectedSenders = ['spam.org'];
      await writeFile(bobFile, JSON.stringify(bob));
      const before = await store.writeMarks();
      const { code, stdout } = await run(['apply', '-f', dir]);
      assert.equal(code, 0);
      assert.match(stdout, /^bob@example.com: written \(rejectedSenders\)$/m);
      assert.deepEqual(written(before, await store.writeMarks()), ['bob@example.com']);
      const raw = await store.raw('bob@example.com');
      // "bad entry" removed, "@new.test" added; a blank piece goes with the write (it is no entry).
      assert.deepEqual(raw.rejectedSenders, kind === 'openldap' ? [' @Spam.TEST', 'spam.org', '@new.test'] : ' @Spam.TEST , @spam.test,spam.org,@new.test');
    });

    test('very long lists: exported whole (never cut), one longer than a restriction may hold reported on stderr with exit 1; one at the limit round-trips', async () => {
      const entries = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `@${prefix}${i}.test`);
      await store.seed([
        { mail: 'long@long.test', sql: { rejectedSenders: entries('l', 600).join(',') }, ldap: { rejectedSenders: entries('l', 600) } },
        { mail: 'full@long.test', sql: { allowedRecipients: entries('f', 500).join(', ') }, ldap: { allowedRecipients: entries('f', 500) } },
      ]);
      const longDir = path.join(work, 'long');
      const { code, stderr } = await run(['export', '--namespace', 'mail', '--backend', 'iredmail', '--output-dir', longDir]);
      assert.equal(code, 1, 'a document mailwarden refuses is an error');
      assert.match(stderr, /long@long\.test: exported whole, but mailwarden refuses the document \(apply, diff and the API server will\): spec\.rejectedSenders: .*500/);
      assert.match(stderr, /, 1 document\(s\) mailwarden refuses as they are \(see above\)\n$/);
      assert.doesNotMatch(stderr, /full@long\.test: exported whole/);
      const long = parseYaml(await readFile(path.join(longDir, 'long-at-long.test.yaml'), 'utf8'));
      assert.deepEqual(long.spec.rejectedSenders, entries('l', 600));
      const fullFile = path.join(longDir, 'full-at-long.test.yaml');
      assert.deepEqual(parseYaml(await readFile(fullFile, 'utf8')).spec.allowedRecipients, entries('f', 500));
      const before = await store.writeMarks();
      const applied = await run(['apply', '-f', fullFile]);
      assert.deepEqual([applied.code, applied.stdout], [0, 'full@long.test: unchanged\n']);
      assert.deepEqual(written(before, await store.writeMarks()), []);
    });

    // The time is printed, not asserted: a test is no benchmark, and on a loaded machine it measures
    // the machine (the goal, at most 10 s, is read from this line).
    test('a 10,000-mailbox export: one document each, and how long it took', async () => {
      await store.clear();
      await store.seedBulk(10_000);
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const { code, stdout, stderr } = await run(['export', '--namespace', 'mail', '--backend', 'iredmail']);
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      assert.equal(code, 0, stderr.slice(-2000));
      console.log(`${kind}: export of 10,000 mailboxes took ${Math.round(ms)} ms (this process: ${Math.round((cpu.user + cpu.system) / 1000)} ms CPU)`);
      assert.equal(stdout.split('\n---\n').length, 10_000);
      assert.match(stderr, /10000 mailbox\(es\) exported/);
    });
  });
}
