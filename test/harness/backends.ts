import { LIST_NAMES, type ListName, type RestrictionLists } from '../../src/restrictions/lists.ts';
import { splitSqlList, joinSqlList } from '../../src/restrictions/sql-list.ts';
import { startMariadb, startOpenldap, startPostgres, type LdapServer, type ServingCertificate, type SqlServer } from './containers.ts';

export type BackendKind = 'postgres' | 'mariadb' | 'openldap';
export const BACKEND_KINDS: readonly BackendKind[] = ['postgres', 'mariadb', 'openldap'];

/**
 * A real store server seen the same way whatever its kind: what a MailBackend needs to reach it,
 * and direct access (bypassing mailwarden) to create mailboxes, read and tamper with lists.
 */
export interface BackendFixture {
  readonly kind: BackendKind;
  /** MailBackend spec (without credentials). */
  readonly spec: Record<string, unknown>;
  readonly password: string;
  /** A mailbox; `aliases` are further addresses of it (LDAP shadowAddress; SQL rows have none). */
  addMailbox(address: string, aliases?: readonly string[]): Promise<void>;
  /** The lists as stored (canonical, sorted), or undefined when the mailbox does not exist. */
  readLists(address: string): Promise<RestrictionLists | undefined>;
  /** Writes one list directly, as an admin editing the store by hand would. */
  writeList(address: string, list: ListName, entries: string[]): Promise<void>;
  /** Writes one list's stored form as it is (SQL: the column text; LDAP: the values), unnormalised. */
  writeRaw(address: string, list: ListName, stored: string | string[]): Promise<void>;
  /** The lists exactly as stored (SQL: the column text, '' for NULL; LDAP: the values). */
  readRaw(address: string): Promise<Record<ListName, string | string[]>>;
  /**
   * A mark that changes whenever the mailbox is written, by anyone. SQL: the number of UPDATEs
   * of its row (a trigger counts them, including those that change nothing); LDAP: entryCSN.
   */
  writeMark(address: string): Promise<string>;
  /** Changes the password of the account the backend uses. */
  rotatePassword(next: string): Promise<void>;
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  stop(): Promise<void>;
}

export const SQL_COLUMNS: Record<ListName, string> = {
  allowedSenders: 'allowedsenders',
  rejectedSenders: 'rejectedsenders',
  allowedRecipients: 'allowedrecipients',
  rejectedRecipients: 'rejectedrecipients',
};
export const LDAP_ATTRIBUTES: Record<ListName, string> = {
  allowedSenders: 'amavisWhitelistSender',
  rejectedSenders: 'amavisBlacklistSender',
  allowedRecipients: 'mailWhitelistRecipient',
  rejectedRecipients: 'mailBlacklistRecipient',
};

/** With `tls`, the server also serves TLS with that certificate, and the spec's URL is ldaps:// for LDAP. */
export async function startBackend(kind: BackendKind, opts: { tls?: ServingCertificate } = {}): Promise<BackendFixture> {
  if (kind === 'openldap') return ldapFixture(await startOpenldap(opts));
  const server = kind === 'postgres' ? await startPostgres(opts) : await startMariadb(opts);
  await countRowWrites(server);
  return sqlFixture(kind, server);
}

/**
 * Counts every UPDATE of a mailbox row in mw_writes (one row per update, by username), so a test
 * can tell how often a row was written, even with the same values. Created as the superuser
 * (PostgreSQL: a SECURITY DEFINER function), so the store's own account needs no grant.
 */
export async function countRowWrites(server: SqlServer): Promise<void> {
  const statements =
    server.dialect === 'postgres'
      ? [
          'CREATE TABLE mw_writes (username text NOT NULL)',
          'CREATE FUNCTION mw_count() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN INSERT INTO mw_writes VALUES (NEW.username); RETURN NULL; END $$',
          'CREATE TRIGGER mw_count AFTER UPDATE ON mailbox FOR EACH ROW EXECUTE FUNCTION mw_count()',
        ]
      : ['CREATE TABLE mw_writes (username VARCHAR(255) NOT NULL)', 'CREATE TRIGGER mw_count AFTER UPDATE ON mailbox FOR EACH ROW INSERT INTO mw_writes VALUES (NEW.username)'];
  for (const statement of statements) await server.query(statement, [], server.admin);
}

/** How many times countRowWrites saw `username`'s row updated. */
export async function rowWrites(server: SqlServer, username: string): Promise<number> {
  const [row] = await server.query<{ n: string | number }>(`SELECT COUNT(*) AS n FROM mw_writes WHERE username = ${server.dialect === 'postgres' ? '$1' : '?'}`, [username], server.admin);
  return Number(row?.n ?? 0);
}

