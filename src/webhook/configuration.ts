import type { V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { INJECT_LABEL } from '../reconcilers/policy-daemon-objects.ts';
import { MUTATE_PODS_PATH } from './admission-server.ts';

/**
 * How the API server reaches the webhook: in a cluster a Service in front of the operator; in
 * tests (or outside a cluster) a URL such as https://127.0.0.1:PORT.
 */
export type WebhookEndpoint =
  | { readonly service: { readonly name: string; readonly namespace: string; readonly port?: number } }
  | { readonly url: string };

// The same name as the Helm chart's: webhooks are a list keyed by name, so server-side apply
// updates the chart's entry rather than adding a second one.
export const WEBHOOK_NAME = 'inject.mailwarden.io';

/**
 * The MutatingWebhookConfiguration, whole — what the operator creates where nobody installed one
 * (no Helm chart: tests, a run outside a cluster); with the chart, the chart's own is used and
 * the operator keeps only its caBundle (caBundleApply). Its safety settings:
 * - failurePolicy Ignore: the webhook down admits pods unchanged — mail pods are never blocked;
 * - an objectSelector on the opt-in label: the API server calls the webhook for those pods only;
 * - sideEffects None, CREATE only, a short timeout, reinvocation never needed (it only adds).
 */
export function webhookConfiguration(name: string, endpoint: WebhookEndpoint, caBundle: string): V1MutatingWebhookConfiguration {
  const clientConfig =
    'url' in endpoint
      ? { url: `${endpoint.url.replace(/\/$/, '')}${MUTATE_PODS_PATH}`, caBundle: Buffer.from(caBundle).toString('base64') }
      : {
          service: { name: endpoint.service.name, namespace: endpoint.service.namespace, port: endpoint.service.port ?? 443, path: MUTATE_PODS_PATH },
          caBundle: Buffer.from(caBundle).toString('base64'),
        };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name, labels: { 'app.kubernetes.io/part-of': 'mailwarden', 'app.kubernetes.io/managed-by': 'mailwarden' } },
    webhooks: [
      {
        name: WEBHOOK_NAME,
        admissionReviewVersions: ['v1'],
        clientConfig,
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
        objectSelector: { matchLabels: { [INJECT_LABEL]: 'true' } },
        failurePolicy: 'Ignore',
        sideEffects: 'None',
        matchPolicy: 'Equivalent',
        reinvocationPolicy: 'Never',
        timeoutSeconds: 5,
      },
    ],
  };
}

/**
 * The operator's field manager for the caBundle alone. The chart (or GitOps) owns the rest of the
 * configuration — selectors, timeout, labels — and a `helm upgrade` or a server-side apply of the
 * chart's manifests must never meet a conflict with the operator, nor see its values reverted.
 */
export const CA_BUNDLE_FIELD_MANAGER = 'mailwarden-webhook-ca';

/** A server-side apply body that states the webhook's caBundle and nothing else. */
export function caBundleApply(name: string, caBundle: string): Record<string, unknown> {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name },
    webhooks: [{ name: WEBHOOK_NAME, clientConfig: { caBundle: Buffer.from(caBundle).toString('base64') } }],
  };
}

/** One entry of metadata.managedFields, as far as ownership decisions go. */
export interface ManagedFieldsEntry {
  readonly manager?: string;
  readonly operation?: string;
}

/**
 * Where the whole-object ownership an earlier operator version took (server-side apply of the
 * entire configuration as `wholeObjectManager`) must be given up: the index of that entry when
 * another manager (helm, kubectl, Argo CD) also manages the object, else undefined. Removing the
 * entry leaves every field in place, unowned, for the chart's next apply to take without a
 * conflict. An object only the operator manages (it created it: no chart) keeps the entry.
 */
export function legacyOwnershipToDrop(entries: readonly ManagedFieldsEntry[] | undefined, wholeObjectManager: string): number | undefined {
  if (entries === undefined) return undefined;
  const index = entries.findIndex((e) => e.manager === wholeObjectManager && e.operation === 'Apply');
  if (index === -1) return undefined;
  const others = entries.some((e) => e.manager !== wholeObjectManager && e.manager !== CA_BUNDLE_FIELD_MANAGER);
  return others ? index : undefined;
}
