import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { loadPolicydConfig } from '../../../src/policy/config.ts';
import { ConfigReloader } from '../../../src/policy/config-reload.ts';
import { PolicyDaemon } from '../../../src/policy/daemon.ts';
import { readPassword } from '../../../src/cli/secrets.ts';
import { startPostgres, type SqlServer } from '../../harness/containers.ts';
import { eventually } from '../../harness/operator-env.ts';
import { testTls, type TestTls } from '../stores/helpers.ts';
import { TestClient } from '../../unit/policy/client.ts';

// The daemon's live reload, with its config mounted as Kubernetes mounts a ConfigMap: files
// behind a `..data` symlink that is swapped atomically to a new timestamped directory.

/** A ConfigMap-style mount: dir/FILE → ..data/FILE → ..<n>/FILE. */
class ProjectedDir {
  readonly dir: string;
  #generation = 0;
  constructor(dir: string, files: Record<string, string>) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
    this.update(files);
    for (const name of Object.keys(files)) symlinkSync(join('..data', name), join(dir, name));
  }
  /** What the kubelet does: write a new directory, point ..data at it, remove the old one. */
  update(files: Record<string, string>): void {
    const previous = this.#generation;
    const next = `..gen_${++this.#generation}`;
    mkdirSync(join(this.dir, next));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(this.dir, next, name), text);
    symlinkSync(next, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (previous > 0) rmSync(join(this.dir, `..gen_${previous}`), { recursive: true, force: true });
  }
}

/** A daemon started from `file` with its live reload, a client connected to it, and the log lines it wrote. */
async function startReloadingDaemon(file: string, logs: object[]) {
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _e, done) => (logs.push(JSON.parse(String(chunk))), done()) }));
  const initial = await loadPolicydConfig(file, {});
  const daemon = new PolicyDaemon({ config: initial, logger, password: readPassword(initial, {}) });
  const { policy } = await daemon.start();
  const reloader = new ConfigReloader({ configFile: file, overrides: {}, initial, readPassword: (c) => readPassword(c, {}), apply: (c, p) => daemon.reconfigure(c, p), logger, debounceMs: 50, pollMs: 0 });
  await reloader.start();
  const client = await TestClient.open(policy as { host: string; port: number });
  return {
    client,
    /** Sends the test request and returns its answer. */
    async ask(): Promise<string | undefined> {
      const count = client.answers.length + 1;
      client.send(request);
      return (await client.waitAnswers(count)).at(-1);
    },
    async stop(): Promise<void> {
      client.socket.destroy();
      reloader.stop();
      await daemon.stop();
    },
  };
}

const RESTRICTION = `apiVersion: mailwarden.io/v1alpha1
kind: MailUserRestriction
metadata: { name: alice }
spec:
  mailbox: alice@example.com
  rejectedSenders: ["@.spam.test"]
`;

const configText = (rejectAction: string, store: string) => `listen: 127.0.0.1:0
store: ${store}
rejectAction: ${JSON.stringify(rejectAction)}
passwordFile: PASSWORD_FILE
http: { listen: "off" }
`;

const request = 'request=smtpd_access_policy\nprotocol_state=RCPT\nsender=bot@mx.spam.test\nrecipient=alice@example.com\n\n';

