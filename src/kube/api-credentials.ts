import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isIPv6 } from 'node:net';
import path from 'node:path';
import { parse } from 'yaml';
import { HttpsConnections } from './https-connections.ts';

/**
 * How to reach one API server as one identity, without @kubernetes/client-node: importing that
 * library (its generated client of every API) costs a process about 80 MB of memory, more than
 * the policy daemon's whole store of 100,000 restrictions. The operator keeps using it; the
 * daemon's Kubernetes store, which only lists and watches one collection, uses this.
 *
 * Supported: a kubeconfig's server with its CA (file or data, or insecure-skip-tls-verify), and a
 * user with a token, a token file, or a client certificate; a mounted ServiceAccount token
 * directory. Exec plugins and auth providers are refused with a clear message.
 */
export interface ApiCredentials {
  /** `https://host:port`, no trailing slash. */
  readonly server: string;
  /** The namespace the kubeconfig context or the mounted token names, if any. */
  readonly namespace: string | undefined;
  /** Keep-alive connections with the TLS material, shared by every request (not undici: it alone costs 30 MB). */
  readonly connections: HttpsConnections;
  /** The Authorization header, when the identity is a token (a token file is read each time: rotation). */
  authorization(): string | undefined;
}

/** The credentials cannot be loaded; the message says what to fix. */
export class CredentialsError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CredentialsError';
  }
}

/** Where Kubernetes mounts a pod's own ServiceAccount token. */
export const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * A mounted ServiceAccount token directory (files `token`, `ca.crt`, optionally `namespace`) and
 * the in-cluster address from `KUBERNETES_SERVICE_HOST` / `_PORT`.
 */
export function mountedTokenCredentials(dir: string, env: NodeJS.ProcessEnv = process.env): ApiCredentials {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new CredentialsError('a mounted token needs the in-cluster KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT');
  const tokenFile = path.join(dir, 'token');
  const namespace = readText(path.join(dir, 'namespace'), false)?.trim() || undefined;
  return {
    server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`,
    namespace,
    connections: new HttpsConnections({ ca: readBytes(path.join(dir, 'ca.crt')), rejectUnauthorized: true }),
    authorization: () => `Bearer ${tokenOf(tokenFile)}`,
  };
}

/**
 * The current context of a kubeconfig: `file`, else the first existing file of `$KUBECONFIG`,
 * else `~/.kube/config`, else the pod's own mounted token when running in a cluster.
 */
export function kubeconfigCredentials(file?: string, env: NodeJS.ProcessEnv = process.env): ApiCredentials {
  const chosen = file ?? defaultKubeconfig(env);
  if (chosen === undefined) {
    if (env.KUBERNETES_SERVICE_HOST && existsSync(path.join(IN_CLUSTER_DIR, 'token'))) return mountedTokenCredentials(IN_CLUSTER_DIR, env);
    throw new CredentialsError('no kubeconfig ($KUBECONFIG, ~/.kube/config) and not in a cluster');
  }
  let config: Kubeconfig;
  try {
    config = (parse(readText(chosen, true)!) ?? {}) as Kubeconfig;
  } catch (error) {
    throw new CredentialsError(`the kubeconfig ${chosen} cannot be read: ${(error as Error).message}`, { cause: error });
  }
  const base = path.dirname(path.resolve(chosen));
  const named = <T>(list: readonly { name?: string }[] | undefined, name: string | undefined, what: string): T => {
    const found = (list ?? []).find((entry) => entry.name === name) as T | undefined;
    if (found === undefined) throw new CredentialsError(`the kubeconfig ${chosen} has no ${what} "${name ?? ''}"`);
    return found;
  };
  const context = named<{ context?: KubeconfigContext }>(config.contexts, config['current-context'], 'current context').context ?? {};
  const cluster = named<{ cluster?: KubeconfigCluster }>(config.clusters, context.cluster, 'cluster').cluster ?? {};
  const user = context.user === undefined ? {} : (named<{ user?: KubeconfigUser }>(config.users, context.user, 'user').user ?? {});
  if (!cluster.server?.startsWith('https://')) throw new CredentialsError(`the kubeconfig ${chosen}: cluster "${context.cluster}" names no https:// server`);
  if (user.exec !== undefined || user['auth-provider'] !== undefined) {
    throw new CredentialsError(`the kubeconfig ${chosen}: user "${context.user}" authenticates with an exec plugin or auth provider, which the policy daemon does not run; give it a token, a token file or a client certificate`);
  }
  const material = (data: string | undefined, file: string | undefined): Buffer | undefined =>
    data !== undefined ? Buffer.from(data, 'base64') : file !== undefined ? readBytes(path.resolve(base, file)) : undefined;
  const connections = new HttpsConnections({
    ca: material(cluster['certificate-authority-data'], cluster['certificate-authority']),
    cert: material(user['client-certificate-data'], user['client-certificate']),
    key: material(user['client-key-data'], user['client-key']),
    servername: cluster['tls-server-name'],
    rejectUnauthorized: cluster['insecure-skip-tls-verify'] !== true,
  });
  const tokenFile = user.tokenFile === undefined ? undefined : path.resolve(base, user.tokenFile);
  const authorization = user.token !== undefined ? () => `Bearer ${user.token}` : tokenFile !== undefined ? () => `Bearer ${tokenOf(tokenFile)}` : () => undefined;
  return { server: cluster.server.replace(/\/+$/, ''), namespace: context.namespace, connections, authorization };
}

interface KubeconfigCluster {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
}
interface KubeconfigUser {
  token?: string;
  tokenFile?: string;
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  exec?: unknown;
  'auth-provider'?: unknown;
}
interface KubeconfigContext {
  cluster?: string;
  user?: string;
  namespace?: string;
}
interface Kubeconfig {
  clusters?: { name?: string; cluster?: KubeconfigCluster }[];
  users?: { name?: string; user?: KubeconfigUser }[];
  contexts?: { name?: string; context?: KubeconfigContext }[];
  'current-context'?: string;
}

function defaultKubeconfig(env: NodeJS.ProcessEnv): string | undefined {
  const listed = (env.KUBECONFIG ?? '').split(path.delimiter).filter((p) => p !== '');
  for (const candidate of [...listed, path.join(homedir(), '.kube', 'config')]) if (existsSync(candidate)) return candidate;
  return undefined;
}

function tokenOf(file: string): string {
  const token = readText(file, true)!.trim();
  if (token === '') throw new CredentialsError(`the token file ${file} is empty`);
  return token;
}

function readBytes(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new CredentialsError(`${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
}

function readText(file: string, required: boolean): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    if (!required) return undefined;
    throw new CredentialsError(`${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
}
