import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Wrong words on the command line: exit 2 with a one-line message. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Where commands write; injectable so tests capture it. */
export interface Io {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  readonly stdin: AsyncIterable<Buffer | string>;
  readonly env: NodeJS.ProcessEnv;
}

export const processIo: Io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs, strict, with its errors turned into one-line UsageErrors. */
export function parseCommandLine<T extends Options>(args: readonly string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: [...args], options, allowPositionals, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0]!.replace(/\. To specify a positional.*$/, ''));
  }
}

/** The options every command that decides shares (flags win over the config file). */
export const DECISION_FLAGS = {
  config: { type: 'string', short: 'c' },
  store: { type: 'string' },
  'store-schema': { type: 'string' },
  'bypass-outgoing': { type: 'boolean' },
  'discard-instead-of-reject': { type: 'boolean' },
  semantics: { type: 'string' },
  'allow-action': { type: 'string' },
  'reject-action': { type: 'string' },
  'failure-action': { type: 'string' },
  'recipient-delimiter': { type: 'string' },
  'null-sender-exemption': { type: 'boolean' },
  'no-subdomain-matching': { type: 'boolean' },
  'no-sasl-identity': { type: 'boolean' },
  'password-env': { type: 'string' },
  'password-file': { type: 'string' },
  'lookup-timeout': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Config-file shaped overrides from the shared decision flags. */
export function decisionOverrides(values: Record<string, string | boolean | undefined>): Record<string, unknown> {
  return {
    store: values.store,
    storeSettings: storeSchemaSettings(values['store-schema']),
    bypassOutgoing: values['bypass-outgoing'],
    discardInsteadOfReject: values['discard-instead-of-reject'],
    semantics: values.semantics,
    allowAction: values['allow-action'],
    rejectAction: values['reject-action'],
    failureAction: values['failure-action'],
    recipientDelimiter: values['recipient-delimiter'],
    nullSenderExemption: values['null-sender-exemption'],
    subdomainMatching: values['no-subdomain-matching'] ? false : undefined,
    identityFromSasl: values['no-sasl-identity'] ? false : undefined,
    passwordEnv: values['password-env'],
    passwordFile: values['password-file'],
    lookupTimeout: values['lookup-timeout'],
  };
}

/** `--store-schema NAME` as store settings (merged over the config file's), or nothing. */
export function storeSchemaSettings(schema: string | boolean | undefined): { schema: string } | undefined {
  return typeof schema === 'string' ? { schema } : undefined;
}

export const DECISION_FLAGS_HELP = `Decision options (flags override the config file):
  -c, --config FILE            YAML config file (see docs); secrets never on the command line
      --store PATH|URL         manifests file/directory, postgres://, mysql://, ldap:// URL, or
                               kubernetes:// (the MailUserRestrictions of the kubeconfig's namespace)
      --store-schema NAME      SQL store: vmail (vmail.mailbox columns, the default) or amavisd
                               (the amavisd database's white/blacklist tables, iRedMail since 2015)
      --bypass-outgoing        amavisd schema: no outbound check (WBLIST_BYPASS_OUTGOING_EMAIL)
      --discard-instead-of-reject  amavisd schema: DISCARD a blacklisted pair
      --semantics NAME         default | iredapd (iRedAPD 1.6 compatibility preset)
      --allow-action ACTION    answer for an allow (default DUNNO; OK under iredapd)
      --reject-action ACTION   answer for a reject (default "REJECT Not authorized")
      --failure-action ACTION  answer when the store fails (default
                               "DEFER_IF_PERMIT Service temporarily unavailable"; DUNNO under iredapd)
      --recipient-delimiter C  Postfix recipient_delimiter, e.g. "+" (off by default)
      --null-sender-exemption  bounces are never rejected by inbound lists
      --no-subdomain-matching  "@.example.com" matches example.com only
      --no-sasl-identity       the sending identity is always the envelope sender
      --password-env NAME      environment variable with the store password
                               (default MAILWARDEN_STORE_PASSWORD)
      --password-file PATH     file with the store password (a mounted Secret)
      --lookup-timeout DUR     store lookup timeout (default 1s)`;
