/**
 * The LDAP store: iRedMail user entries, one list entry per attribute value. A lookup is one
 * subtree search for every requested address (in `mail` or `shadowAddress`); a write is one
 * modify of the entry found that way, adding `amavisAccount` when a sender list needs it.
 */
import { Attribute, Change, type Client, type Entry as LdapEntry, FilterParser } from 'ldapts';
import { diffList, mergeList } from '../restrictions/list-diff.ts';
import { LIST_NAMES, type ListName, EMPTY_LISTS, type MailboxRecord, type RestrictionLists } from '../restrictions/lists.ts';
import type { Semantics } from '../restrictions/options.ts';
import { asciiAddress } from '../restrictions/idn.ts';
import { trimAscii } from '../restrictions/sql-list.ts';
import { Health, mailboxKey, parseStoreSettings, redactUrl, signalOrTimeout, type StoreOpenOptions } from './common.ts';
import { trustedCa, urlHost, verifyingTlsOptions, type NodeTlsOptions } from './endpoint.ts';
import { LdapConnections } from './ldap-connections.ts';
import { classifyLdapError, type LdapErrorContext } from './ldap-errors.ts';
import { lookupFilter, normaliseUserFilter, userFilterProblem } from './ldap-filter.ts';
import { LdapStoreSettingsSchema, type LdapStoreSettings } from '../api/store-settings.ts';
import { type ApplyResult, type MailboxReader, type MailboxWriter, type ReachedEntry, StoreError, type StoredMailbox } from './store.ts';
import { silentLogger } from '../observability/logger.ts';

/** Opens an LDAP store; no connection is made until the first call. */
export async function openLdapStore(url: string, settings: unknown, options: StoreOpenOptions): Promise<LdapMailboxStore> {
  const parsed = parseStoreSettings(LdapStoreSettingsSchema, settings, 'LDAP store');
  let endpoint: URL;
  try {
    endpoint = new URL(url);
  } catch {
    throw new StoreError('Misconfigured', `store URL ${redactUrl(url)} is not a valid URL`);
  }
  if (endpoint.username !== '' || endpoint.password !== '') {
    throw new StoreError('Misconfigured', 'an LDAP store URL carries no credentials: set bindDn in the settings and pass the password separately');
  }
  const target = `${endpoint.protocol}//${endpoint.host}`;
  const secure = endpoint.protocol === 'ldaps:';
  let tlsOptions: NodeTlsOptions | undefined;
  if (secure || parsed.startTls) {
    // require: encrypted, the certificate not checked, so no CA is read (as the SQL stores).
    tlsOptions =
      parsed.tls.mode === 'require'
        ? { rejectUnauthorized: false }
        : verifyingTlsOptions(parsed.tls.serverName ?? urlHost(endpoint), await trustedCa(parsed.tls, options.ca));
  }
  const filterProblem = userFilterProblem(parsed.userFilter, (text) => FilterParser.parseString(text));
  if (filterProblem !== undefined) {
    throw new StoreError('Misconfigured', `LDAP userFilter ${JSON.stringify(parsed.userFilter)} is not a valid filter: ${filterProblem}`);
  }
  const logger = options.logger ?? silentLogger;
  const connections = new LdapConnections({
    url: target,
    target,
    bindDn: parsed.bindDn,
    password: options.password,
    poolSize: parsed.poolSize,
    connectTimeoutMs: parsed.connectTimeoutMs,
    operationTimeoutMs: parsed.operationTimeoutMs * 2,
    tlsOptions,
    startTls: parsed.startTls && !secure,
    logger,
  });
  return new LdapMailboxStore(connections, parsed, {
    semantics: options.semantics,
    health: new Health(logger, target),
    errors: { target, secrets: [options.password] },
  });
}

interface LdapStoreParts {
  readonly semantics: Semantics;
  readonly health: Health;
  readonly errors: LdapErrorContext;
}

/** One user entry as read: its DN, object classes and the four lists' raw values. */
interface UserEntry {
  readonly dn: string;
  readonly objectClasses: readonly string[];
  readonly addresses: readonly (readonly string[])[];
  readonly values: { readonly [K in ListName]: readonly string[] };
}

export class LdapMailboxStore implements MailboxReader, MailboxWriter {
  readonly kind = 'ldap';
  readonly #connections: LdapConnections;
  readonly #settings: LdapStoreSettings;
  readonly #parts: LdapStoreParts;
  readonly #readAttributes: string[];
  readonly lookupConcurrency: number;
  #closed = false;

