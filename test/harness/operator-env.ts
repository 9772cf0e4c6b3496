import { CoreV1Api, CustomObjectsApi, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Operator, type OperatorOptions } from '../../src/operator/manager.ts';
import { startControlPlane, type ControlPlane, type ServiceAccountCredentials } from './controlplane.ts';
import { renderChart, run } from './kube-tools.ts';
import { installCrds } from './crds.ts';
import { eventually } from '../helpers/eventually.ts';

export const GROUP = 'mailwarden.io';
export const VERSION = 'v1alpha1';

/** A control plane with mailwarden's CRDs, plus helpers to drive resources as a user would. */
export interface OperatorEnv {
  readonly cp: ControlPlane;
  readonly kc: KubeConfig;
  readonly objects: CustomObjectsApi;
  readonly core: CoreV1Api;
  /** A fresh namespace per test group. */
  namespace(prefix: string): Promise<string>;
  /**
   * Starts an in-process operator watching `namespaces`, authenticated as the Helm chart's
   * ServiceAccount with exactly the chart's RBAC (so every scenario proves the RBAC suffices);
   * stopped by stopAll().
   */
  operator(namespaces: string[], options?: Partial<OperatorOptions>, chartValues?: string[]): Promise<Operator>;
  /** A kubeconfig of the chart's ServiceAccount with the chart's RBAC for `namespaces` (and these `--set` values). */
  chartServiceAccount(namespaces: string[], chartValues?: string[]): Promise<ServiceAccountCredentials>;
  stopAll(): Promise<void>;
}

export async function startOperatorEnv(): Promise<OperatorEnv> {
  const cp = await startControlPlane();
  const kc = cp.kubeConfig();
  await installCrds(kc);
  const objects = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const operators: Operator[] = [];
  let counter = 0;
  return {
    cp,
    kc,
    objects,
    core,
    async namespace(prefix) {
      const name = `${prefix}-${++counter}-${Math.random().toString(36).slice(2, 6)}`;
      await core.createNamespace({ body: { metadata: { name } } });
      return name;
    },
    async chartServiceAccount(namespaces, chartValues = []) {
      return chartServiceAccount(cp, namespaces, chartValues);
    },
    async operator(namespaces, options = {}, chartValues = []) {
      const credentials = await chartServiceAccount(cp, namespaces, chartValues);
      const operator = new Operator({
        kubeConfig: credentials.kubeConfig(),
        namespaces,
        logger: pino({ level: process.env.OPERATOR_LOG_LEVEL ?? 'silent' }),
        resyncMs: 300_000,
        mailboxRetryMs: 300,
        backendProbeIntervalMs: 1_000,
        ...options,
      });
      operators.push(operator);
      await operator.start();
      return operator;
    },
    async stopAll() {
      await Promise.all(operators.splice(0).map((o) => o.stop()));
      await cp.stop();
    },
  };
}

/** The namespace the chart is "installed" in for the RBAC of in-process operators. */
export const OPERATOR_NAMESPACE = 'mailwarden-system';
const RELEASE = 'mw';

/** Applies the chart's ServiceAccount and RBAC (rendered by helm) and returns a token for it. */
export async function chartServiceAccount(cp: ControlPlane, namespaces: string[], chartValues: string[] = []): Promise<ServiceAccountCredentials> {
  await run('kubectl', ['create', 'namespace', OPERATOR_NAMESPACE], { kubeconfig: cp.kubeconfigPath });
  const yaml = await renderChart(RELEASE, OPERATOR_NAMESPACE, [`watchNamespaces={${namespaces.join(',')}}`, ...chartValues], ['--show-only', 'templates/serviceaccount.yaml', '--show-only', 'templates/rbac.yaml']);
  const applied = await run('kubectl', ['apply', '-f', '-'], { input: yaml, kubeconfig: cp.kubeconfigPath });
  if (applied.code !== 0) throw new Error(`applying the chart's RBAC failed: ${applied.stderr}`);
  return cp.serviceAccountToken(OPERATOR_NAMESPACE, `${RELEASE}-mailwarden`, { create: false });
}

export { eventually };

export type Obj = { metadata: { name: string; namespace: string; finalizers?: string[]; generation?: number; resourceVersion?: string }; spec: Record<string, unknown>; status?: { observedGeneration?: number; conditions?: { type: string; status: string; reason: string; message: string }[] } };

/** Resource helpers for one namespace. */
export function resources(env: OperatorEnv, namespace: string) {
  const base = { group: GROUP, version: VERSION, namespace };
  return {
    async createBackend(name: string, spec: Record<string, unknown>, password?: string) {
      if (password !== undefined) {
        await env.core.createNamespacedSecret({ namespace, body: { metadata: { name: `${name}-credentials` }, stringData: { password } } });
        spec = { ...spec, credentialsSecretRef: { name: `${name}-credentials` } };
      }
      await env.objects.createNamespacedCustomObject({ ...base, plural: 'mailbackends', body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'MailBackend', metadata: { name }, spec } });
    },
    async setSecret(name: string, password: string) {
      await env.core.replaceNamespacedSecret({ namespace, name, body: { metadata: { name }, stringData: { password } } });
    },
    async create(name: string, spec: Record<string, unknown>) {
      await env.objects.createNamespacedCustomObject({ ...base, plural: 'mailuserrestrictions', body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'MailUserRestriction', metadata: { name }, spec } });
    },
    async get(name: string): Promise<Obj | undefined> {
      try {
        return (await env.objects.getNamespacedCustomObject({ ...base, plural: 'mailuserrestrictions', name })) as Obj;
      } catch {
        return undefined;
      }
    },
    async update(name: string, spec: Record<string, unknown>) {
      for (;;) {
        const current = (await env.objects.getNamespacedCustomObject({ ...base, plural: 'mailuserrestrictions', name })) as Obj;
        try {
          await env.objects.replaceNamespacedCustomObject({ ...base, plural: 'mailuserrestrictions', name, body: { ...current, spec: { ...current.spec, ...spec } } });
          return;
        } catch (error) {
          if ((error as { code?: number }).code !== 409) throw error;
        }
      }
    },
    async delete(name: string) {
      await env.objects.deleteNamespacedCustomObject({ ...base, plural: 'mailuserrestrictions', name });
    },
    async condition(name: string, type = 'Ready') {
      const obj = await this.get(name);
      return obj?.status?.conditions?.find((c) => c.type === type);
    },
    /** Waits until Ready has `reason` (and the status describes the current generation). */
    async waitReason(name: string, reason: string, timeoutMs?: number) {
      return eventually(`${namespace}/${name} Ready reason ${reason}`, async () => {
        const obj = await this.get(name);
        const ready = obj?.status?.conditions?.find((c) => c.type === 'Ready');
        return obj !== undefined && ready?.reason === reason && obj.status?.observedGeneration === obj.metadata.generation ? { obj, ready } : undefined;
      }, timeoutMs);
    },
    async events(name: string): Promise<CoreV1Event[]> {
      const list = await env.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
      return list.items;
    },
  };
}
