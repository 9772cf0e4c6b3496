import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { readPassword } from '../../../src/cli/secrets.ts';
import { repoPath } from '../../helpers/paths.ts';
import { runCli as run } from '../../helpers/cli-run.ts';

const examples = repoPath('examples');

describe('CLI', () => {
  for (const command of ['policyd', 'decide', 'validate']) {
    test(`${command} --help exits 0 with usage`, async () => {
      const { code, stdout } = await run([command, '--help']);
      assert.equal(code, 0);
      assert.match(stdout, new RegExp(`Usage: mailwarden ${command}`));
    });
  }

  test('no command prints help and exits 2', async () => {
    const { code, stdout } = await run([]);
    assert.equal(code, 2);
    assert.match(stdout, /Commands:/);
  });

  const usageErrors: [string, string[], RegExp][] = [
    ['unknown command', ['frob'], /unknown command "frob"/],
    ['unknown flag', ['decide', '--store', examples, '--bogus'], /bogus/],
    ['decide without addresses', ['decide', '--store', examples], /needs --sender and --recipient/],
    ['decide without a store', ['decide', '--sender', 'a@b.c', '--recipient', 'd@e.f'], /needs --store/],
    ['validate without files', ['validate'], /at least one FILE/],
    ['operator allowing an action that is not a restricted one', ['operator', '--policyd-allowed-action', 'REJECT'], /--policyd-allowed-action takes one of REDIRECT, BCC, FILTER, HOLD, DISCARD/],
  ];
  for (const [name, args, message] of usageErrors) {
    test(`usage error: ${name} exits 2 with one line`, async () => {
      const { code, stderr } = await run(args);
      assert.equal(code, 2);
      assert.match(stderr, message);
      assert.equal(stderr.trim().split('\n').length, 1);
    });
  }

  test('decide prints the action, and with --explain why', async () => {
    const plain = await run(['decide', '--store', examples, '--sender', 'user@example.com', '--recipient', 'x@yahoo.test']);
    assert.deepEqual([plain.code, plain.stdout], [0, 'REJECT Not authorized\n']);
    const explained = await run(['decide', '--store', examples, '--sender', 'user@example.com', '--recipient', 'x@gmail.com', '--explain']);
    assert.equal(explained.stdout, 'DUNNO\nDUNNO (allow: outbound, mailbox user@example.com, allowedRecipients entry "@gmail.com" matched x@gmail.com)\n');
  });

  test('decide --semantics iredapd answers OK for an allow', async () => {
    const { stdout } = await run(['decide', '--store', examples, '--semantics', 'iredapd', '--sender', 'user@example.com', '--recipient', 'x@gmail.com']);
    assert.equal(stdout, 'OK\n');
  });

  test('decide --request - reads a raw policy request', async () => {
    const request = 'request=smtpd_access_policy\nprotocol_state=RCPT\nsender=someone@gmail.com\nrecipient=bob@example.com\nsasl_username=\n\n';
    const { code, stdout } = await run(['decide', '--store', examples, '--request', '-'], request);
    assert.equal(code, 0);
    assert.equal(stdout, 'REJECT Not authorized\n');
  });

  test('decide --request - with a non-RCPT state answers DUNNO', async () => {
    const { stdout } = await run(['decide', '--store', examples, '--request', '-', '--explain'], 'protocol_state=DATA\nsender=a@b.c\nrecipient=bob@example.com\n');
    assert.equal(stdout, 'DUNNO\nDUNNO (skip: protocol_state is DATA, not RCPT)\n');
  });

  test('validate: exit 0 for the examples', async () => {
    const { code, stdout } = await run(['validate', examples]);
    assert.equal(code, 0);
    assert.match(stdout, /valid/);
  });

  test('validate: exit 1 with one line per problem', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mw-validate-'));
    try {
      await writeFile(
        path.join(dir, 'bad.yaml'),
        'apiVersion: mailwarden.io/v1alpha1\nkind: MailUserRestriction\nmetadata: {name: bad}\nspec:\n  mailbox: a@example.com\n  allowedSenders: [example.com, "@"]\n',
      );
      const { code, stderr } = await run(['validate', dir]);
      assert.equal(code, 1);
      const lines = stderr.trim().split('\n');
      assert.equal(lines.length, 2);
      assert.match(lines[0]!, /bad\.yaml: MailUserRestriction bad: spec\.allowedSenders\[0\]: "example\.com" is not an entry/);
      assert.match(lines[1]!, /spec\.allowedSenders\[1\]: "@" has no domain/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('validate: a missing file exits 1', async () => {
    const { code, stderr } = await run(['validate', '/nonexistent/x.yaml']);
    assert.equal(code, 1);
    assert.match(stderr, /cannot be read: ENOENT/);
  });
});

describe('store password sources', () => {
  test('from a file, without its trailing newline', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mw-secret-'));
    await writeFile(path.join(dir, 'pw'), 's3cret\n');
    assert.equal(readPassword({ passwordFile: path.join(dir, 'pw') }, {}), 's3cret');
    await rm(dir, { recursive: true, force: true });
  });
  test('from the default environment variable', () => {
    assert.equal(readPassword({}, { MAILWARDEN_STORE_PASSWORD: 'x' }), 'x');
  });
  test('a named variable that is unset is an error', () => {
    assert.throws(() => readPassword({ passwordEnv: 'NOPE' }, {}), /NOPE/);
  });
});
