// The amavisd_wblist decision (../shared/spec/amavisd-wblist.md), table-driven over every entry
// form, both directions, priorities, SASL, extensions, alias and local domains, client networks
// and the two settings. Worlds are written as the spec's tables; priorities from the spec's list.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_WBLIST_OPTIONS,
  decideWblist,
  explainWblist,
  planWblist,
  type WblistFacts,
  type WblistOptions,
  type WblistRow,
} from '../../../src/restrictions/amavisd-wblist.ts';

/** users.priority by form, as the spec lists them. */
function accountPriority(email: string): number {
  if (email === '@.') return 0;
  if (/^\d+\.\d+\.\d+\.\d+$/.test(email) || email.includes(':')) return 80;
  if (email.includes('*') && !email.includes('@')) return 70;
  if (email.includes('/')) return 70;
  if (email.endsWith('@*')) return 90;
  if (email.startsWith('@.')) return email.slice(2).includes('.') ? 50 : 40;
  if (email.startsWith('@')) return 60;
  return 100;
}

/** mailaddr.priority by form, as the spec lists them. */
function partyPriority(email: string): number {
  if (email === '@.') return 0;
  if (email.includes('/')) return 7;
  if (email.includes('*') && !email.includes('@')) return 8;
  if (/^\d+\.\d+\.\d+\.\d+$/.test(email) || email.includes(':')) return 9;
  if (email.endsWith('@*')) return 7;
  if (email.startsWith('@.')) return email.slice(2).includes('.') ? 3 : 2;
  if (email.startsWith('@')) return 5;
  return 10;
}

interface World {
  /** [account, party, W/B] rows of wblist (inbound). */
  inbound?: [string, string, 'W' | 'B'][];
  /** [account, party, W/B] rows of outbound_wblist. */
  outbound?: [string, string, 'W' | 'B'][];
  local?: string[];
  alias?: Record<string, string>;
  /** Extra rows, e.g. a mailaddr row no pair uses. */
  parties?: string[];
}

/** The facts a store would bring: every row (the decision looks up only its candidates). */
function factsOf(world: World, clientAddress = ''): WblistFacts {
  const users = new Map<string, WblistRow>();
  const mailaddr = new Map<string, WblistRow>();
  let nextUser = 1;
  let nextParty = 1;
  const user = (email: string) => users.get(email) ?? (users.set(email, { id: nextUser++, priority: accountPriority(email), email }), users.get(email)!);
  const party = (email: string) => mailaddr.get(email) ?? (mailaddr.set(email, { id: nextParty++, priority: partyPriority(email), email }), mailaddr.get(email)!);
  const inbound = new Map<string, 'W' | 'B'>();
  const outbound = new Map<string, 'W' | 'B'>();
  for (const [a, p, wb] of world.inbound ?? []) inbound.set(`${user(a).id}/${party(p).id}`, wb);
  for (const [a, p, wb] of world.outbound ?? []) outbound.set(`${party(p).id}/${user(a).id}`, wb);
  for (const p of world.parties ?? []) party(p);
  const first = clientAddress.split('.')[0];
  return {
    users,
    mailaddr,
    networks: [...mailaddr.values()].filter((row) => /^\d+\.\d+\.\d+\.\d+$/.test(clientAddress) && row.email.startsWith(`${first}.`)),
    inbound,
    outbound,
    aliasTarget: (domain) => world.alias?.[domain],
    isLocalDomain: (domain) => (world.local ?? ['example.com']).includes(domain),
  };
}

interface Case {
  readonly name: string;
  readonly world: World;
  readonly sender: string;
  readonly recipient: string;
  readonly sasl?: string;
  readonly client?: string;
  readonly options?: Partial<WblistOptions>;
  /** The action, or several when the spec allows either (ties). */
  readonly action: string | string[];
  /** The deciding pair, `account party W/B`, when one decides. */
  readonly pair?: string;
}

