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
 * The MutatingWebhookConfiguration, whole, so the operator can server-side apply it and own
 * every safety setting:
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
