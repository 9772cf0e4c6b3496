import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiextensionsV1Api, ApiException, loadYaml, type KubeConfig, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { repoPath } from '../helpers/paths.ts';

/** The CRDs as checked in under crds/ (what users apply). */
export function checkedInCrds(): V1CustomResourceDefinition[] {
  return readdirSync(repoPath('crds'))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    // loadYaml maps to the client's typed model: a raw object would lose `default`, `enum`
    // and `x-kubernetes-*`, which the model names differently.
    .map((f) => loadYaml<V1CustomResourceDefinition>(readFileSync(repoPath('crds', f), 'utf8')));
}

/** Creates (or replaces) every CRD from crds/ and waits until the API server serves them. */
export async function installCrds(kc: KubeConfig): Promise<void> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  for (const crd of checkedInCrds()) {
    const name = crd.metadata!.name!;
    try {
      await api.createCustomResourceDefinition({ body: crd });
    } catch (error) {
      if (!(error instanceof ApiException) || error.code !== 409) throw error;
      const existing = await api.readCustomResourceDefinition({ name });
      await api.replaceCustomResourceDefinition({ name, body: { ...crd, metadata: { ...crd.metadata, resourceVersion: existing.metadata!.resourceVersion } } });
    }
  }
  for (const crd of checkedInCrds()) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const current = await api.readCustomResourceDefinition({ name: crd.metadata!.name! });
      if (current.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) throw new Error(`CRD ${crd.metadata!.name} not established`);
      await sleep(100);
    }
  }
}

/**
 * A schemaless CRD for another project's kind (ServiceMonitor, Argo CD Application), so the API
 * server accepts our manifests of that kind in a server-side dry run.
 */
export function stubCrd(group: string, version: string, kind: string): string {
  const plural = `${kind.toLowerCase()}s`;
  return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: ${plural}.${group} }
spec:
  group: ${group}
  names: { kind: ${kind}, plural: ${plural}, singular: ${kind.toLowerCase()}, listKind: ${kind}List }
  scope: Namespaced
  versions:
    - name: ${version}
      served: true
      storage: true
      schema: { openAPIV3Schema: { type: object, x-kubernetes-preserve-unknown-fields: true } }
`;
}
