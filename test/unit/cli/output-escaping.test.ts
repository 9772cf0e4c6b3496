import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { documentYaml } from '../../../src/adoption/restriction-yaml.ts';
import { escapeControlCharacters } from '../../../src/restrictions/printable-text.ts';
import { repoPath } from '../../helpers/paths.ts';
import { runCli as run } from '../../helpers/cli-run.ts';

/**
 * Values reach the CLI's output from documents, stores and Postfix requests; none may reach a
 * terminal as a control sequence, a bidi override or an invisible character (issue #25).
 */
const HOSTILE = ['\u001b[2J', '\u001b]0;owned\u0007', '\u009b31m', '\u202e', '\u2066', '\u200b', '\u00ad', '\ufeff', '\u{e0041}', '\u0000', '\r'];
/** Tab and newline are the CLI's own; everything else in the hostile set must be gone. */
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\u{e0000}-\u{e0fff}]/u;


describe('CLI output escapes control and invisible characters', () => {
  test('escapeControlCharacters: each as a \\u escape; tab, newline, space and letters kept', () => {
    assert.equal(escapeControlCharacters('a\u001b[2Jb\tc\nd e\u202eü例\u{e0041}'), 'a\\u001B[2Jb\tc\nd e\\u202Eü例\\U000E0041');
    assert.equal(escapeControlCharacters('plain@example.com'), 'plain@example.com');
  });

  test('validate: hostile entries are named escaped', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mw-escape-'));
    try {
      const entries = HOSTILE.map((h) => JSON.stringify(`a${h}b@example.com`)).join(', ');
      await writeFile(path.join(dir, 'bad.yaml'), `apiVersion: mailwarden.io/v1alpha1\nkind: MailUserRestriction\nmetadata: {name: bad}\nspec:\n  mailbox: a@example.com\n  allowedSenders: [${entries}]\n`);
      const { code, stderr } = await run(['validate', dir]);
      assert.equal(code, 1);
      assert.doesNotMatch(stderr, RAW);
      assert.match(stderr, /"a\\u001[bB]\[2Jb@example\.com"/);
      assert.match(stderr, /\\u202E/);
      assert.equal(stderr.trim().split('\n').length, HOSTILE.length, 'one line per problem: no value breaks a line');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('decide --explain: a hostile recipient is printed escaped', async () => {
    const recipient = 'x\u001b]0;owned\u0007\u202e@gmail.com';
    const { code, stdout } = await run(['decide', '--store', repoPath('examples'), '--sender', 'user@example.com', '--recipient', recipient, '--explain']);
    assert.equal(code, 0);
    assert.doesNotMatch(stdout, RAW);
    assert.match(stdout, /matched x\\u001B\]0;owned\\u0007\\u202E@gmail\.com\)\n$/);
  });

  test('decide --request -: hostile fields of a raw request are printed escaped', async () => {
    const request = 'request=smtpd_access_policy\nprotocol_state=\u001b[5mDATA\nsender=a@b.c\nrecipient=bob@example.com\n\n';
    const { stdout } = await run(['decide', '--store', repoPath('examples'), '--request', '-', '--explain'], request);
    assert.doesNotMatch(stdout, RAW);
    assert.match(stdout, /\\u001B\[5mDATA/);
  });

  test('export documents: hostile stored values are escaped in the YAML and read back exactly', () => {
    const values = HOSTILE.map((h) => `kept${h}value`);
    const text = documentYaml({ spec: { invalidEntries: { allowedSenders: values } } });
    assert.doesNotMatch(text, RAW);
    assert.deepEqual(parse(text), { spec: { invalidEntries: { allowedSenders: values } } });
  });
});
