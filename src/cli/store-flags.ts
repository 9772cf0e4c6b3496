import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../api/config-error.ts';
import { openWritableStore } from '../stores/open.ts';
import type { MailboxWriter } from '../stores/store.ts';
import type { ListSchema } from '../restrictions/schema-forms.ts';
import { readPassword } from './secrets.ts';
import { UsageError, type Io } from './usage.ts';

/** The flags of the commands that open a SQL or LDAP store for writing (apply, diff, export). */
export const STORE_FLAGS = {
  store: { type: 'string' },
  'store-schema': { type: 'string' },
  settings: { type: 'string' },
  'password-env': { type: 'string' },
  'password-file': { type: 'string' },
} as const;

export const STORE_FLAGS_HELP = `      --store URL              postgres://user@host/vmail, mysql://…, ldap(s)://… (no password)
      --store-schema NAME      SQL store: vmail (vmail.mailbox columns, the default) or amavisd
                               (the amavisd database's white/blacklist tables, iRedMail since 2015)
      --settings FILE          YAML store settings (schema, table/columns, base DN, bind DN, TLS …)
      --password-env NAME      environment variable with the password (default MAILWARDEN_STORE_PASSWORD)
      --password-file PATH     file with the password`;

interface StoreFlagValues {
  readonly store?: string | undefined;
  readonly 'store-schema'?: string | undefined;
  readonly settings?: string | undefined;
  readonly 'password-env'?: string | undefined;
  readonly 'password-file'?: string | undefined;
}

/** Opens the store the flags name; `command` is for the usage message. */
export async function openStoreFromFlags(command: string, values: StoreFlagValues, io: Io): Promise<MailboxWriter> {
  if (values.store === undefined) throw new UsageError(`${command} needs --store URL`);
  let settings = await readSettingsFile(values.settings);
  const schema = values['store-schema'];
  if (schema !== undefined) settings = { ...(typeof settings === 'object' && settings !== null ? settings : {}), schema };
  return openWritableStore({
    store: values.store,
    settings,
    semantics: 'default',
    password: readPassword({ passwordEnv: values['password-env'], passwordFile: values['password-file'] }, io.env),
  });
}

/** A YAML store settings file ({} without one). */
export async function readSettingsFile(file: string | undefined): Promise<unknown> {
  if (file === undefined) return {};
  try {
    return parseYaml(await readFile(file, 'utf8')) ?? {};
  } catch (error) {
    throw new ConfigError(`settings file ${file}: ${(error as Error).message.split('\n')[0]}`);
  }
}

/** The forms the opened store holds (its kind says whether it is the amavisd tables). */
export function listSchemaOfStore(store: MailboxWriter): ListSchema {
  return store.kind.startsWith('amavisd') ? 'amavisd' : 'vmail';
}
