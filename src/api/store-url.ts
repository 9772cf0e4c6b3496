/** The store a MailBackend URL or a `--store` value names, by its scheme. */

/** URL schemes and the store each opens. */
const SCHEMES: Readonly<Record<string, 'postgres' | 'mysql' | 'ldap'>> = Object.freeze({
  'postgres:': 'postgres',
  'postgresql:': 'postgres',
  'mysql:': 'mysql',
  'mariadb:': 'mysql',
  'ldap:': 'ldap',
  'ldaps:': 'ldap',
});

/** The store kind a URL names, or undefined for anything else (a manifests path). */
export function urlStoreKind(url: string): 'postgres' | 'mysql' | 'ldap' | undefined {
  const scheme = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(url)?.[1]?.toLowerCase();
  return scheme === undefined ? undefined : SCHEMES[scheme];
}
