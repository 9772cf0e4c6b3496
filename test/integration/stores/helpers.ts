// Shared pieces of the store integration tests (real servers from test/harness/containers.ts).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EMPTY_LISTS, type RestrictionLists } from '../../../src/restrictions/lists.ts';
import { StoreError, type StoreErrorKind } from '../../../src/stores/store.ts';
import { createCa, issueServing } from '../../../src/webhook/certificates.ts';
import { FIXTURES_DIR, type ServingCertificate } from '../../harness/containers.ts';

/** What the TLS store tests give a server and the stores they open. */
export interface TestTls {
  /** For the server: 127.0.0.1 and localhost, signed by the CA of `caFile`. */
  readonly serving: ServingCertificate;
  /** Signed by the same CA, for db.example.net only: a server presenting it fails the host-name check. */
  readonly servingOtherName: ServingCertificate;
  /** PEM files: the CA that signed `serving`, and a CA that did not. */
  readonly caFile: string;
  readonly otherCaFile: string;
  /** Removes the files. */
  remove(): Promise<void>;
}

export async function testTls(): Promise<TestTls> {
  const now = new Date();
  const day = 86_400_000;
  const ca = createCa('mailwarden test CA', now, day);
  const serving = issueServing(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }, now, day);
  const otherName = issueServing(ca, { dnsNames: ['db.example.net'], ipAddresses: [] }, now, day);
  const dir = await mkdtemp(join(tmpdir(), 'mw-tls-'));
  const caFile = join(dir, 'ca.pem');
  const otherCaFile = join(dir, 'other-ca.pem');
  await writeFile(caFile, ca.cert);
  await writeFile(otherCaFile, createCa('another CA', now, day).cert);
  return { serving: { certificate: serving.cert, key: serving.key }, servingOtherName: { certificate: otherName.cert, key: otherName.key }, caFile, otherCaFile, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Collects the process warnings emitted from now until stop(). */
export function recordWarnings(): { readonly warnings: string[]; stop(): void } {
  const warnings: string[] = [];
  const onWarning = (warning: Error): void => void warnings.push(`${warning.name}: ${warning.message}`);
  process.on('warning', onWarning);
  return { warnings, stop: () => void process.off('warning', onWarning) };
}

/** Writes timings to stderr when MAILWARDEN_TEST_VERBOSE is set (they go into reports). */
export function note(msg: string): void {
  if (process.env.MAILWARDEN_TEST_VERBOSE) console.error(`  [stores] ${msg}`);
}

export function lists(partial: Partial<RestrictionLists>): RestrictionLists {
  return { ...EMPTY_LISTS, ...partial };
}

/** A predicate for assert.rejects / assert.throws: a StoreError of `kind` (and message check). */
export function storeError(kind: StoreErrorKind, message?: RegExp, forbidden: readonly string[] = []) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof StoreError, `expected a StoreError, got ${String(err)}`);
    assert.equal(err.kind, kind, `expected ${kind}: ${err.message}`);
    if (message !== undefined) assert.match(err.message, message);
    for (const secret of forbidden) assert.ok(!err.message.includes(secret), `message leaks a secret: ${err.message}`);
    return true;
  };
}

/** Runs `fn` and returns its duration in milliseconds. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Runs `fn` and returns how long it took to reject, with the error. */
export async function timedFailure(fn: () => Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const t0 = performance.now();
  try {
    await fn();
  } catch (error) {
    return { ms: performance.now() - t0, error };
  }
  assert.fail('expected a rejection');
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

/**
 * Addresses and entries that must be data, never syntax: SQL quotes and comment markers, LIKE
 * wildcards, LDAP filter specials, a filter-injection attempt, and non-ASCII text.
 */
export const HOSTILE_ADDRESSES = [
  "o'neil@x.test",
  'a"b@x.test',
  'back\\slash@x.test',
  'pct%@x.test',
  'under_score@x.test',
  'star*@x.test',
  '(paren)@x.test',
  'x)(mail=*@x.test',
  "q'--@x.test",
] as const;

export const NON_ASCII_ADDRESSES = ['jösé@exämple.test', 'ünïcode@例え.test'] as const;

/** Creates the amavisd white/blacklist tables (test/fixtures/amavisd-*.sql) in the server's database. */
export async function loadAmavisdTables(db: { readonly dialect: 'postgres' | 'mysql'; query(sql: string): Promise<unknown> }): Promise<void> {
  const file = join(FIXTURES_DIR, db.dialect === 'postgres' ? 'amavisd-postgres.sql' : 'amavisd-mysql.sql');
  const text = (await readFile(file, 'utf8')).split('\n').filter((l) => !l.startsWith('--')).join('\n');
  for (const statement of text.split(/;\s*\n/).map((s) => s.trim()).filter(Boolean)) await db.query(statement);
  // The read-only account reads them too (MariaDB's has SELECT on the whole database already).
  if (db.dialect === 'postgres') await db.query('GRANT SELECT ON users, mailaddr, wblist, outbound_wblist TO vmail');
}

/** Empties the amavisd tables. */
export async function clearAmavisdTables(db: { query(sql: string): Promise<unknown> }): Promise<void> {
  for (const table of ['wblist', 'outbound_wblist', 'users', 'mailaddr']) await db.query(`DELETE FROM ${table}`);
}
