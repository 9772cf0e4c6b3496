import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { specSchema } from '../../../src/api/mail-user-restriction.ts';
import { mailboxName, ownerOf, targetKey } from '../../../src/api/restriction-owner.ts';

const restriction = (name: string, mailbox: string, created: string) => ({
  metadata: { name, namespace: 'mail', creationTimestamp: created },
  spec: specSchema.parse({ mailbox, backendRef: { name: 'vmail' } }),
});

describe('restriction owner', () => {
  test('a mailbox is named as stores key it: lower-case, its domain in ASCII (xn--) form', () => {
    assert.equal(mailboxName(' Jörg@Bücher.Example '), 'jörg@xn--bcher-kva.example');
    assert.equal(mailboxName('jörg@xn--bcher-kva.example'), 'jörg@xn--bcher-kva.example');
    assert.equal(mailboxName('Alice@Example.com'), 'alice@example.com');
  });

  test('the two spellings of an internationalised domain are one target, owned by the oldest', () => {
    const unicode = restriction('unicode', 'jorg@bücher.example', '2026-01-01T00:00:00Z');
    const ascii = restriction('ascii', 'JORG@xn--bcher-kva.example', '2026-01-02T00:00:00Z');
    assert.equal(targetKey(unicode), targetKey(ascii));
    assert.equal(ownerOf([ascii, unicode], targetKey(ascii)!)?.metadata.name, 'unicode');
  });
});
