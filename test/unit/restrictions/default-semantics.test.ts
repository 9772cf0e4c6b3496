import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decide, explain, planDecision, stripExtension } from '../../../src/restrictions/decide.ts';
import type { RestrictionLists } from '../../../src/restrictions/lists.ts';
import { compileMailbox, type CompiledMailbox } from '../../../src/restrictions/mailbox.ts';
import { resolveOptions, type DecisionOptions } from '../../../src/restrictions/options.ts';

type Lists = Partial<RestrictionLists>;
interface Case {
  readonly name: string;
  readonly mailboxes: Readonly<Record<string, Lists>>;
  readonly sender: string;
  readonly recipient: string;
  readonly sasl?: string;
  readonly options?: Partial<DecisionOptions>;
  readonly expected: 'allow' | 'reject' | 'none';
  /** The list and entry that decided, for allow/reject. */
  readonly by?: string;
}

function run(c: Case) {
  const options = resolveOptions('default', c.options);
  const plan = planDecision({ protocolState: 'RCPT', sender: c.sender, recipient: c.recipient, saslUsername: c.sasl ?? '' }, options);
  assert.notEqual(typeof plan, 'string', 'request should be judged');
  if (typeof plan === 'string') throw new Error(plan);
  const compiled = new Map<string, CompiledMailbox>();
  for (const [address, lists] of Object.entries(c.mailboxes)) {
    const record = {
      address,
      lists: {
        allowedSenders: lists.allowedSenders ?? null,
        rejectedSenders: lists.rejectedSenders ?? null,
        allowedRecipients: lists.allowedRecipients ?? null,
        rejectedRecipients: lists.rejectedRecipients ?? null,
      },
    };
    compiled.set(address, compileMailbox(record, options));
  }
  const fetched = new Set<string>();
  const decision = decide(plan, (key) => {
    assert.ok(plan.keys.includes(key), `decision read ${key}, which the plan did not fetch`);
    fetched.add(key);
    return compiled.get(key);
  }, options);
  return { decision, options };
}

const A = 'alice@example.com';
const B = 'bob@example.com';

