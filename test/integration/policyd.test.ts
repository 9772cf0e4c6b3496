import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.ts';
import { TestClient } from '../unit/policy/client.ts';

const rcpt = (sender: string, recipient: string, sasl = '') =>
  `request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=192.0.2.1\nhelo_name=mx.test\nsender=${sender}\nrecipient=${recipient}\nsasl_username=${sasl}\ninstance=1.2.3\n\n`;

const restriction = (name: string, spec: string) => `apiVersion: mailwarden.io/v1alpha1
kind: MailUserRestriction
metadata: { name: ${name}, namespace: mail }
spec:
${spec}
`;

describe('mailwarden policyd (the built CLI, as a process)', () => {
  let dir: string;
  let daemon: DaemonProcess;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mw-policyd-'));
    await writeFile(path.join(dir, 'alice.yaml'), restriction('alice', '  mailbox: alice@example.com\n  allowedRecipients: ["@example.com"]\n  rejectedRecipients: ["@."]'));
    await writeFile(path.join(dir, 'bob.yaml'), restriction('bob', '  mailbox: bob@example.com\n  rejectedSenders: ["@.spam.test"]'));
    daemon = await startDaemon(['--store', dir, '--cache-ttl', '100ms'], { MAILWARDEN_STORE_PASSWORD: 'hunter2-secret' });
  });
  after(async () => {
    await daemon?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('answers decisions over TCP, many per connection, in order', async () => {
    const client = await TestClient.open({ host: '127.0.0.1', port: daemon.port });
    client.send(rcpt('alice@example.com', 'bob@example.com'));
    client.send(rcpt('alice@example.com', 'x@gmail.com'));
    client.send(rcpt('x@mail.spam.test', 'bob@example.com'));
    client.send(rcpt('', 'bob@example.com'));
    client.send(rcpt('other@remote.test', 'x@gmail.com', 'alice@example.com'));
    assert.deepEqual(await client.waitAnswers(5), [
      'action=DUNNO',
      'action=REJECT Not authorized',
      'action=REJECT Not authorized',
      'action=DUNNO',
      'action=REJECT Not authorized',
    ]);
    client.socket.end();
  });

  test('serves /healthz, /readyz and /metrics', async () => {
    const base = `http://127.0.0.1:${daemon.httpPort}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /mailwarden_policy_decisions_total\{verdict="reject"\} [1-9]/);
    assert.match(metrics, /mailwarden_policy_request_duration_seconds_bucket/);
    assert.match(metrics, /mailwarden_cache_lookups_total/);
    assert.match(metrics, /mailwarden_store_lookup_duration_seconds/);
  });

  test('a changed manifest takes effect without a restart', async () => {
    await writeFile(path.join(dir, 'carol.yaml'), restriction('carol', '  mailbox: carol@example.com\n  rejectedSenders: ["@."]'));
    // The reload that brought carol in (a reload may also see the file before it is written).
    await daemon.waitForLog((r) => r.msg === 'manifests reloaded' && Number(r.mailboxes) > Number(r.before));
    const client = await TestClient.open({ host: '127.0.0.1', port: daemon.port });
    client.send(rcpt('x@gmail.com', 'carol@example.com'));
    const answer = (await client.waitAnswers(1))[0]!;
    client.socket.end();
    assert.equal(answer, 'action=REJECT Not authorized');
  });

  test('a hostile sender reaches the decision log escaped (C1 CSI, bidi override, zero-width), and parses back exactly', async () => {
    const sender = 'x\u009b31m\u202e\u200b\u2066@mail.spam.test';
    const client = await TestClient.open({ host: '127.0.0.1', port: daemon.port });
    client.send(rcpt(sender, 'bob@example.com'));
    assert.deepEqual(await client.waitAnswers(1), ['action=REJECT Not authorized']);
    client.socket.end();
    const record = await daemon.waitForLog((r) => r.msg === 'policy decision' && r.sender === sender);
    assert.equal(record.verdict, 'reject');
    // logs and rawLines hold the same lines, in order.
    const line = daemon.rawLines[daemon.logs.indexOf(record)];
    assert.ok(line !== undefined);
    assert.doesNotMatch(line, /[\u0080-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/, 'no raw C1, bidi or zero-width character in the line');
    assert.match(line, /"sender":"x\\u009B31m\\u202E\\u200B\\u2066@mail\.spam\.test"/);
  });

  test('no secret reaches the log', () => {
    const text = JSON.stringify(daemon.logs) + daemon.stderr();
    assert.doesNotMatch(text, /hunter2-secret/);
  });

  test('SIGTERM answers the request in flight and exits 0', async () => {
    const client = await TestClient.open({ host: '127.0.0.1', port: daemon.port });
    client.send(rcpt('alice@example.com', 'x@gmail.com'));
    assert.deepEqual(await client.waitAnswers(1), ['action=REJECT Not authorized']);
    const code = await daemon.stop();
    assert.equal(code, 0);
    await client.waitClosed();
    assert.ok(daemon.logs.some((l) => l.msg === 'policy daemon stopped'));
  });
});

describe('mailwarden policyd start-up errors', () => {
  test('an invalid store exits 1 with every problem', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mw-bad-'));
    await writeFile(path.join(dir, 'x.yaml'), restriction('x', '  mailbox: x@example.com\n  rejectedSenders: ["gmail.com"]'));
    await assert.rejects(startDaemon(['--store', dir]), /exited with 1[\s\S]*spec\.rejectedSenders\[0\]: "gmail\.com" is not an entry/);
    await rm(dir, { recursive: true, force: true });
  });

  test('a bad flag value exits 1 with a clear message', async () => {
    await assert.rejects(startDaemon(['--store', 'examples/', '--semantics', 'postfix']), /exited with 1[\s\S]*semantics/);
  });

  test('an unknown flag is a usage error (exit 2)', async () => {
    await assert.rejects(startDaemon(['--store', 'examples/', '--frobnicate']), /exited with 2[\s\S]*frobnicate/);
  });
});
