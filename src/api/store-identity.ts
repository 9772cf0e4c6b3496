import type { MailBackendSpec } from './mail-backend.ts';
import { urlStoreKind } from './store-url.ts';

/**
 * Which rows a MailBackend writes, as one comparable string: two MailBackends with the same
 * identity write the same mailboxes' lists, so a mailbox restricted through both is one target
 * (oldest wins, as within one MailBackend). SQL: engine, host, port, database and table (the
 * amavisd tables as one); LDAP: host, port and base DN. The host is normalised as far as its text
 * allows: case, the default port, and a cluster Service's short and long DNS names
 * (`db`, `db.mail`, `db.mail.svc`, `db.mail.svc.cluster.local` in namespace `mail` are one).
 */
export function storeIdentity(spec: Pick<MailBackendSpec, 'url' | 'sql' | 'ldap'>, namespace: string): string | undefined {
  const kind = urlStoreKind(spec.url);
  let url: URL;
  try {
    url = new URL(spec.url);
  } catch {
    return undefined;
  }
  const tls = url.protocol === 'ldaps:';
  const port = url.port !== '' ? url.port : String(kind === 'postgres' ? 5432 : kind === 'mysql' ? 3306 : tls ? 636 : 389);
  const host = serviceHost(url.hostname.toLowerCase().replace(/^\[|\]$/g, ''), namespace);
  if (kind === 'ldap') return `ldap://${host}:${port}/${normalDn(spec.ldap?.baseDn ?? '')}`;
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const table = spec.sql?.schema === 'amavisd' ? '(amavisd)' : qualifiedTable(spec.sql?.table ?? 'mailbox', kind === 'postgres' ? 'public' : database);
  return `${kind}://${host}:${port}/${database}/${table.toLowerCase()}`;
}

/** `db` and `db.ns.svc.cluster.local` as `db.ns`; other names as they are. */
function serviceHost(host: string, namespace: string): string {
  if (!host.includes('.') && host !== 'localhost') return `${host}.${namespace}`;
  const service = /^([a-z0-9-]+)\.([a-z0-9-]+)(?:\.svc(?:\.cluster\.local)?)?$/.exec(host);
  return service === null ? host : `${service[1]}.${service[2]}`;
}

/** `schema.table` (PostgreSQL's default schema public; MySQL's the URL's database). */
function qualifiedTable(table: string, defaultQualifier: string): string {
  return table.includes('.') ? table : `${defaultQualifier}.${table}`;
}

/** A DN compared as LDAP does for iRedMail's attributes: case and spaces around separators ignored. */
function normalDn(dn: string): string {
  return dn
    .split(',')
    .map((rdn) => rdn.split('=').map((part) => part.trim()).join('='))
    .join(',')
    .toLowerCase();
}
