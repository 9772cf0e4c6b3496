// Real servers in Docker containers for integration tests: PostgreSQL 15, MariaDB 10.11,
// OpenLDAP 2.5 and Postfix 3.7, built from test/images/<name>/ (Debian bookworm packages).
//
//   const pg = await startPostgres();                 // iRedMail `vmail` schema loaded
//   await pg.insertMailboxes([{ username: 'alice@example.com', allowedrecipients: null }]);
//   pg.url                 // postgres://vmailadmin@127.0.0.1:<port>/vmail (no password)
//   await pg.stopServer(); // outage: the port refuses connections, data is kept
//   await pg.startServer();// same port, ready again
//   await pg.stop();       // container removed
//
// Every container uses host networking and binds 127.0.0.1:<port> only, the port chosen at run
// time (freePort()). Images are tagged mailwarden-test/<name>:<hash of the image directory> and
// built on first use with `docker build --network host`, FROM $MAILWARDEN_BASE_IMAGE when set (the
// local debootstrap image made by .ci/docker.sh), else the Dockerfile's debian:bookworm-slim.
// Containers are removed when the test process exits, and ones left by dead test processes are
// removed on the next start (Ryuk is disabled: it needs an image from a registry).
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { Client as LdapClient, Attribute, Change } from 'ldapts';
import type { StartedTestContainer } from 'testcontainers';

// Ryuk needs an image from a registry; the harness removes its containers itself (see below).
if (process.env.TESTCONTAINERS_RYUK_DISABLED === undefined) process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
// Every server is on 127.0.0.1 (host networking). Without this, testcontainers running inside a
// container looks for the gateway of Docker's "bridge" network, which dockerd --bridge=none lacks.
if (process.env.TESTCONTAINERS_HOST_OVERRIDE === undefined) process.env.TESTCONTAINERS_HOST_OVERRIDE = '127.0.0.1';

const execFileP = promisify(execFile);
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const IMAGES_DIR = path.join(REPO_ROOT, 'test', 'images');
export const FIXTURES_DIR = path.join(REPO_ROOT, 'test', 'fixtures');
export const HOST = '127.0.0.1';
/** Password of every account the test images create. */
export const TEST_PASSWORD = 'mailwarden';
const READY = 'MAILWARDEN-READY';
const LABEL = 'mailwarden.test';

export type ImageName = 'postgres' | 'mariadb' | 'openldap' | 'postfix';

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

/** What every started server offers. */
export interface ServerHandle {
  readonly kind: ImageName;
  readonly image: string;
  readonly containerId: string;
  /** Always 127.0.0.1. */
  readonly host: string;
  readonly port: number;
  /** Milliseconds from container start to the server answering. */
  readonly startupMs: number;
  /** Removes the container (idempotent). */
  stop(): Promise<void>;
  /** Outage: stops the server (connections are closed, the port refuses); data and port are kept. */
  stopServer(): Promise<void>;
  /** Recovery after stopServer(): starts it again on the same port and waits until it answers. */
  startServer(): Promise<void>;
  /** stopServer() then startServer(). */
  restartServer(): Promise<void>;
  /** Freezes the server's processes: connections stay open but nothing answers (a hung server). */
  pause(): Promise<void>;
  unpause(): Promise<void>;
  /** The container's output so far. */
  logs(): Promise<string>;
}

export interface MailboxRow {
  /** The full address; stored as given (iRedMail stores it lower-case). */
  username: string;
  /** Defaults to the part after '@'. */
  domain?: string;
  name?: string;
  password?: string;
  active?: number;
  /** null stores SQL NULL (an old row); the column is made nullable first. */
  allowedsenders?: string | null;
  rejectedsenders?: string | null;
  allowedrecipients?: string | null;
  rejectedrecipients?: string | null;
  /** Any other column of the table. */
  [column: string]: string | number | null | undefined;
}

export const RESTRICTION_COLUMNS = ['allowedsenders', 'rejectedsenders', 'allowedrecipients', 'rejectedrecipients'] as const;

