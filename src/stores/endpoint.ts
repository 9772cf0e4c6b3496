/**
 * Where a network store connects, from its URL: `postgres://vmail@db:5432/vmail` or
 * `mysql://vmail@db:3306/vmail`. The password is the caller's (an env var or a mounted file);
 * a password written in the URL is accepted as a fallback but never printed.
 */
import type { TlsSettings } from '../api/store-settings.ts';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { redactUrl } from './common.ts';
import { StoreError } from './store.ts';

export interface SqlEndpoint {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  readonly password: string | undefined;
  /** The URL without its password, for logs and messages. */
  readonly target: string;
}

export function parseSqlUrl(url: string, defaultPort: number, password: string | undefined): SqlEndpoint {
  const target = redactUrl(url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StoreError('Misconfigured', `store URL ${target} is not a valid URL`);
  }
  const host = urlHost(parsed);
  if (host === '') throw new StoreError('Misconfigured', `store URL ${target} names no host`);
  const port = parsed.port === '' ? defaultPort : Number(parsed.port);
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, '')) || 'vmail';
  if (database.includes('/')) throw new StoreError('Misconfigured', `store URL ${target}: the path must be just the database name`);
  const user = decodeURIComponent(parsed.username) || 'vmail';
  const fromUrl = parsed.password === '' ? undefined : decodeURIComponent(parsed.password);
  return Object.freeze({ host, port, user, database, password: password ?? fromUrl, target });
}

/** The host of `url` as a name or address to connect to (an IPv6 address without its brackets). */
export function urlHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/** Node TLS options as the drivers take them. */
export interface NodeTlsOptions {
  rejectUnauthorized: boolean;
  ca?: string;
  servername?: string;
  checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined;
}

/**
 * TLS options that accept only a certificate for `name` (the URL's host, or tls.serverName): the
 * identity is checked against `name` whatever host the driver hands Node, and `name` goes out as
 * SNI only when it is a host name (RFC 6066 forbids an IP address there, and Node warns).
 */
export function verifyingTlsOptions(name: string, ca: string | undefined): NodeTlsOptions {
  const options: NodeTlsOptions = { rejectUnauthorized: true, checkServerIdentity: (_host, cert) => checkServerIdentity(name, cert) };
  if (isIP(name) === 0) options.servername = name;
  if (ca !== undefined) options.ca = ca;
  return options;
}

/**
 * Node TLS options for a SQL driver, or `false` for plain TCP. The CA certificates are `ca` when
 * given, else read from tls.caFile, and only when the certificate is checked (verify-full).
 */
export async function sqlTlsOptions(tls: TlsSettings, host: string, ca?: string): Promise<false | NodeTlsOptions> {
  if (tls.mode === 'disable') return false;
  if (tls.mode === 'require') return { rejectUnauthorized: false };
  return verifyingTlsOptions(tls.serverName ?? host, await trustedCa(tls, ca));
}

/** The CA certificates to trust: `ca`, else tls.caFile's, else undefined (the system CAs). */
export async function trustedCa(tls: TlsSettings, ca: string | undefined): Promise<string | undefined> {
  if (ca !== undefined) return ca;
  return tls.caFile === undefined ? undefined : readCa(tls.caFile);
}

export async function readCa(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new StoreError('Misconfigured', `cannot read the CA file ${path}: ${(err as Error).message}`, { cause: err });
  }
}
