/**
 * Decision options (spec §3–§6) and the two presets. Everything the decision engine does
 * differently between the default semantics and the `iredapd` compatibility preset is one
 * field here, so a site can start from the preset and change one behaviour at a time.
 */
export type Semantics = 'default' | 'iredapd';

export interface DecisionOptions {
  readonly semantics: Semantics;
  /** `@.example.com` also matches sub-domains (spec §6; off in the preset). */
  readonly subdomainMatching: boolean;
  /** The sending identity is `sasl_username` when present (spec §3; off in the preset). */
  readonly identityFromSasl: boolean;
  /** Entries are validated and invalid ones ignored and counted (default) or kept as literal text (preset). */
  readonly validateEntries: boolean;
  /** Characters that start an address extension, as Postfix's `recipient_delimiter`; '' disables. */
  readonly recipientDelimiter: string;
  /** Bounces (null sender) are never rejected by inbound lists (spec §6). */
  readonly nullSenderExemption: boolean;
  /** Answer for an allow: `DUNNO` by default, `OK` in the preset. */
  readonly allowAction: string;
  /** Answer for a reject. */
  readonly rejectAction: string;
  /** Answer when the store cannot answer and no last known good data exists (spec §4). */
  readonly failureAction: string;
}

export const DEFAULT_OPTIONS: DecisionOptions = Object.freeze({
  semantics: 'default',
  subdomainMatching: true,
  identityFromSasl: true,
  validateEntries: true,
  recipientDelimiter: '',
  nullSenderExemption: false,
  allowAction: 'DUNNO',
  rejectAction: 'REJECT Not authorized',
  failureAction: 'DEFER_IF_PERMIT Service temporarily unavailable',
});

export const IREDAPD_OPTIONS: DecisionOptions = Object.freeze({
  semantics: 'iredapd',
  subdomainMatching: false,
  identityFromSasl: false,
  validateEntries: false,
  recipientDelimiter: '',
  nullSenderExemption: false,
  allowAction: 'OK',
  rejectAction: 'REJECT Not authorized',
  failureAction: 'DUNNO',
});

/** The preset for `semantics`, with any explicitly given field overriding it. */
export function resolveOptions(semantics: Semantics, overrides: Partial<DecisionOptions> = {}): DecisionOptions {
  const base = semantics === 'iredapd' ? IREDAPD_OPTIONS : DEFAULT_OPTIONS;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overrides)) if (value !== undefined) merged[key] = value;
  merged.semantics = semantics;
  return Object.freeze(merged) as unknown as DecisionOptions;
}