  constructor(connections: LdapConnections, settings: LdapStoreSettings, parts: LdapStoreParts) {
    this.#connections = connections;
    this.#settings = settings;
    this.lookupConcurrency = settings.poolSize;
    this.#parts = parts;
    this.#readAttributes = [...settings.addressAttributes, ...LIST_NAMES.map((name) => settings.attributes[name]), 'objectClass'];
  }

  async lookup(keys: readonly string[], signal: AbortSignal): Promise<ReadonlyMap<string, MailboxRecord>> {
    const wanted = [...new Set(keys.map((k) => k.toLowerCase()).filter((k) => k !== ''))];
    if (wanted.length === 0) return new Map();
    const entries = await this.#search(wanted, signal);
    const out = new Map<string, MailboxRecord>();
    for (const key of wanted) {
      const entry = entryForKey(key, entries);
      if (entry !== undefined) out.set(key, this.#record(key, entry));
    }
    return out;
  }

  async observe(mailbox: string, signal?: AbortSignal): Promise<RestrictionLists> {
    const entry = await this.#find(mailboxKey(mailbox), this.#signal(signal));
    const lists = {} as Record<ListName, readonly string[]>;
    for (const name of LIST_NAMES) lists[name] = Object.freeze(canonical(entry.values[name]));
    return Object.freeze(lists);
  }

  async apply(mailbox: string, lists: RestrictionLists, signal?: AbortSignal): Promise<ApplyResult> {
    const key = mailboxKey(mailbox);
    const desired = desiredValues(lists);
    const deadline = this.#signal(signal);
    const entry = await this.#find(key, deadline);
    const changed: ListName[] = [];
    const changes: Change[] = [];
    const classesNeeded = new Set<string>();
    for (const name of LIST_NAMES) {
      const stored = entry.values[name];
      const { added, removed } = diffList(stored, desired[name]);
      if (added.length === 0 && removed.length === 0) continue;
      changed.push(name);
      const type = this.#settings.attributes[name];
      // The stored values that stay are sent back as they are: the write changes only the difference.
      const values = mergeList(stored, desired[name]);
      // replace with no values removes the attribute, and is a no-op when it is absent.
      changes.push(new Change({ operation: 'replace', modification: new Attribute({ type, values }) }));
      if (values.length > 0) classesNeeded.add(this.#objectClassFor(name));
    }
    if (changes.length === 0) return { changed: [], written: false };
    const present = new Set(entry.objectClasses.map((c) => c.toLowerCase()));
    const missing = [...classesNeeded].filter((c) => !present.has(c.toLowerCase()));
    if (missing.length > 0) {
      // In the same modify: the attributes are only allowed once the class is there.
      changes.unshift(new Change({ operation: 'add', modification: new Attribute({ type: 'objectClass', values: missing }) }));
    }
    await this.#run((client) => client.modify(entry.dn, changes), deadline);
    return { changed, written: true };
  }

  clear(mailbox: string, signal?: AbortSignal): Promise<ApplyResult> {
    return this.apply(mailbox, EMPTY_LISTS, signal);
  }

  /** The user entry a write of `mailbox` modifies (as `apply` finds it), and all its addresses. */
  async entryOf(mailbox: string, signal?: AbortSignal): Promise<ReachedEntry> {
    const entry = await this.#find(mailboxKey(mailbox), this.#signal(signal));
    const addresses = [...new Set(entry.addresses.flat().map((a) => asciiAddress(a.trim().toLowerCase())))];
    // addresses keeps the order read: the first value of `mail` first (mailUser requires one).
    return { id: entry.dn.toLowerCase(), addresses, primary: addresses[0] ?? mailboxKey(mailbox) };
  }

  async mailboxesWithLists(signal?: AbortSignal): Promise<StoredMailbox[]> {
    const { baseDn, scope, userFilter, attributes } = this.#settings;
    const anyList = LIST_NAMES.map((name) => `(${attributes[name]}=*)`).join('');
    const filter = `(&(|${anyList})${normaliseUserFilter(userFilter)})`;
    // Paged: a server's size limit would otherwise cut the answer short (see ldap-errors.ts).
    const result = await this.#run(
      (client) => client.search(baseDn, { scope, filter, attributes: this.#readAttributes, derefAliases: 'never', paged: { pageSize: 500 } }),
      this.#signal(signal),
    );
    const out: StoredMailbox[] = [];
    for (const found of result.searchEntries) {
      const entry = this.#userEntry(found);
      // mailUser requires mail: an entry without a primary address is not a mailbox.
      const address = entry.addresses[0]?.[0];
      if (address === undefined) continue;
      const mailbox = address.toLowerCase();
      const aliases = entry.addresses.flat().map((a) => a.toLowerCase()).filter((a) => a !== mailbox);
      out.push({ mailbox, ...(mailbox === address ? {} : { storedAs: address }), ...(aliases.length > 0 ? { aliases } : {}), lists: entry.values });
    }
    return out;
  }

  async ping(signal?: AbortSignal): Promise<void> {
    // The base entry alone, under the user filter: needs the bind, the base DN and a filter the
    // server accepts, and returns no user entry.
    const { baseDn, userFilter } = this.#settings;
    const deadline = this.#signal(signal);
    await this.#run((client) => client.search(baseDn, { scope: 'base', filter: normaliseUserFilter(userFilter), attributes: ['1.1'], derefAliases: 'never' }), deadline);
    // A configured attribute the directory does not know is named here too (MailBackend status).
    await this.verifySchema(deadline);
  }

  /**
   * Reads the directory's attribute types (its subschema entry) and names the first configured
   * address or list attribute it lacks. A directory that does not publish its schema to us is
   * not judged.
   */
  async verifySchema(signal: AbortSignal): Promise<void> {
    const known = await this.#run(async (client) => {
      const root = await client.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['subschemaSubentry'] });
      const subschema = attributeValues(root.searchEntries[0]?.subschemaSubentry ?? [])[0];
      if (subschema === undefined) return undefined;
      const schema = await client.search(subschema, { scope: 'base', filter: '(objectClass=subschema)', attributes: ['attributeTypes'] });
      return attributeTypeNames(attributeValues(schema.searchEntries[0]?.attributeTypes ?? []));
    }, signal);
    if (known === undefined || known.size === 0) return;
    const configured: [string, string][] = [
      ...this.#settings.addressAttributes.map((type, i): [string, string] => [`addressAttributes[${i}]`, type]),
      ...LIST_NAMES.map((name): [string, string] => [`attributes.${name}`, this.#settings.attributes[name]]),
    ];
    for (const [setting, type] of configured) {
      if (known.has(type.toLowerCase())) continue;
      throw new StoreError(
        'Misconfigured',
        `LDAP ${this.#parts.errors.target}: the directory schema has no attribute type ${type} (${setting}). iRedMail keeps per-account white/blacklists in the amavisd SQL database since 2015, for LDAP servers too: see "Which store" in docs/install.md`,
      );
    }
  }

  ready(): boolean {
    return !this.#closed && this.#parts.health.healthy;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#connections.close();
  }

  #objectClassFor(name: ListName): string {
    const senders = name === 'allowedSenders' || name === 'rejectedSenders';
    return senders ? this.#settings.objectClasses.senderLists : this.#settings.objectClasses.recipientLists;
  }

