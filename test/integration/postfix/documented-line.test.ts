import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { smtpSession, startPostfix, type PostfixServer } from '../../harness/containers.ts';
import { startDaemon, type DaemonProcess } from '../../helpers/daemon.ts';
import { repoPath } from '../../helpers/paths.ts';

// The exact smtpd_recipient_restrictions line the README documents (and the daemon prints at
// start) works in real Postfix 3.7: a reject reaches the client, and with the daemon gone the
// default_action applies instead of a server configuration error.

const README_LINE = /^smtpd_recipient_restrictions = (check_policy_service .*)$/m.exec(readFileSync(repoPath('README.md'), 'utf8'))?.[1];

describe('the documented Postfix line in real Postfix', () => {
  let dir: string;
  let daemon: DaemonProcess;
  let postfix: PostfixServer;

  before(async () => {
    assert.ok(README_LINE, 'README.md documents the smtpd_recipient_restrictions line');
    dir = await mkdtemp(path.join(tmpdir(), 'mw-documented-'));
    await writeFile(
      path.join(dir, 'r.yaml'),
      'apiVersion: mailwarden.io/v1alpha1\nkind: MailUserRestriction\nmetadata: {name: r}\nspec:\n  mailbox: alice@example.com\n  rejectedSenders: ["@spam.test"]\n',
    );
    daemon = await startDaemon(['--store', dir]);
    const line = README_LINE!.replace('inet:127.0.0.1:7777', `inet:127.0.0.1:${daemon.port}`);
    postfix = await startPostfix({ mainCf: { mynetworks: '192.0.2.0/24', virtual_mailbox_maps: 'texthash:/etc/postfix/vmailbox', smtpd_recipient_restrictions: line } });
  });
  after(async () => {
    await daemon?.stop();
    await postfix?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const rcpt = (from: string) => smtpSession(postfix.port, ['EHLO client.test', `MAIL FROM:<${from}>`, 'RCPT TO:<alice@example.com>', 'QUIT']);

  test('a reject reaches the client as 554 5.7.1', async () => {
    const replies = await rcpt('x@spam.test');
    assert.equal(replies[3]!.lines.at(-1), '554 5.7.1 <alice@example.com>: Recipient address rejected: Not authorized');
  });

  test('anything else is accepted', async () => {
    const replies = await rcpt('friend@partner.test');
    assert.equal(replies[3]!.code, 250);
  });

  test('with the daemon gone, the documented default_action answers 450 4.7.1', async () => {
    await daemon.stop();
    const replies = await rcpt('friend@partner.test');
    assert.match(replies[3]!.lines.at(-1)!, /^450 4\.7\.1 <alice@example\.com>: Recipient address rejected: Policy service unavailable/);
  });
});
