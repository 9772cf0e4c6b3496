import { z } from 'zod';
import { objectNameSchema } from './object-name.ts';
import { LdapStoreSettingsSchema, SqlStoreSettingsSchema } from './store-settings.ts';
import { urlStoreKind } from './store-url.ts';
import { backendDomainsSchema } from './backend-domains.ts';
import { conditionSchema } from './conditions.ts';
import { API_VERSION, metadataSchema } from './mail-user-restriction.ts';

export const MAIL_BACKEND_KIND = 'MailBackend';

const PASSWORD_IN_URL = 'the URL must not contain a password: put it in the Secret that credentialsSecretRef names';

/** A store URL: scheme, host, optional port and path; a password in it is refused. */
export const storeUrlSchema = z
  .string()
  .min(8)
  .max(2048)
  .regex(/^(postgres|postgresql|mysql|mariadb|ldap|ldaps):\/\/[^\s]+$/, 'a postgres://, mysql:// or ldap(s):// URL')
  .superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'is not a valid URL' });
      return;
    }
    if (url.password !== '') ctx.addIssue({ code: 'custom', message: PASSWORD_IN_URL });
  })
  .meta({
    'x-kubernetes-validations': [{ rule: "!self.matches(r'^[A-Za-z]+://[^/@]*:[^/@]*@')", message: PASSWORD_IN_URL }],
  })
  .describe('Where the store is: postgres://user@host:5432/vmail, mysql://user@host:3306/vmail or ldap://host:389 (no password).');

export const secretKeyRefSchema = z
  .object({
    name: objectNameSchema('A Secret in the same namespace.'),
    key: z.string().min(1).max(253).default('password').describe('The key holding the password.'),
  })
  .strict();

export const caSecretKeyRefSchema = z
  .object({
    name: objectNameSchema('A Secret in the same namespace.'),
    key: z.string().min(1).max(253).default('ca.crt').describe('The key holding the PEM certificates.'),
  })
  .strict();

const CA_NEEDS_VERIFY_FULL = 'caSecretRef needs tls.mode verify-full (the CA is used to check the store\'s certificate)';
/**
 * A MailBackend never names a file of the operator's: any path it can read (/dev/zero, a pipe)
 * would be read into memory, stall its I/O, or tell in status whether a file exists. The CA
 * comes from a Secret; a file is for the CLI's own configuration only.
 */
const NO_CA_FILE = 'tls.caFile is not accepted in a MailBackend: put the CA certificates in a Secret and name it in caSecretRef';
/** CEL: `test` holds for the tls of the settings block present (sql or ldap; the operator refuses a mismatch with the URL). */
const eitherTls = (test: (tls: string) => string): string =>
  `(has(self.sql) && has(self.sql.tls) && ${test('self.sql.tls')}) || (has(self.ldap) && has(self.ldap.tls) && ${test('self.ldap.tls')})`;

export const mailBackendSpecSchema = z
  .object({
    url: storeUrlSchema,
    domains: backendDomainsSchema.optional(),
    sql: SqlStoreSettingsSchema.optional().describe('Settings of a PostgreSQL or MySQL/MariaDB store (defaults: iRedMail).'),
    ldap: LdapStoreSettingsSchema.optional().describe('Settings of an LDAP store (defaults: iRedMail).'),
    credentialsSecretRef: secretKeyRefSchema.optional().describe('The Secret holding the password (SQL user or LDAP bind DN).'),
    caSecretRef: caSecretKeyRefSchema
      .optional()
      .describe(
        "The Secret holding the CA certificates (PEM) the store's certificate is checked against, with tls.mode verify-full: for a private CA (cert-manager, CloudNativePG). Without it, the system CAs.",
      ),
  })
  .strict()
  .superRefine((spec, ctx) => {
    const kind = urlStoreKind(spec.url);
    if (kind === 'ldap' && spec.sql !== undefined) ctx.addIssue({ code: 'custom', path: ['sql'], message: 'sql settings do not apply to an ldap:// URL' });
    if ((kind === 'postgres' || kind === 'mysql') && spec.ldap !== undefined) ctx.addIssue({ code: 'custom', path: ['ldap'], message: 'ldap settings do not apply to an SQL URL' });
    if (spec.caSecretRef !== undefined) {
      // The CA is only read where certificates are checked; anything else would ignore it silently.
      const settings = kind === 'ldap' ? 'ldap' : 'sql';
      const tls = spec[settings]?.tls;
      if (tls?.mode !== 'verify-full') ctx.addIssue({ code: 'custom', path: ['caSecretRef'], message: CA_NEEDS_VERIFY_FULL.replace('tls.', `${settings}.tls.`) });
    }
    for (const settings of ['sql', 'ldap'] as const) {
      if (spec[settings]?.tls?.caFile !== undefined) ctx.addIssue({ code: 'custom', path: [settings, 'tls', 'caFile'], message: NO_CA_FILE });
    }
  })
  .meta({
    // The same two rules for the API server, so kubectl apply and GitOps get them at once.
    'x-kubernetes-validations': [
      { rule: `!has(self.caSecretRef) || ${eitherTls((tls) => `has(${tls}.mode) && ${tls}.mode == 'verify-full'`)}`, message: CA_NEEDS_VERIFY_FULL },
      { rule: `!(${eitherTls((tls) => `has(${tls}.caFile)`)})`, message: NO_CA_FILE },
    ],
  });

export const mailBackendStatusSchema = z.object({
  observedGeneration: z.number().int().optional().describe('The spec generation the status describes.'),
  conditions: z.array(conditionSchema).optional().describe('Ready: the operator reaches the store with these settings.'),
});

export const mailBackendSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(MAIL_BACKEND_KIND),
  metadata: metadataSchema,
  spec: mailBackendSpecSchema,
  status: mailBackendStatusSchema.optional(),
});

export type MailBackend = z.infer<typeof mailBackendSchema>;
export type MailBackendSpec = z.infer<typeof mailBackendSpecSchema>;

/** The store settings of a backend, for `openUrlStore`. */
export function storeSettingsOf(spec: MailBackendSpec): unknown {
  return urlStoreKind(spec.url) === 'ldap' ? (spec.ldap ?? {}) : (spec.sql ?? {});
}
