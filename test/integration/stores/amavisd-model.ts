// An independent model of iRedAPD 6.1's amavisd_wblist decision, written from
// ../shared/spec/amavisd-wblist.md alone (none of mailwarden's code), and random worlds to hold
// it against: accounts, parties and W/B pairs, and requests that reach them. Where the spec
// leaves the order open (equal priorities; client networks among themselves) the model answers
// with every action an order could give, and any of them is correct.

/** The entry forms of the spec, with the priorities iRedAdmin writes. */
export type Form = 'address' | 'anyDomainUser' | 'ip' | 'wildcardIp' | 'cidr' | 'domain' | 'domainTree' | 'tld' | 'any';

const USERS_PRIORITY: Record<Form, number> = { address: 100, anyDomainUser: 90, ip: 80, wildcardIp: 70, cidr: 70, domain: 60, domainTree: 50, tld: 40, any: 0 };
const MAILADDR_PRIORITY: Record<Form, number> = { address: 10, ip: 9, wildcardIp: 8, cidr: 7, anyDomainUser: 7, domain: 5, domainTree: 3, tld: 2, any: 0 };

export interface Party {
  readonly email: string;
  readonly form: Form;
}

/** One account (a `users` row) and its pairs: inbound (wblist) and outbound (outbound_wblist), party → W/B. */
export interface Account {
  readonly email: string;
  readonly form: Form;
  readonly inbound: Map<string, 'W' | 'B'>;
  readonly outbound: Map<string, 'W' | 'B'>;
}

export interface World {
  readonly accounts: readonly Account[];
  /** Every party some account lists (the `mailaddr` rows), by email. */
  readonly parties: ReadonlyMap<string, Party>;
  readonly bypassOutgoing: boolean;
  readonly discardInsteadOfReject: boolean;
}

export interface Request {
  readonly sender: string;
  readonly recipient: string;
  /** '' when nobody logged in. */
  readonly sasl: string;
  readonly client: string;
}

/** Every action the spec allows for `request` in `world` (more than one only where order is open). */
export function modelActions(world: World, request: Request): Set<string> {
  const blacklisted = world.discardInsteadOfReject ? 'DISCARD Policy discard' : 'REJECT Blacklisted';
  const recipient = withoutExtension(request.recipient.toLowerCase());
  const sasl = request.sasl.toLowerCase();
  // SASL replaces the sender as it is, extension kept; only then "no sender" and "sender is recipient".
  const sender = sasl !== '' ? sasl : withoutExtension(request.sender.toLowerCase());
  if (sender === '' || sender === recipient) return new Set(['DUNNO']);
  const client = request.client.toLowerCase();
  const senderForms = [...policyForms(sender), ...(sasl === '' ? [`${localPart(sender).split('+')[0]}@*`] : []), client, ...wildcards(client)];
  const recipientForms = policyForms(recipient);
  const results = new Set<string>();
  let goOn: Set<'W' | 'B' | 'none'> = new Set(['none']);
  if (sasl !== '' && !world.bypassOutgoing) {
    // Outbound: sender accounts × recipient parties; client networks match nothing (the deviation).
    goOn = firstPairs(
      tiers(world.accounts.filter((a) => senderForms.includes(a.email)).map((a) => ({ item: a, priority: USERS_PRIORITY[a.form] }))),
      tiers([...world.parties.values()].filter((p) => recipientForms.includes(p.email)).map((p) => ({ item: p, priority: MAILADDR_PRIORITY[p.form] }))),
      (account, party) => account.outbound.get(party.email),
    );
    if (goOn.has('B')) results.add(blacklisted);
  }
  if (!goOn.has('W') && !goOn.has('none')) return results;
  const inbound = sasl === '' || domainOf(sender) === domainOf(recipient);
  if (!inbound) {
    results.add('DUNNO');
    return results;
  }
  const networks = [...world.parties.values()].filter((p) => inNetwork(client, p.email));
  const inboundResults = firstPairs(
    tiers(world.accounts.filter((a) => recipientForms.includes(a.email)).map((a) => ({ item: a, priority: USERS_PRIORITY[a.form] }))),
    [
      ...tiers([...world.parties.values()].filter((p) => senderForms.includes(p.email)).map((p) => ({ item: p, priority: MAILADDR_PRIORITY[p.form] }))),
      ...(networks.length > 0 ? [networks] : []),
    ],
    (account, party) => account.inbound.get(party.email),
  );
  for (const r of inboundResults) results.add(r === 'W' ? 'OK' : r === 'B' ? blacklisted : 'DUNNO');
  return results;
}

