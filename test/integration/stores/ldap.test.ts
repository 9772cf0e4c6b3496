// The LDAP store against a real OpenLDAP 2.5 with the iRedMail schema (test/harness/containers.ts).
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { Attribute, Change, type Client } from 'ldapts';
import { decide, planDecision, skipped } from '../../../src/restrictions/decide.ts';
import { LIST_NAMES, type MailboxRecord } from '../../../src/restrictions/lists.ts';
import { compileMailbox, type CompiledMailbox } from '../../../src/restrictions/mailbox.ts';
import { resolveOptions } from '../../../src/restrictions/options.ts';
import { splitSqlList } from '../../../src/restrictions/sql-list.ts';
import { iredmailUserDn } from '../../helpers/ldap-dn.ts';
import { openUrlStore, type UrlStore } from '../../../src/stores/url-store.ts';
import { type LdapServer, startOpenldap } from '../../harness/containers.ts';
import { loadVectors } from '../../helpers/vectors.ts';
import { HOSTILE_ADDRESSES, lists, median, NON_ASCII_ADDRESSES, note, percentile, storeError, timed, timedFailure } from './helpers.ts';

const USER_CLASSES = ['inetOrgPerson', 'shadowAccount', 'amavisAccount', 'mailUser', 'top'];

describe('OpenLDAP 2.5 store', () => {
  let ldap: LdapServer;
  let store: UrlStore;
  const settingsFor = (server: LdapServer, extra: Record<string, unknown> = {}) => ({
    baseDn: server.domainsDn,
    bindDn: server.bindDn,
    ...extra,
  });
  const open = (extra: Record<string, unknown> = {}, password: string = ldap.password, url = ldap.url) =>
    openUrlStore(url, settingsFor(ldap, extra), { semantics: 'default', password });

  /** Adds a user with an escaped DN (the harness's helper does not escape). */
  async function addUser(mail: string, attributes: Record<string, string[]> = {}, objectClass = USER_CLASSES): Promise<string> {
    const domain = mail.slice(mail.lastIndexOf('@') + 1);
    await ldap.addLdapDomain(domain);
    const dn = iredmailUserDn(mail, ldap.domainsDn);
    const local = mail.slice(0, mail.lastIndexOf('@'));
    await ldap.withClient((c: Client) =>
      c.add(dn, { objectClass, mail: [mail], uid: [local], cn: [local], sn: [local], accountStatus: ['active'], ...attributes }),
    );
    return dn;
  }

  before(async () => {
    ldap = await startOpenldap();
    note(`OpenLDAP started in ${ldap.startupMs} ms`);
    store = await open();
  });
  after(async () => {
    await store?.close();
    await ldap?.stop();
  });
  beforeEach(async () => {
    await ldap.clearDomains();
  });

  describe('lookup', () => {
    test('one search finds every key by mail or shadowAddress; absent attributes are unset', async () => {
      await addUser('alice@example.com', { shadowAddress: ['al@example.com'], mailBlacklistRecipient: ['@.'], mailWhitelistRecipient: ['@Example.com'] });
      await addUser('bob@example.org', { amavisWhitelistSender: ['@partner.test', ' Boss@Example.com '], amavisBlacklistSender: ['@.'] });
      await addUser('carol@example.com');
      const found = await store.lookup(
        ['alice@example.com', 'al@example.com', 'bob@example.org', 'carol@example.com', 'nobody@example.com'],
        AbortSignal.timeout(2000),
      );
      assert.deepEqual([...found.keys()].sort(), ['al@example.com', 'alice@example.com', 'bob@example.org', 'carol@example.com']);
      const recipientLists = { allowedSenders: null, rejectedSenders: null, allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'] };
      assert.deepEqual(found.get('alice@example.com'), { address: 'alice@example.com', lists: recipientLists });
      assert.deepEqual(found.get('al@example.com'), { address: 'al@example.com', lists: recipientLists });
      assert.deepEqual(found.get('bob@example.org')?.lists, {
        allowedSenders: ['@partner.test', 'boss@example.com'],
        rejectedSenders: ['@.'],
        allowedRecipients: null,
        rejectedRecipients: null,
      });
      assert.deepEqual(found.get('carol@example.com')?.lists, {
        allowedSenders: null,
        rejectedSenders: null,
        allowedRecipients: null,
        rejectedRecipients: null,
      });
    });

    test('the primary address wins over another entry’s shadowAddress', async () => {
      await addUser('alice@example.com', { mailBlacklistRecipient: ['@a.test'] });
      await addUser('other@example.com', { shadowAddress: ['alice@example.com'], mailBlacklistRecipient: ['@b.test'] });
      const found = await store.lookup(['alice@example.com'], AbortSignal.timeout(2000));
      assert.deepEqual(found.get('alice@example.com')?.lists.rejectedRecipients, ['@a.test']);
    });

    test('a configured user filter applies (disabled accounts left out)', async () => {
      await addUser('alice@example.com', { mailBlacklistRecipient: ['@.'] });
      await ldap.withClient((c: Client) =>
        c.modify(iredmailUserDn('alice@example.com', ldap.domainsDn), [
          new Change({ operation: 'replace', modification: new Attribute({ type: 'accountStatus', values: ['disabled'] }) }),
        ]),
      );
      assert.equal((await store.lookup(['alice@example.com'], AbortSignal.timeout(2000))).size, 1, 'default filter ignores status');
      const activeOnly = await open({ userFilter: '(&(objectClass=mailUser)(accountStatus=active))' });
      try {
        assert.equal((await activeOnly.lookup(['alice@example.com'], AbortSignal.timeout(2000))).size, 0);
      } finally {
        await activeOnly.close();
      }
    });
  });

  describe('the vectors of vectors-iredapd.json, with each row as a user entry', () => {
    // LDAP holds one value per entry, so a list with a blank piece (which only the SQL text can
    // express) has no LDAP form; those cases are SQL-only. The directory compares addresses
    // case-insensitively, like MySQL: E09 expects MySQL's answer.
    const options = resolveOptions('iredapd');
    const attributeOf = {
      allowedsenders: 'amavisWhitelistSender',
      rejectedsenders: 'amavisBlacklistSender',
      allowedrecipients: 'mailWhitelistRecipient',
      rejectedrecipients: 'mailBlacklistRecipient',
    } as const;
    for (const vector of loadVectors()) {
      const pieces = vector.mailbox_rows.flatMap((row) =>
        Object.keys(attributeOf).map((c) => splitSqlList(row[c] as string | null, 'iredapd') ?? []),
      );
      if (pieces.some((list) => list.includes(''))) continue;
      test(vector.id, async () => {
        await ldap.clearDomains();
        const preset = await openUrlStore(ldap.url, settingsFor(ldap), { semantics: 'iredapd', password: ldap.password });
        try {
          for (const row of vector.mailbox_rows) {
            const attributes: Record<string, string[]> = {};
            for (const [column, attribute] of Object.entries(attributeOf)) {
              const values = splitSqlList(row[column] as string | null, 'iredapd') ?? [];
              if (values.length > 0) attributes[attribute] = [...new Set(values)];
            }
            if (row.active === 0) attributes.accountStatus = ['disabled'];
            await addUser(String(row.username), attributes);
          }
          const r = vector.request;
          const plan = planDecision(
            { protocolState: r.protocol_state, sender: r.sender, recipient: r.recipient, saslUsername: r.sasl_username },
            options,
          );
          let action: string;
          if (typeof plan === 'string') action = skipped(plan).action;
          else {
            const found = await preset.lookup(plan.keys, AbortSignal.timeout(2000));
            const compiled = new Map<string, CompiledMailbox>();
            for (const [key, record] of found) compiled.set(key, compileMailbox(record, options));
            action = decide(plan, (key) => compiled.get(key), options).action;
          }
          assert.equal(action, vector.expected_by_store?.mysql ?? vector.expected_action, vector.why);
        } finally {
          await preset.close();
        }
      });
    }
  });

  describe('apply, observe, clear', () => {
    const wanted = lists({ allowedSenders: ['@partner.test', 'boss@example.com'], rejectedSenders: ['@.'], rejectedRecipients: ['@gmail.com'] });

    test('apply writes the lists in one modify, once; observe reads them back', async () => {
      const dn = await addUser('alice@example.com', { mailWhitelistRecipient: ['@old.test'] });
      assert.deepEqual(await store.apply('alice@example.com', wanted), { changed: [...LIST_NAMES], written: true });
      const entry = await ldap.getEntry(dn);
      assert.deepEqual(entry?.amavisWhitelistSender, ['@partner.test', 'boss@example.com']);
      assert.deepEqual(entry?.amavisBlacklistSender, ['@.']);
      assert.deepEqual(entry?.mailBlacklistRecipient, ['@gmail.com']);
      assert.equal(entry?.mailWhitelistRecipient, undefined, 'an emptied list removes the attribute');
      assert.deepEqual(await store.observe('alice@example.com'), wanted);
      assert.deepEqual(await store.apply('alice@example.com', wanted), { changed: [], written: false });
      assert.deepEqual(
        await store.apply('alice@example.com', lists({ ...wanted, allowedSenders: ['@Partner.test ', 'BOSS@example.com'] })),
        { changed: [], written: false },
        'the directory compares case-insensitively',
      );
    });

    test('amavisAccount is added in the same modify when a sender list needs it', async () => {
      const dn = await addUser('alice@example.com', {}, ['inetOrgPerson', 'shadowAccount', 'mailUser', 'top']);
      assert.deepEqual(await store.apply('alice@example.com', lists({ rejectedRecipients: ['@.'] })), { changed: ['rejectedRecipients'], written: true });
      assert.ok(!(await ldap.getEntry(dn))?.objectClass?.includes('amavisAccount'), 'not needed for recipient lists');
      assert.deepEqual(await store.apply('alice@example.com', wanted), { changed: ['allowedSenders', 'rejectedSenders', 'rejectedRecipients'], written: true });
      const entry = await ldap.getEntry(dn);
      assert.equal(entry?.objectClass?.filter((c) => c.toLowerCase() === 'amavisaccount').length, 1);
      assert.deepEqual(entry?.amavisBlacklistSender, ['@.']);
    });

    test('addressed through a shadowAddress, the write lands on the user entry', async () => {
      const dn = await addUser('alice@example.com', { shadowAddress: ['al@example.com'] });
      await store.apply('al@example.com', wanted);
      assert.deepEqual((await ldap.getEntry(dn))?.amavisBlacklistSender, ['@.']);
    });

    test('clear removes the four attributes', async () => {
      const dn = await addUser('alice@example.com', {
        amavisWhitelistSender: ['@a.test'],
        amavisBlacklistSender: ['@.'],
        mailWhitelistRecipient: ['x@y.test'],
        mailBlacklistRecipient: ['@.'],
      });
      assert.deepEqual(await store.clear('alice@example.com'), { changed: [...LIST_NAMES], written: true });
      const entry = await ldap.getEntry(dn);
      for (const a of ['amavisWhitelistSender', 'amavisBlacklistSender', 'mailWhitelistRecipient', 'mailBlacklistRecipient']) {
        assert.equal(entry?.[a], undefined, a);
      }
      assert.deepEqual(await store.clear('alice@example.com'), { changed: [], written: false });
      assert.deepEqual(await store.observe('alice@example.com'), lists({}));
    });

    test('a missing mailbox is MailboxNotFound', async () => {
      await assert.rejects(store.apply('ghost@example.com', wanted), storeError('MailboxNotFound', /ghost@example\.com/));
      await assert.rejects(store.observe('ghost@example.com'), storeError('MailboxNotFound'));
      await assert.rejects(store.clear('ghost@example.com'), storeError('MailboxNotFound'));
    });

    test('the read-only account (cn=vmail) reads but cannot write: Misconfigured', async () => {
      await addUser('alice@example.com');
      const readOnly = await openUrlStore(ldap.url, settingsFor(ldap, { bindDn: ldap.readOnly.bindDn }), {
        semantics: 'default',
        password: ldap.readOnly.password,
      });
      try {
        assert.equal((await readOnly.lookup(['alice@example.com'], AbortSignal.timeout(2000))).size, 1);
        await assert.rejects(readOnly.apply('alice@example.com', wanted), storeError('Misconfigured'));
      } finally {
        await readOnly.close();
      }
    });
  });

  describe('hostile values are data', () => {
    test('addresses with filter specials find exactly their own entry', async () => {
      for (const [i, mail] of HOSTILE_ADDRESSES.entries()) await addUser(mail, { mailBlacklistRecipient: [`n${i}@x.test`] });
      await addUser('star@x.test');
      for (const [i, mail] of HOSTILE_ADDRESSES.entries()) {
        const found = await store.lookup([mail], AbortSignal.timeout(2000));
        assert.deepEqual([...found.keys()], [mail]);
        assert.deepEqual(found.get(mail)?.lists.rejectedRecipients, [`n${i}@x.test`]);
      }
      assert.equal((await store.lookup([...HOSTILE_ADDRESSES], AbortSignal.timeout(2000))).size, HOSTILE_ADDRESSES.length);
    });

    test('filter-injection keys match nothing and fail nothing', async () => {
      await addUser('alice@example.com', { mailBlacklistRecipient: ['@.'] });
      const attempts = ['*', '*)(mail=*', 'alice@example.com)(|(mail=*', 'al*', '\\', '(', ')', 'a\u0000@x.test', ...NON_ASCII_ADDRESSES];
      const found = await store.lookup(attempts, AbortSignal.timeout(2000));
      assert.equal(found.size, 0);
    });

    test('entries with filter specials and quotes are stored and read back exactly', async () => {
      const dn = await addUser('alice@example.com');
      const entries = [...HOSTILE_ADDRESSES];
      assert.deepEqual(await store.apply('alice@example.com', lists({ allowedSenders: entries, rejectedRecipients: entries })), { changed: ['allowedSenders', 'rejectedRecipients'], written: true });
      assert.deepEqual((await ldap.getEntry(dn))?.amavisWhitelistSender, entries);
      const found = await store.lookup(['alice@example.com'], AbortSignal.timeout(2000));
      assert.deepEqual(found.get('alice@example.com')?.lists.allowedSenders, entries);
      assert.deepEqual(found.get('alice@example.com')?.lists.rejectedRecipients, entries);
    });

    test('internationalised domains are written in ASCII form (IA5String) and matched from either form', async () => {
      const dn = await addUser('anna@xn--bcher-kva.example');
      const written = lists({ allowedSenders: ['@Bücher.example'], rejectedSenders: ['@.'], rejectedRecipients: ['boss@例え.test'] });
      assert.deepEqual(await store.apply('anna@bücher.example', written), { changed: ['allowedSenders', 'rejectedSenders', 'rejectedRecipients'], written: true });
      const entry = await ldap.getEntry(dn);
      assert.deepEqual(entry?.amavisWhitelistSender, ['@xn--bcher-kva.example']);
      assert.deepEqual(entry?.mailBlacklistRecipient, ['boss@xn--r8jz45g.test']);
      assert.deepEqual(await store.apply('anna@bücher.example', written), { changed: [], written: false });
      const options = resolveOptions('default');
      for (const [sender, recipient, verdict] of [
        ['x@bücher.example', 'anna@bücher.example', 'allow'],
        ['x@xn--bcher-kva.example', 'anna@xn--bcher-kva.example', 'allow'],
        ['anna@bücher.example', 'boss@例え.test', 'reject'],
        ['anna@xn--bcher-kva.example', 'boss@xn--r8jz45g.test', 'reject'],
      ] as const) {
        const plan = planDecision({ protocolState: 'RCPT', sender, recipient, saslUsername: undefined }, options);
        assert.ok(typeof plan !== 'string');
        const found = await store.lookup(plan.keys, AbortSignal.timeout(2000));
        const decision = decide(plan, (key) => (found.has(key) ? compileMailbox(found.get(key)!, options) : undefined), options);
        assert.equal(decision.verdict, verdict, `${sender} -> ${recipient}`);
      }
    });

    test('NUL, an empty entry, and non-ASCII (IA5String attributes) are refused as InvalidValue', async () => {
      const dn = await addUser('alice@example.com', { mailBlacklistRecipient: ['@.'] });
      for (const bad of ['a\u0000b@x.test', ' ', NON_ASCII_ADDRESSES[0]]) {
        await assert.rejects(store.apply('alice@example.com', lists({ rejectedRecipients: [bad] })), storeError('InvalidValue'));
      }
      assert.deepEqual((await ldap.getEntry(dn))?.mailBlacklistRecipient, ['@.'], 'nothing was written');
    });
  });

  describe('configuration errors', () => {
    test('verifySchema: the iRedMail schema passes; an attribute the directory does not know is Misconfigured naming it', async () => {
      await store.verifySchema!(AbortSignal.timeout(2000));
      const s = await open({ attributes: { rejectedRecipients: 'mailBlacklistedRecipient' } });
      try {
        await assert.rejects(
          s.verifySchema!(AbortSignal.timeout(2000)),
          storeError('Misconfigured', /no attribute type mailBlacklistedRecipient \(attributes\.rejectedRecipients\).*amavisd/),
        );
      } finally {
        await s.close();
      }
    });

    test('a wrong password is Misconfigured and the message holds no password', async () => {
      const s = await open({}, 'wrong-secret-xyz');
      try {
        await assert.rejects(s.lookup(['a@x.test'], AbortSignal.timeout(2000)), storeError('Misconfigured', /bind DN or password/, ['wrong-secret-xyz']));
      } finally {
        await s.close();
      }
    });

    test('a base DN that does not exist is Misconfigured', async () => {
      const s = await open({ baseDn: 'o=nowhere,dc=example,dc=com' });
      try {
        await assert.rejects(s.lookup(['a@x.test'], AbortSignal.timeout(2000)), storeError('Misconfigured', /base DN/));
      } finally {
        await s.close();
      }
    });

    test('ping reads no user entry, and fails as a lookup does on a wrong password or base DN', async () => {
      await store.ping(AbortSignal.timeout(2000));
      const cases: [settings: Record<string, unknown>, password: string, message: RegExp][] = [
        [{}, 'wrong-secret-xyz', /bind DN or password/],
        [{ baseDn: 'o=nowhere,dc=example,dc=com' }, ldap.password, /base DN/],
      ];
      for (const [settings, password, message] of cases) {
        const s = await open(settings, password);
        try {
          await assert.rejects(s.ping(AbortSignal.timeout(2000)), storeError('Misconfigured', message, ['wrong-secret-xyz']));
        } finally {
          await s.close();
        }
      }
    });

    test('an attribute name the schema lacks is Misconfigured on write', async () => {
      await addUser('alice@example.com');
      const s = await open({ attributes: { rejectedRecipients: 'noSuchAttribute' } });
      try {
        await assert.rejects(s.apply('alice@example.com', lists({ rejectedRecipients: ['@.'] })), storeError('Misconfigured'));
      } finally {
        await s.close();
      }
    });

    test('a server that refuses connections is Unavailable', async () => {
      const s = await open({}, ldap.password, 'ldap://127.0.0.1:1');
      try {
        const { ms, error } = await timedFailure(() => s.lookup(['a@x.test'], AbortSignal.timeout(1000)));
        storeError('Unavailable')(error);
        note(`OpenLDAP: refused connection answered Unavailable in ${ms.toFixed(1)} ms`);
      } finally {
        await s.close();
      }
    });
  });

  describe('10,000 mailboxes', () => {
    test('a lookup among them is one indexed search', async () => {
      await ldap.addLdapDomain('big.test');
      const t0 = performance.now();
      await ldap.withClient(async (c: Client) => {
        const base = `ou=Users,domainName=big.test,${ldap.domainsDn}`;
        const add = (n: number) =>
          c.add(`mail=user${n}@big.test,${base}`, {
            objectClass: USER_CLASSES,
            mail: [`user${n}@big.test`],
            uid: [`user${n}`],
            cn: [`user${n}`],
            sn: [`user${n}`],
            shadowAddress: [`alias${n}@big.test`],
            ...(n % 2 === 0 ? { amavisBlacklistSender: ['@.'] } : {}),
          });
        // LDAP multiplexes: keep a window of adds in flight on the one connection.
        for (let start = 1; start <= 10_000; start += 200) {
          await Promise.all(Array.from({ length: 200 }, (_, i) => add(start + i)));
        }
      });
      note(`OpenLDAP: 10,000 entries added in ${(performance.now() - t0).toFixed(0)} ms`);

      const found = await store.lookup(['user4242@big.test', 'alias7777@big.test', 'user10001@big.test'], AbortSignal.timeout(2000));
      assert.deepEqual([...found.keys()].sort(), ['alias7777@big.test', 'user4242@big.test']);
      assert.deepEqual(found.get('user4242@big.test')?.lists.rejectedSenders, ['@.']);
      assert.equal(found.get('alias7777@big.test')?.lists.rejectedSenders, null);

      const times: number[] = [];
      for (let i = 0; i < 200; i++) {
        const n = 1 + ((i * 37) % 10_000);
        times.push(await timed(() => store.lookup([`user${n}@big.test`, `x${i}@remote.test`], AbortSignal.timeout(2000))));
      }
      note(`OpenLDAP: lookup of 2 keys among 10,000: median ${median(times).toFixed(2)} ms, p99 ${percentile(times, 99).toFixed(2)} ms`);
      assert.ok(median(times) < 50, `median lookup ${median(times)} ms`);
    });
  });

  describe('outages', () => {
    test('a stopped server fails lookups fast with Unavailable; the same store recovers when it is back', async () => {
      await addUser('alice@example.com', { mailBlacklistRecipient: ['@.'] });
      const s = await open();
      try {
        assert.equal((await s.lookup(['alice@example.com'], AbortSignal.timeout(1000))).size, 1);
        await ldap.stopServer();
        const failures: number[] = [];
        for (let i = 0; i < 5; i++) {
          const { ms, error } = await timedFailure(() => s.lookup(['alice@example.com'], AbortSignal.timeout(1000)));
          storeError('Unavailable')(error);
          failures.push(ms);
        }
        assert.equal(s.ready?.(), false);
        assert.ok(Math.max(...failures) < 1200, `failures took ${failures.join(', ')} ms`);
        note(`OpenLDAP stopped: lookups failed in ${failures.map((t) => t.toFixed(1)).join(', ')} ms`);

        await ldap.startServer();
        const t0 = performance.now();
        // The very first lookup: no retry, no wait.
        const found = await s.lookup(['alice@example.com'], AbortSignal.timeout(1000));
        assert.equal(found.size, 1, 'the store answers again without being reopened');
        assert.equal(s.ready?.(), true);
        note(`OpenLDAP back: the first lookup succeeded after ${(performance.now() - t0).toFixed(0)} ms`);
      } finally {
        await s.close();
      }
    });

    test('a hung server: the lookup rejects when the signal aborts, and works again once it answers', async () => {
      await addUser('alice@example.com', { mailBlacklistRecipient: ['@.'] });
      const s = await open();
      try {
        assert.equal((await s.lookup(['alice@example.com'], AbortSignal.timeout(1000))).size, 1);
        await ldap.pause();
        try {
          const runs: number[] = [];
          for (let i = 0; i < 4; i++) {
            const { ms, error } = await timedFailure(() => s.lookup(['alice@example.com'], AbortSignal.timeout(300)));
            storeError('Unavailable', /lookup timeout/)(error);
            runs.push(ms);
          }
          note(`OpenLDAP paused: lookups with a 300 ms deadline rejected after ${runs.map((t) => t.toFixed(0)).join(', ')} ms`);
          assert.ok(Math.max(...runs) < 450, `took ${runs.join(', ')} ms`);
        } finally {
          await ldap.unpause();
        }
        const t0 = performance.now();
        let attempts = 0;
        let found: ReadonlyMap<string, MailboxRecord> | undefined;
        while (found === undefined && attempts < 20) {
          attempts++;
          try {
            found = await s.lookup(['alice@example.com'], AbortSignal.timeout(1000));
          } catch (err) {
            storeError('Unavailable')(err);
          }
        }
        assert.equal(found?.size, 1);
        note(`OpenLDAP unpaused: lookup succeeded at attempt ${attempts} after ${(performance.now() - t0).toFixed(0)} ms`);
      } finally {
        await s.close();
      }
    });
  });
});
