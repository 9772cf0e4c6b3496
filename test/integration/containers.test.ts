// Smoke test of the container harness: real PostgreSQL, MariaDB and OpenLDAP servers start on
// 127.0.0.1, hold iRedMail data, compare addresses the way iRedMail's servers do, and come back on
// the same port after an outage.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { Client as LdapClient, Change, Attribute } from 'ldapts';
import {
  startPostgres,
  startMariadb,
  startOpenldap,
  startPostfix,
  smtpSession,
  freePort,
  ensureImage,
  type SqlServer,
  type LdapServer,
  type PostfixServer,
} from '../harness/containers.ts';

const log = (msg: string): void => {
  if (process.env.MAILWARDEN_TEST_VERBOSE) console.error(msg);
};

test('freePort gives a bindable loopback port', async () => {
  const p = await freePort();
  assert.ok(p > 1024 && p < 65536);
});

test('ensureImage returns a stable content-hashed tag', async () => {
  const a = await ensureImage('postgres');
  const b = await ensureImage('postgres');
  assert.equal(a, b);
  assert.match(a, /^mailwarden-test\/postgres:[0-9a-f]{16}$/);
});

describe('PostgreSQL container', () => {
  let db: SqlServer;
  before(async () => {
    db = await startPostgres();
    log(`postgres started in ${db.startupMs} ms on ${db.port}`);
  });
  after(async () => db?.stop());

  test('connection facts', () => {
    assert.equal(db.host, '127.0.0.1');
    assert.equal(db.url, `postgres://vmailadmin@127.0.0.1:${db.port}/vmail`);
    assert.equal(db.urlWithPassword, `postgres://vmailadmin:mailwarden@127.0.0.1:${db.port}/vmail`);
  });

  test('mailbox rows, NULL restrictions and case-sensitive comparison', async () => {
    await db.insertMailboxes([
      { username: 'alice@example.com', allowedrecipients: 'bob@example.com,@example.org' },
      { username: 'old@example.com', allowedrecipients: null, rejectedsenders: null },
    ]);
    const alice = await db.getMailbox('alice@example.com');
    assert.equal(alice?.allowedrecipients, 'bob@example.com,@example.org');
    assert.equal(alice?.rejectedsenders, '');
    assert.equal(alice?.domain, 'example.com');
    assert.equal(alice?.active, 1);
    const old = await db.getMailbox('old@example.com');
    assert.equal(old?.allowedrecipients, null);
    assert.equal(old?.allowedsenders, '');
    assert.equal(await db.getMailbox('Alice@Example.com'), undefined, 'PostgreSQL compares case-sensitively');
  });

  test('read-only account can read but not write', async () => {
    const rows = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM mailbox', [], db.readOnly);
    assert.equal(rows[0]?.n, '2');
    await assert.rejects(db.query("UPDATE mailbox SET name = 'x'", [], db.readOnly), /permission denied/);
  });

  test('pause() makes the server hang without closing connections; unpause() resumes it', async () => {
    const client = new pg.Client({ connectionString: db.urlWithPassword, query_timeout: 500 });
    await client.connect();
    try {
      await db.pause();
      await assert.rejects(client.query('SELECT 1'), /timeout/i);
      await db.unpause();
      const c2 = new pg.Client({ connectionString: db.urlWithPassword });
      await c2.connect();
      assert.equal((await c2.query('SELECT 2 AS two')).rows[0].two, 2);
      await c2.end();
    } finally {
      await db.unpause().catch(() => undefined);
      await client.end().catch(() => undefined);
    }
  });

  test('a pg client reconnects after the server is stopped and started on the same port', async () => {
    const pool = new pg.Pool({ connectionString: db.urlWithPassword, max: 2 });
    pool.on('error', () => undefined);
    try {
      assert.equal((await pool.query('SELECT 1 AS one')).rows[0].one, 1);
      await db.stopServer();
      await assert.rejects(pool.query('SELECT 1'));
      const t0 = Date.now();
      await db.startServer();
      log(`postgres restarted in ${Date.now() - t0} ms`);
      const r = await pool.query("SELECT username FROM mailbox WHERE username = 'alice@example.com'");
      assert.equal(r.rows[0].username, 'alice@example.com', 'data survives the outage');
    } finally {
      await pool.end();
    }
  });
});

