import { formatIssues } from '../api/issues.ts';
import { mailBackendSpecSchema, type MailBackendSpec } from '../api/mail-backend.ts';
import type { ListSchema } from '../restrictions/schema-forms.ts';

/** A MailBackend's spec with the schema's defaults, or why it is not valid (one line). */
export type ParsedBackendSpec = { readonly spec: MailBackendSpec; readonly problems?: undefined } | { readonly spec?: undefined; readonly problems: string };

/**
 * The one place a MailBackend spec is validated, for the reconcilers and the webhook alike. The
 * parsed spec carries the settings' defaults, so every caller opens the store with the same
 * settings (BackendConnections' fingerprint) and never closes a connection another is using.
 */
export function parseBackendSpec(backend: { readonly spec?: unknown }): ParsedBackendSpec {
  const result = mailBackendSpecSchema.safeParse(backend.spec);
  return result.success ? { spec: result.data } : { problems: formatIssues(result.error).join('; ') };
}

/** Which forms the backend's store holds: the amavisd tables' or the vmail columns' (LDAP alike). */
export function listSchemaOf(spec: MailBackendSpec): ListSchema {
  return spec.sql?.schema === 'amavisd' ? 'amavisd' : 'vmail';
}
