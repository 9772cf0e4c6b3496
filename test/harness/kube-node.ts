// A single-node Kubernetes cluster for tests, inside a network namespace of its own.
//
//   const node = await startKubeNode({ images: ['mailwarden-test/postfix:…'] });
//   node.kubeconfigPath          // admin, server https://127.0.0.1:<port> (forwarded, see below)
//   const f = await node.forward('10.251.0.7', 25);   // 127.0.0.1:f.port → pod 10.251.0.7:25
//   await node.stop();
//
// Layout (docs/architecture.md, Tests): the harness creates the network namespace NETNS with a
// bridge holding the node's address (NODE_IP) and a default route onto it; every component runs
// in it, entered with `nsenter --net` (not `ip netns exec`, which remounts /sys and gives each
// process its own mount namespace): etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kubelet, kube-proxy (iptables rules inside the namespace only), and a
// containerd instance of its own (config, state, socket; root in the cache, so imported images
// stay between runs) with runc and Debian's CNI plugins (bridge + host-local + portmap). Pod
// (POD_CIDR), Service (SERVICE_CIDR) and node addresses exist only in that namespace and the pods'
// namespaces below it; nothing is routed out of it. The one way in is netns-proxy.ts, listening
// on a Unix socket: forward() opens a 127.0.0.1 listener per target in this process.
//
// Images cannot be pulled: they are `docker save`d from the local Docker engine and imported with
// `ctr -n k8s.io images import`; the sandbox image is the pause binary build.sh compiles.
// One node per machine at a time: the caller holds the machine lock (kube-node-keeper.ts runs
// under flock), so fixed names (namespace, cgroup root, run folder) are safe, and leftovers of a
// run that died are swept before the next one starts.
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import {
  assetsDirectory,
  httpsJson,
  installExitHook,
  kubeconfigYaml,
  launch,
  mintCa,
  mintCert,
  startWatchdog,
  tail,
  terminate,
  waitReady,
  type Managed,
  type Tls,
} from './controlplane.ts';
import { forwardTo, type Forward } from './kube-node-forward.ts';

const execFileP = promisify(execFile);

export const NETNS = 'mailwarden-node';
export const NODE_NAME = 'mailwarden-node';
/** The node's address, on the bridge NODE_BRIDGE inside NETNS. */
export const NODE_IP = '10.250.0.1';
const NODE_BRIDGE = 'mwnode0';
export const POD_CIDR = '10.251.0.0/24';
export const SERVICE_CIDR = '10.252.0.0/24';
/** The `kubernetes` Service's ClusterIP. */
export const API_SERVICE_IP = '10.252.0.1';
const API_PORT = 6443;
/** cgroup parent of every pod (kubelet's cgroupRoot), in each cgroup v1 hierarchy. */
const CGROUP_ROOT = 'mailwarden-node';
const CGROUP_FS = '/sys/fs/cgroup';
const NETNS_PATH = `/var/run/netns/${NETNS}`;
const CACHE = process.env.MAILWARDEN_CACHE ?? join(homedir(), '.cache', 'mailwarden');
/** Everything of one run; removed at stop(). */
export const RUN_DIR = join(tmpdir(), 'mailwarden-node');
/** containerd's root (content store, snapshots): kept between runs, so images are imported once. */
const CONTAINERD_ROOT = join(CACHE, 'kubenode', 'containerd');
/** The last run's component logs are copied here at stop(). */
export const LAST_LOGS = join(tmpdir(), 'mailwarden-node-logs');
const HARNESS_DIR = fileURLToPath(new URL('.', import.meta.url));
const REPO_ROOT = join(HARNESS_DIR, '..', '..');
/** What .ci/kubenode.sh adds to the control plane's binaries. */
const NODE_BINARIES = ['kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy', 'pause'];

