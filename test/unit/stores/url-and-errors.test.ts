import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { abortable, redactUrl, scrubSecrets } from '../../../src/stores/common.ts';
import { parseSqlUrl } from '../../../src/stores/endpoint.ts';
import { classifyLdapError } from '../../../src/stores/ldap-errors.ts';
import { SqlStoreSettingsSchema } from '../../../src/api/store-settings.ts';
import { classifyMysqlError, classifyPostgresError } from '../../../src/stores/sql-errors.ts';
import { StoreError } from '../../../src/stores/store.ts';
import { urlStoreKind } from '../../../src/api/store-url.ts';
import { openUrlStore } from '../../../src/stores/url-store.ts';

describe('URLs and secrets', () => {
  test('redactUrl masks a password and leaves the rest', () => {
    assert.equal(redactUrl('postgres://vmail:s3cr%40t@db:5432/vmail'), 'postgres://vmail:***@db:5432/vmail');
    assert.equal(redactUrl('mysql://vmail@db/vmail'), 'mysql://vmail@db/vmail');
    assert.equal(redactUrl('postgres://vmail:pw@[bad'), 'postgres://vmail:***@[bad');
  });

  test('scrubSecrets removes every occurrence', () => {
    assert.equal(scrubSecrets('password hunter2 was hunter2', ['hunter2', undefined]), 'password *** was ***');
  });

  test('parseSqlUrl: defaults, decoding, and the caller’s password first', () => {
    const e = parseSqlUrl('postgres://vmailadmin:fromurl@127.0.0.1/vmail', 5432, 'fromcaller');
    assert.equal(e.password, 'fromcaller');
    assert.equal(e.port, 5432);
    assert.equal(e.target, 'postgres://vmailadmin:***@127.0.0.1/vmail');
    const d = parseSqlUrl('mysql://db.example', 3306, undefined);
    assert.deepEqual([d.user, d.database, d.port, d.password], ['vmail', 'vmail', 3306, undefined]);
    assert.equal(parseSqlUrl('postgres://u:p%40ss@db/x', 5432, undefined).password, 'p@ss');
    assert.equal(parseSqlUrl('postgres://u@[::1]:5433/x', 5432, undefined).host, '::1');
  });

  test('urlStoreKind by scheme', () => {
    assert.equal(urlStoreKind('postgresql://h/db'), 'postgres');
    assert.equal(urlStoreKind('MARIADB://h/db'), 'mysql');
    assert.equal(urlStoreKind('ldaps://h'), 'ldap');
    assert.equal(urlStoreKind('/etc/mailwarden'), undefined);
    assert.equal(urlStoreKind('redis://h'), undefined);
  });

  test('an unknown scheme is Misconfigured and the message holds no password', async () => {
    await assert.rejects(
      openUrlStore('redis://u:topsecret@h', {}, { semantics: 'default' }),
      (err: unknown) => err instanceof StoreError && err.kind === 'Misconfigured' && !err.message.includes('topsecret'),
    );
  });

  test('bad settings are Misconfigured before anything connects', async () => {
    await assert.rejects(
      openUrlStore('postgres://u@127.0.0.1:1/db', { table: 'x;drop' }, { semantics: 'default' }),
      (err: unknown) => err instanceof StoreError && err.kind === 'Misconfigured',
    );
    await assert.rejects(
      openUrlStore('ldap://127.0.0.1:1', { userFilter: '(objectClass=mailUser' }, { semantics: 'default' }),
      (err: unknown) => err instanceof StoreError && err.kind === 'Misconfigured' && err.message.includes('userFilter'),
    );
  });

  test('an LDAP URL with credentials is refused without echoing them', async () => {
    await assert.rejects(
      openUrlStore('ldap://cn=x:topsecret@127.0.0.1:1', {}, { semantics: 'default' }),
      (err: unknown) => err instanceof StoreError && err.kind === 'Misconfigured' && !err.message.includes('topsecret'),
    );
  });
});

