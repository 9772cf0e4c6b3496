// What the vmail-columns → amavisd migration writes for one mailbox, and when it says an answer changes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { planAccountMigration } from '../../../src/adoption/amavisd-migration.ts';
import { EMPTY_LISTS, type RestrictionLists } from '../../../src/restrictions/lists.ts';

const stored = (lists: Partial<RestrictionLists>, mailbox = 'alice@example.com') => ({ mailbox, lists: { ...EMPTY_LISTS, ...lists } });
const meanings = (lists: Partial<RestrictionLists>) =>
  planAccountMigration(stored(lists), EMPTY_LISTS)
    .notes.filter((n) => n.severity === 'meaning')
    .map((n) => n.message);

describe('the answers that change when the columns move into amavisd', () => {
  const cases: { allowed: string; rejected: string; change: 'rejected now' | 'either' | 'none' }[] = [
    { allowed: '@.example.com', rejected: 'spam@example.com', change: 'rejected now' },
    { allowed: '@example.com', rejected: 'spam@example.com', change: 'rejected now' },
    { allowed: '@.', rejected: '@evil.test', change: 'rejected now' },
    { allowed: '@.', rejected: '@.evil.test', change: 'rejected now' },
    { allowed: '@.example.com', rejected: '@sub.example.com', change: 'rejected now' },
    { allowed: '@.example.com', rejected: '@.sub.example.com', change: 'either' },
    { allowed: '@.sub.example.com', rejected: '@.example.com', change: 'either' },
    { allowed: '@.', rejected: '@.', change: 'none' },
    { allowed: 'boss@example.com', rejected: '@.', change: 'none' },
    { allowed: '@example.com', rejected: '@.example.com', change: 'none' },
    { allowed: '@example.com', rejected: '@other.test', change: 'none' },
    { allowed: '@.sub.example.com', rejected: '@example.com', change: 'none' },
    { allowed: 'a@example.com', rejected: 'b@example.com', change: 'none' },
  ];
  for (const { allowed, rejected, change } of cases) {
    for (const [allowedList, rejectedList] of [['allowedSenders', 'rejectedSenders'], ['allowedRecipients', 'rejectedRecipients']] as const) {
      test(`${allowedList} ${allowed}, ${rejectedList} ${rejected}: ${change}`, () => {
        const notes = meanings({ [allowedList]: [allowed], [rejectedList]: [rejected] });
        if (change === 'none') assert.deepEqual(notes, []);
        else {
          assert.equal(notes.length, 1, notes.join('\n'));
          assert.match(notes[0]!, change === 'rejected now' ? /wins: now rejected$/ : /same priority: either may decide$/);
        }
      });
    }
  }
  test('the two directions are separate', () => {
    assert.deepEqual(meanings({ allowedSenders: ['@.'], rejectedRecipients: ['spam@evil.test'] }), []);
  });
});

describe('what is written', () => {
  test('an entry in both lists of a direction is written as W only', () => {
    const plan = planAccountMigration(stored({ allowedSenders: ['@X.test'], rejectedSenders: ['@x.test', '@.'] }), EMPTY_LISTS);
    assert.deepEqual(plan.lists, { ...EMPTY_LISTS, allowedSenders: ['@x.test'], rejectedSenders: ['@.'] });
    assert.deepEqual(plan.added, [{ list: 'allowedSenders', entry: '@x.test' }, { list: 'rejectedSenders', entry: '@.' }]);
  });
  test('what the amavisd tables hold stays and is not added again', () => {
    const plan = planAccountMigration(stored({ rejectedSenders: ['@a.test', '@b.test'] }), { ...EMPTY_LISTS, rejectedSenders: ['@a.test'], allowedRecipients: ['@c.test'] });
    assert.deepEqual(plan.lists, { ...EMPTY_LISTS, rejectedSenders: ['@a.test', '@b.test'], allowedRecipients: ['@c.test'] });
    assert.deepEqual(plan.added, [{ list: 'rejectedSenders', entry: '@b.test' }]);
  });
  test('the opposite W/B in the amavisd tables refuses the account with nothing to add', () => {
    const plan = planAccountMigration(stored({ rejectedSenders: ['@a.test', '@b.test'] }), { ...EMPTY_LISTS, allowedSenders: ['@a.test'] });
    assert.equal(plan.refused, true);
    assert.deepEqual(plan.added, []);
    assert.match(plan.notes.find((n) => n.severity === 'conflict')!.message, /"@a\.test" is W in the amavisd tables/);
  });
  test('a row that is not a mailbox address is refused', () => {
    const plan = planAccountMigration(stored({ rejectedSenders: ['@a.test'] }, '@example.com'), EMPTY_LISTS);
    assert.equal(plan.refused, true);
    assert.deepEqual(plan.added, []);
  });
  test('blank pieces are dropped silently, invalid values with a note; domains in ASCII', () => {
    const plan = planAccountMigration(stored({ rejectedSenders: ['', '  ', 'spam.org', '@Bücher.example'] }, 'Alice@Example.COM'), EMPTY_LISTS);
    assert.equal(plan.account, 'alice@example.com');
    assert.deepEqual(plan.added, [{ list: 'rejectedSenders', entry: '@xn--bcher-kva.example' }]);
    assert.deepEqual(plan.notes.map((n) => n.severity), ['skipped']);
  });
});