describe('MariaDB container', () => {
  let db: SqlServer;
  before(async () => {
    db = await startMariadb();
    log(`mariadb started in ${db.startupMs} ms on ${db.port}`);
  });
  after(async () => db?.stop());

  test('connection facts and server version', async () => {
    assert.equal(db.url, `mysql://vmailadmin@127.0.0.1:${db.port}/vmail`);
    const [row] = await db.query<{ v: string }>('SELECT VERSION() AS v');
    assert.match(row?.v ?? '', /^10\.11\./);
  });

  test('mailbox rows, NULL restrictions and case-insensitive collation', async () => {
    await db.insertMailboxes([
      { username: 'alice@example.com', allowedrecipients: 'bob@example.com' },
      { username: 'old@example.com', rejectedrecipients: null },
    ]);
    const alice = await db.getMailbox('Alice@EXAMPLE.com');
    assert.equal(alice?.username, 'alice@example.com', 'utf8mb4_general_ci matches regardless of case');
    assert.equal(alice?.allowedrecipients, 'bob@example.com');
    assert.equal(alice?.rejectedrecipients, '');
    const old = await db.getMailbox('old@example.com');
    assert.equal(old?.rejectedrecipients, null);
    const [coll] = await db.query<{ c: string }>(
      "SELECT COLLATION_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'vmail' AND TABLE_NAME = 'mailbox' AND COLUMN_NAME = 'username'",
    );
    assert.equal(coll?.c, 'utf8mb4_general_ci');
  });

  test('read-only account cannot write', async () => {
    await assert.rejects(db.query("UPDATE mailbox SET name = 'x'", [], db.readOnly), /denied/);
  });

  test('a mysql2 pool reconnects after the server is stopped and started on the same port', async () => {
    const pool = mysql.createPool({ uri: db.urlWithPassword, connectionLimit: 2 });
    try {
      const [r1] = await pool.query('SELECT 1 AS one');
      assert.equal((r1 as { one: number }[])[0]?.one, 1);
      await db.stopServer();
      await assert.rejects(pool.query('SELECT 1'));
      await db.startServer();
      // A pooled connection killed by the outage fails once; a fresh one works.
      let rows: unknown;
      for (let i = 0; i < 3; i++) {
        try {
          [rows] = await pool.query("SELECT username FROM mailbox WHERE username = 'alice@example.com'");
          break;
        } catch {
          /* dead pooled connection; retry */
        }
      }
      assert.equal((rows as { username: string }[])[0]?.username, 'alice@example.com');
    } finally {
      await pool.end();
    }
  });
});