export interface KubeNodeOptions {
  /** Docker image tags (local) to import into the node's runtime. */
  images?: readonly string[];
  /** Component logs to stderr (also KUBENODE_VERBOSE=1). */
  verbose?: boolean;
  /** Readiness timeout per step, default 120 s. */
  timeoutMs?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface KubeNode {
  readonly kubeconfigPath: string;
  /** https://127.0.0.1:<port>, forwarded to the API server in the namespace. */
  readonly server: string;
  /** The proxy's Unix socket (kube-node-forward.ts). */
  readonly proxySocket: string;
  readonly caPath: string;
  /** Image tags as given, each now in the node's runtime. */
  readonly images: readonly string[];
  /** Milliseconds per phase and in total (bring-up only; image builds excluded). */
  readonly timings: Readonly<Record<string, number>>;
  kubeConfig(): KubeConfig;
  forward(host: string, port: number): Promise<Forward>;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// small helpers

async function sh(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number; allowFail?: boolean } = {}): Promise<string> {
  try {
    const child = execFileP(cmd, args, { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 });
    if (opts.input !== undefined) child.child.stdin?.end(opts.input);
    return (await child).stdout;
  } catch (err) {
    if (opts.allowFail) return '';
    const e = err as Error & { stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.message}\n${(e.stderr ?? '').slice(-2000)}`, { cause: err });
  }
}

/** argv that runs `bin args` inside the node's network namespace (and nothing else of it). */
function inNetns(bin: string, args: string[]): [string, string[]] {
  return ['nsenter', [`--net=${NETNS_PATH}`, '--', bin, ...args]];
}

/** The process exists (signal 0). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `check` (errors count as not yet); `fatal` throws at once when waiting is pointless. */
async function until(what: string, timeoutMs: number, check: () => Promise<boolean>, onTimeout: () => string = () => '', fatal: () => void = () => undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  while (!(await check().catch(() => false))) {
    fatal();
    if (Date.now() > deadline) throw new Error(`test node: ${what} not within ${timeoutMs} ms\n${onTimeout()}`);
    await sleep(delay);
    delay = Math.min(delay * 2, 500);
  }
}

// ---------------------------------------------------------------------------------------------
// leftovers: what a run leaves on the host, removed before the next one and by stop()

/** Mount points under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mountPoint = line.split(' ')[4]?.replace(/\\040/g, ' ');
    if (mountPoint !== undefined && (mountPoint === dir || mountPoint.startsWith(`${dir}/`))) out.push(mountPoint);
  }
  return out.sort((a, b) => b.length - a.length);
}

function cgroupDirs(): string[] {
  if (!existsSync(CGROUP_FS)) return [];
  return readdirSync(CGROUP_FS)
    .map((h) => join(CGROUP_FS, h, CGROUP_ROOT))
    .filter((d) => existsSync(d));
}

/** Every process in the node's cgroups (the pods' containers, whatever their runtime state). */
function cgroupPids(): number[] {
  const pids = new Set<number>();
  const walk = (dir: string): void => {
    try {
      for (const p of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (p !== '') pids.add(Number(p));
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
    } catch {
      /* removed meanwhile */
    }
  };
  for (const d of cgroupDirs()) walk(d);
  return [...pids];
}

/** kubelet's cgroupRoot must exist in every hierarchy; a cpuset starts empty and needs its
 *  parent's cpus and mems before a task can join it. */
function createCgroups(): void {
  for (const h of readdirSync(CGROUP_FS)) {
    const dir = join(CGROUP_FS, h, CGROUP_ROOT);
    if (!existsSync(join(CGROUP_FS, h, 'cgroup.procs'))) continue;
    mkdirSync(dir, { recursive: true });
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      const parent = join(CGROUP_FS, h, f);
      if (existsSync(parent) && readFileSync(join(dir, f), 'utf8').trim() === '') writeFileSync(join(dir, f), readFileSync(parent, 'utf8'));
    }
  }
}

function removeCgroups(): void {
  const rm = (dir: string): void => {
    try {
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rm(join(dir, e.name));
      rmdirSync(dir);
    } catch {
      /* busy or gone: the next sweep tries again */
    }
  };
  for (const d of cgroupDirs()) rm(d);
}

/** containerd shims started for our socket outlive containerd; find them by their arguments. */
function shimPids(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmd.includes('containerd-shim') && cmd.includes(RUN_DIR)) out.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return out;
}

function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Removes what a previous run (alive or dead) left: processes, mounts, namespaces, cgroups, files. */
export async function sweep(): Promise<void> {
  const pidsDir = join(RUN_DIR, 'pids');
  if (existsSync(pidsDir)) {
    killAll(readdirSync(pidsDir).map((f) => Number(readFileSync(join(pidsDir, f), 'utf8'))).filter((p) => p > 0 && pidAlive(p)));
  }
  killAll(shimPids());
  killAll(cgroupPids());
  await sleep(100);
  for (const m of mountsUnder(RUN_DIR)) await sh('umount', ['-l', m], { allowFail: true });
  if (existsSync(NETNS_PATH)) await sh('ip', ['netns', 'delete', NETNS], { allowFail: true });
  removeCgroups();
  rmSync(RUN_DIR, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// configuration files

function containerdConfig(dir: string, sandboxImage: string): string {
  // restrict_oom_score_adj: no CAP_SYS_RESOURCE here; the sandbox asks for -998 and runc fails.
  // netns_mounts_under_state_dir: the pods' network namespaces live in our run folder, not
  // among the host's /var/run/netns/cni-*, so the sweep finds (and unmounts) exactly ours.
  return `version = 2
root = ${JSON.stringify(CONTAINERD_ROOT)}
state = ${JSON.stringify(join(dir, 'containerd-state'))}
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = ${JSON.stringify(join(dir, 'containerd.sock'))}
[ttrpc]
  address = ${JSON.stringify(join(dir, 'containerd.sock.ttrpc'))}
[debug]
  level = "warn"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = ${JSON.stringify(join(dir, 'containerd-opt'))}
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${JSON.stringify(sandboxImage)}
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = ${JSON.stringify(join(dir, 'cni'))}
`;
}

function cniConfig(dir: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'mailwarden-node',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: POD_CIDR }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(dir, 'cni-ipam') },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }, null, 2);
}

function kubeletConfig(dir: string, caPath: string): string {
  // cgroup v1 here: failCgroupV1 false (a warning event only). Eviction thresholds low: the
  // machine's disk and memory are shared, and an evicted test pod would only confuse a test.
  return JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    failCgroupV1: false,
    failSwapOn: false,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: `/${CGROUP_ROOT}`,
    address: NODE_IP,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    containerRuntimeEndpoint: `unix://${join(dir, 'containerd.sock')}`,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: caPath } },
    authorization: { mode: 'AlwaysAllow' },
    podCIDR: POD_CIDR,
    // No cluster DNS runs: pods get a resolv.conf that points at their own loopback, so a lookup
    // fails at once instead of leaving the namespace.
    resolvConf: join(dir, 'resolv.conf'),
    evictionHard: { 'memory.available': '50Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    serializeImagePulls: false,
    maxPods: 60,
    syncFrequency: '10s',
    fileCheckFrequency: '5s',
    nodeStatusUpdateFrequency: '5s',
    shutdownGracePeriod: '0s',
    localStorageCapacityIsolation: true,
    protectKernelDefaults: false,
    makeIPTablesUtilChains: false,
    rotateCertificates: false,
    serverTLSBootstrap: false,
  }, null, 2);
}

function kubeProxyConfig(kubeconfig: string): string {
  // conntrack.maxPerCore 0: kube-proxy leaves the host's conntrack limit alone (it is not
  // namespaced and cannot be written here).
  return JSON.stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    mode: 'iptables',
    clientConnection: { kubeconfig },
    hostnameOverride: NODE_NAME,
    bindAddress: NODE_IP,
    clusterCIDR: POD_CIDR,
    healthzBindAddress: '127.0.0.1:10256',
    metricsBindAddress: '127.0.0.1:10249',
    conntrack: { maxPerCore: 0, min: 0 },
    iptables: { syncPeriod: '5s', minSyncPeriod: '0s' },
  }, null, 2);
}

