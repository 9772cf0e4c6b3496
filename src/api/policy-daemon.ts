import { z } from 'zod';
import { objectNameSchema } from './object-name.ts';
import { actionSchema } from './actions.ts';
import { durationTextSchema } from './durations.ts';
import { conditionSchema } from './conditions.ts';
import { API_VERSION, metadataSchema } from './mail-user-restriction.ts';

/**
 * The PolicyDaemon document: where and how the mailwarden policy daemon runs next to Postfix.
 * `Sidecar` injects it into the Postfix pods the selector matches (admission webhook);
 * `Service` runs it as a Deployment behind a Service that Postfix pods reach over the network.
 */
export const POLICY_DAEMON_KIND = 'PolicyDaemon';

const labelKey = z.string().min(1).max(317);
const labelValue = z.string().max(63);

/** metav1.LabelSelector, the subset Kubernetes defines. */
export const labelSelectorSchema = z
  .object({
    matchLabels: z.record(labelKey, labelValue).optional().describe('Labels a pod must have, with these values.'),
    matchExpressions: z
      .array(
        z
          .object({
            key: labelKey.describe('The label key the requirement applies to.'),
            operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']).describe('In, NotIn, Exists or DoesNotExist.'),
            values: z.array(labelValue).max(64).optional().describe('For In and NotIn: the label values; empty for Exists and DoesNotExist.'),
          })
          .strict(),
      )
      .max(16)
      .optional()
      .describe('Set-based requirements, all of which must hold.'),
  })
  .strict();

export type LabelSelector = z.infer<typeof labelSelectorSchema>;