function sorted(lists: Record<ListName, string[]>): RestrictionLists {
  return Object.fromEntries(LIST_NAMES.map((n) => [n, [...lists[n]].sort()])) as unknown as RestrictionLists;
}

function sqlFixture(kind: BackendKind, server: SqlServer): BackendFixture {
  let password = server.password;
  const p = (i: number) => (server.dialect === 'postgres' ? `$${i}` : '?');
  return {
    kind,
    spec: { url: server.url },
    get password() {
      return password;
    },
    // As the database superuser: the account the backend uses may have a rotated password.
    async addMailbox(address, aliases = []) {
      if (aliases.length > 0) throw new Error('a vmail.mailbox row has one address: no aliases');
      await server.query(`INSERT INTO mailbox (username, domain) VALUES (${p(1)}, ${p(2)})`, [address, address.split('@')[1]], server.admin);
    },
    async readLists(address) {
      const [row] = await server.query(`SELECT * FROM mailbox WHERE username = ${p(1)}`, [address], server.admin);
      if (row === undefined) return undefined;
      return sorted(Object.fromEntries(LIST_NAMES.map((n) => [n, splitSqlList(row[SQL_COLUMNS[n]] as string | null, 'default') ?? []])) as Record<ListName, string[]>);
    },
    async writeList(address, list, entries) {
      await server.query(`UPDATE mailbox SET ${SQL_COLUMNS[list]} = ${p(1)} WHERE username = ${p(2)}`, [joinSqlList(entries), address], server.admin);
    },
    async writeRaw(address, list, stored) {
      const text = Array.isArray(stored) ? stored.join(',') : stored;
      await server.query(`UPDATE mailbox SET ${SQL_COLUMNS[list]} = ${p(1)} WHERE username = ${p(2)}`, [text, address], server.admin);
    },
    async readRaw(address) {
      const [row] = await server.query(`SELECT * FROM mailbox WHERE username = ${p(1)}`, [address], server.admin);
      return Object.fromEntries(LIST_NAMES.map((n) => [n, (row?.[SQL_COLUMNS[n]] as string | null) ?? ''])) as Record<ListName, string>;
    },
    async writeMark(address) {
      return String(await rowWrites(server, address));
    },
    async rotatePassword(next) {
      if (server.dialect === 'postgres') await server.query(`ALTER USER ${server.user} PASSWORD '${next}'`, [], server.admin);
      else await server.query(`ALTER USER '${server.user}'@'%' IDENTIFIED BY '${next}'`, [], server.admin);
      password = next;
    },
    stopServer: () => server.stopServer(),
    startServer: () => server.startServer(),
    stop: () => server.stop(),
  };
}

function ldapFixture(server: LdapServer): BackendFixture {
  let password = server.password;
  return {
    kind: 'openldap',
    spec: { url: server.ldapsUrl ?? server.url, ldap: { baseDn: server.domainsDn, bindDn: server.bindDn } },
    get password() {
      return password;
    },
    async addMailbox(address, aliases = []) {
      await server.addLdapUser({ mail: address, shadowAddress: [...aliases] });
    },
    async readLists(address) {
      const entry = await server.getEntry(server.userDn(address));
      if (entry === undefined) return undefined;
      return sorted(Object.fromEntries(LIST_NAMES.map((n) => [n, (entry[LDAP_ATTRIBUTES[n]] ?? []).map((v) => v.toLowerCase())])) as Record<ListName, string[]>);
    },
    async writeList(address, list, entries) {
      const { Attribute, Change } = await import('ldapts');
      await server.withClient((c) =>
        c.modify(server.userDn(address), [new Change({ operation: 'replace', modification: new Attribute({ type: LDAP_ATTRIBUTES[list], values: entries }) })]),
      );
    },
    async writeRaw(address, list, stored) {
      await this.writeList(address, list, Array.isArray(stored) ? stored : [stored]);
    },
    async readRaw(address) {
      const entry = (await server.getEntry(server.userDn(address))) ?? {};
      return Object.fromEntries(LIST_NAMES.map((n) => [n, entry[LDAP_ATTRIBUTES[n]] ?? []])) as Record<ListName, string[]>;
    },
    async writeMark(address) {
      const entry = await server.withClient(async (c) => (await c.search(server.userDn(address), { scope: 'base', attributes: ['entryCSN'] })).searchEntries[0]);
      return String(entry?.entryCSN);
    },
    async rotatePassword(next) {
      const { Attribute, Change } = await import('ldapts');
      await server.withClient((c) =>
        c.modify(server.bindDn, [new Change({ operation: 'replace', modification: new Attribute({ type: 'userPassword', values: [next] }) })]),
      );
      password = next;
    },
    stopServer: () => server.stopServer(),
    startServer: () => server.startServer(),
    stop: () => server.stop(),
  };
}
