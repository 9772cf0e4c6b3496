import { ConfigError } from '../api/config-error.ts';
import { InvalidLimitError } from '../policy/limits.ts';
import { PolicyServerError } from '../policy/server.ts';
import { ManifestsError } from '../stores/manifests.ts';
import { StoreError } from '../stores/store.ts';
import { terminalSafeIo } from './terminal-text.ts';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, processIo, UsageError, type Io } from './usage.ts';

type Command = (args: readonly string[], io: Io) => Promise<number>;

/**
 * Each command is loaded when it runs: the policy daemon then never loads the operator's
 * Kubernetes client, heap that every full garbage collection would mark again
 * (docs/performance.md).
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  policyd: async () => (await import('./policyd.ts')).policydCommand,
  decide: async () => (await import('./decide.ts')).decideCommand,
  validate: async () => (await import('./validate.ts')).validateCommand,
  crds: async () => (await import('./crds.ts')).crdsCommand,
  operator: async () => (await import('./operator.ts')).operatorCommand,
  apply: async () => (await import('./apply.ts')).applyCommand,
  diff: async () => (await import('./diff.ts')).diffCommand,
  export: async () => (await import('./export.ts')).exportCommand,
  'migrate-to-amavisd': async () => (await import('./migrate-to-amavisd.ts')).migrateToAmavisdCommand,
};

export const MAIN_HELP = `Usage: mailwarden COMMAND [options]

Postfix per-user send/receive restrictions (iRedMail-compatible).

Commands:
  policyd    serve the Postfix policy protocol from a store
  decide     print the action for one request (--explain says why)
  validate   check MailUserRestriction documents
  crds       print or write the CustomResourceDefinitions
  operator   reconcile MailUserRestriction resources into their stores
  apply      write MailUserRestriction documents to a store without Kubernetes
  diff       show what apply would change in a store (exit 1 when something would)
  export     write a store's lists as MailUserRestriction documents
  migrate-to-amavisd
             copy the vmail.mailbox columns' lists into the amavisd tables (--dry-run first)

Run "mailwarden COMMAND --help" for a command's options.`;

/** Runs the CLI; returns the exit code (0 ok, 1 failure, 2 usage). */
export async function main(args: readonly string[], rawIo: Io = processIo): Promise<number> {
  // Every command's output escapes control and invisible characters (values reach it from
  // documents, stores and requests); the daemons' JSON logs are written elsewhere.
  const io = terminalSafeIo(rawIo);
  const [name, ...rest] = args;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(MAIN_HELP + '\n');
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  try {
    if (load === undefined) throw new UsageError(`unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
    return await (await load())(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`mailwarden: ${error.message}\n`);
      return EXIT_USAGE;
    }
    if (error instanceof ManifestsError) {
      io.stderr.write(`mailwarden: the manifests are not valid:\n${error.message}\n`);
      return EXIT_FAILURE;
    }
    if (error instanceof ConfigError || error instanceof StoreError || error instanceof PolicyServerError || error instanceof InvalidLimitError) {
      io.stderr.write(`mailwarden: ${error.message}\n`);
      return EXIT_FAILURE;
    }
    io.stderr.write(`mailwarden: ${(error as Error)?.stack ?? String(error)}\n`);
    return EXIT_FAILURE;
  }
}
