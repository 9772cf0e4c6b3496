import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { declaredPlan, formatPlan, isPruned, planChanges, prunePlan, pruneScope, type MailboxPlan } from '../../../src/adoption/store-plan.ts';
import { EMPTY_LISTS, type RestrictionLists } from '../../../src/restrictions/lists.ts';

const lists = (partial: Partial<RestrictionLists>): RestrictionLists => ({ ...EMPTY_LISTS, ...partial });

describe('store plan: what apply would change', () => {
  const added = declaredPlan('bob@example.com', 'dir/bob.yaml', lists({ rejectedSenders: ['@old.test', '@keep.test'] }), lists({ rejectedSenders: ['@keep.test', '@new.test'], allowedRecipients: ['@.'] }));
  const unchanged = declaredPlan('alice@example.com', 'dir/alice.yaml', lists({ allowedSenders: [' @A.test'] }), lists({ allowedSenders: ['@a.test'] }));
  const missing: MailboxPlan = { kind: 'missing', mailbox: 'ghost@example.com', source: 'dir/ghost.yaml' };
  const pruned = prunePlan('old@example.com', lists({ rejectedRecipients: ['@.'] }));

  test('added and removed entries per list, unchanged mailboxes only counted', () => {
    assert.equal(
      formatPlan([unchanged, added]),
      [
        '~ bob@example.com (dir/bob.yaml)',
        '    rejectedSenders     + @new.test',
        '    rejectedSenders     - @old.test',
        '    allowedRecipients   + @.',
        '1 to change, 1 unchanged',
        '',
      ].join('\n'),
    );
  });

  test('nothing to change says so', () => {
    assert.equal(formatPlan([unchanged]), 'no changes: 1 mailbox(es) match the store\n');
    assert.equal(planChanges(unchanged), false);
  });

  test('a mailbox the store does not have, and a pruned one', () => {
    assert.equal(
      formatPlan([missing, pruned]),
      [
        '! ghost@example.com (dir/ghost.yaml): no such mailbox in the store; apply fails for it (mailwarden never creates mailboxes)',
        '- old@example.com: no document declares it (pruned)',
        '    rejectedRecipients  - @.',
        '0 to change, 1 to prune, 1 not found, 0 unchanged',
        '',
      ].join('\n'),
    );
    assert.equal(planChanges(missing), true);
    assert.equal(planChanges(pruned), true);
  });

  test('the prune scope: the documents\' domains by default, or the named ones; declared mailboxes and their aliases are never pruned', () => {
    const byDocuments = pruneScope(['alice@example.com', 'Bob@Example.com']);
    assert.equal(isPruned(byDocuments, 'carol@example.com'), true);
    assert.equal(isPruned(byDocuments, 'bob@example.com'), false);
    assert.equal(isPruned(byDocuments, 'dave@other.test'), false);
    assert.equal(isPruned(byDocuments, 'primary@example.com', ['alice@example.com']), false);
    const named = pruneScope(['alice@example.com'], ['@other.test']);
    assert.equal(isPruned(named, 'dave@other.test'), true);
    assert.equal(isPruned(named, 'carol@example.com'), false);
  });
});