const cases: Case[] = [
  // Every entry format, outbound.
  { name: 'outbound @. rejects everything', mailboxes: { [A]: { rejectedRecipients: ['@.'] } }, sender: A, recipient: 'x@gmail.com', expected: 'reject', by: 'rejectedRecipients @.' },
  { name: 'outbound @domain matches that domain', mailboxes: { [A]: { rejectedRecipients: ['@gmail.com'] } }, sender: A, recipient: 'x@gmail.com', expected: 'reject', by: 'rejectedRecipients @gmail.com' },
  { name: 'outbound @domain does not match a sub-domain', mailboxes: { [A]: { rejectedRecipients: ['@gmail.com'] } }, sender: A, recipient: 'x@mx.gmail.com', expected: 'none' },
  { name: 'outbound @.domain matches the domain itself', mailboxes: { [A]: { rejectedRecipients: ['@.gmail.com'] } }, sender: A, recipient: 'x@gmail.com', expected: 'reject', by: 'rejectedRecipients @.gmail.com' },
  { name: 'outbound @.domain matches a sub-domain', mailboxes: { [A]: { rejectedRecipients: ['@.gmail.com'] } }, sender: A, recipient: 'x@mx.gmail.com', expected: 'reject', by: 'rejectedRecipients @.gmail.com' },
  { name: 'outbound @.domain matches a sub-sub-domain', mailboxes: { [A]: { rejectedRecipients: ['@.gmail.com'] } }, sender: A, recipient: 'x@a.b.c.gmail.com', expected: 'reject', by: 'rejectedRecipients @.gmail.com' },
  { name: 'outbound @.domain does not match a look-alike domain', mailboxes: { [A]: { rejectedRecipients: ['@.gmail.com'] } }, sender: A, recipient: 'x@notgmail.com', expected: 'none' },
  { name: 'outbound @.domain does not match its parent', mailboxes: { [A]: { rejectedRecipients: ['@.mx.gmail.com'] } }, sender: A, recipient: 'x@gmail.com', expected: 'none' },
  { name: 'outbound address matches that address', mailboxes: { [A]: { rejectedRecipients: ['boss@example.com'] } }, sender: A, recipient: 'boss@example.com', expected: 'reject', by: 'rejectedRecipients boss@example.com' },
  { name: 'outbound address does not match another in its domain', mailboxes: { [A]: { rejectedRecipients: ['boss@example.com'] } }, sender: A, recipient: B, expected: 'none' },
  // Every entry format, inbound.
  { name: 'inbound @. rejects everything', mailboxes: { [B]: { rejectedSenders: ['@.'] } }, sender: 'x@gmail.com', recipient: B, expected: 'reject', by: 'rejectedSenders @.' },
  { name: 'inbound @domain', mailboxes: { [B]: { rejectedSenders: ['@spam.test'] } }, sender: 'x@spam.test', recipient: B, expected: 'reject', by: 'rejectedSenders @spam.test' },
  { name: 'inbound @.domain covers sub-domains', mailboxes: { [B]: { rejectedSenders: ['@.spam.test'] } }, sender: 'x@mail.eu.spam.test', recipient: B, expected: 'reject', by: 'rejectedSenders @.spam.test' },
  { name: 'inbound address', mailboxes: { [B]: { rejectedSenders: ['ex@gmail.com'] } }, sender: 'ex@gmail.com', recipient: B, expected: 'reject', by: 'rejectedSenders ex@gmail.com' },
  { name: 'inbound not listed', mailboxes: { [B]: { rejectedSenders: ['ex@gmail.com'] } }, sender: 'friend@gmail.com', recipient: B, expected: 'none' },
  // Priority.
  { name: 'allowed beats rejected (outbound)', mailboxes: { [A]: { allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'] } }, sender: A, recipient: B, expected: 'allow', by: 'allowedRecipients @example.com' },
  { name: 'allowed domain beats a more specific rejected address', mailboxes: { [A]: { allowedRecipients: ['@gmail.com'], rejectedRecipients: ['spam@gmail.com'] } }, sender: A, recipient: 'spam@gmail.com', expected: 'allow', by: 'allowedRecipients @gmail.com' },
  { name: 'allowed address is an exception to a rejected domain', mailboxes: { [B]: { allowedSenders: ['friend@gmail.com'], rejectedSenders: ['@.gmail.com'] } }, sender: 'friend@gmail.com', recipient: B, expected: 'allow', by: 'allowedSenders friend@gmail.com' },
  { name: 'an allowed list alone never rejects', mailboxes: { [B]: { allowedSenders: ['@partner.test'] } }, sender: 'x@gmail.com', recipient: B, expected: 'none' },
  { name: 'outbound allow is final even when the recipient rejects the sender', mailboxes: { [A]: { allowedRecipients: ['@example.com'] }, [B]: { rejectedSenders: [A] } }, sender: A, recipient: B, expected: 'allow', by: 'allowedRecipients @example.com' },
  { name: 'outbound reject wins over an inbound allow', mailboxes: { [A]: { rejectedRecipients: ['@.'] }, [B]: { allowedSenders: ['@.'] } }, sender: A, recipient: B, expected: 'reject', by: 'rejectedRecipients @.' },
  { name: 'outbound lists with no hit fall through to inbound', mailboxes: { [A]: { rejectedRecipients: ['@gmail.com'] }, [B]: { rejectedSenders: ['@example.com'] } }, sender: A, recipient: B, expected: 'reject', by: 'rejectedSenders @example.com' },
  { name: 'same-domain recipe: inside the domain allowed', mailboxes: { [A]: { allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'], allowedSenders: ['@example.com'], rejectedSenders: ['@.'] } }, sender: A, recipient: B, expected: 'allow', by: 'allowedRecipients @example.com' },
  { name: 'same-domain recipe: outside refused', mailboxes: { [A]: { allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'] } }, sender: A, recipient: 'x@gmail.com', expected: 'reject', by: 'rejectedRecipients @.' },
  // Case.
  { name: 'entries are case-insensitive', mailboxes: { [A]: { rejectedRecipients: ['@GMAIL.Com'] } }, sender: A, recipient: 'x@gmail.com', expected: 'reject', by: 'rejectedRecipients @gmail.com' },
  { name: 'addresses are case-insensitive', mailboxes: { [A]: { rejectedRecipients: ['boss@example.com'] } }, sender: 'Alice@Example.COM', recipient: 'BOSS@example.com', expected: 'reject', by: 'rejectedRecipients boss@example.com' },
  // Sending identity.
  { name: 'sasl_username is the sending identity', mailboxes: { [A]: { rejectedRecipients: ['@.'] } }, sender: 'other@remote.test', sasl: A, recipient: 'x@gmail.com', expected: 'reject', by: 'rejectedRecipients @.' },
  { name: 'without sasl_username the envelope sender is the identity', mailboxes: { [A]: { rejectedRecipients: ['@.'] } }, sender: A, recipient: 'x@gmail.com', expected: 'reject', by: 'rejectedRecipients @.' },
  { name: 'identity from sasl can be turned off', mailboxes: { [A]: { rejectedRecipients: ['@.'] } }, sender: 'other@remote.test', sasl: A, recipient: 'x@gmail.com', options: { identityFromSasl: false }, expected: 'none' },
  { name: 'inbound lists still see the envelope sender when authenticated', mailboxes: { [B]: { rejectedSenders: ['other@remote.test'] } }, sender: 'other@remote.test', sasl: A, recipient: B, expected: 'reject', by: 'rejectedSenders other@remote.test' },
  // Null sender.
  { name: 'null sender matches @.', mailboxes: { [B]: { rejectedSenders: ['@.'] } }, sender: '', recipient: B, expected: 'reject', by: 'rejectedSenders @.' },
  { name: 'null sender matches no address or domain entry', mailboxes: { [B]: { rejectedSenders: ['@example.com', 'x@gmail.com'] } }, sender: '', recipient: B, expected: 'none' },
  { name: 'null-sender exemption lets bounces through', mailboxes: { [B]: { rejectedSenders: ['@.'] } }, sender: '', recipient: B, options: { nullSenderExemption: true }, expected: 'none' },
  { name: 'null-sender exemption still honours an allow', mailboxes: { [B]: { allowedSenders: ['@.'], rejectedSenders: ['@.'] } }, sender: '', recipient: B, options: { nullSenderExemption: true }, expected: 'allow', by: 'allowedSenders @.' },
  { name: 'null sender has no outbound identity', mailboxes: { [A]: { rejectedRecipients: ['@.'] } }, sender: '', recipient: 'x@gmail.com', expected: 'none' },
  // Self-mail.
  { name: 'self-mail: outbound list applies first', mailboxes: { [A]: { rejectedRecipients: [A] } }, sender: A, recipient: A, expected: 'reject', by: 'rejectedRecipients alice@example.com' },
  { name: 'self-mail: inbound lists of the same mailbox apply', mailboxes: { [A]: { allowedSenders: [A], rejectedSenders: ['@.'] } }, sender: A, recipient: A, expected: 'allow', by: 'allowedSenders alice@example.com' },
  // Extensions.
  { name: 'without a delimiter an extension is a different address', mailboxes: { [B]: { rejectedSenders: ['@.'] } }, sender: 'x@gmail.com', recipient: 'bob+tag@example.com', expected: 'none' },
  { name: 'with a delimiter the recipient mailbox is found', mailboxes: { [B]: { rejectedSenders: ['@.'] } }, sender: 'x@gmail.com', recipient: 'bob+tag@example.com', options: { recipientDelimiter: '+' }, expected: 'reject', by: 'rejectedSenders @.' },
  { name: 'with a delimiter the sender identity is found', mailboxes: { [A]: { rejectedRecipients: ['@.'] } }, sender: 'alice+x@example.com', recipient: 'x@gmail.com', options: { recipientDelimiter: '+', identityFromSasl: false }, expected: 'reject', by: 'rejectedRecipients @.' },
  { name: 'with a delimiter an address entry matches the extended address', mailboxes: { [A]: { rejectedRecipients: ['boss@example.com'] } }, sender: A, recipient: 'boss+urgent@example.com', options: { recipientDelimiter: '+-' }, expected: 'reject', by: 'rejectedRecipients boss@example.com' },
  { name: 'any delimiter character counts', mailboxes: { [B]: { rejectedSenders: ['@.'] } }, sender: 'x@gmail.com', recipient: 'bob-list@example.com', options: { recipientDelimiter: '+-' }, expected: 'reject', by: 'rejectedSenders @.' },
  { name: 'an extended mailbox of its own is preferred', mailboxes: { 'bob+tag@example.com': { allowedSenders: ['@.'] }, [B]: { rejectedSenders: ['@.'] } }, sender: 'x@gmail.com', recipient: 'bob+tag@example.com', options: { recipientDelimiter: '+' }, expected: 'allow', by: 'allowedSenders @.' },
  // Invalid entries are ignored; valid ones beside them still work.
  { name: 'a bare domain is ignored', mailboxes: { [B]: { rejectedSenders: ['gmail.com'] } }, sender: 'x@gmail.com', recipient: B, expected: 'none' },
  { name: 'a lone @ is ignored', mailboxes: { [B]: { rejectedSenders: ['@'] } }, sender: '', recipient: B, expected: 'none' },
  { name: 'a trailing-dot domain is ignored', mailboxes: { [B]: { rejectedSenders: ['@gmail.com.'] } }, sender: 'x@gmail.com', recipient: B, expected: 'none' },
  { name: 'valid entries beside invalid ones still match', mailboxes: { [B]: { rejectedSenders: ['bad entry', '@gmail.com'] } }, sender: 'x@gmail.com', recipient: B, expected: 'reject', by: 'rejectedSenders @gmail.com' },
  // Neither side local.
  { name: 'no mailbox on either side', mailboxes: {}, sender: 'x@remote.test', recipient: 'y@elsewhere.test', expected: 'none' },
];

describe('default semantics', () => {
  for (const c of cases) {
    test(c.name, () => {
      const { decision, options } = run(c);
      assert.equal(decision.verdict, c.expected, explain(decision));
      if (c.by !== undefined) assert.equal(`${decision.list} ${decision.entry}`, c.by);
      const action = c.expected === 'allow' ? options.allowAction : c.expected === 'reject' ? options.rejectAction : 'DUNNO';
      assert.equal(decision.action, action);
    });
  }
});

describe('actions are configurable', () => {
  test('allow answers DUNNO by default and OK when configured', () => {
    const c: Case = { name: '', mailboxes: { [A]: { allowedRecipients: ['@.'] } }, sender: A, recipient: B, expected: 'allow' };
    assert.equal(run(c).decision.action, 'DUNNO');
    assert.equal(run({ ...c, options: { allowAction: 'OK' } }).decision.action, 'OK');
  });
  test('reject text is configurable', () => {
    const c: Case = { name: '', mailboxes: { [A]: { rejectedRecipients: ['@.'] } }, sender: A, recipient: B, expected: 'reject', options: { rejectAction: 'REJECT 5.7.1 Policy says no' } };
    assert.equal(run(c).decision.action, 'REJECT 5.7.1 Policy says no');
  });
});

describe('requests that are not judged answer DUNNO without a lookup', () => {
  const options = resolveOptions('default');
  const table: [string, Record<string, string | undefined>][] = [
    ['MAIL state', { protocolState: 'MAIL', sender: A, recipient: '' }],
    ['END-OF-MESSAGE state', { protocolState: 'END-OF-MESSAGE', sender: A, recipient: B }],
    ['no protocol_state', { protocolState: undefined, sender: A, recipient: B }],
    ['no recipient', { protocolState: 'RCPT', sender: A, recipient: undefined }],
    ['no sender', { protocolState: 'RCPT', sender: undefined, recipient: B }],
  ];
  for (const [name, input] of table) {
    test(name, () => {
      const plan = planDecision({ saslUsername: undefined, protocolState: input.protocolState, sender: input.sender, recipient: input.recipient }, options);
      assert.equal(typeof plan, 'string');
    });
  }
});

describe('the plan fetches every mailbox in one batch', () => {
  test('identity, recipient and their bases, without duplicates', () => {
    const plan = planDecision({ protocolState: 'RCPT', sender: 'Alice+x@Example.com', recipient: 'bob+y@example.com', saslUsername: '' }, resolveOptions('default', { recipientDelimiter: '+' }));
    assert.notEqual(typeof plan, 'string');
    if (typeof plan !== 'string') assert.deepEqual(plan.keys, ['alice+x@example.com', A, 'bob+y@example.com', B]);
  });
  test('self-mail reads one mailbox', () => {
    const plan = planDecision({ protocolState: 'RCPT', sender: A, recipient: A, saslUsername: A }, resolveOptions('default'));
    if (typeof plan === 'string') assert.fail(plan);
    assert.deepEqual(plan.keys, [A]);
  });
});

describe('stripExtension', () => {
  const table: [string, string, string | undefined][] = [
    ['bob+tag@example.com', '+', B],
    ['bob@example.com', '+', undefined],
    ['+tag@example.com', '+', undefined],
    ['bob+a+b@example.com', '+', B],
    ['bob-x@example.com', '+-', B],
    ['bob+tag@example.com', '', undefined],
  ];
  for (const [address, delimiter, expected] of table) {
    test(`${address} with "${delimiter}"`, () => assert.equal(stripExtension(address, delimiter), expected));
  }
});

describe('explanations name the mailbox, list and entry', () => {
  test('reject', () => {
    const { decision } = run({ name: '', mailboxes: { [A]: { rejectedRecipients: ['@.'] } }, sender: A, recipient: 'x@gmail.com', expected: 'reject' });
    assert.equal(explain(decision), 'REJECT Not authorized (reject: outbound, mailbox alice@example.com, rejectedRecipients entry "@." matched x@gmail.com)');
  });
  test('null sender', () => {
    const { decision } = run({ name: '', mailboxes: { [B]: { rejectedSenders: ['@.'] } }, sender: '', recipient: B, expected: 'reject' });
    assert.match(explain(decision), /matched the null sender <>/);
  });
});