// ---------------------------------------------------------------------------------------------
// images

const PAUSE_DOCKERFILE = 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n';

/** The sandbox image, built FROM scratch around the pause binary (no registry needed). */
export async function ensurePauseImage(assets: string): Promise<string> {
  const binary = join(assets, 'pause');
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run \`source .ci/kubenode.sh\``);
  const hash = createHash('sha256').update(readFileSync(binary)).update(PAUSE_DOCKERFILE).digest('hex').slice(0, 16);
  const tag = `mailwarden-test/pause:${hash}`;
  if ((await sh('docker', ['image', 'inspect', '--format', '{{.Id}}', tag], { allowFail: true })) !== '') return tag;
  const ctx = mkdtempSync(join(tmpdir(), 'mailwarden-pause-'));
  try {
    copyFileSync(binary, join(ctx, 'pause'));
    writeFileSync(join(ctx, 'Dockerfile'), PAUSE_DOCKERFILE);
    await sh('docker', ['build', '-q', '-t', tag, '--label', 'mailwarden.test.image=pause', ctx], { timeoutMs: 120_000 });
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
  return tag;
}

/** The name containerd stores for a Docker tag (docker.io/ added to a bare repository). */
function runtimeName(tag: string): string {
  const first = tag.split('/')[0]!;
  return tag.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost') ? tag : `docker.io/${tag}`;
}

