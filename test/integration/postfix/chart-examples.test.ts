// The Postfix configuration of each chart example (examples/postfix/*), rendered into real
// Postfix 3.7 the way that chart's image renders it at start, over the settings that image makes
// itself. Per chart: smtpd_recipient_restrictions is the policy check followed by the image's own
// list unchanged, an unauthenticated client still cannot relay, the image's own checks still
// answer, and the policy check answers first (before the permits that would otherwise end the list).
//
// The images' own settings below are the ones that decide these answers (docker-mailserver 15
// target/postfix/main.cf and its start scripts; Mailu 2024.06 core/postfix/conf/main.cf;
// bokysan 5.x scripts/functions.sh), minus DNS-based checks, as the test machine has no DNS.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { smtpSession, startPostfix, TEST_PASSWORD, type PostfixServer, type PostfixStartOptions } from '../../harness/containers.ts';
import { startDaemon, type DaemonProcess } from '../../helpers/daemon.ts';
import { repoPath } from '../../helpers/paths.ts';

const EXAMPLE_PORT = 'inet:127.0.0.1:7777';
const POLICY_PREFIX = 'check_policy_service { inet:127.0.0.1:';

/** noreply@example.com may send to nobody: a reject that only the policy daemon gives. */
const RESTRICTION = 'apiVersion: mailwarden.io/v1alpha1\nkind: MailUserRestriction\nmetadata: {name: noreply}\nspec:\n  mailbox: noreply@example.com\n  rejectedRecipients: ["@."]\n';
const NOT_AUTHORIZED = (rcpt: string) => `554 5.7.1 <${rcpt}>: Recipient address rejected: Not authorized`;

function example(chart: string, file: string): string {
  return readFileSync(repoPath('examples/postfix', chart, file), 'utf8');
}

/** The example's text with its daemon address pointed at the test's daemon. */
function withPort(text: string, port: number): string {
  assert.ok(text.includes(EXAMPLE_PORT), 'the example asks the sidecar on 127.0.0.1:7777');
  return text.replaceAll(EXAMPLE_PORT, `inet:127.0.0.1:${port}`);
}

const startScript = (name: string, content: string) => ({ target: `/etc/postfix/start.d/${name}`, content });

interface Session {
  helo?: string;
  auth?: string;
  from: string;
  to: string;
}

/** One SMTP session; the first line of the RCPT reply. */
async function rcpt(port: number, s: Session): Promise<string> {
  const commands = [`EHLO ${s.helo ?? 'client.example.net'}`];
  if (s.auth !== undefined) commands.push(`AUTH PLAIN ${Buffer.from(`\0${s.auth}\0${TEST_PASSWORD}`).toString('base64')}`);
  commands.push(`MAIL FROM:<${s.from}>`, `RCPT TO:<${s.to}>`);
  const replies = await smtpSession(port, commands);
  for (const r of replies.slice(1, -1)) assert.ok(r.code >= 200 && r.code < 300, `before RCPT: ${r.lines.join(' | ')}`);
  return replies.at(-1)!.lines[0]!;
}

/** Starts the daemon (one restriction) and Postfix as the chart's image would run it. */
function chartUnderTest(postfixOptions: (daemonPort: number) => PostfixStartOptions) {
  const ctx = {} as { dir: string; daemon: DaemonProcess; postfix: PostfixServer };
  before(async () => {
    ctx.dir = await mkdtemp(path.join(tmpdir(), 'mw-chart-example-'));
    await writeFile(path.join(ctx.dir, 'noreply.yaml'), RESTRICTION);
    ctx.daemon = await startDaemon(['--store', ctx.dir]);
    ctx.postfix = await startPostfix(postfixOptions(ctx.daemon.port));
  });
  after(async () => {
    await ctx.postfix?.stop();
    await ctx.daemon?.stop();
    if (ctx.dir !== undefined) await rm(ctx.dir, { recursive: true, force: true });
  });
  return ctx;
}

async function recipientRestrictions(postfix: PostfixServer): Promise<string> {
  return (await postfix.postconf('-h', 'smtpd_recipient_restrictions')).trim();
}

/** The policy check, as the example writes it, then `rest` exactly. */
function assertPolicyFirst(value: string, daemonPort: number, rest: string): void {
  const policy = `check_policy_service { inet:127.0.0.1:${daemonPort}, timeout=10s, { default_action = DEFER_IF_PERMIT Policy service unavailable } }`;
  assert.ok(value.startsWith(POLICY_PREFIX), value);
  assert.equal(value, rest === '' ? policy : `${policy}, ${rest}`);
}

