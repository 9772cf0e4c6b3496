import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MailboxRecord } from '../../../src/restrictions/lists.ts';
import { compileMailbox, LIST_NUMBER } from '../../../src/restrictions/mailbox.ts';
import { kindBit, ADDRESS, DOMAIN } from '../../../src/restrictions/list-index.ts';
import { resolveOptions } from '../../../src/restrictions/options.ts';

const options = resolveOptions('default');
const rejected = LIST_NUMBER.rejectedSenders;

function mailbox(rejectedSenders: string[]) {
  const record: MailboxRecord = { address: 'me@example.com', lists: { allowedSenders: null, rejectedSenders, allowedRecipients: null, rejectedRecipients: null } };
  return compileMailbox(record, options);
}

describe('CompiledMailbox index', () => {
  // Up to four keys live in the mailbox's fields, more in a Map: both must answer alike.
  for (const count of [1, 4, 5, 40]) {
    test(`${count} entries: every key is found with its bits, anything else is 0`, () => {
      const entries = Array.from({ length: count }, (_, i) => (i % 2 === 0 ? `user${i}@partner.example` : `@domain${i}.example`));
      const m = mailbox(entries);
      entries.forEach((entry, i) => {
        const key = entry.startsWith('@') ? entry.slice(1) : entry;
        assert.equal(m.bits(key), kindBit(rejected, i % 2 === 0 ? ADDRESS : DOMAIN), entry);
      });
      for (const other of ['user1@partner.example', 'partner.example', '', 'USER0@partner.example', `user${count}@partner.example`]) assert.equal(m.bits(other), 0, other);
    });
  }

  test('a key with the same index hash as a stored one is not taken for it', () => {
    // u31992@example.com and u605430@example.com collide in the 30-bit hash the fields are probed with.
    const m = mailbox(['u31992@example.com']);
    assert.equal(m.bits('u31992@example.com'), kindBit(rejected, ADDRESS));
    assert.equal(m.bits('u605430@example.com'), 0);
    assert.equal(m.entryFor(rejected, 'u605430@example.com', m.bits('u605430@example.com'), 'example.com', m.bits('example.com'), false), undefined);
  });

  test('one key filed in two lists keeps both bits', () => {
    const record: MailboxRecord = { address: 'me@example.com', lists: { allowedSenders: ['@example.com'], rejectedSenders: ['@example.com'], allowedRecipients: null, rejectedRecipients: null } };
    const m = compileMailbox(record, options);
    assert.equal(m.bits('example.com'), kindBit(LIST_NUMBER.allowedSenders, DOMAIN) | kindBit(rejected, DOMAIN));
  });
});