describe('error classification', () => {
  const context = { target: 'postgres://vmail@db/vmail', settings: SqlStoreSettingsSchema.parse({}), secrets: ['hunter2'] };
  const withCode = (code: string | number, message = 'boom') => Object.assign(new Error(message), { code });

  const pg: [string, unknown, StoreError['kind']][] = [
    ['connection refused', withCode('ECONNREFUSED'), 'Unavailable'],
    ['a timeout without a code', new Error('Connection terminated due to connection timeout'), 'Unavailable'],
    ['admin shutdown', withCode('57P01'), 'Unavailable'],
    ['too many connections', withCode('53300'), 'Unavailable'],
    ['bad password', withCode('28P01'), 'Misconfigured'],
    ['missing database', withCode('3D000'), 'Misconfigured'],
    ['missing table', withCode('42P01'), 'Misconfigured'],
    ['missing column', withCode('42703'), 'Misconfigured'],
    ['bad byte sequence', withCode('22021'), 'InvalidValue'],
    ['self-signed certificate', withCode('DEPTH_ZERO_SELF_SIGNED_CERT'), 'Misconfigured'],
  ];
  for (const [name, err, kind] of pg) {
    test(`PostgreSQL: ${name} → ${kind}`, () => assert.equal(classifyPostgresError(err, context).kind, kind));
  }

  test('a missing column names the table and every configured column', () => {
    const e = classifyPostgresError(withCode('42703', 'column "allowedsenders" does not exist'), context);
    assert.match(e.message, /table mailbox or one of its columns \(username, allowedsenders, rejectedsenders, allowedrecipients, rejectedrecipients\)/);
    assert.match(e.message, /column "allowedsenders" does not exist/);
  });

  test('a password echoed by a driver is scrubbed', () => {
    const e = classifyPostgresError(withCode('28P01', 'auth failed for password hunter2'), context);
    assert.ok(!e.message.includes('hunter2'));
  });

  const my: [string, unknown, StoreError['kind']][] = [
    ['connection lost', withCode('PROTOCOL_CONNECTION_LOST'), 'Unavailable'],
    ['refused', withCode('ECONNREFUSED'), 'Unavailable'],
    ['access denied', withCode('ER_ACCESS_DENIED_ERROR'), 'Misconfigured'],
    ['missing table', withCode('ER_NO_SUCH_TABLE'), 'Misconfigured'],
    ['missing column', withCode('ER_BAD_FIELD_ERROR'), 'Misconfigured'],
    ['too long', withCode('ER_DATA_TOO_LONG'), 'InvalidValue'],
    ['4-byte character in utf8mb3', withCode('ER_TRUNCATED_WRONG_VALUE_FOR_FIELD'), 'InvalidValue'],
  ];
  for (const [name, err, kind] of my) {
    test(`MySQL: ${name} → ${kind}`, () => assert.equal(classifyMysqlError(err, context).kind, kind));
  }

  const ldap: [string, unknown, StoreError['kind']][] = [
    ['refused', withCode('ECONNREFUSED'), 'Unavailable'],
    ['socket closed', new Error('Connection closed before message response was received'), 'Unavailable'],
    ['busy', withCode(51), 'Unavailable'],
    ['invalid credentials', withCode(49), 'Misconfigured'],
    ['no such base DN', withCode(32), 'Misconfigured'],
    ['undefined attribute type', withCode(17), 'Misconfigured'],
    ['invalid syntax', withCode(21), 'InvalidValue'],
    ['constraint violation', withCode(19), 'InvalidValue'],
    ['size limit reached (a whole-store read)', withCode(4), 'Misconfigured'],
  ];
  for (const [name, err, kind] of ldap) {
    test(`LDAP: ${name} → ${kind}`, () => assert.equal(classifyLdapError(err, { target: 'ldap://h', secrets: [] }).kind, kind));
  }

  test('a StoreError passes through unchanged', () => {
    const e = new StoreError('MailboxNotFound', 'x');
    assert.equal(classifyPostgresError(e, context), e);
    assert.equal(classifyLdapError(e, { target: 'ldap://h', secrets: [] }), e);
  });
});

describe('abortable', () => {
  test('rejects with Unavailable as soon as the signal aborts, and runs the cleanup', async () => {
    const controller = new AbortController();
    let cleaned = false;
    // The work never settles, so a rejection can only come from the abort.
    const never = new Promise<never>(() => {});
    setImmediate(() => controller.abort()); // once the work is under way
    await assert.rejects(
      abortable(never, controller.signal, () => (cleaned = true), 'PostgreSQL x'),
      (err: unknown) => err instanceof StoreError && err.kind === 'Unavailable' && /lookup timeout/.test(err.message),
    );
    assert.equal(cleaned, true);
  });

  test('an already aborted signal rejects at once', async () => {
    await assert.rejects(abortable(Promise.resolve(1), AbortSignal.abort(), () => {}, 'x'), StoreError);
  });

  test('a late failure of the abandoned work is swallowed', async () => {
    const controller = new AbortController();
    let fail: (error: Error) => void = () => {};
    const late = new Promise((_, reject) => (fail = reject));
    controller.abort();
    await assert.rejects(abortable(late, controller.signal, () => {}, 'x'), StoreError);
    fail(new Error('late'));
    // An unhandled rejection would be reported once the microtasks have run.
    await new Promise((resolve) => setImmediate(resolve));
  });

  test('settles with the work when it wins', async () => {
    assert.equal(await abortable(Promise.resolve(7), new AbortController().signal, () => {}, 'x'), 7);
  });
});
