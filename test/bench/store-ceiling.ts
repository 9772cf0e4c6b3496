/**
 * The store's ceiling: the very lookup the store issues for each request of the benchmark stream
 * (the same SQL text from the store's own statement builder with the same bound keys, or the same
 * LDAP search with the same filter and attributes), sent straight through the driver from C
 * concurrent callers sharing a pool of the store's default size. No policy protocol, no cache,
 * no decision: the round-trip rate the store could reach at best.
 *
 * Usage: node test/bench/store-ceiling.ts --kind postgres|mysql|ldap|amavisd-postgres|amavisd-mysql
 *        --url URL --keys FILE [--settings JSON] [--password-env NAME] --connections C --seconds S --warmup W
 * FILE: JSON array of key lists, one per request (what the daemon's plan asks for); for the
 * amavisd kinds, of the requests' amavisd plans (the facts statement is built from each).
 * Prints one JSON line like the load generator's (actions: rows or entries found per lookup).
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Client as LdapClient } from 'ldapts';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { parseSqlUrl } from '../../src/stores/endpoint.ts';
import { lookupFilter } from '../../src/stores/ldap-filter.ts';
import { lookupKeys, MYSQL_DIALECT, POSTGRES_DIALECT, SqlStatements } from '../../src/stores/sql-common.ts';
import { factsStatement } from '../../src/stores/amavisd-sql.ts';
import type { WblistPlan } from '../../src/restrictions/amavisd-wblist.ts';
import { LdapStoreSettingsSchema, SqlStoreSettingsSchema } from '../../src/api/store-settings.ts';
import { parseStoreSettings } from '../../src/stores/common.ts';
import { LIST_NAMES } from '../../src/restrictions/lists.ts';
import { applyPolicydV8Flags } from '../../src/policy/runtime-flags.ts';

// The daemon's own V8 settings: the ceiling stands for its best, under the same runtime.
applyPolicydV8Flags();

const { values } = parseArgs({
  options: {
    kind: { type: 'string' },
    url: { type: 'string' },
    keys: { type: 'string' },
    settings: { type: 'string', default: '{}' },
    'password-env': { type: 'string', default: 'MAILWARDEN_STORE_PASSWORD' },
    connections: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
  },
});
const connections = Number(values.connections);
const seconds = Number(values.seconds);
const warmup = Number(values.warmup);
const password = process.env[String(values['password-env'])];
const rawSettings = JSON.parse(String(values.settings)) as unknown;
const kind = String(values.kind);
const input = JSON.parse(await readFile(String(values.keys), 'utf8')) as unknown[];

/** One lookup: resolves to the number of rows or entries found. */
type Lookup = (keys: readonly string[]) => Promise<number>;

/**
 * The amavisd facts statement of each plan, sent through a pool of the store's size (the same
 * pool options as the vmail SQL ceiling below).
 */
async function amavisdLookups(dialect: 'postgres' | 'mysql', plans: readonly WblistPlan[]): Promise<{ lookup: (index: number) => Promise<number>; close(): Promise<void> }> {
  const settings = parseStoreSettings(SqlStoreSettingsSchema, rawSettings, 'SQL');
  const endpoint = parseSqlUrl(String(values.url), dialect === 'postgres' ? 5432 : 3306, password);
  const statements = plans.map((plan) => factsStatement(plan, dialect === 'postgres' ? POSTGRES_DIALECT : MYSQL_DIALECT));
  if (dialect === 'postgres') {
    const pool = new pg.Pool({ host: endpoint.host, port: endpoint.port, user: endpoint.user, password: endpoint.password, database: endpoint.database, max: settings.poolSize });
    return { lookup: async (i) => (await pool.query(statements[i]!.sql, statements[i]!.params)).rows.length, close: () => pool.end() };
  }
  const options: mysql.PoolOptions = { host: endpoint.host, port: endpoint.port, user: endpoint.user, database: endpoint.database, connectionLimit: settings.poolSize, maxIdle: settings.poolSize, charset: 'utf8mb4', dateStrings: true, supportBigNumbers: true, bigNumberStrings: true };
  if (endpoint.password !== undefined) options.password = endpoint.password;
  const pool = mysql.createPool(options);
  return {
    lookup: async (i) => {
      const [rows] = await pool.execute(statements[i]!.sql, statements[i]!.params as never[]);
      return Array.isArray(rows) ? rows.length : 0;
    },
    close: () => pool.end(),
  };
}

