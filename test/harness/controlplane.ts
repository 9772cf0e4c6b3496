// A real Kubernetes control plane for tests, envtest style: etcd + kube-apiserver (and, on demand,
// kube-controller-manager) started from the binaries in KUBEBUILDER_ASSETS, which
// `.ci/controlplane.sh` builds from the Go module proxy and caches outside the repository.
//
//   const cp = await startControlPlane();
//   const kc = cp.kubeConfig();                       // admin (O=system:masters)
//   const alice = await cp.userKubeconfig("alice", ["team-a"]);
//   const sa = await cp.serviceAccountToken("ns", "operator");
//   await cp.startControllerManager();                // garbage collection, namespace deletion
//   await cp.stop();
//
// Everything listens on 127.0.0.1 only; users are client certificates minted with openssl
// (CN = user, O = groups). Child processes never outlive the test process: they are killed on
// exit, and a detached watchdog kills them (and removes the temp dir) if the process dies hard.
import { spawn, execFile, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync, mkdirSync, unlinkSync } from "node:fs";
import { readFile, readdir, stat, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { KubeConfig } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";

export interface ControlPlaneOptions {
  /** Directory with etcd, kube-apiserver (and kube-controller-manager); default $KUBEBUILDER_ASSETS. */
  assetsDir?: string;
  /** Extra kube-apiserver flags (`--name=value`), appended after the defaults. */
  apiServerFlags?: string[];
  /** Extra etcd flags. */
  etcdFlags?: string[];
  /** Start kube-controller-manager too (same as calling startControllerManager() afterwards). */
  controllerManager?: boolean | ControllerManagerOptions;
  /** Send the components' logs to stderr instead of their log files (also CONTROLPLANE_VERBOSE=1). */
  verbose?: boolean;
  /** Per-component readiness timeout, default 60 s. */
  startTimeoutMs?: number;
}

export interface ControllerManagerOptions {
  /** Value of --controllers; default DEFAULT_CONTROLLERS. */
  controllers?: string[];
  /** Extra kube-controller-manager flags. */
  flags?: string[];
}

/** A kubeconfig on disk plus a way to load it. */
export interface Kubeconfig {
  /** Path of a self-contained kubeconfig file (credentials embedded). */
  path: string;
  yaml: string;
  kubeConfig(): KubeConfig;
}

export interface ServiceAccountCredentials extends Kubeconfig {
  token: string;
  /** "system:serviceaccount:<namespace>:<name>" */
  username: string;
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  readonly server: string;
  readonly port: number;
  /** http://127.0.0.1:<port> */
  readonly etcdUrl: string;
  /** Temporary directory holding PKI, kubeconfigs, etcd data and logs (removed by stop()). */
  readonly dir: string;
  /** The CA that signs the serving and client certificates (PEM file). */
  readonly caPath: string;
  /** Admin kubeconfig (CN=admin, O=system:masters). */
  readonly kubeconfigPath: string;
  /** Milliseconds from the call to startControlPlane() until the API server was ready. */
  readonly startupMs: number;
  /** Admin client configuration. */
  kubeConfig(): KubeConfig;
  /** Client-certificate kubeconfig for a user (CN=user, O=groups); RBAC applies. */
  userKubeconfig(user: string, groups?: string[]): Promise<Kubeconfig>;
  /**
   * Bearer token for a ServiceAccount from the TokenRequest API, and a kubeconfig using it.
   * The ServiceAccount (not the namespace) is created when missing unless create is false.
   */
  serviceAccountToken(namespace: string, name: string, opts?: { expirationSeconds?: number; create?: boolean; audiences?: string[] }): Promise<ServiceAccountCredentials>;
  /**
   * Creates (or replaces) CustomResourceDefinitions from objects, YAML/JSON files or directories of
   * them (other kinds in the files are ignored), then waits until each is Established and its
   * resources are in discovery. Returns the CRD names.
   */
  installCRDs(sources: Array<string | Record<string, unknown>>): Promise<string[]>;
  /** Stops kube-apiserver only (etcd keeps the data). */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same port against the same etcd; waits for /readyz and
   *  until the custom resources installed by installCRDs() are served again. */
  startApiServer(): Promise<void>;
  startControllerManager(opts?: ControllerManagerOptions): Promise<void>;
  stopControllerManager(): Promise<void>;
  /** Kills everything and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

/** garbagecollector: ownerReferences; namespace: namespace deletion; serviceaccount: "default" SA;
 *  serviceaccount-token: legacy token Secrets. */
export const DEFAULT_CONTROLLERS = ["garbagecollector", "namespace", "serviceaccount", "serviceaccount-token"];

const LOCALHOST = "127.0.0.1";

// ---------------------------------------------------------------------------------------------
// Child process bookkeeping: every live child is killed when this process exits.

/** A child process started by launch(); exported for the node harness (kube-node.ts). */
export interface Managed {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
  hasExited: boolean;
  logPath: string;
  pidFile: string;
}

const live = new Set<Managed>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;

export function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const m of live) {
      try { m.child.kill("SIGKILL"); } catch { /* already gone */ }
    }
    for (const d of liveDirs) {
      try { rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
    }
  });
}

