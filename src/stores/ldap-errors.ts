/**
 * How `ldapts` errors become StoreErrors. LDAP result codes (RFC 4511 §4.1.9) say whether the
 * configuration is wrong (credentials, base DN, attribute names), the value was refused
 * (syntax, length), or the server is busy or gone; socket errors are always `Unavailable`.
 */
import { describeError, scrubSecrets, TLS_CONFIG_CODES } from './common.ts';
import { StoreError } from './store.ts';

/** Result codes that mean the settings (or the directory's schema) need fixing. */
const MISCONFIGURED: ReadonlyMap<number, string> = new Map([
  // Only a whole-store read (export, prune) asks for more than a few entries.
  [4, 'the search reached the server\'s size limit: let the bind DN read every mailbox, in pages (OpenLDAP: olcLimits: dn.exact="BIND_DN" size.prtotal=unlimited)'],
  [7, 'authentication method not supported'],
  [8, 'the server requires a stronger authentication (TLS?)'],
  [13, 'the server requires confidentiality (TLS)'],
  [17, 'an attribute name is not in the directory schema'],
  [18, 'an attribute cannot be matched this way'],
  [32, 'the base DN does not exist'],
  [34, 'a DN is not valid'],
  [48, 'inappropriate authentication'],
  [49, 'invalid bind DN or password'],
  [50, 'the bind DN lacks access rights'],
  [65, 'object class violation: an attribute is not allowed on the entry'],
]);

/** Result codes that refuse a value. */
const INVALID_VALUE: ReadonlyMap<number, string> = new Map([
  [19, 'constraint violation (too long?)'],
  [20, 'duplicate value'],
  [21, 'invalid syntax (these attributes hold ASCII text only)'],
]);


export interface LdapErrorContext {
  readonly target: string;
  readonly secrets: readonly (string | undefined)[];
}

export function classifyLdapError(err: unknown, context: LdapErrorContext): StoreError {
  if (err instanceof StoreError) return err;
  const detail = scrubSecrets(describeError(err), context.secrets);
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'number') {
    const misconfigured = MISCONFIGURED.get(code);
    if (misconfigured !== undefined) {
      return new StoreError('Misconfigured', `LDAP ${context.target}: ${misconfigured}: ${detail}`, { cause: err });
    }
    const invalid = INVALID_VALUE.get(code);
    if (invalid !== undefined) {
      return new StoreError('InvalidValue', `LDAP ${context.target} refused a value: ${invalid}: ${detail}`, { cause: err });
    }
  }
  if (typeof code === 'string' && TLS_CONFIG_CODES.has(code)) {
    return new StoreError('Misconfigured', `LDAP ${context.target}: TLS certificate not accepted: ${detail}`, { cause: err });
  }
  return new StoreError('Unavailable', `LDAP ${context.target} unavailable: ${detail}`, { cause: err });
}

/** True when the error says nothing about the connection (a result code), so it can be reused. */
export function isResultCode(err: unknown): boolean {
  return typeof (err as { code?: unknown } | null)?.code === 'number';
}
