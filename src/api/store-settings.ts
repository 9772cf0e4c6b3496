/**
 * Settings of the network stores, as zod schemas with iRedMail's defaults. They are plain zod
 * objects with descriptions because the `MailBackend` custom resource reuses them as its spec;
 * the connection itself (host, port, user, database) comes from the store URL and the password
 * from the caller, so nothing secret ever lives here.
 */
import { z } from 'zod';

/** One SQL identifier part. Quoted anyway; the pattern keeps configuration typos out of SQL text. */
const sqlIdentifier = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_$]{0,63}$/, 'an SQL identifier: letters, digits, _ and $, at most 64 characters');

/** A table name, optionally qualified by its schema (PostgreSQL) or database (MySQL): `vmail.mailbox`. */
const sqlTableName = z
  .string()
  .regex(
    /^[A-Za-z_][A-Za-z0-9_$]{0,63}(\.[A-Za-z_][A-Za-z0-9_$]{0,63})?$/,
    'a table name, optionally qualified as schema.table',
  );

/** An LDAP attribute description: a name (RFC 4512 `descr`) or a numeric OID. */
const ldapAttribute = z
  .string()
  .regex(/^(?:[A-Za-z][A-Za-z0-9-]{0,127}|\d+(?:\.\d+)+)$/, 'an LDAP attribute name or OID');

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
    username: sqlIdentifier.default('username').describe('Key column: the full address of the mailbox'),
    allowedSenders: sqlIdentifier.default('allowedsenders').describe('Who may send to the mailbox (comma-separated)'),
    rejectedSenders: sqlIdentifier.default('rejectedsenders').describe('Who may not send to the mailbox (comma-separated)'),
    allowedRecipients: sqlIdentifier.default('allowedrecipients').describe('Whom the mailbox may send to (comma-separated)'),
    rejectedRecipients: sqlIdentifier.default('rejectedrecipients').describe('Whom the mailbox may not send to (comma-separated)'),
  })
  .describe("Column names in the mailbox table (iRedMail's vmail.mailbox by default)");
export type SqlColumns = z.infer<typeof SqlColumnsSchema>;

export const SqlStoreSettingsSchema = z
  .strictObject({
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
    allowedSenders: ldapAttribute.default('amavisWhitelistSender').describe('Who may send to the mailbox, one value each'),
    rejectedSenders: ldapAttribute.default('amavisBlacklistSender').describe('Who may not send to the mailbox, one value each'),
    allowedRecipients: ldapAttribute.default('mailWhitelistRecipient').describe('Whom the mailbox may send to, one value each'),
    rejectedRecipients: ldapAttribute.default('mailBlacklistRecipient').describe('Whom the mailbox may not send to, one value each'),
  })
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
  .describe('An LDAP directory with iRedMail user entries (mailUser / amavisAccount)');
export type LdapStoreSettings = z.infer<typeof LdapStoreSettingsSchema>;