/**
 * The W/B of the first pair found, account by account and party by party in priority order, for
 * every order the tiers allow: the first account tier with a pair decides; in it, each account
 * that has a pair decides by the pairs of its first party tier that has one.
 */
function firstPairs(accounts: Account[][], parties: Party[][], wbOf: (a: Account, p: Party) => 'W' | 'B' | undefined): Set<'W' | 'B' | 'none'> {
  for (const tier of accounts) {
    const found = new Set<'W' | 'B' | 'none'>();
    for (const account of tier) {
      for (const partyTier of parties) {
        const wbs = partyTier.map((p) => wbOf(account, p)).filter((wb) => wb !== undefined);
        if (wbs.length === 0) continue;
        for (const wb of wbs) found.add(wb);
        break;
      }
    }
    if (found.size > 0) return found;
  }
  return new Set(['none']);
}

/** Items grouped by priority, highest first; one group's order is open. */
function tiers<T>(items: { item: T; priority: number }[]): T[][] {
  const by = new Map<number, T[]>();
  for (const { item, priority } of items) by.set(priority, [...(by.get(priority) ?? []), item]);
  return [...by.entries()].sort(([a], [b]) => b - a).map(([, group]) => group);
}

/** `user@a.b.c` → user@a.b.c, @a.b.c, @., @.a.b.c, @.b.c, @.c (the spec's step 2). */
function policyForms(address: string): string[] {
  const domain = domainOf(address);
  if (domain === '') return ['@.'];
  const labels = domain.split('.');
  return [address, `@${domain}`, '@.', ...labels.map((_, i) => `@.${labels.slice(i).join('.')}`)];
}

function wildcards(ip: string): string[] {
  const octets = ip.split('.');
  if (octets.length !== 4 || !octets.every((o) => /^\d+$/.test(o))) return [];
  return [`${octets[0]}.${octets[1]}.${octets[2]}.*`, `${octets[0]}.${octets[1]}.*.${octets[3]}`];
}

/** A `mailaddr` row a client network matches: IPv4 client, same first octet, a strict network (plain IP: /32). */
function inNetwork(client: string, row: string): boolean {
  const c = ipv4(client);
  if (c === undefined || !row.startsWith(`${client.split('.')[0]}.`)) return false;
  const [base, bitsText = '32'] = row.split('/');
  const b = ipv4(base!);
  if (b === undefined || !/^\d{1,2}$/.test(bitsText) || Number(bitsText) > 32) return false;
  const bits = Number(bitsText);
  const mask = bits === 0 ? 0 : Number((0xffffffffn << BigInt(32 - bits)) & 0xffffffffn);
  if ((b & mask) >>> 0 !== b) return false;
  return (c & mask) >>> 0 === b;
}

function ipv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

function withoutExtension(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return address;
  const plus = address.indexOf('+');
  return plus > 0 && plus < at ? address.slice(0, plus) + address.slice(at) : address;
}

function localPart(address: string): string {
  return address.slice(0, Math.max(0, address.lastIndexOf('@')));
}

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1);
}

const LOCAL_DOMAINS = ['example.com', 'sub.example.com', 'example.org'];
const OTHER_DOMAINS = ['evil.test', 'x.evil.test', 'partner.test', 'mail.partner.test', 'gmail.test'];
const USERS = ['alice', 'bob', 'carol', 'news', 'spam'];
const CLIENTS = ['10.1.2.3', '10.1.9.3', '10.200.0.1', '192.0.2.7', '192.0.2.200', '203.0.113.9', '2001:db8::7', '2001:db8::8'];

