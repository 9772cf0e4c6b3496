import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { changedLists, diffList, diffLists, mergeList } from '../../../src/restrictions/list-diff.ts';
import { EMPTY_LISTS } from '../../../src/restrictions/lists.ts';

describe('list diff: what differs by meaning', () => {
  const cases: [string, string[], string[], { added: string[]; removed: string[] }][] = [
    ['equal lists', ['@a.test', 'x@b.test'], ['@a.test', 'x@b.test'], { added: [], removed: [] }],
    ['order means nothing', ['@a.test', '@b.test'], ['@b.test', '@a.test'], { added: [], removed: [] }],
    ['spacing and capitals as stored are no difference', [' @A.test ', '\t@b.TEST'], ['@a.test', '@b.test'], { added: [], removed: [] }],
    ['repeats are no difference', ['@a.test', '@a.test', '@A.test'], ['@a.test'], { added: [], removed: [] }],
    ['blank pieces are not entries', ['@a.test', '', '  '], ['@a.test'], { added: [], removed: [] }],
    ['added and removed, each once, as written', ['@old.test', '@keep.test', '@OLD.test'], ['@keep.test', '@New.test', '@new.test'], { added: ['@New.test'], removed: ['@old.test'] }],
    ['a domain in Unicode or in ASCII form is the same entry', ['@bücher.example', 'x@.BÜCHER.example'], ['@xn--bcher-kva.example', 'x@.xn--bcher-kva.example'], { added: [], removed: [] }],
    ['invalid values compare like entries', ['example.com'], ['example.com'], { added: [], removed: [] }],
  ];
  for (const [name, stored, wanted, expected] of cases) {
    test(name, () => assert.deepEqual(diffList(stored, wanted), expected));
  }

  test('changedLists names the lists with a difference, in list order', () => {
    const diff = diffLists({ ...EMPTY_LISTS, rejectedRecipients: ['@.'], allowedSenders: ['@a.test'] }, { ...EMPTY_LISTS, allowedSenders: ['@A.test'] });
    assert.deepEqual(changedLists(diff), ['rejectedRecipients']);
  });

  test('a merge keeps the stored text of entries that stay and appends the added ones', () => {
    assert.deepEqual(mergeList([' @A.test', '@gone.test', '', '@b.test', '@b.test'], ['@a.test', '@b.test', '@c.test']), [' @A.test', '@b.test', '@b.test', '@c.test']);
  });
});
