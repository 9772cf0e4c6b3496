import { createHash } from 'node:crypto';
import { bufferFromFileOrString, KubeConfig, type RequestContext } from '@kubernetes/client-node';

type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

const UNUSED_AGENT = new Error('agent replaced by the shared connection pool');
const POOLED = new WeakSet<object>();

/** Whether `dispatcher` is a shared pool (else it is one request's own, to be closed after it). */
export function isPooledDispatcher(dispatcher: object): boolean {
  return POOLED.has(dispatcher);
}

/**
 * A KubeConfig whose requests share one connection pool per API server and client identity.
 *
 * client-node (2.0) builds a new undici Agent for every request, so every call — each status
 * patch, finalizer, Event, lease renewal — would open a TLS connection and do a handshake with
 * the client certificate: with thousands of restrictions, most of the operator's CPU. Here the
 * Agent is kept and reused (keep-alive), and replaced only when the TLS material it was built
 * from changes (a rotated CA or client certificate file).
 *
 * Users authenticated by an exec plugin, which may hand out client certificates of its own, keep
 * the library's behaviour; tokens (in-cluster, auth providers) travel in headers, not the pool.
 */
class ConnectionReusingKubeConfig extends KubeConfig {
  readonly #pools = new Map<string, { fingerprint: string; dispatcher: Dispatcher }>();

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    const cluster = this.getCurrentCluster();
    const user = this.getCurrentUser();
    if (fresh === undefined || cluster === null || cluster.proxyUrl || user?.exec) return;
    const identity = JSON.stringify([cluster.name, cluster.server, user?.name ?? '']);
    const fingerprint = createHash('sha256')
      .update(JSON.stringify([cluster.skipTLSVerify ?? false, cluster.tlsServerName ?? '']))
      .update(bufferFromFileOrString(cluster.caFile, cluster.caData) ?? '')
      .update('\0')
      .update(bufferFromFileOrString(user?.certFile, user?.certData) ?? '')
      .update('\0')
      .update(bufferFromFileOrString(user?.keyFile, user?.keyData) ?? '')
      .digest('hex');
    const pool = this.#pools.get(identity);
    if (pool !== undefined && pool.fingerprint === fingerprint) {
      context.setDispatcher(pool.dispatcher);
      // Never used, so nothing to wait for; one shared reason, because close() and destroy()
      // without one build a fresh Error (and stack trace) per request.
      void fresh.destroy(UNUSED_AGENT).catch(() => {});
      return;
    }
    this.#pools.set(identity, { fingerprint, dispatcher: fresh });
    POOLED.add(fresh);
    // Requests in flight (watches too) finish on the old pool; close() waits for them.
    if (pool !== undefined) void pool.dispatcher.close().catch(() => {});
  }
}

/** A copy of `kc` (same clusters, users, contexts) that reuses connections; see ConnectionReusingKubeConfig. */
export function reuseConnections(kc: KubeConfig): KubeConfig {
  if (kc instanceof ConnectionReusingKubeConfig) return kc;
  const pooled = new ConnectionReusingKubeConfig();
  pooled.loadFromOptions({ clusters: kc.clusters, users: kc.users, contexts: kc.contexts, currentContext: kc.currentContext });
  return pooled;
}