/** Every party form the spec names, from the request pool's names so that some match. */
function partyPool(): Party[] {
  const parties: Party[] = [{ email: '@.', form: 'any' }, { email: '@.test', form: 'tld' }, { email: '@.com', form: 'tld' }];
  for (const domain of [...LOCAL_DOMAINS, ...OTHER_DOMAINS]) {
    parties.push({ email: `@${domain}`, form: 'domain' }, { email: `@.${domain}`, form: 'domainTree' });
    for (const user of USERS) parties.push({ email: `${user}@${domain}`, form: 'address' });
  }
  for (const user of USERS) parties.push({ email: `${user}@*`, form: 'anyDomainUser' });
  for (const ip of CLIENTS) parties.push({ email: ip, form: 'ip' });
  parties.push(
    { email: '10.1.2.*', form: 'wildcardIp' },
    { email: '10.1.*.3', form: 'wildcardIp' },
    { email: '192.0.2.*', form: 'wildcardIp' },
    { email: '10.0.0.0/8', form: 'cidr' },
    { email: '10.1.0.0/16', form: 'cidr' },
    { email: '192.0.2.0/25', form: 'cidr' },
    { email: '192.0.2.128/25', form: 'cidr' },
    // Host bits set: not a network, so it never matches a client.
    { email: '10.1.2.7/24', form: 'cidr' },
    { email: '2001:db8::/32', form: 'cidr' },
  );
  return parties;
}

const PARTIES = partyPool();
const COMMON_PARTIES = PARTIES.filter((p) =>
  ['@.', '@.test', '@.com', '@.example.com', '@example.com', '@.evil.test', '@evil.test', '@.partner.test', 'spam@*', 'news@*', '10.0.0.0/8', '10.1.2.*', '192.0.2.0/25', '192.0.2.128/25', '2001:db8::7'].includes(p.email),
);
const IS_CLIENT_FORM = new Set<Form>(['ip', 'wildcardIp', 'cidr']);

/** A random world: a handful of accounts (addresses, domains, the server-wide `@.`) with random pairs. */
export function randomWorld(random: () => number): World {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const candidates: { email: string; form: Form }[] = [
    ...LOCAL_DOMAINS.flatMap((d) => USERS.slice(0, 3).map((u) => ({ email: `${u}@${d}`, form: 'address' as const }))),
    ...LOCAL_DOMAINS.map((d) => ({ email: `@${d}`, form: 'domain' as const })),
    { email: '@.', form: 'any' },
  ];
  const accounts: Account[] = [];
  const parties = new Map<string, Party>();
  for (const candidate of candidates) {
    if (random() > 0.45) continue;
    const account: Account = { ...candidate, inbound: new Map(), outbound: new Map() };
    const pairs = 2 + Math.floor(random() * 9);
    for (let i = 0; i < pairs; i++) {
      // Half from the forms most requests meet, so that pairs decide and priorities compete.
      const party = random() < 0.5 ? pick(COMMON_PARTIES) : pick(PARTIES);
      const outbound = !IS_CLIENT_FORM.has(party.form) && random() < 0.4;
      (outbound ? account.outbound : account.inbound).set(party.email, random() < 0.5 ? 'W' : 'B');
      parties.set(party.email, party);
    }
    accounts.push(account);
  }
  return { accounts, parties, bypassOutgoing: random() < 0.25, discardInsteadOfReject: random() < 0.25 };
}

/** A request among the world's names: local and other senders, extensions, capitals, SASL logins, null senders, clients. */
export function randomRequest(random: () => number): Request {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const address = (domains: readonly string[]): string => {
    const text = `${pick([...USERS, 'dave', 'erin'])}${random() < 0.2 ? '+tag' : ''}@${pick(domains)}`;
    return random() < 0.1 ? text.toUpperCase() : text;
  };
  const local = (): string => address(LOCAL_DOMAINS);
  const anyone = (): string => address(random() < 0.5 ? LOCAL_DOMAINS : OTHER_DOMAINS);
  const kind = random();
  // Inbound from outside, outbound with a login, local mail with a login, bounces.
  if (kind < 0.4) return { sender: anyone(), recipient: local(), sasl: '', client: pick(CLIENTS) };
  if (kind < 0.85) {
    const login = local();
    return { sender: random() < 0.8 ? login : anyone(), recipient: random() < 0.5 ? anyone() : local(), sasl: login, client: pick(CLIENTS) };
  }
  return { sender: '', recipient: local(), sasl: random() < 0.3 ? local() : '', client: pick(CLIENTS) };
}
