/**
 * Settings of the network stores, as zod schemas with iRedMail's defaults. They are plain zod
 * objects with descriptions because the `MailBackend` custom resource reuses them as its spec;
 * the connection itself (host, port, user, database) comes from the store URL and the password
 * from the caller, so nothing secret ever lives here.
 */
import { z } from 'zod';

/**
 * One SQL identifier part, from an allow-listed grammar: letters, digits and _ (quoted anyway;
 * the pattern keeps configuration typos and tricks such as `$` out of SQL text).
 */
const SQL_IDENTIFIER = '^[A-Za-z_][A-Za-z0-9_]{0,62}$';
const sqlIdentifier = z.string().max(63).regex(new RegExp(SQL_IDENTIFIER), 'an SQL identifier: letters, digits and _, at most 63 characters');

/**
 * Columns and attributes that hold credentials: never a list column, so a MailBackend cannot
 * make restriction entries overwrite (or probe) a password. Compared lower-case.
 */
export const CREDENTIAL_COLUMNS: readonly string[] = Object.freeze([
  'password', 'passwd', 'pass', 'pwd', 'password_hash', 'passwordhash', 'userpassword', 'secret', 'salt', 'hash', 'token', 'apikey', 'api_key', 'totp_secret', 'otp_secret', 'private_key',
]);
export const CREDENTIAL_ATTRIBUTES: readonly string[] = Object.freeze(['userpassword', 'authpassword', 'sambantpassword', 'sambalmpassword', 'krbprincipalkey', 'objectclass', 'uid']);

const celList = (names: readonly string[]) => `[${names.map((n) => `'${n}'`).join(', ')}]`;
const notCredential = (held: string, what: string, names: readonly string[]) => ({
  rule: `!(self.lowerAscii() in ${celList(names)})`,
  messageExpression: `"'" + self + "' holds ${held}: it cannot be ${what}"`,
});

/** A column mailwarden reads or writes: the grammar above, and never a credential column. */
const sqlColumn = sqlIdentifier
  .refine((name) => !CREDENTIAL_COLUMNS.includes(name.toLowerCase()), { error: (issue) => `'${String(issue.input)}' holds credentials: it cannot be a mailwarden column` })
  .meta({ 'x-kubernetes-validations': [notCredential('credentials', 'a mailwarden column', CREDENTIAL_COLUMNS)] });

/** A table name, optionally qualified by its schema (PostgreSQL) or database (MySQL): `vmail.mailbox`. */
const sqlTableName = z
  .string()
  .max(127)
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/, 'a table name (letters, digits and _), optionally qualified as schema.table');

/** An LDAP attribute description: a name (RFC 4512 `descr`) or a numeric OID. */
const ldapAttribute = z
  .string()
  .max(128)
  .regex(/^(?:[A-Za-z][A-Za-z0-9-]{0,127}|\d+(?:\.\d+)+)$/, 'an LDAP attribute name or OID');

/** An attribute mailwarden writes lists into: never one holding credentials or identity. */
const ldapListAttribute = ldapAttribute
  .refine((name) => !CREDENTIAL_ATTRIBUTES.includes(name.toLowerCase()), { error: (issue) => `'${String(issue.input)}' holds credentials or identity: it cannot be a list attribute` })
  .meta({ 'x-kubernetes-validations': [notCredential('credentials or identity', 'a list attribute', CREDENTIAL_ATTRIBUTES)] });

const COLUMNS_DISTINCT = 'the five columns must be five different columns (a list written into the key column or another list would overwrite it)';
const ATTRIBUTES_DISTINCT = 'the four list attributes must differ from each other and from addressAttributes (a list written there would overwrite the addresses)';

const SQL_COLUMN_DEFAULTS: Readonly<Record<string, string>> = { username: 'username', allowedSenders: 'allowedsenders', rejectedSenders: 'rejectedsenders', allowedRecipients: 'allowedrecipients', rejectedRecipients: 'rejectedrecipients' };
const LIST_NAMES = ['allowedSenders', 'rejectedSenders', 'allowedRecipients', 'rejectedRecipients'] as const;
const LDAP_ATTRIBUTE_DEFAULTS: Readonly<Record<string, string>> = { allowedSenders: 'amavisWhitelistSender', rejectedSenders: 'amavisBlacklistSender', allowedRecipients: 'mailWhitelistRecipient', rejectedRecipients: 'mailBlacklistRecipient' };

/** CEL: the names (expressions) differ from each other, case-insensitively. */
function distinctCel(names: readonly string[]): string {
  const list = `[${names.join(', ')}]`;
  return `${list}.map(n, n.lowerAscii()).all(n, ${list}.filter(m, m.lowerAscii() == n).size() == 1)`;
}

