import { readFileSync } from 'node:fs';
import { ConfigError } from '../api/config-error.ts';

/** The store password's default environment variable. */
export const DEFAULT_PASSWORD_ENV = 'MAILWARDEN_STORE_PASSWORD';

/**
 * The store password from a file (a mounted Secret) or an environment variable — never from
 * the command line, where `ps` would show it. Undefined when none is configured.
 */
export function readPassword(source: { passwordFile?: string | undefined; passwordEnv?: string | undefined }, env = process.env): string | undefined {
  const file = source.passwordFile ?? env.MAILWARDEN_STORE_PASSWORD_FILE;
  if (file !== undefined && file !== '') {
    try {
      // A trailing newline is an artefact of `echo` and editors, never part of a password.
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      throw new ConfigError(`password file ${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  const name = source.passwordEnv ?? DEFAULT_PASSWORD_ENV;
  const value = env[name];
  if (value === undefined && source.passwordEnv !== undefined) {
    throw new ConfigError(`environment variable ${name} (the store password) is not set`);
  }
  return value;
}