async function importImages(ctr: (args: string[], timeoutMs?: number) => Promise<string>, tags: readonly string[], log: (l: string) => void): Promise<void> {
  const present = new Set((await ctr(['-n', 'k8s.io', 'images', 'ls', '-q'])).split('\n').filter((l) => l !== ''));
  const missing = tags.filter((t) => !present.has(runtimeName(t)));
  for (const tag of missing) {
    const t0 = Date.now();
    const file = join(RUN_DIR, 'image.tar');
    await sh('docker', ['save', '-o', file, tag], { timeoutMs: 600_000 });
    await ctr(['-n', 'k8s.io', 'images', 'import', file], 600_000);
    rmSync(file, { force: true });
    log(`imported ${tag} in ${Date.now() - t0} ms`);
  }
  // Older builds of the same test images are dead weight in the cache.
  const wanted = new Set(tags.map(runtimeName));
  const repos = new Set([...wanted].map((n) => n.slice(0, n.lastIndexOf(':'))));
  const stale = [...present].filter((n) => !wanted.has(n) && repos.has(n.slice(0, n.lastIndexOf(':'))));
  if (stale.length > 0) await ctr(['-n', 'k8s.io', 'images', 'rm', ...stale]).catch(() => '');
}

// ---------------------------------------------------------------------------------------------

