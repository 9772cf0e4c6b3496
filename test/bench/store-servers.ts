/**
 * The real servers the store benchmark runs against (PostgreSQL 15, MariaDB 10.11, OpenLDAP 2.5
 * from test/harness/containers.ts), each loaded with the benchmark's mailboxes: the same
 * addresses and restriction lists as the manifests the policyd benchmark writes (read back from
 * those very files), so the same request stream applies.
 */
import { Client as LdapClient } from 'ldapts';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { loadRestrictions } from '../../src/stores/manifests.ts';
import { LIST_NAMES, type ListName } from '../../src/restrictions/lists.ts';
import { joinSqlList } from '../../src/restrictions/sql-list.ts';
import { amavisdForm, partyPriority } from '../../src/restrictions/amavisd-entry.ts';
import { startMariadb, startOpenldap, startPostgres, HOST, type SqlServer } from '../harness/containers.ts';
import { loadAmavisdTables } from '../integration/stores/helpers.ts';

export type StoreName = 'postgres' | 'mariadb' | 'openldap' | 'amavisd-postgres' | 'amavisd-mariadb';
export const STORE_NAMES: readonly StoreName[] = ['postgres', 'mariadb', 'openldap', 'amavisd-postgres', 'amavisd-mariadb'];

/** The amavisd stores: the same mailboxes' lists in the amavisd tables, beside the vmail columns in the same server. */
export function isAmavisdStore(name: StoreName): name is 'amavisd-postgres' | 'amavisd-mariadb' {
  return name.startsWith('amavisd-');
}

/** The four lists of one benchmark mailbox. */
export interface BenchMailbox {
  readonly address: string;
  readonly lists: { readonly [K in ListName]: readonly string[] };
}

/** A started and loaded server, and how the daemon and the ceiling client reach it. */
export interface LoadedStore {
  readonly name: StoreName;
  /** The daemon's --store URL (no password). */
  readonly url: string;
  /** For MAILWARDEN_STORE_PASSWORD. */
  readonly password: string;
  /** The daemon's `storeSettings` (the defaults but for what the test server needs). */
  readonly settings: Record<string, unknown>;
  /** amavisd stores: the vmail-column store of the same server and mailboxes, the warm figure's reference. */
  readonly vmail?: { readonly settings: Record<string, unknown> };
  /** Time to start the container and to load the mailboxes, ms. */
  readonly startMs: number;
  readonly loadMs: number;
  stop(): Promise<void>;
}

/** The mailboxes of a manifests directory written by fixtures.ts's writeManifests(). */
export async function readMailboxes(dir: string): Promise<BenchMailbox[]> {
  const { restrictions } = await loadRestrictions([dir]);
  return restrictions.map(({ document }) => {
    const spec = document.spec as unknown as Record<string, unknown> & { mailbox: string };
    const lists = {} as Record<ListName, readonly string[]>;
    for (const name of LIST_NAMES) lists[name] = (spec[name] as string[] | undefined) ?? [];
    return { address: spec.mailbox.toLowerCase(), lists };
  });
}