describe('docker-mailserver example (user-patches.sh) in real Postfix', () => {
  // The image's list, and what its start scripts add when postfix-receive-access.cf exists
  // (prepended) — the example must go in front of that too.
  const IMAGE_LIST = 'permit_sasl_authenticated, permit_mynetworks, reject_unauth_destination, reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname, reject_unknown_recipient_domain';
  const RECEIVE_ACCESS = 'check_recipient_access texthash:/etc/postfix/receive-access.cf';
  const values = parse(example('docker-mailserver', 'values.yaml')) as { configMaps: Record<string, { create: boolean; path: string; data: string }> };
  const patches = values.configMaps['user-patches.sh']!;

  const ctx = chartUnderTest((port) => ({
    mainCf: {
      mynetworks: '192.0.2.0/24',
      virtual_mailbox_maps: 'texthash:/etc/postfix/vmailbox',
      smtpd_sasl_auth_enable: 'yes',
      smtpd_relay_restrictions: 'permit_mynetworks permit_sasl_authenticated defer_unauth_destination',
      smtpd_recipient_restrictions: IMAGE_LIST,
    },
    files: [
      { target: '/etc/postfix/receive-access.cf', content: 'heidi@example.com REJECT Mailbox closed\n' },
      // docker-mailserver's own sed for postfix-receive-access.cf, then user-patches.sh last.
      startScript('10-receive-access.sh', `sed -i -E 's|^(smtpd_recipient_restrictions =)|\\1 ${RECEIVE_ACCESS},|' /etc/postfix/main.cf\n`),
      startScript('90-user-patches.sh', withPort(patches.data, port)),
    ],
  }));

  test('the chart mounts the script where docker-mailserver runs it', () => {
    assert.equal(patches.create, true);
    assert.equal(patches.path, 'user-patches.sh');
  });

  test('smtpd_recipient_restrictions: the policy check, then the image list with its receive-access check unchanged', async () => {
    assertPolicyFirst(await recipientRestrictions(ctx.postfix), ctx.daemon.port, `${RECEIVE_ACCESS}, ${IMAGE_LIST}`);
  });

  test('an unauthenticated client cannot relay', async () => {
    assert.equal(await rcpt(ctx.postfix.port, { from: 'someone@elsewhere.test', to: 'x@remote.test' }), '454 4.7.1 <x@remote.test>: Relay access denied');
  });

  test("the image's own checks still answer: receive-access and the HELO checks", async () => {
    assert.equal(await rcpt(ctx.postfix.port, { from: 'someone@elsewhere.test', to: 'heidi@example.com' }), '554 5.7.1 <heidi@example.com>: Recipient address rejected: Mailbox closed');
    assert.equal(await rcpt(ctx.postfix.port, { helo: 'client', from: 'someone@elsewhere.test', to: 'bob@example.com' }), '504 5.5.2 <client>: Helo command rejected: need fully-qualified hostname');
    assert.equal(await rcpt(ctx.postfix.port, { from: 'someone@elsewhere.test', to: 'bob@example.com' }), '250 2.1.5 Ok');
  });

  test('the policy check comes first: an authenticated sender is still refused what its restriction forbids', async () => {
    assert.equal(await rcpt(ctx.postfix.port, { auth: 'noreply@example.com', from: 'noreply@example.com', to: 'x@remote.test' }), NOT_AUTHORIZED('x@remote.test'));
    assert.equal(await rcpt(ctx.postfix.port, { auth: 'bob@example.com', from: 'bob@example.com', to: 'x@remote.test' }), '250 2.1.5 Ok');
  });

  test('a second start (same container filesystem) does not add the check twice', async () => {
    await ctx.postfix.exec(['bash', '/etc/postfix/start.d/90-user-patches.sh']);
    assertPolicyFirst(await recipientRestrictions(ctx.postfix), ctx.daemon.port, `${RECEIVE_ACCESS}, ${IMAGE_LIST}`);
  });
});