describe('OpenLDAP container', () => {
  let ldap: LdapServer;
  before(async () => {
    ldap = await startOpenldap();
    log(`openldap started in ${ldap.startupMs} ms on ${ldap.port}`);
  });
  after(async () => ldap?.stop());

  test('connection facts and base tree', async () => {
    assert.equal(ldap.url, `ldap://127.0.0.1:${ldap.port}`);
    assert.equal(ldap.domainsDn, 'o=domains,dc=example,dc=com');
    assert.ok(await ldap.getEntry(ldap.domainsDn));
  });

  test('iRedMail user entry with restriction attributes, found case-insensitively', async () => {
    const dn = await ldap.addLdapUser({
      mail: 'alice@example.com',
      shadowAddress: ['a@example.com'],
      mailWhitelistRecipient: ['bob@example.com', '@example.org'],
      amavisBlacklistSender: ['spam@example.net'],
    });
    assert.equal(dn, 'mail=alice@example.com,ou=Users,domainName=example.com,o=domains,dc=example,dc=com');
    const client = new LdapClient({ url: ldap.url });
    try {
      await client.bind(ldap.readOnly.bindDn, ldap.readOnly.password);
      const { searchEntries } = await client.search(ldap.domainsDn, {
        filter: '(&(objectClass=mailUser)(|(mail=A@EXAMPLE.COM)(shadowAddress=A@Example.com)))',
        attributes: ['mail', 'mailWhitelistRecipient', 'accountStatus'],
      });
      assert.equal(searchEntries.length, 1);
      assert.equal(searchEntries[0]?.mail, 'alice@example.com');
      assert.deepEqual(searchEntries[0]?.mailWhitelistRecipient, ['bob@example.com', '@example.org']);
      assert.equal(searchEntries[0]?.accountStatus, 'active');
    } finally {
      await client.unbind();
    }
  });

  test('schema: mailUser requires uid; amavis attributes need amavisAccount', async () => {
    await assert.rejects(
      ldap.addLdapUser({ mail: 'nouid@example.com', objectClass: ['inetOrgPerson', 'mailUser', 'top'], attributes: { uid: [] } }),
      /uid|object class/i,
    );
    const dn = await ldap.addLdapUser({ mail: 'plain@example.com', objectClass: ['inetOrgPerson', 'shadowAccount', 'mailUser', 'top'] });
    await assert.rejects(
      ldap.withClient((c) => c.modify(dn, new Change({ operation: 'add', modification: new Attribute({ type: 'amavisWhitelistSender', values: ['x@example.com'] }) }))),
      /ObjectClassViolation|object class/i,
    );
  });

  test('read-only account cannot write', async () => {
    await assert.rejects(
      ldap.withClient((c) => c.add(`domainName=ro.example,${ldap.domainsDn}`, { objectClass: ['mailDomain'], domainName: 'ro.example' }), ldap.readOnly),
      /InsufficientAccess|insufficient/i,
    );
  });

  test('an ldapts client works again after the server is stopped and started on the same port', async () => {
    await ldap.stopServer();
    const down = new LdapClient({ url: ldap.url, connectTimeout: 1000 });
    await assert.rejects(down.bind(ldap.bindDn, ldap.password));
    const t0 = Date.now();
    await ldap.startServer();
    log(`openldap restarted in ${Date.now() - t0} ms`);
    const entry = await ldap.getEntry(ldap.userDn('alice@example.com'));
    assert.deepEqual(entry?.shadowAddress, ['a@example.com'], 'data survives the outage');
  });
});


describe('Postfix container', () => {
  let mta: PostfixServer;
  before(async () => {
    mta = await startPostfix({ mainCf: { smtpd_helo_required: 'yes', mynetworks: '192.0.2.0/24' } });
    log(`postfix started in ${mta.startupMs} ms on ${mta.port}`);
  });
  after(async () => mta?.stop());

  test('answers EHLO and applies main.cf overrides', async () => {
    assert.equal((await mta.postconf('-h', 'mail_version')).trim().split('.').slice(0, 2).join('.'), '3.7');
    assert.equal((await mta.postconf('-h', 'smtpd_helo_required')).trim(), 'yes');
    const [greeting, ehlo] = await smtpSession(mta.port, ['EHLO client.example.net']);
    assert.equal(greeting?.code, 220);
    assert.equal(ehlo?.code, 250);
    assert.ok(ehlo?.lines.some((l) => l.includes('PIPELINING')));
  });

  test('accepts mail for its domain, refuses relaying, delivers nothing', async () => {
    const r = await smtpSession(mta.port, [
      'EHLO client.example.net',
      'MAIL FROM:<sender@example.net>',
      'RCPT TO:<someone@elsewhere.example>',
      'RCPT TO:<user@example.com>',
      'DATA',
      'Subject: test\r\n\r\nhello\r\n.',
    ]);
    assert.deepEqual(r.map((x) => x.code), [220, 250, 250, 554, 250, 354, 250]);
    assert.match(r[3]?.text ?? '', /Relay access denied/);
  });

  test('comes back on the same port after an outage', async () => {
    await mta.stopServer();
    await assert.rejects(smtpSession(mta.port, [], 2000));
    await mta.startServer();
    const [greeting] = await smtpSession(mta.port, []);
    assert.equal(greeting?.code, 220);
    assert.match(await mta.logs(), /postfix\/smtpd\[\d+\]: connect from/);
  });
});