const CASES: Case[] = [
  // Entry forms, inbound.
  { name: 'address blacklisted', world: { inbound: [['alice@example.com', 'spam@evil.test', 'B']] }, sender: 'spam@evil.test', recipient: 'alice@example.com', action: 'REJECT Blacklisted', pair: 'alice@example.com spam@evil.test B' },
  { name: 'address whitelisted answers OK', world: { inbound: [['alice@example.com', 'boss@partner.test', 'W']] }, sender: 'boss@partner.test', recipient: 'alice@example.com', action: 'OK', pair: 'alice@example.com boss@partner.test W' },
  { name: '@domain matches that domain only', world: { inbound: [['alice@example.com', '@evil.test', 'B']] }, sender: 'x@sub.evil.test', recipient: 'alice@example.com', action: 'DUNNO' },
  { name: '@.domain matches the domain', world: { inbound: [['alice@example.com', '@.evil.test', 'B']] }, sender: 'x@evil.test', recipient: 'alice@example.com', action: 'REJECT Blacklisted' },
  { name: '@.domain matches sub-domains', world: { inbound: [['alice@example.com', '@.evil.test', 'B']] }, sender: 'x@a.b.evil.test', recipient: 'alice@example.com', action: 'REJECT Blacklisted', pair: 'alice@example.com @.evil.test B' },
  { name: '@.tld matches every domain under it', world: { inbound: [['alice@example.com', '@.xyz', 'B']] }, sender: 'x@shop.xyz', recipient: 'alice@example.com', action: 'REJECT Blacklisted' },
  { name: '@. matches anyone', world: { inbound: [['alice@example.com', '@.', 'B']] }, sender: 'x@anywhere.test', recipient: 'alice@example.com', action: 'REJECT Blacklisted' },
  { name: 'user@* matches that local part at any domain', world: { inbound: [['alice@example.com', 'newsletter@*', 'B']] }, sender: 'newsletter@shop.test', recipient: 'alice@example.com', action: 'REJECT Blacklisted' },
  { name: 'user@* ignores the sender extension', world: { inbound: [['alice@example.com', 'newsletter@*', 'B']] }, sender: 'newsletter+x@shop.test', recipient: 'alice@example.com', options: { recipientDelimiter: '' }, action: 'REJECT Blacklisted' },
  { name: 'IPv4 client address', world: { inbound: [['alice@example.com', '192.0.2.7', 'B']] }, sender: 'x@y.test', recipient: 'alice@example.com', client: '192.0.2.7', action: 'REJECT Blacklisted' },
  { name: 'IPv6 client address', world: { inbound: [['alice@example.com', '2001:db8::7', 'B']] }, sender: 'x@y.test', recipient: 'alice@example.com', client: '2001:db8::7', action: 'REJECT Blacklisted' },
  { name: 'wildcard IPv4 a.b.c.*', world: { inbound: [['alice@example.com', '192.0.2.*', 'B']] }, sender: 'x@y.test', recipient: 'alice@example.com', client: '192.0.2.99', action: 'REJECT Blacklisted' },
  { name: 'wildcard IPv4 a.b.*.d', world: { inbound: [['alice@example.com', '192.0.*.99', 'B']] }, sender: 'x@y.test', recipient: 'alice@example.com', client: '192.0.7.99', action: 'REJECT Blacklisted' },
  { name: 'CIDR network contains the client', world: { inbound: [['alice@example.com', '10.1.0.0/16', 'B']] }, sender: 'x@y.test', recipient: 'alice@example.com', client: '10.1.2.3', action: 'REJECT Blacklisted', pair: 'alice@example.com 10.1.0.0/16 B' },
  { name: 'CIDR network that does not contain the client', world: { inbound: [['alice@example.com', '10.2.0.0/16', 'B']] }, sender: 'x@y.test', recipient: 'alice@example.com', client: '10.1.2.3', action: 'DUNNO' },
  { name: 'a network row with host bits set is ignored', world: { inbound: [['alice@example.com', '10.1.2.7/24', 'B']] }, sender: 'x@y.test', recipient: 'alice@example.com', client: '10.1.2.3', action: 'DUNNO' },
  { name: 'no CIDR matching for an IPv6 client', world: { inbound: [['alice@example.com', '2001:db8::/32', 'B']] }, sender: 'x@y.test', recipient: 'alice@example.com', client: '2001:db8::7', action: 'DUNNO' },
  // Priorities: the most specific pair decides.
  { name: 'a blacklisted address beats a whitelisted @.', world: { inbound: [['alice@example.com', '@.', 'W'], ['alice@example.com', 'spam@evil.test', 'B']] }, sender: 'spam@evil.test', recipient: 'alice@example.com', action: 'REJECT Blacklisted' },
  { name: 'a whitelisted address beats a blacklisted @.', world: { inbound: [['alice@example.com', '@.', 'B'], ['alice@example.com', 'boss@partner.test', 'W']] }, sender: 'boss@partner.test', recipient: 'alice@example.com', action: 'OK' },
  { name: '@domain beats @.domain', world: { inbound: [['alice@example.com', '@.evil.test', 'B'], ['alice@example.com', '@evil.test', 'W']] }, sender: 'x@evil.test', recipient: 'alice@example.com', action: 'OK', pair: 'alice@example.com @evil.test W' },
  { name: 'user@* beats @domain', world: { inbound: [['alice@example.com', '@shop.test', 'B'], ['alice@example.com', 'orders@*', 'W']] }, sender: 'orders@shop.test', recipient: 'alice@example.com', action: 'OK' },
  { name: 'client networks come after every other party, @. included', world: { inbound: [['alice@example.com', '@.', 'W'], ['alice@example.com', '10.0.0.0/8', 'B']] }, sender: 'x@y.test', recipient: 'alice@example.com', client: '10.1.2.3', action: 'OK', pair: 'alice@example.com @. W' },
  { name: "the account's own list beats its domain's", world: { inbound: [['@example.com', 'x@evil.test', 'B'], ['alice@example.com', 'x@evil.test', 'W']] }, sender: 'x@evil.test', recipient: 'alice@example.com', action: 'OK', pair: 'alice@example.com x@evil.test W' },
  { name: "the domain's list beats the server-wide @. account", world: { inbound: [['@.', 'x@evil.test', 'W'], ['@example.com', 'x@evil.test', 'B']] }, sender: 'x@evil.test', recipient: 'alice@example.com', action: 'REJECT Blacklisted', pair: '@example.com x@evil.test B' },
  { name: 'an account pair beats a more specific party of a less specific account', world: { inbound: [['alice@example.com', '@.', 'W'], ['@example.com', 'x@evil.test', 'B']] }, sender: 'x@evil.test', recipient: 'alice@example.com', action: 'OK', pair: 'alice@example.com @. W' },
  { name: 'the server-wide @. account applies to everyone', world: { inbound: [['@.', '@evil.test', 'B']] }, sender: 'x@evil.test', recipient: 'anyone@example.com', action: 'REJECT Blacklisted' },
  { name: 'ties: equal priorities saying W and B, either answer', world: { inbound: [['alice@example.com', '@.evil.test', 'W'], ['alice@example.com', '@.sub.evil.test', 'B']] }, sender: 'x@sub.evil.test', recipient: 'alice@example.com', action: ['OK', 'REJECT Blacklisted'] },
  // Extensions, null sender, same address.
  { name: "the recipient's extension is stripped", world: { inbound: [['bob@example.com', 'x@evil.test', 'B']] }, sender: 'x@evil.test', recipient: 'bob+lists@example.com', action: 'REJECT Blacklisted' },
  { name: "the envelope sender's extension is stripped", world: { inbound: [['bob@example.com', 'x@evil.test', 'B']] }, sender: 'x+tag@evil.test', recipient: 'bob@example.com', action: 'REJECT Blacklisted' },
  { name: 'null sender without SASL: DUNNO', world: { inbound: [['bob@example.com', '@.', 'B']] }, sender: '', recipient: 'bob@example.com', action: 'DUNNO' },
  { name: 'sender equal to the recipient without its extension: DUNNO', world: { inbound: [['bob@example.com', '@.', 'B']] }, sender: 'bob@example.com', recipient: 'bob+x@example.com', action: 'DUNNO' },
  // SASL: outbound, then inbound where it applies.
  { name: 'outbound: a blacklisted recipient of the logged-in account', world: { outbound: [['alice@example.com', '@gmail.com', 'B']] }, sender: 'alice@example.com', sasl: 'alice@example.com', recipient: 'x@gmail.com', action: 'REJECT Blacklisted', pair: 'alice@example.com @gmail.com B' },
  { name: 'outbound: SASL login decides, not the envelope sender', world: { outbound: [['alice@example.com', '@gmail.com', 'B']] }, sender: 'forged@other.test', sasl: 'Alice@Example.com', recipient: 'x@gmail.com', action: 'REJECT Blacklisted' },
  { name: 'outbound: a null sender with SASL is decided', world: { outbound: [['alice@example.com', '@gmail.com', 'B']] }, sender: '', sasl: 'alice@example.com', recipient: 'x@gmail.com', action: 'REJECT Blacklisted' },
  { name: "outbound: the SASL login keeps its extension (only the domain's list matches)", world: { outbound: [['alice@example.com', '@gmail.com', 'B'], ['@example.com', '@gmail.com', 'W']] }, sender: 'x@y.test', sasl: 'alice+x@example.com', recipient: 'y@gmail.com', action: 'DUNNO', pair: undefined },
  { name: 'outbound: most specific recipient wins', world: { outbound: [['alice@example.com', '@.', 'B'], ['alice@example.com', 'friend@gmail.com', 'W']] }, sender: 'alice@example.com', sasl: 'alice@example.com', recipient: 'friend@gmail.com', action: 'DUNNO' },
  { name: 'outbound whitelist goes on to the inbound check (same domain)', world: { outbound: [['alice@example.com', 'bob@example.com', 'W']], inbound: [['bob@example.com', 'alice@example.com', 'B']] }, sender: 'alice@example.com', sasl: 'alice@example.com', recipient: 'bob@example.com', action: 'REJECT Blacklisted', pair: 'bob@example.com alice@example.com B' },
  { name: 'outbound: an IP-form account row is a local sender', world: { outbound: [['192.0.2.9', '@gmail.com', 'B']] }, sender: 'x@example.com', sasl: 'x@example.com', client: '192.0.2.9', recipient: 'y@gmail.com', action: 'REJECT Blacklisted' },
  { name: 'outbound: user@* is no sender candidate with SASL', world: { outbound: [['alice@*', '@gmail.com', 'B']] }, sender: 'alice@example.com', sasl: 'alice@example.com', recipient: 'y@gmail.com', action: 'DUNNO' },
  { name: 'deviation: client networks match nothing outbound', world: { parties: ['10.0.0.0/8'], outbound: [['someone@example.com', '@gmail.com', 'B']] }, sender: 'x@example.com', sasl: 'x@example.com', client: '10.1.2.3', recipient: 'y@gmail.com', action: 'DUNNO' },
  { name: 'bypass outgoing: no outbound step', world: { outbound: [['alice@example.com', '@gmail.com', 'B']] }, sender: 'alice@example.com', sasl: 'alice@example.com', recipient: 'x@gmail.com', options: { bypassOutgoing: true }, action: 'DUNNO' },
  { name: 'SASL to a remote domain: no inbound check', world: { inbound: [['@.', 'alice@example.com', 'B']], local: ['example.com'] }, sender: 'alice@example.com', sasl: 'alice@example.com', recipient: 'x@gmail.com', action: 'DUNNO' },
  { name: 'SASL to another local domain: inbound checked', world: { inbound: [['bob@example.org', 'alice@example.com', 'B']], local: ['example.com', 'example.org'] }, sender: 'alice@example.com', sasl: 'alice@example.com', recipient: 'bob@example.org', action: 'REJECT Blacklisted' },
  // Alias domains.
  { name: 'a recipient at an alias domain gets the target account\'s list', world: { inbound: [['bob@example.com', 'x@evil.test', 'B']], alias: { 'alias.test': 'example.com' } }, sender: 'x@evil.test', recipient: 'bob@alias.test', action: 'REJECT Blacklisted', pair: 'bob@example.com x@evil.test B' },
  { name: 'a sender at an alias domain matches entries of the target domain', world: { inbound: [['bob@example.com', 'x@example.org', 'W']], alias: { 'alias.org': 'example.org' } }, sender: 'x@alias.org', recipient: 'bob@example.com', action: 'OK' },
  { name: 'SASL to an alias domain: inbound checked', world: { inbound: [['bob@example.org', 'alice@example.com', 'B']], local: ['example.com'], alias: { 'alias.org': 'example.org' } }, sender: 'alice@example.com', sasl: 'alice@example.com', recipient: 'bob@alias.org', action: 'REJECT Blacklisted' },
  // Settings and internationalised domains.
  { name: 'discard instead of reject', world: { inbound: [['alice@example.com', 'spam@evil.test', 'B']] }, sender: 'spam@evil.test', recipient: 'alice@example.com', options: { discardInsteadOfReject: true }, action: 'DISCARD Policy discard' },
  { name: 'a UTF-8 domain in the request matches the ASCII form', world: { inbound: [['anna@xn--bcher-kva.example', '@xn--r8jz45g.test', 'B']] }, sender: 'x@例え.test', recipient: 'anna@bücher.example', action: 'REJECT Blacklisted' },
];