describe('Mailu example (postfix.overrides) in real Postfix', () => {
  const values = parse(example('mailu', 'values.yaml')) as { postfix: { overrides: Record<string, string> } };
  const overrides = values.postfix.overrides['postfix.cf']!;
  // Mailu's start.py: each non-comment line of /overrides/postfix.cf runs as os.system('postconf -e "<line>"').
  const asMailuRunsThem = (text: string) =>
    text
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => `postconf -e "${l}"`)
      .join('\n') + '\n';

  const ctx = chartUnderTest((port) => ({
    mainCf: {
      mynetworks: '192.0.2.0/24',
      virtual_mailbox_maps: 'texthash:/etc/postfix/vmailbox',
      smtpd_sasl_auth_enable: 'yes',
      smtpd_helo_required: 'yes',
      smtpd_client_restrictions: 'permit_mynetworks, reject_non_fqdn_sender, permit',
      smtpd_relay_restrictions: 'permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination',
      smtpd_recipient_restrictions: '',
    },
    files: [startScript('90-overrides.sh', withPort(asMailuRunsThem(overrides), port))],
  }));

  test('the override lines are single postconf settings without " or $', () => {
    for (const line of overrides.split('\n').filter((l) => l !== '')) assert.doesNotMatch(line, /["$]/);
  });

  test('smtpd_recipient_restrictions: the policy check alone (Mailu sets none of its own)', async () => {
    assertPolicyFirst(await recipientRestrictions(ctx.postfix), ctx.daemon.port, '');
  });

  test('an unauthenticated client cannot relay', async () => {
    assert.equal(await rcpt(ctx.postfix.port, { from: 'someone@elsewhere.test', to: 'x@remote.test' }), '554 5.7.1 <x@remote.test>: Relay access denied');
  });

  test("Mailu's own sender check still answers", async () => {
    assert.equal(await rcpt(ctx.postfix.port, { from: 'someone@nodot', to: 'bob@example.com' }), '504 5.5.2 <someone@nodot>: Sender address rejected: need fully-qualified address');
    assert.equal(await rcpt(ctx.postfix.port, { from: 'someone@elsewhere.test', to: 'bob@example.com' }), '250 2.1.5 Ok');
  });

  test('the policy check answers for authenticated senders', async () => {
    assert.equal(await rcpt(ctx.postfix.port, { auth: 'noreply@example.com', from: 'noreply@example.com', to: 'x@remote.test' }), NOT_AUTHORIZED('x@remote.test'));
    assert.equal(await rcpt(ctx.postfix.port, { auth: 'bob@example.com', from: 'bob@example.com', to: 'x@remote.test' }), '250 2.1.5 Ok');
  });
});

describe('bokysan example (/docker-init.d script) in real Postfix', () => {
  const values = parse(example('bokysan', 'values.yaml')) as {
    config: { general: Record<string, string> };
    extraVolumes: { name: string; configMap: { name: string } }[];
    extraVolumeMounts: { name: string; mountPath: string; subPath: string }[];
  };
  const configMap = parseAllDocuments(example('bokysan', 'policy-check.yaml')).map((d) => d.toJS() as { kind: string; metadata: { name: string }; data: Record<string, string> })[0]!;
  const mount = values.extraVolumeMounts[0]!;
  const domains = values.config.general.ALLOWED_SENDER_DOMAINS!;
  // What the image sets up for ALLOWED_SENDER_DOMAINS without SMTPD_SASL_USERS (lmdb there; texthash here).
  const IMAGE_LIST = 'reject_non_fqdn_recipient, reject_unknown_recipient_domain, check_sender_access texthash:/etc/postfix/allowed_senders, reject';

  const ctx = chartUnderTest((port) => ({
    mainCf: {
      mynetworks: '127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16',
      // Recipients in example.com: Postfix is their final destination, so
      // reject_unknown_recipient_domain needs no DNS for them.
      virtual_mailbox_maps: 'texthash:/etc/postfix/vmailbox',
      smtpd_relay_restrictions: 'permit',
      smtpd_recipient_restrictions: IMAGE_LIST,
    },
    files: [
      { target: '/etc/postfix/allowed_senders', content: domains.split(/\s+/).map((d) => `${d}\tOK\n`).join('') },
      startScript('90-docker-init.sh', withPort(configMap.data[mount.subPath]!, port)),
    ],
  }));

  test('the script is mounted from the ConfigMap into /docker-init.d, and the image may start (ALLOWED_SENDER_DOMAINS)', () => {
    const volume = values.extraVolumes.find((v) => v.name === mount.name);
    assert.equal(volume?.configMap.name, configMap.metadata.name);
    assert.match(mount.mountPath, /^\/docker-init\.d\/[^/]+\.sh$/);
    assert.ok(domains.trim() !== '');
  });

  test('smtpd_recipient_restrictions: the policy check, then the sender-domain restriction unchanged', async () => {
    assertPolicyFirst(await recipientRestrictions(ctx.postfix), ctx.daemon.port, IMAGE_LIST);
  });

  test('a client in mynetworks cannot send as a sender domain outside ALLOWED_SENDER_DOMAINS', async () => {
    assert.equal(await rcpt(ctx.postfix.port, { from: 'someone@elsewhere.test', to: 'carol@example.com' }), '554 5.7.1 <carol@example.com>: Recipient address rejected: Access denied');
    assert.equal(await rcpt(ctx.postfix.port, { from: 'bob@example.com', to: 'carol@example.com' }), '250 2.1.5 Ok');
  });

  test('the policy check answers first', async () => {
    assert.equal(await rcpt(ctx.postfix.port, { from: 'noreply@example.com', to: 'carol@example.com' }), NOT_AUTHORIZED('carol@example.com'));
  });
});