async function sqlLookup(kind: 'postgres' | 'mysql'): Promise<{ lookup: Lookup; close(): Promise<void> }> {
  const settings = parseStoreSettings(SqlStoreSettingsSchema, rawSettings, 'SQL');
  const endpoint = parseSqlUrl(String(values.url), kind === 'postgres' ? 5432 : 3306, password);
  const statements = new SqlStatements(kind === 'postgres' ? POSTGRES_DIALECT : MYSQL_DIALECT, settings);
  const sqlFor = new Map<number, string>();
  const sql = (n: number): string => {
    let text = sqlFor.get(n);
    if (text === undefined) sqlFor.set(n, (text = statements.lookup(n)));
    return text;
  };
  if (kind === 'postgres') {
    const pool = new pg.Pool({
      host: endpoint.host,
      port: endpoint.port,
      user: endpoint.user,
      password: endpoint.password,
      database: endpoint.database,
      max: settings.poolSize,
    });
    return {
      lookup: async (keys) => (await pool.query(sql(keys.length), keys as string[])).rows.length,
      close: () => pool.end(),
    };
  }
  const options: mysql.PoolOptions = {
    host: endpoint.host,
    port: endpoint.port,
    user: endpoint.user,
    database: endpoint.database,
    connectionLimit: settings.poolSize,
    maxIdle: settings.poolSize,
    charset: 'utf8mb4',
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
  };
  if (endpoint.password !== undefined) options.password = endpoint.password;
  const pool = mysql.createPool(options);
  return {
    lookup: async (keys) => {
      const [rows] = await pool.execute(sql(keys.length), keys as string[]);
      return Array.isArray(rows) ? rows.length : 0;
    },
    close: () => pool.end(),
  };
}

async function ldapLookup(): Promise<{ lookup: Lookup; close(): Promise<void> }> {
  const settings = parseStoreSettings(LdapStoreSettingsSchema, rawSettings, 'LDAP');
  const attributes = [...settings.addressAttributes, ...LIST_NAMES.map((name) => settings.attributes[name]), 'objectClass'];
  // As many bound clients as the store keeps, used round-robin (LDAP multiplexes on each).
  const clients: LdapClient[] = [];
  for (let i = 0; i < settings.poolSize; i++) {
    const client = new LdapClient({ url: String(values.url), strictDN: true });
    if (password !== undefined) await client.bind(settings.bindDn, password);
    clients.push(client);
  }
  let next = 0;
  return {
    lookup: async (keys) => {
      const client = clients[next] as LdapClient;
      next = (next + 1) % clients.length;
      const filter = lookupFilter(keys, settings.addressAttributes, settings.userFilter);
      const result = await client.search(settings.baseDn, { scope: settings.scope, filter, attributes, derefAliases: 'never' });
      return result.searchEntries.length;
    },
    close: async () => {
      await Promise.all(clients.map((c) => c.unbind().catch(() => {})));
    },
  };
}

// An amavisd request is its index into the plans; a vmail or LDAP request its keys (lower-cased,
// without duplicates or empty ones, as the store sends them).
let store: { lookup(request: never): Promise<number>; close(): Promise<void> };
let requests: unknown[];
if (kind === 'amavisd-postgres' || kind === 'amavisd-mysql') {
  store = await amavisdLookups(kind === 'amavisd-postgres' ? 'postgres' : 'mysql', input as WblistPlan[]);
  requests = input.map((_, i) => i);
} else {
  store = kind === 'ldap' ? await ldapLookup() : await sqlLookup(kind === 'postgres' ? 'postgres' : 'mysql');
  requests = (input as string[][]).map((keys) => lookupKeys(keys)).filter((keys) => keys.length > 0);
}

let samples = new Float64Array(1 << 16);
let count = 0;
const found = new Map<string, number>();
let measuring = false;
let stopping = false;

function record(ms: number, rows: number): void {
  if (count === samples.length) {
    const grown = new Float64Array(samples.length * 2);
    grown.set(samples);
    samples = grown;
  }
  samples[count++] = ms;
  const label = `${rows} found`;
  found.set(label, (found.get(label) ?? 0) + 1);
}

async function caller(index: number): Promise<void> {
  let next = (index * 7919) % requests.length;
  while (!stopping) {
    const request = requests[next] as never;
    next = next + 1 === requests.length ? 0 : next + 1;
    const sentAt = performance.now();
    const rows = await store.lookup(request);
    if (measuring) record(performance.now() - sentAt, rows);
  }
}

const callers = Array.from({ length: connections }, (_, i) => caller(i));
await new Promise((r) => setTimeout(r, warmup * 1000));
measuring = true;
const started = performance.now();
const cpuStart = process.cpuUsage();
await new Promise((r) => setTimeout(r, seconds * 1000));
measuring = false;
const cpu = process.cpuUsage(cpuStart);
const elapsed = (performance.now() - started) / 1000;
stopping = true;
await Promise.all(callers);
await store.close();

const sorted = samples.subarray(0, count).sort();
const at = (q: number): number => sorted[Math.min(count - 1, Math.floor(q * count))] ?? NaN;
process.stdout.write(
  JSON.stringify({
    connections,
    requests: count,
    seconds: elapsed,
    rps: count / elapsed,
    p50: at(0.5),
    p99: at(0.99),
    p999: at(0.999),
    actions: Object.fromEntries(found),
    // This process's CPU per lookup over the measured window, as the load generator reads a daemon's.
    cpuUs: (cpu.user + cpu.system) / count,
  }) + '\n',
);
