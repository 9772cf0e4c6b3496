// Postfix 3.7 → the mailwarden image (policyd --store-schema amavisd) → PostgreSQL 15 with the
// amavisd white/blacklist tables (test/fixtures/amavisd-postgres.sql). The lists are written by
// the operator's writer (the amavisd store's apply), and a client speaks real SMTP to Postfix:
// one scenario inbound (the recipient's wblist pairs, client IP included), one outbound (the SASL
// sender's outbound_wblist pairs), each with the pair that decides and one that does not.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openAmavisdStore } from '../../../src/stores/amavisd-sql.ts';
import { EMPTY_LISTS, type RestrictionLists } from '../../../src/restrictions/lists.ts';
import { freePort, startPostfix, startPostgres, type PostfixServer, type SqlServer } from '../../harness/containers.ts';
import { ensureMailwardenImage, startPolicydContainer, type PolicydContainer } from '../../harness/mailwarden-image.ts';
import { loadAmavisdTables } from '../stores/helpers.ts';
import { ACCEPTED, postfixMainCf, sendMessage } from './suite.ts';

const blacklisted = (rcpt: string): string => `554 5.7.1 <${rcpt}>: Recipient address rejected: Blacklisted`;
const lists = (l: Partial<RestrictionLists>): RestrictionLists => ({ ...EMPTY_LISTS, ...l });

describe('Postfix end to end over an amavisd store (PostgreSQL)', () => {
  let db: SqlServer;
  let postfix: PostfixServer;
  let daemon: PolicydContainer;

  before(async () => {
    const policyPort = await freePort();
    [db, postfix] = await Promise.all([
      startPostgres(),
      startPostfix({ mainCf: postfixMainCf(policyPort) }),
      ensureMailwardenImage(),
    ]);
    await loadAmavisdTables(db);
    const store = await openAmavisdStore(db.url, {}, { semantics: 'default', password: db.password });
    try {
      // Inbound: alice rejects one address and (the test client connects from 127.0.0.1) nothing by IP;
      // frank rejects the client's network; the domain-wide account rejects @.evil.test.
      await store.apply('alice@example.com', lists({ rejectedSenders: ['spam@gmail.com'], allowedSenders: ['@.evil.test'] }));
      await store.apply('frank@example.com', lists({ rejectedSenders: ['127.0.0.0/8'] }));
      await store.apply('@example.com', lists({ rejectedSenders: ['@.evil.test'] }));
      // Outbound: alice may not send to @.xyz, and may send to one address there.
      await store.apply('alice@example.com', lists({ rejectedSenders: ['spam@gmail.com'], allowedSenders: ['@.evil.test'], rejectedRecipients: ['@.xyz'], allowedRecipients: ['boss@corp.xyz'] }));
    } finally {
      await store.close();
    }
    daemon = await startPolicydContainer({
      store: db.url,
      port: policyPort,
      env: { MAILWARDEN_STORE_PASSWORD: db.password },
      args: ['--store-schema', 'amavisd', '--cache-ttl', '1000ms', '--log-level', 'warn'],
      startTimeoutMs: 90_000,
    });
    const deadline = Date.now() + 30_000;
    while ((await fetch(`http://127.0.0.1:${daemon.httpPort}/readyz`).then((r) => r.status, () => 0)) !== 200) {
      if (Date.now() > deadline) assert.fail('the amavisd daemon did not become ready');
      await sleep(100);
    }
  });
  after(async () => {
    await Promise.all([daemon?.stop(), postfix?.stop(), db?.stop()]);
  });

  test('inbound: the most specific (account, party) pair decides; a client network rejects; a whitelisted pair is OK', async () => {
    const t = await sendMessage(postfix.port, { from: 'spam@gmail.com', to: ['alice@example.com', 'bob@example.com', 'frank@example.com'] });
    assert.deepEqual(t.rcpt, [blacklisted('alice@example.com'), ACCEPTED, blacklisted('frank@example.com')]);
    // alice's own W for @.evil.test beats the domain-wide B; bob has only the domain-wide B.
    const evil = await sendMessage(postfix.port, { from: 'x@mx.evil.test', to: ['alice@example.com', 'bob@example.com'] });
    assert.deepEqual(evil.rcpt, [ACCEPTED, blacklisted('bob@example.com')]);
  });

  test('outbound (SASL): the sender\'s outbound pairs decide; the address W beats the @.xyz B', async () => {
    const t = await sendMessage(postfix.port, { auth: 'alice@example.com', from: 'alice@example.com', to: ['x@shop.xyz', 'boss@corp.xyz', 'x@example.net'] });
    assert.deepEqual(t.rcpt, [blacklisted('x@shop.xyz'), ACCEPTED, ACCEPTED]);
  });
});