const timeoutMs = (fallback: number, what: string) =>
  z.number().int().min(100).max(120_000).default(fallback).describe(what);

export const TlsSettingsSchema = z
  .strictObject({
    mode: z
      .enum(['disable', 'require', 'verify-full'])
      .default('disable')
      .describe(
        'disable: plain TCP (or ldaps:// decides); require: TLS without checking the certificate; verify-full: TLS, certificate and host name checked',
      ),
    caFile: z.string().min(1).optional().describe('PEM file with the CA certificates to trust (verify-full); default: the system CAs'),
    serverName: z.string().min(1).optional().describe('Host name to check the certificate against, when it differs from the URL host (PostgreSQL and LDAP; a MySQL store checks the URL host)'),
  })
  .describe('Transport security towards the backend');
export type TlsSettings = z.infer<typeof TlsSettingsSchema>;

export const SqlColumnsSchema = z
  .strictObject({
    username: sqlColumn.default(SQL_COLUMN_DEFAULTS.username!).describe('Key column: the full address of the mailbox'),
    allowedSenders: sqlColumn.default(SQL_COLUMN_DEFAULTS.allowedSenders!).describe('Who may send to the mailbox (comma-separated)'),
    rejectedSenders: sqlColumn.default(SQL_COLUMN_DEFAULTS.rejectedSenders!).describe('Who may not send to the mailbox (comma-separated)'),
    allowedRecipients: sqlColumn.default(SQL_COLUMN_DEFAULTS.allowedRecipients!).describe('Whom the mailbox may send to (comma-separated)'),
    rejectedRecipients: sqlColumn.default(SQL_COLUMN_DEFAULTS.rejectedRecipients!).describe('Whom the mailbox may not send to (comma-separated)'),
  })
  .superRefine((columns, ctx) => {
    const names = [columns.username, columns.allowedSenders, columns.rejectedSenders, columns.allowedRecipients, columns.rejectedRecipients].map((n) => n.toLowerCase());
    if (new Set(names).size !== names.length) ctx.addIssue({ code: 'custom', message: COLUMNS_DISTINCT });
  })
  .meta({
    'x-kubernetes-validations': [
      {
        // Defaults spelled out: the API server also checks the rule against the schema's default {}.
        rule: distinctCel(['username', 'allowedSenders', 'rejectedSenders', 'allowedRecipients', 'rejectedRecipients'].map((f) => `self.?${f}.orValue('${SQL_COLUMN_DEFAULTS[f]}')`)),
        message: COLUMNS_DISTINCT,
      },
    ],
  })
  .describe("Column names in the mailbox table (iRedMail's vmail.mailbox by default)");
export type SqlColumns = z.infer<typeof SqlColumnsSchema>;

/**
 * Which tables hold the lists: `vmail`, the four `vmail.mailbox` columns (iRedMail 0.8.4 to 1.3;
 * dropped in 1.4.0), or `amavisd`, the amavisd database's white/blacklist tables (`users`,
 * `mailaddr`, `wblist`, `outbound_wblist`) that iRedAdmin edits and iRedAPD enforces since 2015.
 */
export const SQL_SCHEMAS = ['vmail', 'amavisd'] as const;
export type SqlSchema = (typeof SQL_SCHEMAS)[number];

export const SqlStoreSettingsSchema = z
  .strictObject({
    schema: z
      .enum(SQL_SCHEMAS)
      .default('vmail')
      .describe(
        "Which tables hold the lists. vmail: the four columns of vmail.mailbox (iRedMail before 1.4.0). amavisd: the amavisd database's users, mailaddr, wblist and outbound_wblist tables (every iRedMail since 2015; the URL names the amavisd database; table and columns do not apply).",
      ),
    table: sqlTableName.default('mailbox').describe('Table holding one row per mailbox'),
    columns: SqlColumnsSchema.prefault({}),
    poolSize: z.number().int().min(1).max(64).default(4).describe('Most connections kept open to the database'),
    connectTimeoutMs: timeoutMs(3000, 'Give up opening a connection after this long (milliseconds)'),
    operationTimeoutMs: timeoutMs(
      5000,
      'Time limit for a write or an observe that comes without its own deadline (milliseconds); lookups use the caller\'s timeout',
    ),
    tls: TlsSettingsSchema.prefault({}),
  })
  .describe('A PostgreSQL or MySQL/MariaDB mailbox table (iRedMail SQL backends)');
