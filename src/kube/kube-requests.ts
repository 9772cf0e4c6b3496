import { ApiException, HttpMethod, RequestContext, type KubeConfig } from '@kubernetes/client-node';
import { request, type Dispatcher } from 'undici';
import { isPooledDispatcher } from './kube-config.ts';

/**
 * JSON requests straight to the API server over the KubeConfig's own connection pool, with its
 * authentication — for the operator's hot writes (status, finalizers), which a burst of
 * thousands of restrictions sends tens of thousands of times.
 *
 * client-node goes through fetch and its generated middleware: WHATWG Request/Response objects,
 * web streams and an object serializer per call. undici's request() is the same HTTP client
 * without those layers, at a fraction of the CPU the operator shares with the API server.
 * Errors are client-node's ApiException, so callers handle both paths alike.
 */
export class KubeRequests {
  readonly #kc: KubeConfig;
  readonly #server: string;

  constructor(kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (cluster === null) throw new Error('the kubeconfig has no current cluster');
    this.#kc = kc;
    this.#server = cluster.server.replace(/\/+$/, '');
  }

  /** PATCHes `path` (under the server URL) with `body`; resolves with the response object. */
  patch(path: string, body: unknown, contentType: string): Promise<unknown> {
    return this.#send(HttpMethod.PATCH, path, { body: JSON.stringify(body), contentType });
  }

  /** GETs `path` (under the server URL): a read from the API server itself, not a cache. */
  get(path: string): Promise<unknown> {
    return this.#send(HttpMethod.GET, path);
  }

  async #send(method: 'GET' | 'PATCH', path: string, payload?: { body: string; contentType: string }): Promise<unknown> {
    const url = this.#server + path;
    const context = new RequestContext(url, method);
    await this.#kc.applySecurityAuthentication(context);
    const dispatcher = context.getDispatcher() as Dispatcher | undefined;
    let status: number;
    let headers: Record<string, string | string[] | undefined>;
    let text: string;
    try {
      const response = await request(url, {
        method,
        headers: { ...context.getHeaders(), ...(payload === undefined ? {} : { 'content-type': payload.contentType }), accept: 'application/json' },
        ...(payload === undefined ? {} : { body: payload.body }),
        ...(dispatcher === undefined ? {} : { dispatcher }),
      });
      status = response.statusCode;
      headers = response.headers;
      text = await response.body.text();
    } finally {
      // A KubeConfig that does not pool (exec-plugin users) hands out an Agent per request,
      // closed after it whether it succeeded or not.
      if (dispatcher !== undefined && !isPooledDispatcher(dispatcher)) void dispatcher.close().catch(() => {});
    }
    const parsed = parseJson(text);
    if (status < 200 || status > 299) {
      const message = (parsed as { message?: unknown } | undefined)?.message;
      throw new ApiException(status, `HTTP ${status}: ${typeof message === 'string' ? message : text.slice(0, 300)}`, parsed ?? text, flatten(headers));
    }
    return parsed;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function flatten(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}
