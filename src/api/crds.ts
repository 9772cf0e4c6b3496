import { z } from 'zod';
import { stringify } from 'yaml';
import { API_VERSION_NAME, PLURALS } from './kinds.ts';
import { MAIL_BACKEND_KIND, mailBackendSpecSchema, mailBackendStatusSchema } from './mail-backend.ts';
import { API_GROUP, MAIL_USER_RESTRICTION_KIND, mailUserRestrictionStatusSchema, specSchema } from './mail-user-restriction.ts';
import { POLICY_DAEMON_KIND, policyDaemonSpecSchema, policyDaemonStatusSchema } from './policy-daemon.ts';

/**
 * CustomResourceDefinitions generated from the zod schemas, so the API server validates exactly
 * what the code validates. `npm run gen:crds` writes them to crds/; a test fails when the files
 * there are stale.
 */
export interface CrdSource {
  readonly kind: string;
  readonly plural: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly description: string;
  readonly spec: z.ZodType;
  /** What `kubectl explain <kind>.spec` prints. */
  readonly specDescription: string;
  readonly status: z.ZodType;
  readonly statusDescription: string;
  readonly printerColumns: readonly { name: string; type: string; jsonPath: string; description?: string; priority?: number }[];
}

const READY_COLUMN = { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' };
const REASON_COLUMN = { name: 'Reason', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason' };
const AGE_COLUMN = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

export const CRD_SOURCES: readonly CrdSource[] = [
  {
    kind: MAIL_USER_RESTRICTION_KIND,
    plural: PLURALS.MailUserRestriction,
    singular: 'mailuserrestriction',
    shortNames: ['mur'],
    description:
      'Per-mailbox send/receive restrictions (iRedMail allowedsenders, rejectedsenders, allowedrecipients, rejectedrecipients), written by mailwarden to the store a MailBackend names and enforced by the mailwarden policy daemon.',
    spec: specSchema,
    specDescription: 'The mailbox, the MailBackend whose store holds it, and its four sender/recipient lists.',
    status: mailUserRestrictionStatusSchema,
    statusDescription: 'Written by the operator: whether the store holds the spec (Ready, Synced) and when it last checked.',
    printerColumns: [
      { name: 'Mailbox', type: 'string', jsonPath: '.spec.mailbox' },
      { name: 'Backend', type: 'string', jsonPath: '.spec.backendRef.name' },
      READY_COLUMN,
      REASON_COLUMN,
      AGE_COLUMN,
    ],
  },
  {
    kind: MAIL_BACKEND_KIND,
    plural: PLURALS.MailBackend,
    singular: 'mailbackend',
    shortNames: ['mbe'],
    description: 'A mail user store (PostgreSQL, MySQL/MariaDB or OpenLDAP, iRedMail layout: the vmail.mailbox columns, the amavisd white/blacklist tables, or LDAP attributes) that MailUserRestrictions are written to.',
    spec: mailBackendSpecSchema,
    specDescription: 'Where the store is (URL), the Secret with its password, and the SQL or LDAP layout and TLS settings.',
    status: mailBackendStatusSchema,
    statusDescription: 'Written by the operator: whether it reaches the store (Ready).',
    printerColumns: [
      { name: 'URL', type: 'string', jsonPath: '.spec.url' },
      { name: 'Schema', type: 'string', jsonPath: '.spec.sql.schema', description: 'SQL: vmail (vmail.mailbox columns) or amavisd (the amavisd white/blacklist tables).' },
      READY_COLUMN,
      REASON_COLUMN,
      AGE_COLUMN,
    ],
  },
  {
    kind: POLICY_DAEMON_KIND,
    plural: PLURALS.PolicyDaemon,
    singular: 'policydaemon',
    shortNames: ['mpd'],
    description:
      'The mailwarden policy daemon next to Postfix: injected as a sidecar into the Postfix pods a selector matches (mutating admission webhook), or run as a Deployment behind a Service.',
    spec: policyDaemonSpecSchema,
    specDescription: 'How the daemon runs (Sidecar or Service), which MailBackend it reads, which Postfix pods get it, and its policy settings.',
    status: policyDaemonStatusSchema,
    statusDescription: 'Written by the operator: Ready, and the injected pods or ready replicas.',
    printerColumns: [
      { name: 'Mode', type: 'string', jsonPath: '.spec.mode' },
      { name: 'Backend', type: 'string', jsonPath: '.spec.backendRef.name' },
      { name: 'Injected', type: 'integer', jsonPath: '.status.injectedPods', description: 'Sidecar mode: pods with the daemon injected.' },
      { name: 'Replicas', type: 'integer', jsonPath: '.status.readyReplicas', description: 'Service mode: ready replicas.' },
      { name: 'Sidecars Not Running', type: 'integer', jsonPath: '.status.sidecarsNotRunning', description: 'Sidecar mode: injected pods whose daemon is not running.' },
      READY_COLUMN,
      REASON_COLUMN,
      AGE_COLUMN,
    ],
  },
];

type JsonSchema = { [key: string]: unknown };

/** The CRD object for one kind. */
export function buildCrd(source: CrdSource): JsonSchema {
  const schema = {
    type: 'object',
    description: source.description,
    properties: {
      apiVersion: { type: 'string', description: 'mailwarden.io/v1alpha1' },
      kind: { type: 'string', description: source.kind },
      // The API server refuses anything but type here; kubectl explain describes ObjectMeta itself.
      metadata: { type: 'object' },
      spec: { ...toStructural(z.toJSONSchema(source.spec, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' }) as JsonSchema), description: source.specDescription },
      status: { ...toStructural(z.toJSONSchema(source.status, { target: 'openapi-3.0', io: 'output', unrepresentable: 'any' }) as JsonSchema), description: source.statusDescription },
    },
    required: ['spec'],
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${source.plural}.${API_GROUP}`, labels: { 'app.kubernetes.io/part-of': 'mailwarden' } },
    spec: {
      group: API_GROUP,
      names: { kind: source.kind, listKind: `${source.kind}List`, plural: source.plural, singular: source.singular, shortNames: [...source.shortNames], categories: ['mailwarden'] },
      scope: 'Namespaced',
      versions: [
        {
          name: API_VERSION_NAME,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: source.printerColumns.map((c) => ({ ...c })),
          schema: { openAPIV3Schema: schema },
        },
      ],
    },
  };
}

export function buildCrds(): JsonSchema[] {
  return CRD_SOURCES.map(buildCrd);
}

/** File name and YAML text of each CRD, as checked in under crds/. */
export function crdFiles(): { name: string; text: string }[] {
  return CRD_SOURCES.map((source) => ({
    name: `${API_GROUP}_${source.plural}.yaml`,
    text: `# Generated from src/api by \`npm run gen:crds\`; do not edit.\n${stringify(buildCrd(source), { lineWidth: 0 })}`,
  }));
}

const SAFE_INTEGER = 9007199254740991;

/**
 * JSON Schema (OpenAPI 3.0 flavour) to a Kubernetes structural schema: no
 * `additionalProperties: false` (structural schemas prune unknown fields anyway), open maps as
 * `x-kubernetes-preserve-unknown-fields`, no JavaScript safe-integer bounds.
 */
export function toStructural(node: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$schema' || key === 'id' || key === '$id') continue;
    if (key === 'additionalProperties') {
      if (value === false) continue;
      if (isObject(value) && Object.keys(value).length === 0) {
        out['x-kubernetes-preserve-unknown-fields'] = true;
        continue;
      }
      out[key] = toStructural(value as JsonSchema);
      continue;
    }
    if ((key === 'minimum' && value === -SAFE_INTEGER) || (key === 'maximum' && value === SAFE_INTEGER)) continue;
    if (key === 'properties' && isObject(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toStructural(v as JsonSchema)]));
      continue;
    }
    if (key === 'items' && isObject(value)) {
      out[key] = toStructural(value);
      continue;
    }
    out[key] = value;
  }
  if (out.type === 'object' && out.properties === undefined && out['x-kubernetes-preserve-unknown-fields'] === undefined && out.additionalProperties === undefined) {
    out['x-kubernetes-preserve-unknown-fields'] = true;
  }
  return out;
}

function isObject(value: unknown): value is JsonSchema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
