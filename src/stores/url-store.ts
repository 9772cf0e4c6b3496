/**
 * Opens the SQL or LDAP store a URL names, by its scheme. The password is the caller's (read from
 * an environment variable or a mounted file by the CLI or the operator); anything this module
 * says about the URL has the password removed.
 */
import { urlStoreKind } from '../api/store-url.ts';
import { redactUrl, type StoreOpenOptions } from './common.ts';
import { type MailboxReader, type MailboxWriter, StoreError, type WblistReader } from './store.ts';

/** A SQL (vmail columns) or LDAP store: the daemon reads it, the operator writes it. */
export type UrlStore = MailboxReader & MailboxWriter;

/** Any store a URL and its settings name, the amavisd tables included. */
export type AnyUrlStore = UrlStore | (WblistReader & MailboxWriter);

/** True when SQL store settings select the amavisd tables (`schema: amavisd`). */
function amavisdSchema(settings: unknown): boolean {
  return typeof settings === 'object' && settings !== null && (settings as { schema?: unknown }).schema === 'amavisd';
}

/**
 * Opens a PostgreSQL (`postgres://`, `postgresql://`), MySQL/MariaDB (`mysql://`, `mariadb://`)
 * or LDAP (`ldap://`, `ldaps://`) store. `settings` is validated against the store's schema in
 * `api/store-settings.ts` (table and column names, base DN, attributes, TLS, pool, timeouts). No connection
 * is made until the first call, so a daemon starts while its backend is down.
 */
export async function openUrlStore(url: string, settings: unknown, opts: StoreOpenOptions): Promise<UrlStore> {
  const kind = urlStoreKind(url);
  if ((kind === 'postgres' || kind === 'mysql') && amavisdSchema(settings)) {
    throw new StoreError('Misconfigured', `store URL ${redactUrl(url)}: the amavisd schema is opened with openAnyUrlStore`);
  }
  switch (kind) {
    case 'postgres': {
      const { openPostgresStore } = await import('./postgres.ts');
      return openPostgresStore(url, settings, opts);
    }
    case 'mysql': {
      const { openMysqlStore } = await import('./mysql.ts');
      return openMysqlStore(url, settings, opts);
    }
    case 'ldap': {
      const { openLdapStore } = await import('./ldap.ts');
      return openLdapStore(url, settings, opts);
    }
    default:
      throw new StoreError(
        'Misconfigured',
        `store URL ${redactUrl(url)}: unknown scheme (use postgres://, postgresql://, mysql://, mariadb://, ldap:// or ldaps://)`,
      );
  }
}

/** {@link openUrlStore}, or the amavisd tables when SQL settings say `schema: amavisd`. */
export async function openAnyUrlStore(url: string, settings: unknown, opts: StoreOpenOptions): Promise<AnyUrlStore> {
  const kind = urlStoreKind(url);
  if ((kind === 'postgres' || kind === 'mysql') && amavisdSchema(settings)) {
    const { openAmavisdStore } = await import('./amavisd-sql.ts');
    return openAmavisdStore(url, settings, opts);
  }
  return openUrlStore(url, settings, opts);
}
