import { z } from 'zod';
import { ConfigError } from './config-error.ts';

// The pattern the schemas (and so the CRDs) carry; parseDuration's adds a group for the number.
const DURATION = /^\d+(?:\.\d+)?(ms|s|m|h)$/;

/** `250ms`, `1s`, `5m`, `1h`, or a number of milliseconds; parses to milliseconds. */
export const durationSchema = z
  .union([z.number().int().nonnegative(), z.string().regex(DURATION, 'a duration such as 500ms, 1s, 5m')])
  .transform((value) => (typeof value === 'number' ? value : parseDuration(value)));

/** A duration kept as text (`30s`), for resources: the CRD carries the pattern, so the API server checks it. */
export const durationTextSchema = z.string().regex(DURATION, 'a duration such as 500ms, 30s, 5m').max(32);

/** Milliseconds of `500ms`, `1s`, `5m`, `1h`; a ConfigError for anything else. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!match) throw new ConfigError(`"${text}" is not a duration (examples: 500ms, 1s, 5m)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(match[1]) * unit);
}
