/**
 * The key of a Kubernetes object in informer caches, work queues and indexes, as client-go's
 * MetaNamespaceKeyFunc makes it: `namespace/name`, or `name` alone for a cluster-scoped object.
 */
export function keyOf(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

/** The key of an object, from its metadata. */
export function keyOfObject(obj: { readonly metadata?: { readonly namespace?: string; readonly name?: string } }): string {
  return keyOf(obj.metadata?.namespace, obj.metadata?.name ?? '');
}

/** The namespace (`''` for a cluster-scoped object) and the name a key stands for. */
export function splitKey(key: string): [namespace: string, name: string] {
  const slash = key.indexOf('/');
  return slash < 0 ? ['', key] : [key.slice(0, slash), key.slice(slash + 1)];
}