describe('amavisd_wblist decision (iRedAPD 6.1)', () => {
  for (const c of CASES) {
    test(c.name, () => {
      const options = { ...DEFAULT_WBLIST_OPTIONS, ...c.options };
      const plan = planWblist({ protocolState: 'RCPT', sender: c.sender, recipient: c.recipient, saslUsername: c.sasl, clientAddress: c.client ?? '203.0.113.1' }, options);
      const decision = typeof plan === 'string' ? { action: 'DUNNO', verdict: 'skip' as const } : decideWblist(plan, factsOf(c.world, c.client ?? '203.0.113.1'), options);
      const allowed = Array.isArray(c.action) ? c.action : [c.action];
      assert.ok(allowed.includes(decision.action), `${decision.action}, expected ${allowed.join(' or ')}`);
      if (c.pair !== undefined) {
        assert.ok('account' in decision);
        assert.equal(`${decision.account} ${decision.party} ${decision.wb}`, c.pair);
      }
    });
  }

  test('only RCPT is judged', () => {
    assert.equal(typeof planWblist({ protocolState: 'DATA', sender: 'a@b.test', recipient: 'c@d.test', saslUsername: undefined, clientAddress: '' }, DEFAULT_WBLIST_OPTIONS), 'string');
  });

  test('--explain names the deciding pair', () => {
    const plan = planWblist({ protocolState: 'RCPT', sender: 'spam@evil.test', recipient: 'alice@example.com', saslUsername: undefined, clientAddress: '' }, DEFAULT_WBLIST_OPTIONS);
    assert.ok(typeof plan !== 'string');
    const decision = decideWblist(plan, factsOf({ inbound: [['alice@example.com', '@.', 'W'], ['alice@example.com', 'spam@evil.test', 'B']] }), DEFAULT_WBLIST_OPTIONS);
    assert.equal(explainWblist(decision), 'REJECT Blacklisted (inbound: account alice@example.com, party spam@evil.test, B)');
  });
});