/** A detached shell that outlives a hard kill (SIGKILL, OOM) of this process and then kills the
 *  children whose pids are listed in dir/pids and removes dir. Stopped by stop(). */
export function startWatchdog(dir: string): ChildProcess {
  const script = `
    alive() { [ -r /proc/$1/stat ] && [ "$(sed 's/.*) //' /proc/$1/stat | cut -c1)" != Z ]; }
    while alive "$1"; do sleep 1; done
    for f in "$2"/pids/*; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
    rm -rf "$2"`;
  const wd = spawn("sh", ["-c", script, "watchdog", String(process.pid), dir], { detached: true, stdio: "ignore" });
  wd.unref();
  return wd;
}

export function tail(path: string, lines = 40): string {
  try {
    return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

export function launch(name: string, bin: string, args: string[], dir: string, verbose: boolean): Managed {
  const logPath = join(dir, "logs", `${name}.log`);
  // verbose: the child writes straight to our stderr (no pipes that would hold the event loop).
  const fd = verbose ? 2 : openSync(logPath, "a");
  const child = spawn(bin, args, { stdio: ["ignore", fd, fd] });
  if (!verbose) closeSync(fd);
  const pidFile = join(dir, "pids", name);
  const m: Managed = { name, child, hasExited: false, logPath, pidFile, exited: Promise.resolve() };
  m.exited = new Promise<void>((resolve) => {
    child.once("exit", () => { m.hasExited = true; live.delete(m); try { unlinkSync(pidFile); } catch { /* */ } resolve(); });
    child.once("error", () => { m.hasExited = true; live.delete(m); resolve(); });
  });
  if (child.pid !== undefined) writeFileSync(pidFile, String(child.pid));
  // Do not keep the event loop alive for the children: a test that forgets stop() still exits,
  // and the exit hook then kills them.
  child.unref();
  live.add(m);
  return m;
}

export async function terminate(m: Managed | undefined, graceMs = 10_000, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (!m || m.hasExited) return;
  m.child.ref();
  m.child.kill(signal);
  const t = setTimeout(() => { try { m.child.kill("SIGKILL"); } catch { /* */ } }, graceMs);
  await m.exited;
  clearTimeout(t);
}

export async function waitReady(m: Managed, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 25;
  for (;;) {
    if (m.hasExited) {
      throw new Error(`${m.name} exited before becoming ready (log ${m.logPath}):\n${tail(m.logPath)}`);
    }
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) {
      await terminate(m, 2000);
      throw new Error(`${m.name} not ready within ${timeoutMs} ms (log ${m.logPath}):\n${tail(m.logPath)}`);
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 200);
  }
}

// ---------------------------------------------------------------------------------------------
// Ports, PKI, HTTP.

const handedOut = new Set<number>();

/** A free port on 127.0.0.1, never the same twice in this process (the bind race with other
 *  processes remains; start() retries on "address already in use"). */
async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once("error", reject);
      srv.listen(0, LOCALHOST, () => {
        const addr = srv.address();
        const p = typeof addr === "object" && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env: env ?? process.env }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

const OPENSSL_CNF = `
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $ENV::MW_CERT_SAN
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
`;

function subject(cn: string, orgs: string[]): string {
  const esc = (s: string): string => s.replace(/[\\/=+,]/g, (c) => `\\${c}`);
  return `/CN=${esc(cn)}${orgs.map((o) => `/O=${esc(o)}`).join("")}`;
}

export interface Pki {
  dir: string;
  cnf: string;
  ca: string;
  caKey: string;
}

const DEFAULT_SAN = "DNS:localhost, IP:127.0.0.1";
const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export async function mintCa(dir: string): Promise<Pki> {
  const cnf = join(dir, "openssl.cnf");
  await writeFile(cnf, OPENSSL_CNF);
  const ca = join(dir, "ca.crt");
  const caKey = join(dir, "ca.key");
  await run("openssl", ["req", "-x509", "-config", cnf, "-extensions", "ca", ...EC_KEY,
    "-keyout", caKey, "-out", ca, "-subj", "/CN=mailwarden-test-ca", "-days", "7"], { ...process.env, MW_CERT_SAN: DEFAULT_SAN });
  return { dir, cnf, ca, caKey };
}

/** Signs a fresh P-256 key; returns the cert and key paths. A server certificate names `san`
 *  (openssl syntax), by default localhost and 127.0.0.1. */
export async function mintCert(pki: Pki, file: string, kind: "server" | "client", cn: string, orgs: string[] = [],
  san = DEFAULT_SAN): Promise<{ cert: string; key: string }> {
  const cert = join(pki.dir, `${file}.crt`);
  const key = join(pki.dir, `${file}.key`);
  await run("openssl", ["req", "-x509", "-config", pki.cnf, "-extensions", kind, ...EC_KEY,
    "-CA", pki.ca, "-CAkey", pki.caKey, "-keyout", key, "-out", cert, "-subj", subject(cn, orgs), "-days", "7"],
    { ...process.env, MW_CERT_SAN: san });
  return { cert, key };
}

export interface Tls {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
  token?: string;
}

export function httpsJson(url: string, tls: Tls, method = "GET", body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { accept: "application/json" };
    if (payload !== undefined) headers["content-type"] = "application/json";
    if (tls.token) headers.authorization = `Bearer ${tls.token}`;
    const req = request(url, { method, ca: tls.ca, cert: tls.cert, key: tls.key, headers, timeout: 5000, agent: false }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => { data += c; });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on("timeout", () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    req.on("error", reject);
    req.end(payload);
  });
}

export function kubeconfigYaml(server: string, caPem: Buffer, user: string, auth: { cert: Buffer; key: Buffer } | { token: string }): string {
  const b64 = (b: Buffer): string => b.toString("base64");
  const userBlock = "token" in auth
    ? `    token: ${auth.token}`
    : `    client-certificate-data: ${b64(auth.cert)}\n    client-key-data: ${b64(auth.key)}`;
  // JSON is valid YAML; names are quoted to survive ':' in service-account user names.
  const q = JSON.stringify;
  return `apiVersion: v1
kind: Config
clusters:
- name: mailwarden-test
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(caPem)}
users:
- name: ${q(user)}
  user:
${userBlock}
contexts:
- name: ${q(user)}
  context:
    cluster: mailwarden-test
    user: ${q(user)}
current-context: ${q(user)}
`;
}

function loaded(path: string, yaml: string): Kubeconfig {
  return {
    path,
    yaml,
    kubeConfig(): KubeConfig {
      const kc = new KubeConfig();
      kc.loadFromString(yaml);
      return kc;
    },
  };
}

async function loadCrds(sources: Array<string | Record<string, unknown>>): Promise<Array<Record<string, any>>> {
  const out: Array<Record<string, any>> = [];
  const fromFile = async (path: string): Promise<void> => {
    for (const doc of parseAllDocuments(await readFile(path, "utf8"))) {
      if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors[0]!.message}`);
      const obj = doc.toJS() as Record<string, any> | null;
      if (obj?.kind === "CustomResourceDefinition") out.push(obj);
    }
  };
  for (const src of sources) {
    if (typeof src !== "string") {
      out.push(src);
    } else if ((await stat(src)).isDirectory()) {
      const names = (await readdir(src)).filter((n) => /\.(ya?ml|json)$/.test(n)).sort();
      for (const n of names) await fromFile(join(src, n));
    } else {
      await fromFile(src);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

export function assetsDirectory(opts: ControlPlaneOptions): string {
  // A newcomer's `npm test` has no KUBEBUILDER_ASSETS: build (or find in the cache) the binaries
  // the way CI does, once per test process.
  const dir = opts.assetsDir ?? process.env.KUBEBUILDER_ASSETS ?? (process.env.KUBEBUILDER_ASSETS = buildAssets());
  const hint = "run `source .ci/controlplane.sh` (builds kube-apiserver, kube-controller-manager and etcd " +
    "into ~/.cache/mailwarden/kube/<version> and exports KUBEBUILDER_ASSETS)";
  for (const bin of ["etcd", "kube-apiserver"]) {
    if (!existsSync(join(dir, bin))) throw new Error(`${join(dir, bin)} is missing: ${hint}`);
  }
  return dir;
}

/** Sources .ci/controlplane.sh (a no-op when the binaries are cached) and returns their folder. */
function buildAssets(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
  const out = execFileSync("bash", ["-c", 'set -euo pipefail; source .ci/controlplane.sh >&2; printf "%s" "$KUBEBUILDER_ASSETS"'], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  return out.trim();
}

const BIND_FAILURE = /address already in use/i;

async function withPortRetry<T>(fn: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts || !(err instanceof Error) || !BIND_FAILURE.test(err.message)) throw err;
    }
  }
}

/** Starts etcd and kube-apiserver (and kube-controller-manager when asked) and waits until ready. */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const t0 = performance.now();
  const assets = assetsDirectory(opts);
  const verbose = opts.verbose ?? process.env.CONTROLPLANE_VERBOSE === "1";
  const timeout = opts.startTimeoutMs ?? 60_000;
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), "mailwarden-cp-"));
  liveDirs.add(dir);
  for (const sub of ["pki", "logs", "pids", "etcd", "kubeconfigs"]) mkdirSync(join(dir, sub));
  const watchdog = startWatchdog(dir);

  let etcd: Managed | undefined;
  let apiserver: Managed | undefined;
  let kcm: Managed | undefined;
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Everything is thrown away, so there is nothing to shut down gracefully for.
    await Promise.all([kcm, apiserver, etcd].map((m) => terminate(m, 0, "SIGKILL")));
    try { watchdog.kill("SIGKILL"); } catch { /* */ }
    rmSync(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
  };

  try {
    // PKI: CA first, then everything it signs in parallel.
    const pkiDir = join(dir, "pki");
    const saKey = join(pkiDir, "sa.key");
    const saPub = join(pkiDir, "sa.pub");
    const [pki] = await Promise.all([
      mintCa(pkiDir),
      run("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", saKey])
        .then(() => run("openssl", ["pkey", "-in", saKey, "-pubout", "-out", saPub])),
    ]);
    const [serving, admin] = await Promise.all([
      mintCert(pki, "serving", "server", "kube-apiserver"),
      mintCert(pki, "admin", "client", "admin", ["system:masters"]),
    ]);
    const caPem = await readFile(pki.ca);
    const adminTls: Tls = { ca: caPem, cert: await readFile(admin.cert), key: await readFile(admin.key) };

    // etcd
    let etcdUrl = "";
    await withPortRetry(async () => {
      const [client, peer] = [await freePort(), await freePort()];
      etcdUrl = `http://${LOCALHOST}:${client}`;
      etcd = launch("etcd", join(assets, "etcd"), [
        "--name", "mailwarden-test",
        "--data-dir", join(dir, "etcd"),
        "--listen-client-urls", etcdUrl,
        "--advertise-client-urls", etcdUrl,
        "--listen-peer-urls", `http://${LOCALHOST}:${peer}`,
        "--initial-advertise-peer-urls", `http://${LOCALHOST}:${peer}`,
        "--initial-cluster", `mailwarden-test=http://${LOCALHOST}:${peer}`,
        "--unsafe-no-fsync",
        "--log-level", "warn",
        ...(opts.etcdFlags ?? []),
      ], dir, verbose);
      const m = etcd;
      await waitReady(m, async () => {
        const res = await fetch(`${etcdUrl}/health`);
        return res.ok && ((await res.json()) as { health?: string }).health === "true";
      }, timeout);
    });

    // kube-apiserver
    let port = 0;
    let server = "";
    let apiArgs: string[] = [];
    const startApi = async (lists: Iterable<string> = []): Promise<void> => {
      apiserver = launch("kube-apiserver", join(assets, "kube-apiserver"), apiArgs, dir, verbose);
      const m = apiserver;
      await waitReady(m, async () => {
        if ((await httpsJson(`${server}/readyz`, adminTls)).status !== 200) return false;
        for (const url of lists) if ((await httpsJson(url, adminTls)).status !== 200) return false;
        return true;
      }, timeout);
    };
    await withPortRetry(async () => {
      port = await freePort();
      server = `https://${LOCALHOST}:${port}`;
      apiArgs = [
        "--etcd-servers", etcdUrl,
        "--bind-address", LOCALHOST,
        "--advertise-address", LOCALHOST,
        "--secure-port", String(port),
        "--cert-dir", join(dir, "pki"),
        "--tls-cert-file", serving.cert,
        "--tls-private-key-file", serving.key,
        "--client-ca-file", pki.ca,
        "--service-cluster-ip-range", "10.0.0.0/24",
        "--authorization-mode", "RBAC",
        "--allow-privileged",
        "--disable-admission-plugins", "ServiceAccount",
        "--service-account-issuer", `${server}/`,
        "--service-account-key-file", saPub,
        "--service-account-signing-key-file", saKey,
        ...(opts.apiServerFlags ?? []),
      ];
      await startApi();
    });

    const kubeconfigPath = join(dir, "kubeconfigs", "admin.yaml");
    const adminYaml = kubeconfigYaml(server, caPem, "admin", { cert: adminTls.cert!, key: adminTls.key! });
    writeFileSync(kubeconfigPath, adminYaml);
    const startupMs = Math.round(performance.now() - t0);

    const startControllerManager = async (o: ControllerManagerOptions = {}): Promise<void> => {
      if (kcm && !kcm.hasExited) return;
      const bin = join(assets, "kube-controller-manager");
      if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`source .ci/controlplane.sh\``);
      const kcmPort = await freePort();
      kcm = launch("kube-controller-manager", bin, [
        "--kubeconfig", kubeconfigPath,
        "--authentication-kubeconfig", kubeconfigPath,
        "--authorization-kubeconfig", kubeconfigPath,
        "--bind-address", LOCALHOST,
        "--secure-port", String(kcmPort),
        "--tls-cert-file", serving.cert,
        "--tls-private-key-file", serving.key,
        "--client-ca-file", pki.ca,
        "--leader-elect=false",
        "--use-service-account-credentials=false",
        "--controllers", (o.controllers ?? DEFAULT_CONTROLLERS).join(","),
        "--service-account-private-key-file", saKey,
        "--root-ca-file", pki.ca,
        "--cluster-cidr", "10.1.0.0/16",
        "--service-cluster-ip-range", "10.0.0.0/24",
        ...(o.flags ?? []),
      ], dir, verbose);
      const m = kcm;
      await waitReady(m, async () => (await httpsJson(`https://${LOCALHOST}:${kcmPort}/healthz`, adminTls)).status === 200, timeout);
    };

    let userSeq = 0;
    /** List URLs of the CRDs installed through installCRDs(), checked again after a restart. */
    const servedLists = new Set<string>();
    const cp: ControlPlane = {
      server,
      port,
      etcdUrl,
      dir,
      caPath: pki.ca,
      kubeconfigPath,
      startupMs,
      kubeConfig(): KubeConfig {
        const kc = new KubeConfig();
        kc.loadFromString(adminYaml);
        return kc;
      },
      async userKubeconfig(user: string, groups: string[] = []): Promise<Kubeconfig> {
        const file = `user-${++userSeq}`;
        const c = await mintCert(pki, file, "client", user, groups);
        const yaml = kubeconfigYaml(server, caPem, user, { cert: await readFile(c.cert), key: await readFile(c.key) });
        const path = join(dir, "kubeconfigs", `${file}.yaml`);
        await writeFile(path, yaml);
        return loaded(path, yaml);
      },
      async serviceAccountToken(namespace, name, o = {}): Promise<ServiceAccountCredentials> {
        const base = `${server}/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts`;
        if (o.create !== false) {
          const res = await httpsJson(base, adminTls, "POST", { apiVersion: "v1", kind: "ServiceAccount", metadata: { name } });
          if (res.status !== 201 && res.status !== 409) throw new Error(`creating ServiceAccount ${namespace}/${name}: HTTP ${res.status} ${res.body}`);
        }
        const spec: Record<string, unknown> = { expirationSeconds: o.expirationSeconds ?? 3600 };
        if (o.audiences) spec.audiences = o.audiences;
        const res = await httpsJson(`${base}/${encodeURIComponent(name)}/token`, adminTls, "POST",
          { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec });
        if (res.status !== 201) throw new Error(`TokenRequest for ${namespace}/${name}: HTTP ${res.status} ${res.body}`);
        const token = (JSON.parse(res.body) as { status: { token: string } }).status.token;
        const username = `system:serviceaccount:${namespace}:${name}`;
        const yaml = kubeconfigYaml(server, caPem, username, { token });
        const path = join(dir, "kubeconfigs", `sa-${namespace}-${name}-${++userSeq}.yaml`);
        await writeFile(path, yaml);
        return { ...loaded(path, yaml), token, username };
      },
      async installCRDs(sources): Promise<string[]> {
        const crds = await loadCrds(sources);
        const base = `${server}/apis/apiextensions.k8s.io/v1/customresourcedefinitions`;
        await Promise.all(crds.map(async (crd) => {
          const name = String(crd.metadata?.name);
          const body = { apiVersion: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition", ...crd };
          let res = await httpsJson(base, adminTls, "POST", body);
          if (res.status === 409) {
            const cur = JSON.parse((await httpsJson(`${base}/${name}`, adminTls)).body) as { metadata: { resourceVersion: string } };
            res = await httpsJson(`${base}/${name}`, adminTls, "PUT",
              { ...body, metadata: { ...crd.metadata, resourceVersion: cur.metadata.resourceVersion } });
          }
          if (res.status !== 200 && res.status !== 201) throw new Error(`installing CRD ${name}: HTTP ${res.status} ${res.body}`);
        }));
        const deadline = Date.now() + timeout;
        for (const crd of crds) {
          const name = String(crd.metadata?.name);
          const spec = crd.spec as { group: string; names: { plural: string }; versions: Array<{ name: string; served: boolean }> };
          const ready = async (): Promise<boolean> => {
            const c = JSON.parse((await httpsJson(`${base}/${name}`, adminTls)).body) as
              { status?: { conditions?: Array<{ type: string; status: string }> } };
            if (!c.status?.conditions?.some((x) => x.type === "Established" && x.status === "True")) return false;
            for (const v of spec.versions.filter((x) => x.served)) {
              const d = await httpsJson(`${server}/apis/${spec.group}/${v.name}`, adminTls);
              if (d.status !== 200) return false;
              const list = JSON.parse(d.body) as { resources?: Array<{ name: string }> };
              if (!list.resources?.some((r) => r.name === spec.names.plural)) return false;
              // Discovery lists the resource before its watch cache is initialized; until then
              // requests get 429 "storage is (re)initializing".
              const url = `${server}/apis/${spec.group}/${v.name}/${spec.names.plural}?limit=1`;
              if ((await httpsJson(url, adminTls)).status !== 200) return false;
              servedLists.add(url);
            }
            return true;
          };
          while (!(await ready().catch(() => false))) {
            if (Date.now() > deadline) throw new Error(`CRD ${name} not established within ${timeout} ms`);
            await sleep(50);
          }
        }
        return crds.map((c) => String(c.metadata?.name));
      },
      async stopApiServer(): Promise<void> {
        await terminate(apiserver, 10_000);
      },
      async startApiServer(): Promise<void> {
        if (stopped) throw new Error("control plane is stopped");
        if (apiserver && !apiserver.hasExited) return;
        // Same port: Go listeners set SO_REUSEADDR, so TIME_WAIT connections do not block the bind;
        // another process grabbing the port in between would, and is retried briefly.
        for (let i = 0; ; i++) {
          try {
            await startApi(servedLists);
            return;
          } catch (err) {
            if (i >= 20 || !(err instanceof Error) || !BIND_FAILURE.test(err.message)) throw err;
            await sleep(250);
          }
        }
      },
      startControllerManager,
      async stopControllerManager(): Promise<void> {
        await terminate(kcm, 5000);
      },
      stop,
    };
    if (opts.controllerManager) {
      await startControllerManager(opts.controllerManager === true ? {} : opts.controllerManager);
    }
    return cp;
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}