describe('policy daemon live reload of a mounted config', () => {
  let root: string;
  let config: ProjectedDir;
  let secret: ProjectedDir;
  let running: Awaited<ReturnType<typeof startReloadingDaemon>>;
  const logs: { level: number; msg: string; err?: { message: string } }[] = [];
  const ask = () => running.ask();
  const write = (rejectAction: string) => configText(rejectAction, join(root, 'store')).replace('PASSWORD_FILE', join(root, 'secret', 'password'));

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'mailwarden-reload-'));
    mkdirSync(join(root, 'store'));
    writeFileSync(join(root, 'store', 'alice.yaml'), RESTRICTION);
    secret = new ProjectedDir(join(root, 'secret'), { password: 'one' });
    config = new ProjectedDir(join(root, 'config'), { 'policyd.yaml': write('REJECT Old text') });
    running = await startReloadingDaemon(join(root, 'config', 'policyd.yaml'), logs);
  });
  after(async () => {
    await running?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  test('answers with the first configuration', async () => {
    assert.equal(await ask(), 'action=REJECT Old text');
  });

  test('a ConfigMap update (symlink swap) is applied on the open connection', async () => {
    config.update({ 'policyd.yaml': write('REJECT New text') });
    await eventually('new reject action', async () => (await ask()) === 'action=REJECT New text', 5_000);
    assert.equal(running.client.closed, false, 'the connection stayed open');
    assert.ok(logs.some((l) => l.msg === 'configuration reloaded'));
  });

  test('a bad new configuration is refused, logged, and the old one keeps serving', async () => {
    config.update({ 'policyd.yaml': write('not an action') });
    await eventually('the refusal logged', async () => logs.some((l) => l.msg.startsWith('new configuration rejected') && /rejectAction/.test(l.err?.message ?? '')), 5_000);
    assert.equal(await ask(), 'action=REJECT New text');
    config.update({ 'policyd.yaml': 'store: [unclosed' });
    await eventually('YAML error logged', async () => logs.some((l) => /not valid YAML/.test(l.err?.message ?? '')), 5_000);
    assert.equal(await ask(), 'action=REJECT New text');
  });

  test('a Secret update (new password) reopens the store without dropping the connection', async () => {
    config.update({ 'policyd.yaml': write('REJECT Third text') });
    await eventually('third action', async () => (await ask()) === 'action=REJECT Third text', 5_000);
    const reloads = logs.filter((l) => l.msg === 'configuration reloaded').length;
    secret.update({ password: 'two' });
    await eventually('reload for the password', async () => logs.filter((l) => l.msg === 'configuration reloaded').length > reloads, 5_000);
    const last = logs.filter((l) => l.msg === 'configuration reloaded').at(-1) as { storeReopened?: boolean };
    assert.equal(last.storeReopened, true);
    assert.equal(await ask(), 'action=REJECT Third text');
    assert.equal(running.client.closed, false);
  });
});

// The store's CA as the operator mounts it from a MailBackend's caSecretRef: a Secret directory
// named by tls.caFile. A rotated CA reopens the store, as a rotated password does.
describe('policy daemon live reload of a mounted store CA (real PostgreSQL over TLS)', () => {
  let root: string;
  let tls: TestTls;
  let db: SqlServer;
  let ca: ProjectedDir;
  let running: Awaited<ReturnType<typeof startReloadingDaemon>>;
  const logs: { msg: string; storeReopened?: boolean }[] = [];
  const ask = () => running.ask();

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'mailwarden-ca-reload-'));
    tls = await testTls();
    db = await startPostgres({ tls: tls.serving });
    await db.insertMailboxes([{ username: 'alice@example.com', rejectedsenders: '@.spam.test' }]);
    // First a CA that did not sign the server's certificate.
    ca = new ProjectedDir(join(root, 'ca'), { 'ca.crt': readFileSync(tls.otherCaFile, 'utf8') });
    const secret = new ProjectedDir(join(root, 'secret'), { password: db.password });
    const file = join(root, 'policyd.yaml');
    writeFileSync(
      file,
      JSON.stringify({
        listen: '127.0.0.1:0',
        store: db.url,
        storeSettings: { tls: { mode: 'verify-full', caFile: join(ca.dir, 'ca.crt') } },
        passwordFile: join(secret.dir, 'password'),
        lookupTimeout: '2s',
        http: { listen: 'off' },
      }),
    );
    running = await startReloadingDaemon(file, logs);
  });
  after(async () => {
    await running?.stop();
    await db?.stop();
    await tls?.remove();
    rmSync(root, { recursive: true, force: true });
  });

  test('another CA: the failure action; the signing CA swapped in: decided, on the same connection', async () => {
    assert.equal(await ask(), 'action=DEFER_IF_PERMIT Service temporarily unavailable', 'an unverified store is not read');
    ca.update({ 'ca.crt': readFileSync(tls.caFile, 'utf8') });
    await eventually('reload for the CA', async () => logs.some((l) => l.msg === 'configuration reloaded' && l.storeReopened === true), 5_000);
    assert.match(String(await ask()), /^action=REJECT/);
    assert.equal(running.client.closed, false);
  });
});
