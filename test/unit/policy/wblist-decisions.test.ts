// The amavisd schema's decider (src/policy/wblist-decisions.ts): one store round trip per request
// whose facts are not cached, the two settings passed to the decision, the last known good facts
// while the store fails, the failure action without them. The reader here is an in-memory table
// set; the real tables are read in test/integration/stores/amavisd-suite.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WblistDecider } from '../../../src/policy/wblist-decisions.ts';
import { emptyPolicyRequest, type PolicyRequest } from '../../../src/policy/request.ts';
import { explainWblist, type WblistFacts, type WblistPlan, type WblistRow } from '../../../src/restrictions/amavisd-wblist.ts';
import { DEFAULT_OPTIONS } from '../../../src/restrictions/options.ts';
import type { Decision } from '../../../src/restrictions/decide.ts';
import { StoreError, type WblistReader } from '../../../src/stores/store.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';

/** alice@example.com blacklists spam@evil.test inbound and @.xyz outbound. */
class TableReader implements WblistReader {
  readonly kind = 'amavisd-memory';
  calls = 0;
  failing = false;
  /** Whether alice's inbound blacklist row for spam@evil.test is there. */
  listed = true;
  async facts(_plan: WblistPlan, _signal: AbortSignal): Promise<WblistFacts> {
    this.calls++;
    if (this.failing) throw new StoreError('Unavailable', 'connection refused');
    const alice: WblistRow = { id: 1, priority: 100, email: 'alice@example.com' };
    const spam: WblistRow = { id: 7, priority: 10, email: 'spam@evil.test' };
    const xyz: WblistRow = { id: 8, priority: 2, email: '@.xyz' };
    return {
      users: new Map([[alice.email, alice]]),
      mailaddr: new Map([[spam.email, spam], [xyz.email, xyz]]),
      networks: [],
      inbound: new Map(this.listed ? [['1/7', 'B']] : []),
      outbound: new Map([['8/1', 'B']]),
      aliasTarget: () => undefined,
      isLocalDomain: () => false,
    };
  }
  async close(): Promise<void> {}
}

const request = (sender: string, recipient: string, sasl = ''): PolicyRequest => ({ ...emptyPolicyRequest(), request: 'smtpd_access_policy', protocolState: 'RCPT', sender, recipient, saslUsername: sasl, clientAddress: '192.0.2.9' });

describe('amavisd decider', () => {
  test('one round trip on a miss, none on a hit; the pair that decided is named', async () => {
    const store = new TableReader();
    const clock = new FakeClock();
    const decider = new WblistDecider({ store, options: DEFAULT_OPTIONS, wblist: { bypassOutgoing: false, discardInsteadOfReject: false }, clock });
    const first = await decider.decide(request('spam+tag@evil.test', 'alice+x@example.com'));
    assert.equal(first.action, 'REJECT Blacklisted');
    assert.equal(store.calls, 1);
    const again = decider.decide(request('spam@evil.test', 'alice@example.com'));
    assert.ok(!(again instanceof Promise), 'a cached request is answered synchronously');
    assert.equal(store.calls, 1);
    assert.equal(explainWblist(again.wblist!), 'REJECT Blacklisted (inbound: account alice@example.com, party spam@evil.test, B)');
    assert.equal(again.mailbox, 'alice@example.com');
    assert.equal(again.list, 'rejectedSenders');
    clock.advance(31_000);
    await decider.decide(request('spam@evil.test', 'alice@example.com'));
    assert.equal(store.calls, 2, 'refetched after the TTL');
  });

  test('a refetch brings a new decision: what was decided is kept no longer than the facts it came from', async () => {
    const store = new TableReader();
    const clock = new FakeClock();
    const decider = new WblistDecider({ store, options: DEFAULT_OPTIONS, wblist: { bypassOutgoing: false, discardInsteadOfReject: false }, clock });
    const spam = request('spam@evil.test', 'alice@example.com');
    assert.equal((await decider.decide(spam)).action, 'REJECT Blacklisted');
    store.listed = false;
    assert.equal((decider.decide(spam) as Decision).action, 'REJECT Blacklisted', 'the cached facts still answer within the TTL');
    clock.advance(31_000);
    assert.equal((await decider.decide(spam)).action, 'DUNNO');
    assert.equal((decider.decide(spam) as Decision).action, 'DUNNO');
    assert.equal(store.calls, 2);
  });

  test('settings: bypass outgoing skips the outbound step; discard instead of reject', async () => {
    const outbound = request('alice@example.com', 'bob@shop.xyz', 'alice@example.com');
    const plain = new WblistDecider({ store: new TableReader(), options: DEFAULT_OPTIONS, wblist: { bypassOutgoing: false, discardInsteadOfReject: false } });
    assert.equal((await plain.decide(outbound)).action, 'REJECT Blacklisted');
    const bypass = new WblistDecider({ store: new TableReader(), options: DEFAULT_OPTIONS, wblist: { bypassOutgoing: true, discardInsteadOfReject: false } });
    assert.equal((await bypass.decide(outbound)).action, 'DUNNO');
    const discard = new WblistDecider({ store: new TableReader(), options: DEFAULT_OPTIONS, wblist: { bypassOutgoing: false, discardInsteadOfReject: true } });
    assert.equal((await discard.decide(outbound)).action, 'DISCARD Policy discard');
  });

  test('a failing store: the last known good facts answer; without them the failure action', async () => {
    const store = new TableReader();
    const clock = new FakeClock();
    const decider = new WblistDecider({ store, options: DEFAULT_OPTIONS, wblist: { bypassOutgoing: false, discardInsteadOfReject: false }, clock });
    await decider.decide(request('spam@evil.test', 'alice@example.com'));
    store.failing = true;
    clock.advance(60_000);
    assert.equal((await decider.decide(request('spam@evil.test', 'alice@example.com'))).action, 'REJECT Blacklisted');
    const unknown = await decider.decide(request('someone@else.test', 'alice@example.com'));
    assert.equal(unknown.verdict, 'failure');
    assert.equal(unknown.action, DEFAULT_OPTIONS.failureAction);
  });

  test('a store that does not answer within the lookup timeout is a failure, driven by the clock', async () => {
    const clock = new FakeClock();
    const hung: WblistReader = { kind: 'amavisd-hung', facts: () => new Promise(() => {}), close: async () => {} };
    const decider = new WblistDecider({ store: hung, options: DEFAULT_OPTIONS, wblist: { bypassOutgoing: false, discardInsteadOfReject: false }, resolver: { lookupTimeoutMs: 500 }, clock });
    const pending = decider.decide(request('a@x.test', 'alice@example.com'));
    clock.advance(500);
    const decision = await pending;
    assert.equal(decision.verdict, 'failure');
    assert.match(decision.reason ?? '', /did not answer within 500 ms/);
  });
});
