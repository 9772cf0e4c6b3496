import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { actionSchema } from '../api/actions.ts';
import { ConfigError } from '../api/config-error.ts';
import { durationSchema } from '../api/durations.ts';
import { formatIssues } from '../api/issues.ts';
import { resolveOptions, type DecisionOptions, type Semantics } from '../restrictions/options.ts';
import type { PolicyServerLimits } from './limits.ts';
import type { ResolverOptions } from './cached-source.ts';

const listenSchema = z
  .string()
  .regex(/^(?:unix:\/.+|\[?[0-9A-Za-z.:-]+\]?:\d{1,5})$/, 'HOST:PORT or unix:/path/to/socket');

export const policydConfigSchema = z
  .object({
    listen: listenSchema.default('127.0.0.1:7777').describe('Where Postfix connects: HOST:PORT or unix:/path.'),
    store: z.string().min(1).optional().describe('A manifests file/directory, a postgres://, mysql:// or ldap:// URL (no password in it), or kubernetes:// (MailUserRestriction resources; storeSettings: namespaces, credentialsDir, kubeconfig).'),
    storeSettings: z.record(z.string(), z.unknown()).default({}).describe('Store settings: table and column names, base DN, filter, TLS, pool, timeouts.'),
    passwordEnv: z.string().optional().describe('Environment variable holding the store password.'),
    passwordFile: z.string().optional().describe('File holding the store password (a mounted Secret).'),
    semantics: z.enum(['default', 'iredapd']).default('default'),
    allowAction: actionSchema.optional(),
    rejectAction: actionSchema.optional(),
    failureAction: actionSchema.optional(),
    recipientDelimiter: z.string().max(8).regex(/^[^\s@]*$/, 'delimiter characters such as "+" or "+-"').optional(),
    nullSenderExemption: z.boolean().optional(),
    subdomainMatching: z.boolean().optional(),
    identityFromSasl: z.boolean().optional(),
    bypassOutgoing: z.boolean().default(false).describe("amavisd schema: no outbound check (iRedAPD's WBLIST_BYPASS_OUTGOING_EMAIL)."),
    discardInsteadOfReject: z.boolean().default(false).describe("amavisd schema: a blacklisted pair answers DISCARD instead of REJECT (iRedAPD's WBLIST_DISCARD_INSTEAD_OF_REJECT)."),
    cache: z
      .object({
        ttl: durationSchema.optional(),
        negativeTtl: durationSchema.optional(),
        maxEntries: z.number().int().min(0).max(10_000_000).optional(),
      })
      .strict()
      .default({}),
    lookupTimeout: durationSchema.optional(),
    limits: z
      .object({
        maxLineBytes: z.number().int().positive().optional(),
        maxRequestBytes: z.number().int().positive().optional(),
        maxAttributes: z.number().int().positive().optional(),
        maxConnections: z.number().int().positive().optional(),
        maxConnectionsPerClient: z.number().int().positive().optional(),
        maxPendingPerConnection: z.number().int().positive().optional(),
        requestTimeout: durationSchema.optional(),
        idleTimeout: durationSchema.optional(),
        writeTimeout: durationSchema.optional(),
      })
      .strict()
      .default({}),
    http: z
      .object({ listen: z.union([listenSchema, z.literal('off')]).default('127.0.0.1:9090') })
      .strict()
      .default({ listen: '127.0.0.1:9090' }),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict();

export type PolicydConfigInput = z.input<typeof policydConfigSchema>;
export type PolicydConfig = z.output<typeof policydConfigSchema>;

/** Reads the YAML config file (if any) and lays the command-line values over it. */
export async function loadPolicydConfig(file: string | undefined, overrides: Record<string, unknown>): Promise<PolicydConfig> {
  let base: Record<string, unknown> = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new ConfigError(`config file ${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (error) {
      throw new ConfigError(`config file ${file} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
    }
    if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new ConfigError(`config file ${file} must be a YAML mapping`);
    }
    base = (parsed ?? {}) as Record<string, unknown>;
  }
  const merged = mergeDeep(base, overrides);
  const result = policydConfigSchema.safeParse(merged);
  if (!result.success) {
    throw new ConfigError(`invalid configuration${file ? ` (${file} and flags)` : ''}: ${formatIssues(result.error).join('; ')}`);
  }
  return result.data;
}

export function decisionOptionsOf(config: PolicydConfig): DecisionOptions {
  return resolveOptions(config.semantics as Semantics, {
    allowAction: config.allowAction,
    rejectAction: config.rejectAction,
    failureAction: config.failureAction,
    recipientDelimiter: config.recipientDelimiter,
    nullSenderExemption: config.nullSenderExemption,
    subdomainMatching: config.subdomainMatching,
    identityFromSasl: config.identityFromSasl,
  });
}

/** The amavisd schema's two settings (iRedAPD's WBLIST_*). */
export function wblistSettingsOf(config: PolicydConfig): { bypassOutgoing: boolean; discardInsteadOfReject: boolean } {
  return { bypassOutgoing: config.bypassOutgoing, discardInsteadOfReject: config.discardInsteadOfReject };
}

export function serverLimitsOf(config: PolicydConfig): Partial<PolicyServerLimits> {
  const { requestTimeout, idleTimeout, writeTimeout, ...rest } = config.limits;
  return { ...rest, requestTimeoutMs: requestTimeout, idleTimeoutMs: idleTimeout, writeTimeoutMs: writeTimeout };
}

/** The store's tls.caFile, if the configuration names one (its content is watched like the password file's). */
export function storeCaFile(config: PolicydConfig): string | undefined {
  const tls = (config.storeSettings as { tls?: { caFile?: unknown } }).tls;
  return typeof tls?.caFile === 'string' ? tls.caFile : undefined;
}

export function resolverOptionsOf(config: PolicydConfig): Partial<ResolverOptions> {
  return {
    ttlMs: config.cache.ttl,
    negativeTtlMs: config.cache.negativeTtl ?? config.cache.ttl,
    maxEntries: config.cache.maxEntries,
    lookupTimeoutMs: config.lookupTimeout,
  };
}

/** `127.0.0.1:7777` → TCP, `unix:/run/x.sock` → a socket path. */
export function parseListen(listen: string): { host: string; port: number } | { path: string } {
  if (listen.startsWith('unix:')) return { path: listen.slice('unix:'.length) };
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(listen.slice(colon + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`"${listen}" has an invalid port`);
  return { host, port };
}

function mergeDeep(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    const existing = out[key];
    out[key] =
      isPlainObject(existing) && isPlainObject(value) ? mergeDeep(existing, value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
