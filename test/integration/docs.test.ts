import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startPostgres, type SqlServer } from '../harness/containers.ts';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { kubeTools } from '../harness/kube-tools.ts';
import { withDeadline } from '../helpers/deadline.ts';
import { eventually } from '../helpers/eventually.ts';
import { repoPath } from '../helpers/paths.ts';

// Every command in a ```sh block of the README and docs/ runs, in document order, against a
// real API server, from the repository root, and exits 0. Two commands are run by CI itself
// rather than here: `npm ci` (.ci/run installs with it) and `npm test` (this very suite).
// docs/migrating.md adopts a real PostgreSQL store seeded as an iRedMail server kept by hand;
// the variables the guide asks the reader to set are set here.

const DOCUMENTS = ['docs/install.md', 'docs/tenancy.md', 'docs/quickstart.md', 'docs/postfix.md', 'docs/semantics.md', 'docs/troubleshooting.md', 'docs/migrating.md', 'README.md'];
const RUN_BY_CI = new Set(['npm ci', 'npm test']);

/** The commands of every ```sh block of a Markdown file. */
export function shellCommands(markdown: string): string[] {
  const commands: string[] = [];
  let inBlock = false;
  let pending = '';
  for (const line of markdown.split('\n')) {
    if (!inBlock && line === '```sh') inBlock = true;
    else if (inBlock && line === '```') inBlock = false;
    else if (inBlock) {
      const text = line.trim();
      if (text === '' || text.startsWith('#')) continue;
      if (text.endsWith('\\')) pending += text.slice(0, -1) + ' ';
      else {
        commands.push(pending + text);
        pending = '';
      }
    }
  }
  return commands;
}

interface Outcome {
  code: number | null;
  output: string;
}

function sh(command: string, env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-o', 'pipefail', '-c', command], { cwd: repoPath(), env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** `npm start` serves until stopped: it must come up and print the Postfix line. */
async function npmStart(env: NodeJS.ProcessEnv): Promise<Outcome> {
  const child = spawn('npm', ['start'], { cwd: repoPath(), env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  // Until the line is printed or the command exits.
  const printedOrExited = new Promise<void>((resolve) => {
    const read = (d: Buffer): void => {
      output += d;
      if (output.includes('Point Postfix at it')) resolve();
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.once('exit', () => resolve());
  });
  await withDeadline(printedOrExited, 60_000, () => undefined);
  const started = output.includes('Point Postfix at it') && output.includes('check_policy_service { inet:127.0.0.1:7777');
  process.kill(-child.pid!, 'SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return { code: started ? 0 : 1, output };
}

/** Mailboxes of the store docs/migrating.md adopts: lists typed by hand, odd values included. */
const MIGRATED_MAILBOXES = [
  { username: 'alice@example.com', allowedrecipients: '@example.com', rejectedrecipients: '@.' },
  { username: 'bob@example.com', rejectedsenders: ' @Spam.TEST ,spam.org' },
  { username: 'carol@example.com', rejectedsenders: '@spam.test' },
  { username: 'dave@example.com' },
];

describe('every command in the README and docs/', () => {
  let cp: ControlPlane;
  let env: NodeJS.ProcessEnv;
  let store: SqlServer;
  let repo: string;
  /** What the reader of a document has set before its first command. */
  const documentEnv = new Map<string, NodeJS.ProcessEnv>();

  before(async () => {
    store = await startPostgres();
    await store.insertMailboxes(MIGRATED_MAILBOXES);
    repo = await mkdtemp(path.join(tmpdir(), 'mw-docs-repo-'));
    documentEnv.set('docs/migrating.md', {
      STORE: store.url,
      MAILWARDEN_STORE_PASSWORD: store.password,
      REPO: repo,
      // A fresh machine has no Git identity; the guide commits.
      GIT_AUTHOR_NAME: 'Mail Admin',
      GIT_AUTHOR_EMAIL: 'admin@example.com',
      GIT_COMMITTER_NAME: 'Mail Admin',
      GIT_COMMITTER_EMAIL: 'admin@example.com',
    });
    cp = await startControlPlane();
    const { helm, kubectl } = kubeTools();
    env = {
      ...process.env,
      KUBECONFIG: cp.kubeconfigPath,
      PATH: `${path.dirname(helm)}:${path.dirname(kubectl)}:${path.dirname(process.execPath)}:${process.env.PATH}`,
      HELM_CACHE_HOME: '/tmp/mailwarden-docs-helm/cache',
      HELM_CONFIG_HOME: '/tmp/mailwarden-docs-helm/config',
      HELM_DATA_HOME: '/tmp/mailwarden-docs-helm/data',
    };
  });
  after(async () => {
    await cp?.stop();
    await store?.stop();
    if (repo !== undefined) await rm(repo, { recursive: true, force: true });
  });

  for (const document of DOCUMENTS) {
    const commands = shellCommands(readFileSync(repoPath(document), 'utf8'));
    test(`${document} has commands`, () => assert.ok(commands.length > 0));
    for (const [index, command] of commands.entries()) {
      const steps = command.split(' && ').map((s) => s.trim());
      test(`${document} #${index + 1}: ${command}`, async () => {
        for (const step of steps) {
          if (RUN_BY_CI.has(step)) continue;
          let outcome: Outcome = { code: null, output: '' };
          // The API server serves a new CRD's discovery and OpenAPI a moment after it is
          // established; a person would simply run the command again.
          await eventually(step, async () => {
            outcome = step === 'npm start' ? await npmStart(env) : await sh(step, { ...env, ...documentEnv.get(document) });
            return outcome.code === 0;
          }, 10_000).catch(() => undefined); // the assertion below reports the last outcome
          assert.equal(outcome.code, 0, `${step}\n${outcome.output}`);
        }
      });
    }
  }

  test('only npm ci and npm test are left to CI', () => {
    const all = DOCUMENTS.flatMap((d) => shellCommands(readFileSync(repoPath(d), 'utf8'))).flatMap((c) => c.split(' && '));
    const skipped = all.filter((c) => RUN_BY_CI.has(c.trim()));
    assert.deepEqual([...new Set(skipped)].sort(), ['npm ci', 'npm test']);
  });
});
