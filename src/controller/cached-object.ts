/**
 * What an informer keeps of an object. Thousands of cached objects are most of the operator's
 * heap after the Kubernetes client itself, so they are kept small: no managedFields or
 * last-applied copy (no reconciler reads them, and they are most of a small object created by
 * kubectl apply), and one copy of the strings many objects share. Figures: docs/performance.md.
 */
import type { KubernetesObject } from '@kubernetes/client-node';

/** Drops managedFields and kubectl's last-applied annotation; returns `obj` itself when it has neither. */
export function slim(obj: KubernetesObject): KubernetesObject {
  const metadata = obj.metadata;
  if (metadata === undefined) return obj;
  const annotations = metadata.annotations;
  const lastApplied = annotations?.['kubectl.kubernetes.io/last-applied-configuration'] !== undefined;
  if (metadata.managedFields === undefined && !lastApplied) return obj;
  const { managedFields: _dropped, ...rest } = metadata;
  if (lastApplied) {
    const { 'kubectl.kubernetes.io/last-applied-configuration': _copy, ...others } = annotations!;
    rest.annotations = others;
  }
  return { ...obj, metadata: rest };
}

/**
 * One copy of each string value many objects repeat. JSON.parse gives every object its own copy
 * of `apiVersion`, the namespace, the finalizer, the condition types and reasons, the timestamps
 * of a burst and the list entries (`@example.com` in thousands of restrictions). Bounded:
 * forgotten and restarted when full, which only costs sharing.
 */
export class StringPool {
  readonly #strings = new Map<string, string>();
  readonly #max: number;

  constructor(max = 10_000) {
    this.#max = max;
  }

  intern(value: string): string {
    const known = this.#strings.get(value);
    if (known !== undefined) return known;
    if (this.#strings.size >= this.#max) this.#strings.clear();
    this.#strings.set(value, value);
    return value;
  }

  get size(): number {
    return this.#strings.size;
  }
}

/** Condition fields shared by many objects; `message` usually names the object and is left alone. */
const SHARED_CONDITION_FIELDS = ['type', 'status', 'reason', 'lastTransitionTime'] as const;

/**
 * {@link slim}, then the shared strings of a mailwarden resource interned in `pool`: apiVersion,
 * kind, namespace, creation time, finalizers, the strings of `spec` but `mailbox`, and the shared
 * fields of status conditions. For our custom resources only: a Secret's values are never pooled.
 */
export function slimShared(obj: KubernetesObject, pool: StringPool): KubernetesObject {
  // Rewritten in place: the informer hands over its own fresh parse and keeps only the result.
  const out = slim(obj) as KubernetesObject & { spec?: Record<string, unknown>; status?: { conditions?: unknown } };
  if (typeof out.apiVersion === 'string') out.apiVersion = pool.intern(out.apiVersion);
  if (typeof out.kind === 'string') out.kind = pool.intern(out.kind);
  const m = out.metadata;
  if (m !== undefined) {
    if (typeof m.namespace === 'string') m.namespace = pool.intern(m.namespace);
    if (typeof m.creationTimestamp === 'string') m.creationTimestamp = pool.intern(m.creationTimestamp) as never;
    if (Array.isArray(m.finalizers)) m.finalizers = m.finalizers.map((f) => pool.intern(f));
  }
  const spec = out.spec;
  if (spec !== null && typeof spec === 'object') {
    // `mailbox` differs in every restriction: pooling it would only fill the pool.
    for (const key of Object.keys(spec)) if (key !== 'mailbox') spec[key] = internStrings(spec[key], pool);
  }
  const conditions = out.status?.conditions;
  if (Array.isArray(conditions)) {
    for (const condition of conditions as Record<string, unknown>[]) {
      for (const field of SHARED_CONDITION_FIELDS) {
        const value = condition[field];
        if (typeof value === 'string') condition[field] = pool.intern(value);
      }
    }
  }
  return out;
}

function internStrings(value: unknown, pool: StringPool): unknown {
  if (typeof value === 'string') return pool.intern(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = internStrings(value[i], pool);
    return value;
  }
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) record[key] = internStrings(record[key], pool);
  }
  return value;
}
