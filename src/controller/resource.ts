import { ApiException, HttpMethod, RequestContext, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { request, type Dispatcher } from 'undici';
import { isPooledDispatcher } from '../kube/kube-config.ts';
import type { ListFunction, ListOptions } from './informer.ts';

/** A collection of the Kubernetes API, named the way its URL is. */
export interface ResourceType {
  /** The API group; '' for the core group (Secrets, Pods). */
  readonly group: string;
  readonly version: string;
  /** The plural resource name, e.g. `mailuserrestrictions`. */
  readonly plural: string;
}

/** The collection's path, in one namespace or (namespace undefined) across all of them. */
export function collectionPath(type: ResourceType, namespace?: string): string {
  const base = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  return `${base}/${namespace ? `namespaces/${encodeURIComponent(namespace)}/` : ''}${type.plural}`;
}

/**
 * Lists a collection by its path, for any kind alike, so that an informer needs nothing but the
 * ResourceType (the generated clients need one method per kind). Items stay the API server's
 * JSON, as the watch delivers them: timestamps are strings whether an object came from the list
 * or the watch. Over the KubeConfig's connection pool, like the operator's other requests.
 */
export function collectionLister(kc: KubeConfig, path: string): ListFunction<KubernetesObject> {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error('the kubeconfig has no current cluster');
  const server = cluster.server.replace(/\/+$/, '');
  return async (options: ListOptions) => {
    const url = new URL(server + path);
    if (options.labelSelector) url.searchParams.set('labelSelector', options.labelSelector);
    if (options.fieldSelector) url.searchParams.set('fieldSelector', options.fieldSelector);
    if (options.limit !== undefined) url.searchParams.set('limit', String(options.limit));
    if (options._continue) url.searchParams.set('continue', options._continue);
    const context = new RequestContext(url.toString(), HttpMethod.GET);
    await kc.applySecurityAuthentication(context);
    const dispatcher = context.getDispatcher() as Dispatcher | undefined;
    let status: number;
    let text: string;
    try {
      const response = await request(url, {
        method: 'GET',
        headers: { ...context.getHeaders(), accept: 'application/json' },
        ...(dispatcher === undefined ? {} : { dispatcher }),
      });
      status = response.statusCode;
      text = await response.body.text();
    } finally {
      // A KubeConfig that does not pool hands out an Agent per request: closed after it.
      if (dispatcher !== undefined && !isPooledDispatcher(dispatcher)) void dispatcher.close().catch(() => {});
    }
    if (status < 200 || status > 299) throw new ApiException(status, `HTTP ${status} listing ${path}: ${text.slice(0, 300)}`, text, {});
    const list = JSON.parse(text) as KubernetesListObject<KubernetesObject> & { metadata?: { continue?: string } };
    // The wire name is `continue`; client-node's list type (and so the informer) reads `_continue`.
    // Raw JSON without this renaming ends a paged list after its first page.
    if (list.metadata?.continue) list.metadata._continue = list.metadata.continue;
    return list;
  };
}