/** Brings the node up (sweeping leftovers first). The caller holds the machine lock. */
export async function startKubeNode(opts: KubeNodeOptions = {}): Promise<KubeNode> {
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const mark = (phase: string): void => {
    timings[phase] = Math.round(performance.now() - t0);
  };
  const log = opts.log ?? ((l: string) => process.stderr.write(`kube-node: ${l}\n`));
  const verbose = opts.verbose ?? process.env.KUBENODE_VERBOSE === '1';
  const timeout = opts.timeoutMs ?? 120_000;
  const assets = assetsDirectory({});
  if (!NODE_BINARIES.every((bin) => existsSync(join(assets, bin)))) {
    // A newcomer's `npm test`: build them (and install the packages) the way CI does.
    log('building the node binaries: source .ci/kubenode.sh');
    execFileSync('bash', ['-c', 'set -euo pipefail; source .ci/kubenode.sh >&2'], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, KUBEBUILDER_ASSETS: assets } });
  }
  installExitHook();
  await sweep();
  mark('sweep');
  const dir = RUN_DIR;
  for (const sub of ['pki', 'logs', 'pids', 'etcd', 'kubelet', 'cni', 'cni-ipam', 'containerd-state', 'containerd-opt', 'kubeconfigs']) mkdirSync(join(dir, sub), { recursive: true });
  mkdirSync(CONTAINERD_ROOT, { recursive: true });
  writeFileSync(join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
  const watchdog: ChildProcess = startWatchdog(dir);
  const procs: Managed[] = [];
  const forwards: Forward[] = [];
  const start = (name: string, bin: string, args: string[]): Managed => {
    const [b, a] = inNetns(bin, args);
    const m = launch(name, b, a, dir, verbose);
    procs.push(m);
    return m;
  };
  let stopped = false;
  const socketPath = join(dir, 'containerd.sock');
  const ctr = (args: string[], timeoutMs?: number): Promise<string> => sh('ctr', ['--address', socketPath, ...args], { timeoutMs });

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const byName = (n: string): Managed | undefined => procs.find((p) => p.name === n);
    // kubelet first: it would restart what is killed below.
    await Promise.all(['kubelet', 'kube-proxy', 'kube-scheduler', 'kube-controller-manager'].map((n) => terminate(byName(n), 5000)));
    killAll(cgroupPids());
    if (byName('containerd') && !byName('containerd')!.hasExited) {
      const tasks = (await ctr(['-n', 'k8s.io', 'tasks', 'ls', '-q']).catch(() => '')).split('\n').filter((l) => l !== '');
      await Promise.all(tasks.map((id) => ctr(['-n', 'k8s.io', 'tasks', 'rm', '-f', id]).catch(() => '')));
      const containers = (await ctr(['-n', 'k8s.io', 'containers', 'ls', '-q']).catch(() => '')).split('\n').filter((l) => l !== '');
      if (containers.length > 0) await ctr(['-n', 'k8s.io', 'containers', 'rm', ...containers]).catch(() => '');
    }
    await Promise.all(procs.map((p) => terminate(p, 5000)));
    for (const f of forwards) await f.close();
    try {
      watchdog.kill('SIGKILL');
    } catch {
      /* gone */
    }
    rmSync(LAST_LOGS, { recursive: true, force: true });
    try {
      cpSync(join(dir, 'logs'), LAST_LOGS, { recursive: true });
    } catch {
      /* no logs */
    }
    await sweep();
  };

  try {
    // The namespace: loopback, and a bridge with the node's address as the route to everything.
    await sh('ip', ['netns', 'add', NETNS]);
    const ipn = (...args: string[]): Promise<string> => sh('ip', ['-n', NETNS, ...args]);
    await ipn('link', 'set', 'lo', 'up');
    await ipn('link', 'add', NODE_BRIDGE, 'type', 'bridge');
    await ipn('addr', 'add', `${NODE_IP}/24`, 'dev', NODE_BRIDGE);
    await ipn('link', 'set', NODE_BRIDGE, 'up');
    await ipn('route', 'add', 'default', 'dev', NODE_BRIDGE);
    const [sysctl, sysctlArgs] = inNetns('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1', 'net.bridge.bridge-nf-call-iptables=1']);
    await sh(sysctl, sysctlArgs, { allowFail: true });
    mark('netns');

    // The doorway, then PKI.
    const proxySocket = join(dir, 'proxy.sock');
    const proxy = start('netns-proxy', process.execPath, [join(HARNESS_DIR, 'netns-proxy.ts'), proxySocket]);
    await waitReady(proxy, async () => existsSync(proxySocket), timeout);
    const pkiDir = join(dir, 'pki');
    const saKey = join(pkiDir, 'sa.key');
    const saPub = join(pkiDir, 'sa.pub');
    const [pki] = await Promise.all([
      mintCa(pkiDir),
      sh('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', saKey]).then(() => sh('openssl', ['pkey', '-in', saKey, '-pubout', '-out', saPub])),
    ]);
    const san = [
      'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local',
      `DNS:${NODE_NAME}`, 'IP:127.0.0.1', `IP:${NODE_IP}`, `IP:${API_SERVICE_IP}`,
    ].join(', ');
    const [serving, admin] = await Promise.all([
      mintCert(pki, 'serving', 'server', 'kube-apiserver', [], san),
      mintCert(pki, 'admin', 'client', 'admin', ['system:masters']),
    ]);
    const caPem = readFileSync(pki.ca);
    const adminTls: Tls = { ca: caPem, cert: readFileSync(admin.cert), key: readFileSync(admin.key) };
    // In the namespace the components reach the API server directly.
    const inside = join(dir, 'kubeconfigs', 'inside.yaml');
    writeFileSync(inside, kubeconfigYaml(`https://${NODE_IP}:${API_PORT}`, caPem, 'admin', { cert: adminTls.cert!, key: adminTls.key! }));
    mark('pki');

    // etcd and kube-apiserver.
    const etcd = start('etcd', join(assets, 'etcd'), [
      '--name', NODE_NAME, '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', 'http://127.0.0.1:2379', '--advertise-client-urls', 'http://127.0.0.1:2379',
      '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
      '--initial-cluster', `${NODE_NAME}=http://127.0.0.1:2380`,
      '--unsafe-no-fsync', '--log-level', 'warn',
    ]);
    const etcdForward = await forwardTo(proxySocket, '127.0.0.1', 2379);
    forwards.push(etcdForward);
    await waitReady(etcd, async () => {
      const res = await fetch(`http://127.0.0.1:${etcdForward.port}/health`);
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    }, timeout);
    mark('etcd');
    const apiserver = start('kube-apiserver', join(assets, 'kube-apiserver'), [
      '--etcd-servers', 'http://127.0.0.1:2379',
      '--bind-address', '0.0.0.0',
      '--advertise-address', NODE_IP,
      '--secure-port', String(API_PORT),
      '--cert-dir', pkiDir,
      '--tls-cert-file', serving.cert,
      '--tls-private-key-file', serving.key,
      '--client-ca-file', pki.ca,
      // The node's address, never its name: a name would be looked up in the host's DNS.
      '--kubelet-preferred-address-types', 'InternalIP',
      '--kubelet-client-certificate', admin.cert,
      '--kubelet-client-key', admin.key,
      '--service-cluster-ip-range', SERVICE_CIDR,
      '--authorization-mode', 'Node,RBAC',
      '--allow-privileged',
      '--service-account-issuer', 'https://kubernetes.default.svc.cluster.local',
      '--service-account-key-file', saPub,
      '--service-account-signing-key-file', saKey,
      '--profiling=false',
      '--v=1',
    ]);
    const apiForward = await forwardTo(proxySocket, NODE_IP, API_PORT);
    forwards.push(apiForward);
    const server = `https://127.0.0.1:${apiForward.port}`;
    await waitReady(apiserver, async () => (await httpsJson(`${server}/readyz`, adminTls)).status === 200, timeout);
    const kubeconfigPath = join(dir, 'kubeconfigs', 'admin.yaml');
    const adminYaml = kubeconfigYaml(server, caPem, 'admin', { cert: adminTls.cert!, key: adminTls.key! });
    writeFileSync(kubeconfigPath, adminYaml);
    mark('apiserver');

    // Controllers and scheduler; containerd; images.
    start('kube-controller-manager', join(assets, 'kube-controller-manager'), [
      '--kubeconfig', inside, '--authentication-kubeconfig', inside, '--authorization-kubeconfig', inside,
      '--bind-address', '127.0.0.1', '--secure-port', '10257',
      '--leader-elect=false', '--use-service-account-credentials=false',
      '--service-account-private-key-file', saKey, '--root-ca-file', pki.ca,
      '--cluster-cidr', POD_CIDR, '--service-cluster-ip-range', SERVICE_CIDR, '--allocate-node-cidrs=false',
      '--cluster-signing-cert-file', pki.ca, '--cluster-signing-key-file', pki.caKey,
      '--node-monitor-grace-period', '40s',
      '--v=1',
    ]);
    start('kube-scheduler', join(assets, 'kube-scheduler'), [
      '--kubeconfig', inside, '--authentication-kubeconfig', inside, '--authorization-kubeconfig', inside,
      '--bind-address', '127.0.0.1', '--secure-port', '10259', '--leader-elect=false', '--v=1',
    ]);
    const pauseTag = await ensurePauseImage(assets);
    writeFileSync(join(dir, 'containerd.toml'), containerdConfig(dir, runtimeName(pauseTag)));
    const containerd = start('containerd', 'containerd', ['--config', join(dir, 'containerd.toml')]);
    await waitReady(containerd, async () => existsSync(socketPath) && (await ctr(['version'], 5000)) !== '', timeout);
    await importImages(ctr, [pauseTag, ...(opts.images ?? [])], log);
    mark('containerd+images');

    // The node: CNI config first (the Node turns Ready once it is there), kubelet, kube-proxy.
    writeFileSync(join(dir, 'cni', '10-mailwarden.conflist'), cniConfig(dir));
    writeFileSync(join(dir, 'kubelet.json'), kubeletConfig(dir, pki.ca));
    createCgroups();
    start('kubelet', join(assets, 'kubelet'), [
      '--config', join(dir, 'kubelet.json'),
      '--kubeconfig', inside,
      '--hostname-override', NODE_NAME,
      '--node-ip', NODE_IP,
      '--root-dir', join(dir, 'kubelet'),
      '--cert-dir', join(dir, 'pki', 'kubelet'),
      '--v=1',
    ]);
    writeFileSync(join(dir, 'kube-proxy.json'), kubeProxyConfig(inside));
    start('kube-proxy', join(assets, 'kube-proxy'), ['--config', join(dir, 'kube-proxy.json'), '--v=1']);

    const kc = new KubeConfig();
    kc.loadFromString(adminYaml);
    const get = async (path: string): Promise<any> => {
      const res = await httpsJson(`${server}${path}`, adminTls);
      if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status}`);
      return JSON.parse(res.body);
    };
    const logsOf = (...names: string[]): string => names.map((n) => `--- ${n}:\n${tail(join(dir, 'logs', `${n}.log`), 15)}`).join('\n');
    const noneExited = (): void => {
      for (const p of procs) if (p.hasExited) throw new Error(`test node: ${p.name} exited:\n${tail(p.logPath)}`);
    };
    await until('Node Ready', timeout, async () => {
      const node = await get(`/api/v1/nodes/${NODE_NAME}`);
      return (node.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
    }, () => logsOf('kubelet', 'containerd'), noneExited);
    mark('node-ready');
    await until('the default ServiceAccount', timeout, async () => (await get('/api/v1/namespaces/default/serviceaccounts/default')) !== undefined, () => logsOf('kube-controller-manager'), noneExited);
    // kube-proxy's rules: the API server through its ClusterIP, from inside the namespace.
    const viaService = await forwardTo(proxySocket, API_SERVICE_IP, 443);
    forwards.push(viaService);
    await until('the kubernetes Service through kube-proxy', timeout,
      async () => (await httpsJson(`https://127.0.0.1:${viaService.port}/readyz`, adminTls)).status === 200, () => logsOf('kube-proxy'), noneExited);
    mark('ready');
    timings.total = Math.round(performance.now() - t0);

    return {
      kubeconfigPath,
      server,
      proxySocket,
      caPath: pki.ca,
      images: [...(opts.images ?? [])],
      timings,
      kubeConfig: () => kc,
      async forward(host: string, port: number): Promise<Forward> {
        const f = await forwardTo(proxySocket, host, port);
        forwards.push(f);
        return f;
      },
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}


