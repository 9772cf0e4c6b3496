// The full Postfix path, one store at a time: a real Postfix 3.7 asks mailwarden's own container
// image (read-only root, user 65532, host network) at the RCPT stage, wired as iRedMail does it,
// and a client speaks real SMTP to Postfix. Each store file calls postfixSuite(kind) once; Postfix,
// the store and the daemons start once per file and are reused by every test.
//
// Postfix has two smtpd listeners: one asks the daemon with the default semantics, the other a
// second daemon with --semantics iredapd. 127.0.0.1 is not in mynetworks, so the test client is a
// remote one (relaying needs SMTP AUTH, which the image offers for its test mailboxes).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, smtpSession, startPostfix, TEST_PASSWORD, type PostfixServer, type SmtpReply } from '../../harness/containers.ts';
import { ensureMailwardenImage, startPolicydContainer, type PolicydContainer } from '../../harness/mailwarden-image.ts';
import { startStore, type Lists, type StoreKind, type StoreUnderTest } from './stores.ts';
import { eventually } from '../../helpers/eventually.ts';

/** Short, so that lookups reach the store (outages, changes) within a test's patience. */
export const CACHE_TTL_MS = 1000;
const POLICY_UNAVAILABLE = 'Policy service unavailable';

/** The mailboxes every store holds (all are test mailboxes of the Postfix image too). */
export const MAILBOXES: Record<string, Lists> = {
  // @domain in both directions
  'alice@example.com': { rejectedSenders: ['@spam.test'], rejectedRecipients: ['@competitor.test'] },
  // address: allowed beats rejected
  'bob@example.com': { allowedSenders: ['partner@gmail.com'], rejectedSenders: ['@gmail.com'] },
  // @.domain (sub-domains too under the default semantics) in both directions
  'carol@example.com': { rejectedSenders: ['@.bad.test'], rejectedRecipients: ['@.rival.test'] },
  // @. with an allowed exception: receives from the own domain only
  'dave@example.com': { allowedSenders: ['@example.com'], rejectedSenders: ['@.'] },
  // sends to the own domain only
  'erin@example.com': { allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'] },
  // address entries, local to local
  'frank@example.com': { rejectedRecipients: ['judy@example.com'] },
  'grace@example.com': { rejectedSenders: ['ivan@example.com'] },
  // receive-only
  'noreply@example.com': { rejectedRecipients: ['@.'] },
  // used only by the fault tests (never looked up before them)
  'oscar@example.com': { rejectedSenders: ['@spam.test'] },
  'peggy@example.com': { rejectedSenders: ['@spam.test'] },
  'heidi@example.com': {},
  // an allowed list alone (never rejects): shows what an allow answering OK skips
  'mallory@example.com': { allowedRecipients: ['@partner.test'] },
};

export type Listener = 'default' | 'iredapd';

export interface Message {
  /** SASL user (AUTH PLAIN with the image's test password). */
  readonly auth?: string;
  /** Envelope sender; '' is the null sender. */
  readonly from: string;
  readonly to: readonly string[];
  /** Send DATA (when any recipient was accepted). */
  readonly data?: boolean;
}

export interface Transcript {
  /** The first line of each RCPT reply, in order. */
  readonly rcpt: string[];
  /** The final reply to the message content, when sent. */
  readonly data?: string;
  readonly replies: SmtpReply[];
}

export const ACCEPTED = '250 2.1.5 Ok';
export const rejected = (rcpt: string): string => `554 5.7.1 <${rcpt}>: Recipient address rejected: Not authorized`;
export const deferred = (rcpt: string, text: string): string => `450 4.7.1 <${rcpt}>: Recipient address rejected: ${text}`;

/** Sends one message over a fresh SMTP session; throws when EHLO, AUTH or MAIL FROM fail. */
export async function sendMessage(port: number, msg: Message): Promise<Transcript> {
  const commands = ['EHLO client.example.net'];
  if (msg.auth !== undefined) commands.push(`AUTH PLAIN ${Buffer.from(`\0${msg.auth}\0${TEST_PASSWORD}`).toString('base64')}`);
  commands.push(`MAIL FROM:<${msg.from}>`);
  const firstRcpt = commands.length + 1; // replies[0] is the greeting
  commands.push(...msg.to.map((r) => `RCPT TO:<${r}>`));
  if (msg.data === true) commands.push('DATA', 'Subject: mailwarden test\r\n\r\nHello.\r\n.');
  const replies = await smtpSession(port, commands);
  for (const r of replies.slice(1, firstRcpt)) assert.ok(r.code >= 200 && r.code < 300, `before RCPT: ${r.lines.join(' | ')}`);
  const rcpt = replies.slice(firstRcpt, firstRcpt + msg.to.length).map((r) => r.lines[0] ?? '');
  return { rcpt, data: msg.data === true ? replies.at(-1)?.lines[0] : undefined, replies };
}

export interface PostfixEnv {
  readonly store: StoreUnderTest;
  readonly postfix: PostfixServer;
  readonly daemons: Record<Listener, PolicydContainer>;
  /** smtpd port per listener. */
  readonly smtp: Record<Listener, number>;
}

/** A value with spaces needs its own braces: `default_action=DEFER_IF_PERMIT text }` is fatal to smtpd. */
function policyCheck(port: number): string {
  return `check_policy_service { inet:127.0.0.1:${port}, timeout=2s, { default_action = DEFER_IF_PERMIT ${POLICY_UNAVAILABLE} } }`;
}

/** iRedMail's wiring: the policy service first, then the usual permits and the relay check. */
function recipientRestrictions(policyPort: number): string {
  return `${policyCheck(policyPort)}, permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination`;
}

/** main.cf of the suite's Postfix, asking the policy service on `policyPort` as iRedMail does. */
export function postfixMainCf(policyPort: number): Record<string, string> {
  return {
    mynetworks: '192.0.2.0/24',
    // Relay control only in smtpd_recipient_restrictions, after the policy service (the wiring
    // of the spec), so that what an OK from the policy service skips can be seen.
    smtpd_relay_restrictions: '',
    virtual_mailbox_maps: 'texthash:/etc/postfix/vmailbox',
    smtpd_sasl_auth_enable: 'yes',
    smtpd_recipient_restrictions: recipientRestrictions(policyPort),
  };
}

/** Starts the store, Postfix and both daemons; seeds MAILBOXES. */
export async function startPostfixEnv(kind: StoreKind): Promise<PostfixEnv> {
  const [policyDefault, policyIredapd, smtpIredapd] = await Promise.all([freePort(), freePort(), freePort()]);
  const [store, postfix] = await Promise.all([
    startStore(kind),
    startPostfix({
      mainCf: { ...postfixMainCf(policyDefault), mailwarden_iredapd_restrictions: recipientRestrictions(policyIredapd) },
      masterCf: [
        `127.0.0.1:${smtpIredapd}/inet = 127.0.0.1:${smtpIredapd} inet n - n - - smtpd -o smtpd_recipient_restrictions=$mailwarden_iredapd_restrictions`,
      ],
    }),
    ensureMailwardenImage(),
  ]);
  try {
    // One at a time: the first LDAP user creates the domain entry.
    for (const [address, lists] of Object.entries(MAILBOXES)) await store.put(address, lists);
    // kubernetes:// loads the Kubernetes client before listening: seconds more on a loaded machine.
    const common = { store: store.daemon.store, config: store.daemon.config, env: store.daemon.env, mounts: store.daemon.mounts, startTimeoutMs: 90_000 };
    const [d, i] = await Promise.all([
      startPolicydContainer({ ...common, port: policyDefault, args: ['--cache-ttl', `${CACHE_TTL_MS}ms`, '--log-level', 'warn'] }),
      startPolicydContainer({ ...common, port: policyIredapd, args: ['--semantics', 'iredapd', '--cache-ttl', `${CACHE_TTL_MS}ms`, '--log-level', 'warn'] }),
    ]);
    // Ready: listening, and a store that loads in the background (kubernetes://) has loaded.
    for (const daemon of [d, i]) await waitReadyz(daemon.httpPort);
    return { store, postfix, daemons: { default: d, iredapd: i }, smtp: { default: postfix.port, iredapd: smtpIredapd } };
  } catch (err) {
    await Promise.all([store.stop(), postfix.stop()]);
    throw err;
  }
}

async function waitReadyz(httpPort: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await fetch(`http://127.0.0.1:${httpPort}/readyz`).then((r) => r.status, () => 0)) !== 200) {
    if (Date.now() > deadline) assert.fail(`the daemon on ${httpPort} not ready within ${timeoutMs} ms`);
    await sleep(100);
  }
}