export type SqlStoreSettings = z.infer<typeof SqlStoreSettingsSchema>;

export const LdapAttributesSchema = z
  .strictObject({
    allowedSenders: ldapListAttribute.default(LDAP_ATTRIBUTE_DEFAULTS.allowedSenders!).describe('Who may send to the mailbox, one value each'),
    rejectedSenders: ldapListAttribute.default(LDAP_ATTRIBUTE_DEFAULTS.rejectedSenders!).describe('Who may not send to the mailbox, one value each'),
    allowedRecipients: ldapListAttribute.default(LDAP_ATTRIBUTE_DEFAULTS.allowedRecipients!).describe('Whom the mailbox may send to, one value each'),
    rejectedRecipients: ldapListAttribute.default(LDAP_ATTRIBUTE_DEFAULTS.rejectedRecipients!).describe('Whom the mailbox may not send to, one value each'),
  })
  .meta({ 'x-kubernetes-validations': [{ rule: distinctCel(LIST_NAMES.map((f) => `self.?${f}.orValue('${LDAP_ATTRIBUTE_DEFAULTS[f]}')`)), message: ATTRIBUTES_DISTINCT }] })
  .describe('Attribute names of the four lists on a user entry');
export type LdapAttributes = z.infer<typeof LdapAttributesSchema>;

export const LdapObjectClassesSchema = z
  .strictObject({
    senderLists: ldapAttribute
      .default('amavisAccount')
      .describe('Object class that allows the sender-list attributes; added to an entry that lacks it when one is written'),
    recipientLists: ldapAttribute
      .default('mailUser')
      .describe('Object class that allows the recipient-list attributes; added to an entry that lacks it when one is written'),
  })
  .describe('Object classes the list attributes need');
export type LdapObjectClasses = z.infer<typeof LdapObjectClassesSchema>;

export const LdapStoreSettingsSchema = z
  .strictObject({
    baseDn: z.string().min(1).default('o=domains,dc=example,dc=com').describe('Where user entries are searched'),
    scope: z.enum(['sub', 'one']).default('sub').describe('Search the whole subtree under the base DN, or only its children'),
    bindDn: z
      .string()
      .min(1)
      .default('cn=vmail,dc=example,dc=com')
      .describe('DN to bind as (iRedMail: cn=vmail for reading, cn=vmailadmin for writing); the password comes from a secret'),
    userFilter: z
      .string()
      .min(3)
      .default('(objectClass=mailUser)')
      .describe('Filter a user entry must match, ANDed with the address match'),
    addressAttributes: z
      .array(ldapAttribute)
      .min(1)
      .max(8)
      .default(['mail', 'shadowAddress'])
      .describe('Attributes holding the addresses of a user; the first is the primary one'),
    attributes: LdapAttributesSchema.prefault({}),
    objectClasses: LdapObjectClassesSchema.prefault({}),
    poolSize: z.number().int().min(1).max(16).default(2).describe('Bound connections kept open; LDAP multiplexes requests on each'),
    connectTimeoutMs: timeoutMs(3000, 'Give up opening a connection (and binding) after this long (milliseconds)'),
    operationTimeoutMs: timeoutMs(
      5000,
      'Time limit for a write or an observe that comes without its own deadline (milliseconds); lookups use the caller\'s timeout',
    ),
    startTls: z.boolean().default(false).describe('Upgrade an ldap:// connection with StartTLS before binding'),
    tls: TlsSettingsSchema.prefault({}),
  })
  .superRefine((settings, ctx) => {
    const lists = Object.values(settings.attributes).map((a) => a.toLowerCase());
    const addresses = settings.addressAttributes.map((a) => a.toLowerCase());
    if (new Set(lists).size !== lists.length || lists.some((a) => addresses.includes(a))) ctx.addIssue({ code: 'custom', path: ['attributes'], message: ATTRIBUTES_DISTINCT });
  })
  .meta({
    'x-kubernetes-validations': [
      {
        // The list attributes are checked among themselves on `attributes`; here against the addresses.
        // The API server has defaulted attributes (and its four names) when this runs.
        rule: `!has(self.addressAttributes) || !has(self.attributes) || self.addressAttributes.all(a, ${LIST_NAMES.map((f) => `a.lowerAscii() != self.attributes.${f}.lowerAscii()`).join(' && ')})`,
        message: ATTRIBUTES_DISTINCT,
      },
    ],
  })
  .describe('An LDAP directory with iRedMail user entries (mailUser / amavisAccount)');
export type LdapStoreSettings = z.infer<typeof LdapStoreSettingsSchema>;