  #record(key: string, entry: UserEntry): MailboxRecord {
    const lists = {} as Record<ListName, readonly string[] | null>;
    for (const name of LIST_NAMES) {
      const values = entry.values[name].map((v) => trimAscii(v).toLowerCase());
      // As with SQL lists: blank entries count only under the iredapd preset.
      const kept = this.#parts.semantics === 'iredapd' ? values : values.filter((v) => v !== '');
      lists[name] = kept.length === 0 ? null : Object.freeze(kept);
    }
    return Object.freeze({ address: key, lists: Object.freeze(lists) });
  }

  /** The entry a write or an observe addresses; `MailboxNotFound` when there is none. */
  async #find(key: string, signal: AbortSignal): Promise<UserEntry> {
    const entry = entryForKey(key, await this.#search([key], signal));
    if (entry === undefined) {
      throw new StoreError(
        'MailboxNotFound',
        `no LDAP user entry under ${this.#settings.baseDn} has ${this.#settings.addressAttributes.join(' or ')} ${JSON.stringify(key)}; mailwarden never creates mailboxes`,
      );
    }
    return entry;
  }

  async #search(keys: readonly string[], signal: AbortSignal): Promise<UserEntry[]> {
    const { baseDn, scope, addressAttributes, userFilter } = this.#settings;
    const filter = lookupFilter(keys, addressAttributes, userFilter);
    const result = await this.#run(
      (client) => client.search(baseDn, { scope, filter, attributes: this.#readAttributes, derefAliases: 'never' }),
      signal,
    );
    return result.searchEntries.map((entry) => this.#userEntry(entry));
  }

  #userEntry(entry: LdapEntry): UserEntry {
    // Attribute names come back as the server spells them.
    const byName = new Map<string, string[]>();
    for (const [name, value] of Object.entries(entry)) {
      if (name === 'dn') continue;
      byName.set(name.toLowerCase(), attributeValues(value));
    }
    const get = (name: string): string[] => byName.get(name.toLowerCase()) ?? [];
    const values = {} as Record<ListName, readonly string[]>;
    for (const name of LIST_NAMES) values[name] = get(this.#settings.attributes[name]);
    return {
      dn: entry.dn,
      objectClasses: get('objectClass'),
      addresses: this.#settings.addressAttributes.map(get),
      values,
    };
  }

  #signal(signal: AbortSignal | undefined): AbortSignal {
    return signalOrTimeout(signal, this.#settings.operationTimeoutMs);
  }

  async #run<T>(work: (client: Client) => Promise<T>, signal: AbortSignal): Promise<T> {
    if (this.#closed) throw new StoreError('Unavailable', 'LDAP store is closed');
    try {
      const result = await this.#connections.use(work, signal);
      this.#parts.health.succeeded();
      return result;
    } catch (err) {
      const error = classifyLdapError(err, this.#parts.errors);
      this.#parts.health.failed(error);
      throw error;
    }
  }
}

/** The names and OIDs (lower-cased) of RFC 4512 attribute type descriptions. */
function attributeTypeNames(definitions: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const definition of definitions) {
    const oid = /^\(\s*([0-9.]+)/.exec(definition)?.[1];
    if (oid !== undefined) out.add(oid);
    const names = /\bNAME\s+(\(([^)]*)\)|'[^']*')/.exec(definition);
    if (names === null) continue;
    for (const quoted of (names[2] ?? names[1] ?? '').matchAll(/'([^']*)'/g)) out.add((quoted[1] ?? '').toLowerCase());
  }
  return out;
}