export async function stopPostfixEnv(env: PostfixEnv | undefined): Promise<void> {
  if (env === undefined) return;
  await Promise.all([env.daemons.default.stop(), env.daemons.iredapd.stop(), env.postfix.stop(), env.store.stop()]);
}

/** One message and the RCPT answers expected from each listener ('ok', 'reject' or a full line). */
interface Case {
  readonly name: string;
  readonly msg: Message;
  readonly expect: Record<Listener, readonly ('ok' | 'reject')[]>;
}

const both = (...e: ('ok' | 'reject')[]): Record<Listener, ('ok' | 'reject')[]> => ({ default: e, iredapd: e });

/** Every entry format in both directions, allowed over rejected, local to local, SASL, null sender. */
export const CASES: readonly Case[] = [
  // inbound (the recipient's sender lists)
  { name: 'inbound @domain matches the domain exactly', msg: { from: 'x@spam.test', to: ['alice@example.com'] }, expect: both('reject') },
  { name: 'inbound @domain does not match a sub-domain', msg: { from: 'x@mx.spam.test', to: ['alice@example.com'] }, expect: both('ok') },
  { name: 'inbound @.domain matches the domain', msg: { from: 'x@bad.test', to: ['carol@example.com'] }, expect: both('reject') },
  {
    name: 'inbound @.domain matches sub-domains (default) but not under iredapd',
    msg: { from: 'x@mx.eu.bad.test', to: ['carol@example.com'] },
    expect: { default: ['reject'], iredapd: ['ok'] },
  },
  { name: 'inbound address entry, local to local', msg: { from: 'ivan@example.com', to: ['grace@example.com', 'heidi@example.com'] }, expect: both('reject', 'ok') },
  { name: 'inbound address entry does not match another local sender', msg: { from: 'judy@example.com', to: ['grace@example.com'] }, expect: both('ok') },
  { name: 'inbound allowed address beats the rejected domain', msg: { from: 'partner@gmail.com', to: ['bob@example.com'] }, expect: both('ok') },
  { name: 'inbound rejected domain without the exception', msg: { from: 'other@gmail.com', to: ['bob@example.com'] }, expect: both('reject') },
  { name: 'inbound @. rejects everyone not allowed', msg: { from: 'x@example.net', to: ['dave@example.com'] }, expect: both('reject') },
  { name: 'inbound allowed @domain beats @., local to local', msg: { from: 'bob@example.com', to: ['dave@example.com'] }, expect: both('ok') },
  // outbound (the sender's recipient lists)
  { name: 'outbound @domain (SASL)', msg: { auth: 'alice@example.com', from: 'alice@example.com', to: ['x@competitor.test', 'x@sub.competitor.test'] }, expect: both('reject', 'ok') },
  {
    name: 'outbound @.domain matches the domain and (default) its sub-domains',
    msg: { auth: 'carol@example.com', from: 'carol@example.com', to: ['x@rival.test', 'x@mx.rival.test'] },
    expect: { default: ['reject', 'reject'], iredapd: ['reject', 'ok'] },
  },
  { name: 'outbound address entry, local to local', msg: { from: 'frank@example.com', to: ['judy@example.com', 'ivan@example.com'] }, expect: both('reject', 'ok') },
  { name: 'outbound @. (a receive-only mailbox)', msg: { auth: 'noreply@example.com', from: 'noreply@example.com', to: ['alice@example.com', 'x@example.net'] }, expect: both('reject', 'reject') },
  { name: 'outbound allowed @domain beats @.', msg: { auth: 'erin@example.com', from: 'erin@example.com', to: ['bob@example.com', 'x@gmail.com'] }, expect: both('ok', 'reject') },
  // the sending identity
  {
    name: 'SASL identity, not the envelope sender, is checked (default); iredapd uses the envelope',
    msg: { auth: 'noreply@example.com', from: 'alice@example.com', to: ['bob@example.com'] },
    expect: { default: ['reject'], iredapd: ['ok'] },
  },
  {
    name: 'envelope sender of a restricted mailbox sent by another SASL user',
    msg: { auth: 'alice@example.com', from: 'noreply@example.com', to: ['bob@example.com'] },
    expect: { default: ['ok'], iredapd: ['reject'] },
  },
  // the null sender
  { name: 'null sender: matched by @.', msg: { from: '', to: ['dave@example.com'] }, expect: both('reject') },
  { name: 'null sender: not matched by a domain', msg: { from: '', to: ['alice@example.com', 'bob@example.com'] }, expect: both('ok', 'ok') },
];