/** Kubernetes' quantity grammar: a decimal number (group 1), then an exponent or a suffix (group 3). */
const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$/;
const QUANTITY_SUFFIX: Readonly<Record<string, number>> = {
  '': 1, n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** A resource quantity such as 50m, 64Mi or "1" (quote plain numbers in YAML). */
const quantity = z.string().regex(QUANTITY, 'a quantity such as 50m, 64Mi or "1"');

/** A quantity (`256Mi`, `1G`, `5e8`, `268435456`) in its base unit; undefined when it is not one. */
export function quantityValue(text: string): number | undefined {
  const match = QUANTITY.exec(text);
  if (match === null) return undefined;
  const scale = match[3] ?? '';
  // `1E` is the exa suffix; an exponent has digits.
  const factor = /^[eE][+-]?\d/.test(scale) ? 10 ** Number(scale.slice(1)) : QUANTITY_SUFFIX[scale];
  return factor === undefined ? undefined : Number(match[1]) * factor;
}

export const resourcesSchema = z
  .object({
    requests: z.record(z.string().min(1).max(253), quantity).optional().describe('e.g. cpu: 50m, memory: 64Mi.'),
    limits: z.record(z.string().min(1).max(253), quantity).optional().describe('e.g. memory: 256Mi.'),
  })
  .strict();

/** The daemon's decision and cache options (the policyd config file's keys of the same names). */
export const policyOptionsSchema = z
  .object({
    semantics: z.enum(['default', 'iredapd']).default('default').describe('default, or iredapd (iRedAPD 1.6 compatibility preset).'),
    allowAction: actionSchema.optional().describe('Answer for an allow (default DUNNO; OK under iredapd).'),
    rejectAction: actionSchema.optional().describe('Answer for a reject (default "REJECT Not authorized").'),
    failureAction: actionSchema.optional().describe('Answer when the store cannot answer (default "DEFER_IF_PERMIT Service temporarily unavailable"; DUNNO under iredapd).'),
    recipientDelimiter: z.string().max(8).regex(/^[^\s@]*$/, 'delimiter characters such as "+" or "+-"').optional().describe("Postfix's recipient_delimiter, e.g. \"+\"."),
    nullSenderExemption: z.boolean().optional().describe('Bounces (null sender) are never rejected by inbound lists.'),
    subdomainMatching: z.boolean().optional().describe('"@.example.com" also matches sub-domains (default true; false under iredapd).'),
    identityFromSasl: z.boolean().optional().describe('The sending identity is sasl_username when present (default true; false under iredapd).'),
    bypassOutgoing: z.boolean().optional().describe("amavisd schema: no outbound check (iRedAPD's WBLIST_BYPASS_OUTGOING_EMAIL; default false)."),
    discardInsteadOfReject: z.boolean().optional().describe("amavisd schema: a blacklisted pair answers DISCARD instead of REJECT (iRedAPD's WBLIST_DISCARD_INSTEAD_OF_REJECT; default false)."),
    cacheTTL: durationTextSchema.optional().describe('How long a fetched mailbox is reused (default 30s).'),
    lookupTimeout: durationTextSchema.optional().describe('Store lookup timeout (default 1s).'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug']).default('info').describe("The daemon's log level."),
  })
  .strict();

const STORE_MESSAGE = 'store MailBackend needs a backendRef; store Kubernetes takes none (it reads the MailUserRestriction resources)';

export const policyDaemonSpecSchema = z
  .object({
    store: z
      .enum(['MailBackend', 'Kubernetes'])
      .default('MailBackend')
      .describe('Where the daemon reads restrictions. MailBackend: the SQL or LDAP store backendRef names (iRedMail). Kubernetes: the MailUserRestriction resources without backendRef in this namespace, watched with the daemon\'s own read-only ServiceAccount; no database needed.'),
    backendRef: z
      .object({ name: objectNameSchema('Name of a MailBackend in the same namespace.') })
      .strict()
      .optional()
      .describe('store MailBackend: the MailBackend (store) the daemon reads restrictions from.'),
    mode: z.enum(['Sidecar', 'Service']).default('Sidecar').describe('Sidecar: injected into the Postfix pods podSelector matches. Service: a Deployment and a Service.'),
    podSelector: labelSelectorSchema
      .optional()
      .describe('Sidecar mode: the Postfix pods (in this namespace, labelled mailwarden.io/inject: "true") that get the daemon. Service mode: the Postfix pods (in this namespace) its NetworkPolicy admits to the policy port; without it, no pod (Ready stays False, reason NoClientsAdmitted); {} admits every pod of the namespace.'),
    policy: policyOptionsSchema.default({ semantics: 'default', logLevel: 'info' }).describe('Decision and cache options.'),
    port: z.number().int().min(1).max(65535).default(7777).describe('Policy port. Sidecar: on 127.0.0.1 only (check_policy_service inet:127.0.0.1:PORT). Service: the Service port.'),
    httpPort: z.number().int().min(1).max(65535).default(7778).describe('Port of /healthz, /readyz and /metrics (probes and scrapes; no decision data).'),
    replicas: z.number().int().min(1).max(50).default(2).describe('Service mode: Deployment replicas.'),
    image: z.string().min(1).max(512).optional().describe("The daemon's image (default: the operator's mailwarden image); it is run as `node /app/bin/mailwarden.js policyd …`, as the mailwarden image lays it out."),
    imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional().describe("The container's image pull policy (default: Kubernetes' own)."),
    resources: resourcesSchema.optional().describe('Container resources (default requests cpu 50m, memory 64Mi; limit memory 256Mi). The daemon\'s heap is sized from the memory limit (NODE_OPTIONS: half of it for the old generation).'),
  })
  .strict()
  .superRefine((spec, ctx) => {
    if (spec.mode === 'Sidecar' && spec.podSelector === undefined) ctx.addIssue({ code: 'custom', path: ['podSelector'], message: 'Sidecar mode needs a podSelector' });
    if (spec.port === spec.httpPort) ctx.addIssue({ code: 'custom', path: ['httpPort'], message: 'httpPort must differ from port' });
    if (spec.store === 'MailBackend' && spec.backendRef === undefined) ctx.addIssue({ code: 'custom', path: ['backendRef'], message: STORE_MESSAGE });
    if (spec.store === 'Kubernetes' && spec.backendRef !== undefined) ctx.addIssue({ code: 'custom', path: ['backendRef'], message: STORE_MESSAGE });
  })
  .meta({
    'x-kubernetes-validations': [
      { rule: "self.mode != 'Sidecar' || has(self.podSelector)", message: 'Sidecar mode needs a podSelector' },
      { rule: 'self.port != self.httpPort', message: 'httpPort must differ from port' },
      { rule: "(has(self.store) && self.store == 'Kubernetes') != has(self.backendRef)", message: STORE_MESSAGE },
    ],
  });

export const policyDaemonStatusSchema = z.object({
  observedGeneration: z.number().int().optional().describe('The spec generation the status describes.'),
  conditions: z.array(conditionSchema).optional().describe('Ready; in Sidecar mode also SidecarsRunning.'),
  injectedPods: z.number().int().optional().describe('Sidecar mode: pods running with the injected daemon.'),
  sidecarsNotRunning: z.number().int().optional().describe('Sidecar mode: injected pods whose daemon container is not running (its image missing, crash-looping…); Postfix there answers with its default_action.'),
  sidecarsNotRunningPods: z.array(z.string()).max(20).optional().describe('Sidecar mode: the names of (at most 20 of) those pods; the SidecarsRunning condition gives the kubelet\'s reason for each.'),
  readySidecars: z.number().int().optional().describe('Sidecar mode: injected pods whose daemon container is ready (with store Kubernetes: it has listed the MailUserRestrictions).'),
  readyReplicas: z.number().int().optional().describe('Service mode: ready replicas of the Deployment.'),
  configHash: z.string().optional().describe('Hash of the configuration the daemon was given.'),
});

export const policyDaemonSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(POLICY_DAEMON_KIND),
  metadata: metadataSchema,
  spec: policyDaemonSpecSchema,
  status: policyDaemonStatusSchema.optional(),
});

export type PolicyDaemonResource = z.infer<typeof policyDaemonSchema>;
export type PolicyDaemonSpec = z.output<typeof policyDaemonSpecSchema>;
export type PolicyOptions = z.output<typeof policyOptionsSchema>;

/** True when `labels` satisfy `selector` (metav1.LabelSelector semantics; an empty selector matches all). */
export function selectorMatches(selector: LabelSelector, labels: Readonly<Record<string, string>> | undefined): boolean {
  const have = labels ?? {};
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (have[key] !== value) return false;
  for (const expr of selector.matchExpressions ?? []) {
    const present = Object.hasOwn(have, expr.key);
    const values = expr.values ?? [];
    switch (expr.operator) {
      case 'In':
        if (!present || !values.includes(have[expr.key]!)) return false;
        break;
      case 'NotIn':
        if (present && values.includes(have[expr.key]!)) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
    }
  }
  return true;
}