function attributeValues(value: unknown): string[] {
  const list = Array.isArray(value) ? value : [value];
  return list.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v)));
}

/**
 * The entry that holds `key`: one whose primary address (the first address attribute, `mail`)
 * is the key wins over one that has it as an extra address (`shadowAddress`). Directory values
 * compare case-insensitively, as the attributes' equality rule does.
 */
function entryForKey(key: string, entries: readonly UserEntry[]): UserEntry | undefined {
  let fallback: UserEntry | undefined;
  for (const entry of entries) {
    const [primary = [], ...others] = entry.addresses;
    if (primary.some((v) => v.toLowerCase() === key)) return entry;
    if (fallback === undefined && others.some((values) => values.some((v) => v.toLowerCase() === key))) fallback = entry;
  }
  return fallback;
}

/** Stored values as `observe` reports them: trimmed, lower-cased, blanks and duplicates dropped. */
function canonical(values: readonly string[]): string[] {
  const out: string[] = [];
  for (const value of values) {
    const v = trimAscii(value).toLowerCase();
    if (v !== '' && !out.includes(v)) out.push(v);
  }
  return out;
}

/**
 * The values a write stores. An LDAP attribute is a set under case-insensitive equality, so
 * duplicates are folded; an empty entry or one with NUL cannot be stored and is refused.
 */
function desiredValues(lists: RestrictionLists): { readonly [K in ListName]: readonly string[] } {
  const out = {} as Record<ListName, readonly string[]>;
  for (const name of LIST_NAMES) {
    for (const entry of lists[name]) {
      if (trimAscii(entry) === '') throw new StoreError('InvalidValue', `${name}: an empty entry cannot be stored`);
      if (entry.includes('\u0000')) {
        throw new StoreError('InvalidValue', `${name}: entry ${JSON.stringify(entry)} cannot be stored: it contains a NUL character`);
      }
    }
    // IA5String attributes hold ASCII only: an internationalised domain in its punycode form.
    out[name] = canonical(lists[name].map(asciiAddress));
  }
  return out;
}