export async function startStore(name: StoreName, mailboxes: readonly BenchMailbox[]): Promise<LoadedStore> {
  const t0 = Date.now();
  if (name === 'openldap') {
    const server = await startOpenldap();
    const t1 = Date.now();
    try {
      await loadLdap(server.url, server.admin, server.domainsDn, mailboxes, (mail) => server.userDn(mail), () => server.addLdapDomain('example.com'));
    } catch (err) {
      await server.stop();
      throw err;
    }
    return {
      name,
      url: server.url,
      password: server.readOnly.password,
      // The read-only account, as iRedMail's policy daemon reads with cn=vmail.
      settings: { baseDn: server.domainsDn, bindDn: server.readOnly.bindDn },
      startMs: t1 - t0,
      loadMs: Date.now() - t1,
      stop: () => server.stop(),
    };
  }
  const server = name === 'postgres' || name === 'amavisd-postgres' ? await startPostgres() : await startMariadb();
  const t1 = Date.now();
  try {
    await loadSql(server.dialect, server.port, server.user, server.password, mailboxes);
    if (isAmavisdStore(name)) await loadAmavisd(server, mailboxes);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return {
    name,
    // The read-only account, as a policy daemon in production reads with `vmail`.
    url: server.urlFor(server.readOnly),
    password: server.readOnly.password,
    settings: isAmavisdStore(name) ? { schema: 'amavisd' } : {},
    ...(isAmavisdStore(name) ? { vmail: { settings: {} } } : {}),
    startMs: t1 - t0,
    loadMs: Date.now() - t1,
    stop: () => server.stop(),
  };
}

/**
 * The mailboxes' lists as iRedAdmin would leave them in the amavisd tables (users, mailaddr,
 * wblist, outbound_wblist; priorities by form), written in bulk with their ids, then fresh
 * planner statistics. The tables go into the vmail database beside the mailbox table.
 */
async function loadAmavisd(server: SqlServer, mailboxes: readonly BenchMailbox[]): Promise<void> {
  await loadAmavisdTables(server);
  const parties = new Map<string, number>();
  const users: unknown[][] = [];
  const inbound: unknown[][] = [];
  const outbound: unknown[][] = [];
  for (const [index, m] of mailboxes.entries()) {
    const uid = index + 1;
    users.push([uid, 100, 0, Buffer.from(m.address)]);
    for (const name of LIST_NAMES) {
      for (const entry of m.lists[name]) {
        let sid = parties.get(entry);
        if (sid === undefined) parties.set(entry, (sid = parties.size + 1));
        const pair = [uid, sid, name.startsWith('allowed') ? 'W' : 'B'];
        if (name.endsWith('Senders')) inbound.push(pair);
        else outbound.push([sid, uid, pair[2]]);
      }
    }
  }
  const mailaddr = [...parties].map(([entry, id]) => {
    const form = amavisdForm(entry);
    if (typeof form !== 'string') throw new Error(`bench entry ${entry}: ${form.problem}`);
    return [id, partyPriority(form), Buffer.from(entry)];
  });
  const insert = async (table: string, columns: string[], rows: unknown[][]): Promise<void> => {
    for (let i = 0; i < rows.length; i += 500) {
      const chunk = rows.slice(i, i + 500);
      let n = 0;
      const values = chunk.map(() => `(${columns.map(() => (server.dialect === 'postgres' ? `$${++n}` : '?')).join(', ')})`).join(', ');
      await server.query(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values}`, chunk.flat());
    }
  };
  await insert('users', ['id', 'priority', 'policy_id', 'email'], users);
  await insert('mailaddr', ['id', 'priority', 'email'], mailaddr);
  await insert('wblist', ['rid', 'sid', 'wb'], inbound);
  await insert('outbound_wblist', ['rid', 'sid', 'wb'], outbound);
  for (const table of ['users', 'mailaddr', 'wblist', 'outbound_wblist']) await server.query(server.dialect === 'postgres' ? `ANALYZE ${table}` : `ANALYZE TABLE ${table}`);
}

const SQL_COLUMNS = { allowedSenders: 'allowedsenders', rejectedSenders: 'rejectedsenders', allowedRecipients: 'allowedrecipients', rejectedRecipients: 'rejectedrecipients' } as const;

/** Multi-row INSERTs on one connection, then fresh planner statistics. */
async function loadSql(dialect: 'postgres' | 'mysql', port: number, user: string, password: string, mailboxes: readonly BenchMailbox[]): Promise<void> {
  const columns = ['username', 'domain', ...LIST_NAMES.map((n) => SQL_COLUMNS[n])];
  const rows = mailboxes.map((m) => [m.address, m.address.slice(m.address.lastIndexOf('@') + 1), ...LIST_NAMES.map((n) => joinSqlList(m.lists[n]))]);
  const batch = 500;
  if (dialect === 'postgres') {
    const client = new pg.Client({ host: HOST, port, user, password, database: 'vmail' });
    await client.connect();
    try {
      for (let i = 0; i < rows.length; i += batch) {
        const chunk = rows.slice(i, i + batch);
        const values = chunk.map((_, r) => `(${columns.map((__, c) => `$${r * columns.length + c + 1}`).join(', ')})`).join(', ');
        await client.query(`INSERT INTO mailbox (${columns.join(', ')}) VALUES ${values}`, chunk.flat());
      }
      await client.query('ANALYZE mailbox');
    } finally {
      await client.end();
    }
    return;
  }
  const connection = await mysql.createConnection({ host: HOST, port, user, password, database: 'vmail', charset: 'utf8mb4' });
  try {
    for (let i = 0; i < rows.length; i += batch) {
      const chunk = rows.slice(i, i + batch);
      const values = chunk.map(() => `(${columns.map(() => '?').join(', ')})`).join(', ');
      await connection.query(`INSERT INTO mailbox (${columns.join(', ')}) VALUES ${values}`, chunk.flat());
    }
    await connection.query('ANALYZE TABLE mailbox');
  } finally {
    await connection.end();
  }
}

const LDAP_ATTRIBUTES = {
  allowedSenders: 'amavisWhitelistSender',
  rejectedSenders: 'amavisBlacklistSender',
  allowedRecipients: 'mailWhitelistRecipient',
  rejectedRecipients: 'mailBlacklistRecipient',
} as const;

/** iRedMail user entries (as the harness's addLdapUser makes them), added 32 at a time on one bound client. */
async function loadLdap(
  url: string,
  admin: { bindDn: string; password: string },
  _domainsDn: string,
  mailboxes: readonly BenchMailbox[],
  userDn: (mail: string) => string,
  addDomain: () => Promise<string>,
): Promise<void> {
  const domains = new Set(mailboxes.map((m) => m.address.slice(m.address.lastIndexOf('@') + 1)));
  if (domains.size !== 1 || !domains.has('example.com')) throw new Error(`unexpected mailbox domains: ${[...domains].join(', ')}`);
  await addDomain();
  const client = new LdapClient({ url, timeout: 30_000, connectTimeout: 5_000 });
  await client.bind(admin.bindDn, admin.password);
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < mailboxes.length) {
        const m = mailboxes[next++] as BenchMailbox;
        const local = m.address.slice(0, m.address.lastIndexOf('@'));
        const entry: Record<string, string[]> = {
          objectClass: ['inetOrgPerson', 'shadowAccount', 'amavisAccount', 'mailUser', 'top'],
          mail: [m.address],
          uid: [local],
          cn: [local],
          sn: [local],
          accountStatus: ['active'],
        };
        for (const name of LIST_NAMES) if (m.lists[name].length > 0) entry[LDAP_ATTRIBUTES[name]] = [...m.lists[name]];
        await client.add(userDn(m.address), entry);
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
  } finally {
    await client.unbind().catch(() => {});
  }
}
