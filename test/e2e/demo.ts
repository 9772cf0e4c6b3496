// npm run demo — the whole path on one machine, as a readable transcript:
// an SMTP client → Postfix 3.7 → mailwarden's container image (policy daemon) → PostgreSQL 15 with
// iRedMail's vmail.mailbox table. Seeds a few mailboxes and restrictions, sends a few messages,
// prints each SMTP exchange, changes a restriction live, and removes every container at the end
// (also on Ctrl-C). Needs Docker; the images are built on first use (a minute or two).
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, smtpSession, startPostfix, startPostgres, TEST_PASSWORD, type PostfixServer, type SqlServer } from '../harness/containers.ts';
import { ensureMailwardenImage, imageSize, startPolicydContainer, type PolicydContainer } from '../harness/mailwarden-image.ts';

const CACHE_TTL = '2s';
const tty = process.stdout.isTTY === true;
const paint = (code: string) => (text: string): string => (tty ? `\x1b[${code}m${text}\x1b[0m` : text);
const bold = paint('1');
const dim = paint('2');
const green = paint('32');
const red = paint('31');
const yellow = paint('33');
const say = (text = ''): void => void process.stdout.write(`${text}\n`);

/** iRedMail's four columns per mailbox (comma-separated lists). */
const MAILBOXES = [
  { username: 'alice@example.com', rejectedsenders: '@spam.test', rejectedrecipients: '@competitor.test' },
  { username: 'bob@example.com', allowedsenders: 'partner@gmail.com', rejectedsenders: '@gmail.com' },
  { username: 'carol@example.com', rejectedsenders: '@.bad.test' },
  { username: 'dave@example.com', allowedsenders: '@example.com', rejectedsenders: '@.' },
  { username: 'erin@example.com', allowedrecipients: '@example.com', rejectedrecipients: '@.' },
  { username: 'noreply@example.com', rejectedrecipients: '@.' },
];

interface Scene {
  readonly title: string;
  readonly why: string;
  readonly auth?: string;
  readonly from: string;
  readonly to: readonly string[];
}

const SCENES: readonly Scene[] = [
  { title: 'A spammer writes to Alice', why: 'alice: rejectedsenders = @spam.test', from: 'offers@spam.test', to: ['alice@example.com'] },
  { title: 'Bob\'s partner at gmail.com writes to him', why: 'bob: allowedsenders = partner@gmail.com beats rejectedsenders = @gmail.com', from: 'partner@gmail.com', to: ['bob@example.com'] },
  { title: 'Someone else at gmail.com writes to Bob', why: 'bob: rejectedsenders = @gmail.com', from: 'someone@gmail.com', to: ['bob@example.com'] },
  { title: 'A sub-domain of bad.test writes to Carol', why: 'carol: rejectedsenders = @.bad.test (the domain and every sub-domain)', from: 'x@mail.eu.bad.test', to: ['carol@example.com'] },
  { title: 'Erin (logged in) writes to a colleague and to gmail.com', why: 'erin: allowedrecipients = @example.com, rejectedrecipients = @.', auth: 'erin@example.com', from: 'erin@example.com', to: ['bob@example.com', 'friend@gmail.com'] },
  { title: 'The no-reply account (logged in) tries to send', why: 'noreply: rejectedrecipients = @. (receive-only)', auth: 'noreply@example.com', from: 'noreply@example.com', to: ['alice@example.com'] },
  { title: 'A bounce (null sender) for Dave', why: 'dave: rejectedsenders = @. matches the null sender too', from: '', to: ['dave@example.com'] },
  { title: 'Several recipients at once', why: 'refused ones are refused, the message goes to the rest', from: 'offers@spam.test', to: ['alice@example.com', 'bob@example.com', 'dave@example.com', 'carol@example.com'] },
];

let pg: SqlServer | undefined;
let postfix: PostfixServer | undefined;
let daemon: PolicydContainer | undefined;
let tearingDown: Promise<void> | undefined;

