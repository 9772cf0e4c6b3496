import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pairLists, planPairs, type StoredPair } from '../../../src/restrictions/amavisd-pair-plan.ts';
import { EMPTY_LISTS, type RestrictionLists } from '../../../src/restrictions/lists.ts';

const lists = (partial: Partial<RestrictionLists>): RestrictionLists => ({ ...EMPTY_LISTS, ...partial });
const inbound = (party: number, email: string, wb: string): StoredPair => ({ table: 'wblist', party, email, wb });
const outbound = (party: number, email: string, wb: string): StoredPair => ({ table: 'outbound_wblist', party, email, wb });

// As iRedAdmin and hands left one account: capitals, spacing, a repeat, a lower-case w, values that are no entry.
const stored: StoredPair[] = [
  inbound(1, 'Friend@Partner.TEST', 'w'),
  inbound(2, ' @spam.test', 'B'),
  inbound(3, '@spam.test', 'B'),
  inbound(4, 'not an address', 'B'),
  outbound(5, '192.168.1.1', 'B'),
  outbound(6, '@example.com', 'W'),
];

describe('amavisd pairs: a write changes exactly the difference', () => {
  test('the lists an export makes of the pairs (values as stored, invalid ones included) change nothing', () => {
    const exported = lists({
      allowedSenders: ['friend@partner.test'],
      rejectedSenders: ['@spam.test', 'not an address'],
      allowedRecipients: ['@example.com'],
      rejectedRecipients: ['192.168.1.1'],
    });
    assert.deepEqual(planPairs(stored, exported), { changed: [], remove: [], rewb: [], add: [], problems: [] });
    assert.deepEqual(pairLists(stored).rejectedSenders, [' @spam.test', '@spam.test', 'not an address']);
  });

  test('removed entries delete their pairs (every spelling), a moved one changes wb, a new one is added; stored spellings that stay are kept', () => {
    const plan = planPairs(stored, lists({ allowedSenders: ['friend@partner.test', '@new.test'], allowedRecipients: ['@EXAMPLE.com'], rejectedRecipients: ['192.168.1.1'], rejectedSenders: ['not an address'] }));
    assert.deepEqual(plan.changed, ['allowedSenders', 'rejectedSenders']);
    assert.deepEqual(plan.remove.map((p) => p.party), [2, 3]);
    assert.deepEqual(plan.add, [{ table: 'wblist', email: '@new.test', wb: 'W' }]);
    assert.deepEqual(plan.rewb, []);
    assert.deepEqual(plan.problems, []);

    const moved = planPairs(stored, lists({ rejectedSenders: ['friend@partner.test', '@spam.test', 'not an address'], allowedRecipients: ['@example.com'], rejectedRecipients: ['192.168.1.1'] }));
    assert.deepEqual(moved.changed, ['allowedSenders', 'rejectedSenders']);
    assert.deepEqual(moved.rewb, [{ ...stored[0], to: 'B' }]);
    assert.deepEqual([moved.remove, moved.add], [[], []]);
  });

  test('a value the tables do not hold as an entry is kept where stored, never added: the write is refused', () => {
    const plan = planPairs(stored, lists({ rejectedSenders: ['@spam.test', 'not an address', 'more junk'], rejectedRecipients: ['192.168.1.1', '10.0.0.1'], allowedSenders: ['friend@partner.test'], allowedRecipients: ['@example.com'] }));
    assert.equal(plan.problems.length, 2);
    assert.match(plan.problems[0]!, /^rejectedSenders: "more junk" .*never adds one$/);
    assert.match(plan.problems[1]!, /^rejectedRecipients: "10.0.0.1" is an IP address: a client is a sender, never a recipient/);
  });

  test('one party both allowed and rejected in one direction is refused', () => {
    const plan = planPairs([], lists({ allowedSenders: ['@x.test'], rejectedSenders: ['@X.test'] }));
    assert.deepEqual(plan.problems, ['"@x.test" is in both allowedSenders and rejectedSenders: one pair holds one of W and B']);
  });

  test('clearing removes every pair, blank and invalid ones too', () => {
    const plan = planPairs([...stored, inbound(7, '', 'B')], EMPTY_LISTS);
    assert.deepEqual(plan.changed, ['allowedSenders', 'rejectedSenders', 'allowedRecipients', 'rejectedRecipients']);
    assert.equal(plan.remove.length, 7);
  });
});
