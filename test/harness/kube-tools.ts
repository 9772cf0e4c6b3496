import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { repoPath } from '../helpers/paths.ts';

const execFileP = promisify(execFile);

let cached: { helm: string; kubectl: string } | undefined;

/** helm and kubectl, fetched into the cache by .ci/kube-tools.sh when not already there. */
export function kubeTools(): { helm: string; kubectl: string } {
  if (cached) return cached;
  const { MAILWARDEN_HELM: helm, MAILWARDEN_KUBECTL: kubectl } = process.env;
  if (helm && kubectl) return (cached = { helm, kubectl });
  const out = execFileSync('bash', ['-c', 'source .ci/kube-tools.sh >/dev/null && printf "%s\\n%s" "$MAILWARDEN_HELM" "$MAILWARDEN_KUBECTL"'], { cwd: repoPath(), encoding: 'utf8' });
  const [h, k] = out.trim().split('\n');
  return (cached = { helm: h!, kubectl: k! });
}

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number;
}

/** Runs helm or kubectl; never throws for a non-zero exit (the result says). */
export async function run(tool: 'helm' | 'kubectl', args: string[], options: { input?: string; kubeconfig?: string } = {}): Promise<CommandResult> {
  const env = { ...process.env, ...(options.kubeconfig ? { KUBECONFIG: options.kubeconfig } : {}), HELM_CACHE_HOME: '/tmp/mailwarden-helm/cache', HELM_CONFIG_HOME: '/tmp/mailwarden-helm/config', HELM_DATA_HOME: '/tmp/mailwarden-helm/data' };
  const child = execFileP(kubeTools()[tool], args, { env, cwd: repoPath(), maxBuffer: 64 * 1024 * 1024 });
  if (options.input !== undefined) {
    child.child.stdin!.end(options.input);
  }
  try {
    const { stdout, stderr } = await child;
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; code?: number };
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: typeof e.code === 'number' ? e.code : 1 };
  }
}

/** `helm template` of the chart with `--set`-style values, as YAML. */
export async function renderChart(release: string, namespace: string, sets: string[] = [], extra: string[] = []): Promise<string> {
  const args = ['template', release, 'charts/mailwarden', '--namespace', namespace, ...sets.flatMap((s) => ['--set', s]), ...extra];
  const result = await run('helm', args);
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return result.stdout;
}