export interface SqlServer extends ServerHandle {
  readonly kind: 'postgres' | 'mariadb';
  readonly dialect: 'postgres' | 'mysql';
  /** The read-write account (vmailadmin, owner of the vmail tables). */
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** postgres://vmailadmin@127.0.0.1:<port>/vmail or mysql://…, without the password. */
  readonly url: string;
  /** The same with the password. */
  readonly urlWithPassword: string;
  /** Read-only account (vmail: SELECT on the vmail tables). */
  readonly readOnly: Credentials;
  /** Superuser (postgres / root). */
  readonly admin: Credentials;
  /** URL for other credentials, optionally with their password. */
  urlFor(creds: Credentials, withPassword?: boolean): string;
  /** Runs one statement as vmailadmin (or `as`) in database vmail; placeholders $1 (pg) or ? (mysql). */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[], as?: Credentials): Promise<T[]>;
  /** Applies the iRedMail fixture (test/fixtures/iredmail-{postgres,mysql}.sql); idempotent. */
  loadFixtures(): Promise<void>;
  /** Makes the four restriction columns nullable (DEFAULT '' kept), as on a server with old rows. */
  allowNullRestrictions(table?: string): Promise<void>;
  /** Inserts rows into `table` (default mailbox); see MailboxRow. */
  insertMailboxes(rows: MailboxRow[], table?: string): Promise<void>;
  /** Reads one mailbox row by exact username (the server's collation applies). */
  getMailbox(username: string, table?: string): Promise<Record<string, unknown> | undefined>;
  /** Deletes all rows of `table` (default mailbox). */
  clearMailboxes(table?: string): Promise<void>;
}

export interface LdapUser {
  /** Primary address; the entry is mail=<mail>,ou=Users,domainName=<domain>,o=domains,<suffix>. */
  mail: string;
  /** Default: the local part. */
  uid?: string;
  cn?: string;
  sn?: string;
  accountStatus?: 'active' | 'disabled' | string;
  shadowAddress?: string[];
  mailWhitelistRecipient?: string[];
  mailBlacklistRecipient?: string[];
  amavisWhitelistSender?: string[];
  amavisBlacklistSender?: string[];
  /** Default inetOrgPerson, shadowAccount, amavisAccount, mailUser, top; leave out amavisAccount to
   * test writers that must add it. */
  objectClass?: string[];
  /** Further attributes, overriding the defaults above; an empty list leaves the attribute out. */
  attributes?: Record<string, string | string[]>;
}

export interface LdapServer extends ServerHandle {
  readonly kind: 'openldap';
  /** ldap://127.0.0.1:<port> */
  readonly url: string;
  /** ldaps://127.0.0.1:<port>, when started with TLS. */
  readonly ldapsUrl: string | undefined;
  /** The suffix, e.g. dc=example,dc=com. */
  readonly suffix: string;
  readonly baseDn: string;
  /** o=domains,<suffix> */
  readonly domainsDn: string;
  /** Read-write account cn=vmailadmin,<suffix>. */
  readonly bindDn: string;
  readonly password: string;
  /** Read-only account cn=vmail,<suffix>. */
  readonly readOnly: { readonly bindDn: string; readonly password: string };
  /** Root DN cn=Manager,<suffix>. */
  readonly admin: { readonly bindDn: string; readonly password: string };
  /** A bound client (root DN by default); closed after fn. */
  withClient<T>(fn: (client: LdapClient) => Promise<T>, as?: { bindDn: string; password: string }): Promise<T>;
  /** Adds domainName=<domain>,o=domains,<suffix> and its ou=Users if missing; returns the domain DN. */
  addLdapDomain(domain: string): Promise<string>;
  /** Adds a user (and its domain when missing); returns its DN. */
  addLdapUser(user: LdapUser): Promise<string>;
  userDn(mail: string): string;
  /** All attributes of one entry, values as strings (undefined when absent). */
  getEntry(dn: string): Promise<Record<string, string[]> | undefined>;
  /** Deletes everything below o=domains. */
  clearDomains(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// docker plumbing

async function docker(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  try {
    const { stdout } = await execFileP('docker', args, {
      timeout: opts.timeoutMs ?? 60_000,
      maxBuffer: 64 * 1024 * 1024,
      env: opts.env ?? process.env,
    });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string };
    throw new Error(`docker ${args.join(' ')} failed: ${e.message}\n${e.stderr ?? ''}`.trim(), { cause: err });
  }
}

async function dockerOk(args: string[]): Promise<boolean> {
  try {
    await docker(args);
    return true;
  } catch {
    return false;
  }
}

function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    const rel = prefix === '' ? name : `${prefix}/${name}`;
    if (statSync(full).isDirectory()) out.push(...listFiles(full, rel));
    else out.push(rel);
  }
  return out;
}