const line = (rcpt: string, e: 'ok' | 'reject'): string => (e === 'ok' ? ACCEPTED : rejected(rcpt));

/** Waits until `fn` returns true, for at most `ms`; returns the time it took. */
async function within(ms: number, fn: () => Promise<boolean>, what: string): Promise<number> {
  const t0 = Date.now();
  await eventually(what, fn, ms);
  return Date.now() - t0;
}

/** Registers the whole Postfix suite for one store. */
export function postfixSuite(kind: StoreKind): void {
  describe(`Postfix 3.7 → mailwarden image → ${kind}`, { timeout: 600_000 }, () => {
    let env: PostfixEnv;
    before(async () => {
      const t0 = Date.now();
      env = await startPostfixEnv(kind);
      if (process.env.MAILWARDEN_TEST_VERBOSE) console.error(`postfix suite (${kind}): environment up in ${Date.now() - t0} ms`);
    });
    after(async () => stopPostfixEnv(env));

    for (const listener of ['default', 'iredapd'] as const) {
      describe(`${listener} semantics`, () => {
        for (const c of CASES) {
          test(c.name, async () => {
            const t = await sendMessage(env.smtp[listener], c.msg);
            assert.deepEqual(t.rcpt, c.msg.to.map((r, i) => line(r, c.expect[listener][i]!)));
          });
        }

        test('several recipients: the refused ones are refused, the message goes to the rest', async () => {
          const to = ['alice@example.com', 'bob@example.com', 'dave@example.com', 'carol@example.com'];
          const t = await sendMessage(env.smtp[listener], { from: 'x@spam.test', to, data: true });
          assert.deepEqual(t.rcpt, [rejected(to[0]!), ACCEPTED, rejected(to[2]!), ACCEPTED]);
          assert.match(t.data ?? '', /^250 2\.0\.0 Ok: queued as \w+$/);
        });
      });
    }

    test('an allow answers DUNNO (default) or OK (iredapd): OK skips the relay check after it', async () => {
      // A remote, unauthenticated client naming a local sender whose allowed list matches.
      const msg = { from: 'mallory@example.com', to: ['x@partner.test'] };
      assert.deepEqual((await sendMessage(env.smtp.default, msg)).rcpt, ['554 5.7.1 <x@partner.test>: Relay access denied']);
      assert.deepEqual((await sendMessage(env.smtp.iredapd, msg)).rcpt, [ACCEPTED]);
    });

    test('a change in the store takes effect within the cache TTL', async () => {
      const msg = { from: 'x@late.test', to: ['heidi@example.com'] };
      assert.deepEqual((await sendMessage(env.smtp.default, msg)).rcpt, [ACCEPTED]);
      await env.store.put('heidi@example.com', { rejectedSenders: ['@late.test'] });
      const took = await within(CACHE_TTL_MS + 3000, async () => (await sendMessage(env.smtp.default, msg)).rcpt[0] === rejected(msg.to[0]!), 'the new list applies');
      if (process.env.MAILWARDEN_TEST_VERBOSE) console.error(`postfix suite (${kind}): change applied after ${took} ms`);
      await env.store.put('heidi@example.com', {});
      await within(CACHE_TTL_MS + 3000, async () => (await sendMessage(env.smtp.default, msg)).rcpt[0] === ACCEPTED, 'the list removal applies');
    });

    if (kind === 'kubernetes') {
      test('the API server stops mid-run: every answer still follows the resources; changes after it returns apply', async () => {
        const spam = { from: 'x@spam.test', to: ['alice@example.com', 'oscar@example.com', 'heidi@example.com'] };
        const expected = [rejected('alice@example.com'), rejected('oscar@example.com'), ACCEPTED];
        await env.store.stopServer!();
        try {
          for (let i = 0; i < 5; i++) {
            assert.deepEqual((await sendMessage(env.smtp.default, spam)).rcpt, expected);
            await sleep(CACHE_TTL_MS);
          }
        } finally {
          await env.store.startServer!();
        }
        await env.store.put('peggy@example.com', { rejectedSenders: ['@friends.test'] });
        await within(15_000, async () => (await sendMessage(env.smtp.default, { from: 'x@friends.test', to: ['peggy@example.com'] })).rcpt[0] === rejected('peggy@example.com'), 'a change after the outage applies');
        await env.store.put('peggy@example.com', { rejectedSenders: ['@spam.test'] });
      });
    }

    if (kind !== 'manifests' && kind !== 'kubernetes') {
      test('the store stops mid-run: 450 for what is not known, nothing refused is accepted, normal after it returns', async () => {
        const spam = { from: 'x@spam.test', to: ['alice@example.com', 'oscar@example.com'] };
        // alice is known (cached, then stale); oscar was never looked up.
        assert.deepEqual((await sendMessage(env.smtp.default, { from: 'x@spam.test', to: ['alice@example.com'] })).rcpt, [rejected('alice@example.com')]);
        await env.store.stopServer!();
        try {
          await sleep(CACHE_TTL_MS + 200);
          const t = await sendMessage(env.smtp.default, spam);
          // The last known good data still refuses; what was never seen is deferred, not accepted.
          assert.deepEqual(t.rcpt, [rejected('alice@example.com'), deferred('oscar@example.com', 'Service temporarily unavailable')]);
          // A message from someone the lists allow is deferred too when its mailbox is unknown.
          const p = await sendMessage(env.smtp.default, { from: 'friend@example.net', to: ['peggy@example.com'] });
          assert.deepEqual(p.rcpt, [deferred('peggy@example.com', 'Service temporarily unavailable')]);
        } finally {
          await env.store.startServer!();
        }
        await within(15_000, async () => (await sendMessage(env.smtp.default, spam)).rcpt[1] === rejected('oscar@example.com'), 'normal answers after the store returns');
        assert.deepEqual((await sendMessage(env.smtp.default, { from: 'friend@example.net', to: ['peggy@example.com'] })).rcpt, [ACCEPTED]);
      });
    }

    test('the daemon is killed: Postfix answers its default action, and recovers when it is back', async () => {
      const daemon = env.daemons.default;
      await daemon.kill();
      try {
        const t = await sendMessage(env.smtp.default, { from: 'x@spam.test', to: ['alice@example.com', 'bob@example.com'] });
        assert.deepEqual(t.rcpt, [deferred('alice@example.com', POLICY_UNAVAILABLE), deferred('bob@example.com', POLICY_UNAVAILABLE)]);
      } finally {
        await daemon.start();
      }
      await within(10_000, async () => {
        const t = await sendMessage(env.smtp.default, { from: 'x@spam.test', to: ['alice@example.com', 'bob@example.com'] });
        return t.rcpt[0] === rejected('alice@example.com') && t.rcpt[1] === ACCEPTED;
      }, 'normal answers after the restart');
    });
  });
}