function teardown(): Promise<void> {
  tearingDown ??= (async () => {
    say();
    say(dim('Removing the containers…'));
    await Promise.allSettled([daemon?.stop(), postfix?.stop(), pg?.stop()]);
    // Containers still starting when Ctrl-C came are not known yet: every one labelled with this process.
    const ids = execFileSync('docker', ['ps', '-aq', '--filter', `label=mailwarden.test.pid=${process.pid}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
    if (ids.length > 0) execFileSync('docker', ['rm', '-f', '-v', ...ids], { stdio: 'ignore' });
    say(dim('Done.'));
  })();
  return tearingDown;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  // `on`, not `once`: a second Ctrl-C must not kill the process before the containers are gone.
  process.on(signal, () => {
    if (tearingDown !== undefined) return;
    say();
    say(yellow(`${signal}: stopping.`));
    void teardown().finally(() => process.exit(130));
  });
}

/** Prints one SMTP session as C:/S: lines and returns the RCPT replies. */
async function converse(port: number, scene: Scene): Promise<string[]> {
  const commands = ['EHLO client.example.net'];
  if (scene.auth !== undefined) commands.push(`AUTH PLAIN ${Buffer.from(`\0${scene.auth}\0${TEST_PASSWORD}`).toString('base64')}`);
  commands.push(`MAIL FROM:<${scene.from}>`, ...scene.to.map((r) => `RCPT TO:<${r}>`));
  const firstRcpt = commands.length - scene.to.length + 1;
  // Probe first, so that DATA is sent only when some recipient is accepted.
  let replies = await smtpSession(port, commands);
  const accepted = replies.slice(firstRcpt).some((r) => r.code === 250);
  if (accepted) {
    commands.push('DATA', `Subject: mailwarden demo\r\n\r\n${scene.title}.\r\n.`);
    replies = await smtpSession(port, commands);
  }
  // The greeting and EHLO are the same every time: shown from AUTH / MAIL FROM on.
  commands.forEach((cmd, i) => {
    if (i === 0) return;
    const shown = cmd.startsWith('AUTH PLAIN') ? `AUTH PLAIN ${dim(`<${scene.auth}, password>`)}` : cmd.startsWith('Subject:') ? dim('<message>') + '\n   C: .' : cmd;
    say(`   ${dim('C:')} ${shown}`);
    const reply = replies[i + 1];
    const text = reply?.lines.length === 1 ? reply.lines[0]! : `${reply?.lines[0]} ${dim(`(+${(reply?.lines.length ?? 1) - 1} lines)`)}`;
    const coloured = reply === undefined ? '' : reply.code >= 500 ? red(text) : reply.code >= 400 ? yellow(text) : cmd.startsWith('RCPT') ? green(text) : text;
    say(`   ${dim('S:')} ${coloured}`);
  });
  return replies.slice(firstRcpt, firstRcpt + scene.to.length).map((r) => r.lines[0] ?? '');
}

async function main(): Promise<void> {
  say(bold('mailwarden demo: SMTP client → Postfix 3.7 → mailwarden (container image) → PostgreSQL 15'));
  say();
  say(dim('Starting PostgreSQL and Postfix, building the mailwarden image when needed…'));
  const t0 = Date.now();
  const policyPort = await freePort();
  const policy = `check_policy_service { inet:127.0.0.1:${policyPort}, timeout=2s, { default_action = DEFER_IF_PERMIT Policy service unavailable } }`;
  const restrictions = `${policy}, permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination`;
  const [pgServer, mta, image] = await Promise.all([
    startPostgres().then((s) => (pg = s)),
    startPostfix({
      mainCf: {
        mynetworks: '192.0.2.0/24', // the demo client on 127.0.0.1 is a remote one
        virtual_mailbox_maps: 'texthash:/etc/postfix/vmailbox',
        smtpd_sasl_auth_enable: 'yes',
        smtpd_recipient_restrictions: restrictions,
      },
    }).then((s) => (postfix = s)),
    ensureMailwardenImage(),
  ]);
  await pgServer.insertMailboxes(MAILBOXES);
  daemon = await startPolicydContainer({
    store: pgServer.urlFor(pgServer.readOnly),
    env: { MAILWARDEN_STORE_PASSWORD: pgServer.readOnly.password },
    port: policyPort,
    args: ['--cache-ttl', CACHE_TTL, '--log-level', 'warn'],
  });
  const size = Math.round((await imageSize(image.tag)) / 1e6);
  say(`  PostgreSQL 15  127.0.0.1:${pgServer.port}  database vmail (iRedMail schema)`);
  say(`  mailwarden     127.0.0.1:${daemon.port}  ${image.tag} (${size} MB), read-only root, user 65532`);
  say(`                 policyd --store ${pgServer.urlFor(pgServer.readOnly)} --cache-ttl ${CACHE_TTL}`);
  say(`  Postfix 3.7    127.0.0.1:${mta.port}  smtpd_recipient_restrictions =`);
  say(`                   ${restrictions.replace(/, (?=permit_mynetworks)/, ',\n                   ')}`);
  say(dim(`  (up in ${((Date.now() - t0) / 1000).toFixed(1)} s)`));
  say();
  say(bold('Restrictions in vmail.mailbox:'));
  for (const row of await pgServer.query<Record<string, string>>(
    'SELECT username, allowedsenders, rejectedsenders, allowedrecipients, rejectedrecipients FROM mailbox ORDER BY username',
  )) {
    const lists = Object.entries(row)
      .filter(([k, v]) => k !== 'username' && v !== '')
      .map(([k, v]) => `${k} = ${v}`);
    say(`  ${row.username!.padEnd(20)} ${lists.join('; ')}`);
  }

  let n = 0;
  for (const scene of SCENES) {
    n += 1;
    say();
    say(bold(`${n}. ${scene.title}`) + dim(`  (${scene.why})`));
    await converse(mta.port, scene);
  }

  // A live change: the admin blocks a domain for Bob; it applies within the cache TTL.
  n += 1;
  say();
  say(bold(`${n}. A live change: Bob now also refuses mail from example.net`) + dim(`  (applies within --cache-ttl ${CACHE_TTL})`));
  const scene: Scene = { title: 'example.net writes to Bob', why: '', from: 'colleague@example.net', to: ['bob@example.com'] };
  say(dim('   before the change:'));
  await converse(mta.port, scene);
  say(`   ${dim('SQL:')} UPDATE mailbox SET rejectedsenders = '@gmail.com,@example.net' WHERE username = 'bob@example.com'`);
  await pgServer.query(`UPDATE mailbox SET rejectedsenders = '@gmail.com,@example.net' WHERE username = 'bob@example.com'`);
  const changed = Date.now();
  for (;;) {
    const [r] = await smtpSession(mta.port, ['EHLO client.example.net', 'MAIL FROM:<colleague@example.net>', 'RCPT TO:<bob@example.com>']).then((x) => x.slice(3));
    if (r?.code === 554 || Date.now() - changed > 10_000) break;
    await sleep(200);
  }
  say(dim(`   ${((Date.now() - changed) / 1000).toFixed(1)} s later:`));
  await converse(mta.port, scene);
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  exitCode = 1;
  process.stderr.write(`\n${red('demo failed:')} ${(err as Error).stack ?? String(err)}\n`);
} finally {
  await teardown();
}
process.exit(exitCode);