/** The base image given to the Dockerfiles' BASE_IMAGE build argument, if any. */
export function baseImage(): string | undefined {
  const v = process.env.MAILWARDEN_BASE_IMAGE;
  return v === undefined || v === '' ? undefined : v;
}

let buildkitChecked: NodeJS.ProcessEnv | undefined;
async function buildEnv(): Promise<NodeJS.ProcessEnv> {
  if (buildkitChecked !== undefined) return buildkitChecked;
  const env = { ...process.env };
  // Without the buildx plugin, the legacy builder (which honours --network host) is the one that works.
  if (env.DOCKER_BUILDKIT === undefined && !(await dockerOk(['buildx', 'version']))) env.DOCKER_BUILDKIT = '0';
  buildkitChecked = env;
  return env;
}

const imageCache = new Map<string, Promise<string>>();

/**
 * Builds test/images/<name> unless mailwarden-test/<name>:<hash> exists; returns that tag. The hash
 * covers the directory's files and the base image (name and id).
 */
export function ensureImage(name: ImageName | string): Promise<string> {
  let p = imageCache.get(name);
  if (p === undefined) {
    p = buildImage(name);
    p.catch(() => imageCache.delete(name));
    imageCache.set(name, p);
  }
  return p;
}

async function buildImage(name: string): Promise<string> {
  const dir = path.join(IMAGES_DIR, name);
  if (!existsSync(path.join(dir, 'Dockerfile'))) throw new Error(`no test image ${name}: ${dir}/Dockerfile is missing`);
  const base = baseImage();
  const h = createHash('sha256');
  for (const rel of listFiles(dir)) {
    h.update(rel).update('\0').update(readFileSync(path.join(dir, rel))).update('\0');
  }
  if (base !== undefined) {
    const baseId = (await docker(['image', 'inspect', '--format', '{{.Id}}', base]).catch(() => '')).trim();
    h.update(`base=${base}@${baseId}`);
  }
  const hash = h.digest('hex').slice(0, 16);
  const tag = `mailwarden-test/${name}:${hash}`;
  if (await dockerOk(['image', 'inspect', '--format', '{{.Id}}', tag])) return tag;

  // One build per tag at a time across test processes.
  const lockDir = path.join(tmpdir(), `mailwarden-build-${name}-${hash}.lock`);
  const deadline = Date.now() + 20 * 60_000;
  for (;;) {
    try {
      mkdirSync(lockDir);
      break;
    } catch {
      if (await dockerOk(['image', 'inspect', '--format', '{{.Id}}', tag])) return tag;
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
    if (await dockerOk(['image', 'inspect', '--format', '{{.Id}}', tag])) return tag;
    const args = ['build', '--network', 'host', '-t', tag, '--label', `${LABEL}.image=${name}`, '--label', `${LABEL}.hash=${hash}`];
    if (base !== undefined) args.push('--build-arg', `BASE_IMAGE=${base}`);
    args.push(dir);
    const t0 = Date.now();
    await docker(args, { timeoutMs: 20 * 60_000, env: await buildEnv() });
    if (process.env.MAILWARDEN_TEST_VERBOSE) console.error(`harness: built ${tag} in ${Date.now() - t0} ms`);
    // Older builds of the same image are no longer needed.
    const old = (await docker(['images', '--filter', `label=${LABEL}.image=${name}`, '--format', '{{.Repository}}:{{.Tag}}']))
      .split('\n')
      .filter((t) => t !== '' && t !== tag && t.startsWith(`mailwarden-test/${name}:`));
    for (const t of old) await dockerOk(['rmi', t]);
    return tag;
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

// Containers of this process, removed at exit; those of dead processes are removed at first start.
const liveContainers = new Set<string>();
let cleanupInstalled = false;
async function installCleanup(): Promise<void> {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    if (liveContainers.size === 0) return;
    try {
      execFileSync('docker', ['rm', '-f', '-v', ...liveContainers], { stdio: 'ignore', timeout: 30_000 });
    } catch {
      /* best effort */
    }
  });
  try {
    const out = await docker(['ps', '-a', '--filter', `label=${LABEL}.pid`, '--format', `{{.ID}} {{.Label "${LABEL}.pid"}}`]);
    const stale: string[] = [];
    for (const line of out.split('\n')) {
      const [id, pid] = line.trim().split(' ');
      if (id === undefined || id === '' || pid === undefined) continue;
      if (!pidAlive(Number(pid))) stale.push(id);
    }
    if (stale.length > 0) await dockerOk(['rm', '-f', '-v', ...stale]);
  } catch {
    /* best effort */
  }
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readyCount(id: string): Promise<number> {
  const out = await execFileP('docker', ['logs', id], { maxBuffer: 64 * 1024 * 1024 }).catch(() => ({ stdout: '', stderr: '' }));
  const text = `${out.stdout}${out.stderr}`;
  let n = 0;
  for (let i = text.indexOf(READY); i !== -1; i = text.indexOf(READY, i + 1)) n++;
  return n;
}

async function waitReady(id: string, count: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await readyCount(id)) < count) {
    const state = (await docker(['inspect', '--format', '{{.State.Status}}', id]).catch(() => '')).trim();
    if (state === 'exited' || state === 'dead') {
      throw new Error(`${what} exited while starting:\n${await docker(['logs', '--tail', '50', id]).catch(() => '')}`);
    }
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms`);
    await sleep(50);
  }
}

interface StartSpec {
  kind: ImageName;
  env: Record<string, string>;
  files?: { content: string; target: string; mode?: number }[];
  cmd?: string[];
  startTimeoutMs?: number;
}

interface Started {
  kind: ImageName;
  image: string;
  container: StartedTestContainer;
  containerId: string;
  port: number;
  startupMs: number;
  base: ServerHandle;
}

async function startContainer(spec: StartSpec & { port: number }): Promise<Started> {
  await installCleanup();
  const image = await ensureImage(spec.kind);
  const { GenericContainer, Wait } = await import('testcontainers');
  const timeout = spec.startTimeoutMs ?? 60_000;
  let gc = new GenericContainer(image)
    .withNetworkMode('host')
    .withEnvironment({ ...spec.env, PORT: String(spec.port) })
    .withLabels({ [LABEL]: spec.kind, [`${LABEL}.pid`]: String(process.pid), [`${LABEL}.port`]: String(spec.port) })
    .withWaitStrategy(Wait.forLogMessage(READY))
    .withStartupTimeout(timeout);
  if (spec.files !== undefined && spec.files.length > 0) {
    gc = gc.withCopyContentToContainer(spec.files.map((f) => ({ content: f.content, target: f.target, mode: f.mode ?? 0o644 })));
  }
  if (spec.cmd !== undefined) gc = gc.withCommand(spec.cmd);
  const t0 = Date.now();
  const container = await gc.start();
  const startupMs = Date.now() - t0;
  const id = container.getId();
  liveContainers.add(id);
  const what = `${spec.kind} container ${id.slice(0, 12)} (127.0.0.1:${spec.port})`;
  let removed = false;
  let readySeen = 1;
  const base: ServerHandle = {
    kind: spec.kind,
    image,
    containerId: id,
    host: HOST,
    port: spec.port,
    startupMs,
    async stop() {
      if (removed) return;
      removed = true;
      await dockerOk(['rm', '-f', '-v', id]);
      liveContainers.delete(id);
    },
    async stopServer() {
      readySeen = await readyCount(id);
      await docker(['stop', '-t', '10', id]);
    },
    async startServer() {
      await docker(['start', id]);
      await waitReady(id, readySeen + 1, timeout, what);
      readySeen += 1;
    },
    async restartServer() {
      await base.stopServer();
      await base.startServer();
    },
    async pause() {
      await docker(['pause', id]);
    },
    async unpause() {
      await docker(['unpause', id]);
    },
    async logs() {
      const { stdout, stderr } = await execFileP('docker', ['logs', id], { maxBuffer: 64 * 1024 * 1024 });
      return `${stdout}${stderr}`;
    },
  };
  return { kind: spec.kind, image, container, containerId: id, port: spec.port, startupMs, base };
}

/** Starts on a fresh port, retrying with another port if the chosen one was taken meanwhile. */
async function startOnFreePort(spec: StartSpec, port?: number): Promise<Started> {
  for (let attempt = 0; ; attempt++) {
    const p = port ?? (await freePort());
    try {
      return await startContainer({ ...spec, port: p });
    } catch (err) {
      if (port !== undefined || attempt >= 2) throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// SQL servers

/** A server's TLS certificate (PEM, with its chain) and private key. */
export interface ServingCertificate {
  certificate: string;
  key: string;
}

export interface SqlStartOptions {
  /** Apply the iRedMail fixture after start (default true). */
  fixtures?: boolean;
  /** Serve TLS (plain connections stay allowed) with this certificate (PEM, chain) and key. */
  tls?: ServingCertificate;
  /** Fixed port instead of a free one. */
  port?: number;
  startTimeoutMs?: number;
}

function ident(dialect: 'postgres' | 'mysql', name: string): string {
  return dialect === 'postgres' ? `"${name.replaceAll('"', '""')}"` : `\`${name.replaceAll('`', '``')}\``;
}

function splitSql(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => !/^\s*--/.test(l))
    .join('\n')
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function makeSqlServer(started: Started, dialect: 'postgres' | 'mysql', admin: Credentials): SqlServer {
  const database = 'vmail';
  const rw: Credentials = { user: 'vmailadmin', password: TEST_PASSWORD };
  const ro: Credentials = { user: 'vmail', password: TEST_PASSWORD };
  const scheme = dialect === 'postgres' ? 'postgres' : 'mysql';
  const urlFor = (c: Credentials, withPassword = false): string =>
    `${scheme}://${encodeURIComponent(c.user)}${withPassword ? `:${encodeURIComponent(c.password)}` : ''}@${HOST}:${started.port}/${database}`;

  async function query<T>(sql: string, params: unknown[] = [], as: Credentials = rw): Promise<T[]> {
    if (dialect === 'postgres') {
      const client = new pg.Client({ host: HOST, port: started.port, user: as.user, password: as.password, database });
      await client.connect();
      try {
        const res = await client.query(sql, params);
        return res.rows as T[];
      } finally {
        await client.end();
      }
    }
    const conn = await mysql.createConnection({ host: HOST, port: started.port, user: as.user, password: as.password, database });
    try {
      const [rows] = await conn.query(sql, params);
      return (Array.isArray(rows) ? rows : []) as T[];
    } finally {
      await conn.end();
    }
  }

  const server: SqlServer = {
    ...started.base,
    kind: started.kind as 'postgres' | 'mariadb',
    dialect,
    user: rw.user,
    password: rw.password,
    database,
    url: urlFor(rw),
    urlWithPassword: urlFor(rw, true),
    readOnly: ro,
    admin,
    urlFor,
    query,
    async loadFixtures() {
      const file = path.join(FIXTURES_DIR, dialect === 'postgres' ? 'iredmail-postgres.sql' : 'iredmail-mysql.sql');
      for (const stmt of splitSql(await readFile(file, 'utf8'))) await query(stmt);
    },
    async allowNullRestrictions(table = 'mailbox') {
      const t = ident(dialect, table);
      for (const col of RESTRICTION_COLUMNS) {
        const c = ident(dialect, col);
        await query(
          dialect === 'postgres'
            ? `ALTER TABLE ${t} ALTER COLUMN ${c} DROP NOT NULL`
            : `ALTER TABLE ${t} MODIFY ${c} TEXT NULL DEFAULT ''`,
        );
      }
    },
    async insertMailboxes(rows, table = 'mailbox') {
      if (rows.length === 0) return;
      if (rows.some((r) => RESTRICTION_COLUMNS.some((c) => r[c] === null))) await server.allowNullRestrictions(table);
      for (const row of rows) {
        const full: Record<string, string | number | null> = {};
        for (const [k, v] of Object.entries(row)) if (v !== undefined) full[k] = v;
        if (full.domain === undefined) full.domain = row.username.slice(row.username.lastIndexOf('@') + 1);
        const cols = Object.keys(full);
        const marks = cols.map((_, i) => (dialect === 'postgres' ? `$${i + 1}` : '?'));
        await query(
          `INSERT INTO ${ident(dialect, table)} (${cols.map((c) => ident(dialect, c)).join(', ')}) VALUES (${marks.join(', ')})`,
          cols.map((c) => full[c]),
        );
      }
    },
    async getMailbox(username, table = 'mailbox') {
      const rows = await query<Record<string, unknown>>(
        `SELECT * FROM ${ident(dialect, table)} WHERE ${ident(dialect, 'username')} = ${dialect === 'postgres' ? '$1' : '?'}`,
        [username],
      );
      return rows[0];
    },
    async clearMailboxes(table = 'mailbox') {
      await query(`DELETE FROM ${ident(dialect, table)}`);
    },
  };
  return server;
}

/** The files a TLS-serving container reads (a test key: readable by the server's own user). */
function tlsFiles(tls: ServingCertificate | undefined): StartSpec['files'] {
  if (tls === undefined) return undefined;
  return [
    { content: tls.certificate, target: '/tls/server.crt' },
    { content: tls.key, target: '/tls/server.key', mode: 0o644 },
  ];
}

/** PostgreSQL 15 with database vmail (case-sensitive text comparison). */
export async function startPostgres(opts: SqlStartOptions = {}): Promise<SqlServer> {
  // The entrypoint turns TLS on when it finds /tls/server.{crt,key}.
  const started = await startOnFreePort({ kind: 'postgres', env: {}, files: tlsFiles(opts.tls), startTimeoutMs: opts.startTimeoutMs }, opts.port);
  const server = makeSqlServer(started, 'postgres', { user: 'postgres', password: TEST_PASSWORD });
  if (opts.fixtures !== false) await server.loadFixtures();
  return server;
}

/** MariaDB 10.11 with database vmail (utf8mb4_general_ci: case-insensitive). */
export async function startMariadb(opts: SqlStartOptions = {}): Promise<SqlServer> {
  const cmd = opts.tls === undefined ? undefined : ['--ssl-cert=/tls/server.crt', '--ssl-key=/tls/server.key'];
  const started = await startOnFreePort({ kind: 'mariadb', env: {}, files: tlsFiles(opts.tls), cmd, startTimeoutMs: opts.startTimeoutMs }, opts.port);
  const server = makeSqlServer(started, 'mysql', { user: 'root', password: TEST_PASSWORD });
  if (opts.fixtures !== false) await server.loadFixtures();
  return server;
}

// ---------------------------------------------------------------------------------------------
// LDAP

export interface LdapStartOptions {
  /** Default dc=example,dc=com. */
  suffix?: string;
  /** Password of cn=Manager,<suffix>; default "mailwarden". */
  rootPassword?: string;
  port?: number;
  startTimeoutMs?: number;
  /** Serve StartTLS and ldaps:// with this certificate (PEM, chain) and key. */
  tls?: ServingCertificate;
}

function toLdapValues(v: string | string[]): string[] {
  return Array.isArray(v) ? v : [v];
}

/** OpenLDAP 2.5 with the iRedMail schema and o=domains,<suffix>. */
export async function startOpenldap(opts: LdapStartOptions = {}): Promise<LdapServer> {
  const suffix = opts.suffix ?? 'dc=example,dc=com';
  const rootPassword = opts.rootPassword ?? TEST_PASSWORD;
  // With TLS, StartTLS on the ldap:// port and an ldaps:// listener on a second one.
  const tlsPort = opts.tls === undefined ? undefined : await freePort();
  const env: Record<string, string> = { LDAP_SUFFIX: suffix, LDAP_ROOT_PASSWORD: rootPassword };
  if (tlsPort !== undefined) env.TLS_PORT = String(tlsPort);
  const started = await startOnFreePort({ kind: 'openldap', env, files: tlsFiles(opts.tls), startTimeoutMs: opts.startTimeoutMs }, opts.port);
  const url = `ldap://${HOST}:${started.port}`;
  const domainsDn = `o=domains,${suffix}`;
  const admin = { bindDn: `cn=Manager,${suffix}`, password: rootPassword };
  const rw = { bindDn: `cn=vmailadmin,${suffix}`, password: rootPassword };
  const ro = { bindDn: `cn=vmail,${suffix}`, password: rootPassword };

  async function withClient<T>(fn: (client: LdapClient) => Promise<T>, as = admin): Promise<T> {
    const client = new LdapClient({ url, timeout: 10_000, connectTimeout: 5_000 });
    try {
      await client.bind(as.bindDn, as.password);
      return await fn(client);
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }

  async function exists(client: LdapClient, dn: string): Promise<boolean> {
    try {
      await client.search(dn, { scope: 'base', attributes: ['1.1'] });
      return true;
    } catch (err) {
      if ((err as Error).name === 'NoSuchObjectError') return false;
      throw err;
    }
  }

  const domainDn = (domain: string): string => `domainName=${domain},${domainsDn}`;
  const userDn = (mail: string): string => {
    const domain = mail.slice(mail.lastIndexOf('@') + 1);
    return `mail=${mail},ou=Users,${domainDn(domain)}`;
  };

  const server: LdapServer = {
    ...started.base,
    kind: 'openldap',
    url,
    ldapsUrl: tlsPort === undefined ? undefined : `ldaps://${HOST}:${tlsPort}`,
    suffix,
    baseDn: suffix,
    domainsDn,
    bindDn: rw.bindDn,
    password: rw.password,
    readOnly: ro,
    admin,
    withClient,
    userDn,
    async addLdapDomain(domain) {
      return withClient(async (c) => {
        const dn = domainDn(domain);
        if (!(await exists(c, dn))) {
          await c.add(dn, { objectClass: ['mailDomain', 'top'], domainName: domain, accountStatus: 'active' });
        }
        const users = `ou=Users,${dn}`;
        if (!(await exists(c, users))) await c.add(users, { objectClass: ['organizationalUnit', 'top'], ou: 'Users' });
        return dn;
      });
    },
    async addLdapUser(user) {
      const at = user.mail.lastIndexOf('@');
      const local = user.mail.slice(0, at);
      await server.addLdapDomain(user.mail.slice(at + 1));
      const entry: Record<string, string[]> = {
        objectClass: user.objectClass ?? ['inetOrgPerson', 'shadowAccount', 'amavisAccount', 'mailUser', 'top'],
        mail: [user.mail],
        uid: [user.uid ?? local],
        cn: [user.cn ?? local],
        sn: [user.sn ?? local],
        accountStatus: [user.accountStatus ?? 'active'],
      };
      const lists = ['shadowAddress', 'mailWhitelistRecipient', 'mailBlacklistRecipient', 'amavisWhitelistSender', 'amavisBlacklistSender'] as const;
      for (const k of lists) {
        const v = user[k];
        if (v !== undefined && v.length > 0) entry[k] = v;
      }
      // attributes override the defaults; an empty list leaves the attribute out.
      for (const [k, v] of Object.entries(user.attributes ?? {})) {
        const values = toLdapValues(v);
        if (values.length === 0) delete entry[k];
        else entry[k] = values;
      }
      const dn = userDn(user.mail);
      await withClient((c) => c.add(dn, entry));
      return dn;
    },
    async getEntry(dn) {
      return withClient(async (c) => {
        try {
          const { searchEntries } = await c.search(dn, { scope: 'base', attributes: ['*'] });
          const e = searchEntries[0];
          if (e === undefined) return undefined;
          const out: Record<string, string[]> = {};
          for (const [k, v] of Object.entries(e)) {
            if (k === 'dn') continue;
            out[k] = (Array.isArray(v) ? v : [v]).map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
          }
          return out;
        } catch (err) {
          if ((err as Error).name === 'NoSuchObjectError') return undefined;
          throw err;
        }
      });
    },
    async clearDomains() {
      await withClient(async (c) => {
        const { searchEntries } = await c.search(domainsDn, { scope: 'one', attributes: ['1.1'] });
        for (const e of searchEntries) await deleteTree(c, e.dn);
      });
    },
  };
  return server;
}

async function deleteTree(c: LdapClient, dn: string): Promise<void> {
  const { searchEntries } = await c.search(dn, { scope: 'one', attributes: ['1.1'] });
  for (const e of searchEntries) await deleteTree(c, e.dn);
  await c.del(dn);
}

// ---------------------------------------------------------------------------------------------
// Postfix

export interface PostfixStartOptions {
  /** main.cf settings applied over the image's defaults (postconf -e name=value). */
  mainCf?: Record<string, string | number>;
  /** Extra master.cf services in postconf -M syntax: "service/type = service type private ... command". */
  masterCf?: string[];
  /** Files placed in the container before it starts, e.g. /etc/postfix/start.d/NAME.sh: start
   * scripts run in name order after main.cf and master.cf are set and before Postfix starts. */
  files?: { target: string; content: string; mode?: number }[];
  port?: number;
  startTimeoutMs?: number;
}

export interface PostfixServer extends ServerHandle {
  readonly kind: 'postfix';
  /** Runs postconf in the container with these arguments; returns its output. */
  postconf(...args: string[]): Promise<string>;
  /** Runs a command in the container; returns its stdout. */
  exec(cmd: string[]): Promise<string>;
}

/** Postfix 3.7: smtpd on 127.0.0.1:<port>, no DNS, nothing delivered (discard:), logs on stdout. */
export async function startPostfix(opts: PostfixStartOptions = {}): Promise<PostfixServer> {
  const env: Record<string, string> = {};
  const main = Object.entries(opts.mainCf ?? {}).map(([k, v]) => `${k} = ${v}`);
  if (main.some((l) => l.includes('\n'))) throw new Error('main.cf values must be single lines');
  if (main.length > 0) env.POSTFIX_MAIN_CF = main.join('\n');
  if (opts.masterCf !== undefined && opts.masterCf.length > 0) env.POSTFIX_MASTER_CF = opts.masterCf.join('\n');
  const started = await startOnFreePort({ kind: 'postfix', env, files: opts.files, startTimeoutMs: opts.startTimeoutMs }, opts.port);
  const exec = (cmd: string[]): Promise<string> => docker(['exec', started.containerId, ...cmd]);
  return {
    ...started.base,
    kind: 'postfix',
    exec,
    postconf: (...args: string[]) => exec(['postconf', ...args]),
  };
}

export interface SmtpReply {
  code: number;
  /** All lines of the reply, with their codes. */
  lines: string[];
  text: string;
}

/**
 * A scripted SMTP session: reads the greeting, sends each command (CRLF added) and reads its full
 * reply; sends QUIT at the end. Replies[0] is the greeting.
 */
export async function smtpSession(port: number, commands: string[], timeoutMs = 30_000): Promise<SmtpReply[]> {
  const sock = connect({ host: HOST, port });
  sock.setEncoding('utf8');
  let buf = '';
  const waiters: (() => void)[] = [];
  let failure: Error | undefined;
  sock.on('data', (d: string) => {
    buf += d;
    waiters.splice(0).forEach((w) => w());
  });
  const fail = (e: Error): void => {
    failure = e;
    waiters.splice(0).forEach((w) => w());
  };
  sock.on('error', fail);
  sock.on('close', () => fail(new Error('connection closed')));
  const timer = setTimeout(() => {
    fail(new Error(`SMTP session timed out after ${timeoutMs} ms`));
    sock.destroy();
  }, timeoutMs);
  async function readReply(): Promise<SmtpReply> {
    for (;;) {
      const lines = buf.split('\r\n');
      const done = lines.findIndex((l) => /^\d{3} /.test(l) || /^\d{3}$/.test(l));
      if (done !== -1) {
        const got = lines.slice(0, done + 1);
        buf = lines.slice(done + 1).join('\r\n');
        return { code: Number(got[done]?.slice(0, 3)), lines: got, text: got.map((l) => l.slice(4)).join('\n') };
      }
      if (failure !== undefined) throw failure;
      await new Promise<void>((r) => waiters.push(r));
    }
  }
  try {
    const replies = [await readReply()];
    for (const cmd of commands) {
      sock.write(`${cmd}\r\n`);
      replies.push(await readReply());
    }
    sock.write('QUIT\r\n');
    await readReply().catch(() => undefined);
    return replies;
  } finally {
    clearTimeout(timer);
    sock.destroy();
  }
}

/** ldapts helpers re-exported for tests that modify entries. */
export { Attribute, Change };
