// Real stores seeded as an iRedMail server a person maintained by hand: the same mailboxes in
// PostgreSQL, MariaDB and OpenLDAP, awkward values included, and a way to see which mailboxes a
// command wrote (PostgreSQL: the row's xmin; MariaDB: an UPDATE trigger; OpenLDAP: entryCSN).
import { LIST_NAMES, type ListName } from '../../../src/restrictions/lists.ts';
import { countRowWrites, LDAP_ATTRIBUTES, SQL_COLUMNS } from '../../harness/backends.ts';
import { startMariadb, startOpenldap, startPostgres, type LdapServer, type SqlServer } from '../../harness/containers.ts';

export type AdoptedKind = 'postgres' | 'mariadb' | 'openldap';

/** One seeded mailbox: list values as stored (SQL: the column text; LDAP: the attribute values). */
export interface SeedMailbox {
  readonly mail: string;
  readonly sql?: Partial<Record<ListName, string | null>>;
  readonly ldap?: Partial<Record<ListName, string[]>>;
}

export interface AdoptedStore {
  readonly kind: AdoptedKind;
  /** --store, --settings (YAML text, or undefined), and the password environment. */
  readonly url: string;
  readonly settings: string | undefined;
  readonly env: NodeJS.ProcessEnv;
  seed(mailboxes: readonly SeedMailbox[]): Promise<void>;
  /** Adds `count` mailboxes `u<i>@bulk.test` with two lists each, as fast as the server takes them. */
  seedBulk(count: number): Promise<void>;
  clear(): Promise<void>;
  /** A mark per mailbox that changes whenever the mailbox is written. */
  writeMarks(): Promise<Map<string, string>>;
  /** The lists as stored, raw (SQL: column text, '' for NULL; LDAP: values). */
  raw(mail: string): Promise<Record<ListName, string | string[]>>;
  stop(): Promise<void>;
}

export async function startAdoptedStore(kind: AdoptedKind): Promise<AdoptedStore> {
  if (kind === 'openldap') return ldapStore(await startOpenldap());
  return sqlStore(kind, kind === 'postgres' ? await startPostgres() : await startMariadb());
}

async function sqlStore(kind: AdoptedKind, server: SqlServer): Promise<AdoptedStore> {
  // MySQL servers since iRedMail 0.9.0 hold NULL in these columns.
  await server.allowNullRestrictions();
  const pg = server.dialect === 'postgres';
  if (!pg) await countRowWrites(server);
  return {
    kind,
    url: server.url,
    settings: undefined,
    env: { MAILWARDEN_STORE_PASSWORD: server.password },
    async seed(mailboxes) {
      await server.insertMailboxes(
        mailboxes.map((m) => ({ username: m.mail, ...Object.fromEntries(LIST_NAMES.map((n) => [SQL_COLUMNS[n], m.sql?.[n] ?? ''])) })),
      );
    },
    async seedBulk(count) {
      const lists = pg ? `'@a' || i || '.test, @B.test', '@.'` : `CONCAT('@a', i, '.test, @B.test'), '@.'`;
      const address = pg ? `'u' || i || '@bulk.test'` : `CONCAT('u', i, '@bulk.test')`;
      const series = pg
        ? `FROM generate_series(1, ${count}) AS i`
        : `FROM (WITH RECURSIVE seq AS (SELECT 1 AS i UNION ALL SELECT i + 1 FROM seq WHERE i < ${count}) SELECT i FROM seq) AS s`;
      const options = pg ? '' : `SET STATEMENT max_recursive_iterations = ${count} FOR `;
      await server.query(`${options}INSERT INTO mailbox (username, domain, allowedsenders, rejectedsenders) SELECT ${address}, 'bulk.test', ${lists} ${series}`, [], server.admin);
    },
    async clear() {
      await server.clearMailboxes();
      if (!pg) await server.query('DELETE FROM mw_writes', [], server.admin);
    },
    async writeMarks() {
      const rows = pg
        ? await server.query<{ username: string; mark: string }>('SELECT username, xmin::text AS mark FROM mailbox', [], server.admin)
        : await server.query<{ username: string; mark: string }>(
            'SELECT m.username, CAST(COUNT(w.username) AS CHAR) AS mark FROM mailbox m LEFT JOIN mw_writes w ON w.username = m.username GROUP BY m.username',
            [],
            server.admin,
          );
      return new Map(rows.map((r) => [r.username, String(r.mark)]));
    },
    async raw(mail) {
      const row = await server.getMailbox(mail);
      return Object.fromEntries(LIST_NAMES.map((n) => [n, (row?.[SQL_COLUMNS[n]] as string | null) ?? ''])) as Record<ListName, string>;
    },
    stop: () => server.stop(),
  };
}

async function ldapStore(server: LdapServer): Promise<AdoptedStore> {
  return {
    kind: 'openldap',
    url: server.url,
    settings: `baseDn: "${server.domainsDn}"\nbindDn: "${server.bindDn}"\n`,
    env: { MAILWARDEN_STORE_PASSWORD: server.password },
    async seed(mailboxes) {
      for (const m of mailboxes) {
        const attributes: Record<string, string[]> = {};
        for (const n of LIST_NAMES) if (m.ldap?.[n] !== undefined) attributes[LDAP_ATTRIBUTES[n]] = m.ldap[n]!;
        await server.addLdapUser({ mail: m.mail, attributes });
      }
    },
    async seedBulk(count) {
      await server.addLdapDomain('bulk.test');
      await server.withClient(async (client) => {
        for (let start = 1; start <= count; start += 50) {
          const batch = Array.from({ length: Math.min(50, count - start + 1) }, (_, k) => start + k);
          await Promise.all(
            batch.map((i) =>
              client.add(server.userDn(`u${i}@bulk.test`), {
                objectClass: ['inetOrgPerson', 'shadowAccount', 'amavisAccount', 'mailUser', 'top'],
                mail: `u${i}@bulk.test`,
                uid: `u${i}`,
                cn: `u${i}`,
                sn: `u${i}`,
                accountStatus: 'active',
                amavisWhitelistSender: [`@a${i}.test`, ' @B.test'],
                amavisBlacklistSender: '@.',
              }),
            ),
          );
        }
      });
    },
    clear: () => server.clearDomains(),
    async writeMarks() {
      return server.withClient(async (client) => {
        const { searchEntries } = await client.search(server.domainsDn, { scope: 'sub', filter: '(objectClass=mailUser)', attributes: ['mail', 'entryCSN'], paged: { pageSize: 500 } });
        return new Map(searchEntries.map((e) => [String(e.mail), String(e.entryCSN)]));
      });
    },
    async raw(mail) {
      const entry = (await server.getEntry(server.userDn(mail))) ?? {};
      return Object.fromEntries(LIST_NAMES.map((n) => [n, entry[LDAP_ATTRIBUTES[n]] ?? []])) as Record<ListName, string[]>;
    },
    stop: () => server.stop(),
  };
}

/** The mailboxes whose mark changed between two snapshots. */
export function written(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): string[] {
  return [...after].filter(([mail, mark]) => before.get(mail) !== mark).map(([mail]) => mail).sort();
}
