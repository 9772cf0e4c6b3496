import { createLogger } from '../observability/logger.ts';
import { loadPolicydConfig } from '../policy/config.ts';
import { ConfigReloader } from '../policy/config-reload.ts';
import { PolicyDaemon } from '../policy/daemon.ts';
import { applyPolicydV8Flags } from '../policy/runtime-flags.ts';
import { keepTickShapes } from '../policy/tick-shapes.ts';
import { readPassword } from './secrets.ts';
import { DECISION_FLAGS, DECISION_FLAGS_HELP, decisionOverrides, EXIT_OK, parseCommandLine, type Io } from './usage.ts';

export const POLICYD_HELP = `Usage: mailwarden policyd [--listen HOST:PORT|unix:/PATH] --store STORE [options]

Serves Postfix's SMTPD access policy delegation protocol. Point Postfix at it with
  smtpd_recipient_restrictions = check_policy_service { inet:127.0.0.1:7777, timeout=10s,
      { default_action = DEFER_IF_PERMIT Policy service unavailable } }, permit_mynetworks, ...
SIGTERM stops accepting, answers what is in flight and exits 0.

      --listen ADDR            where Postfix connects (default 127.0.0.1:7777)
      --http-listen ADDR       /healthz, /readyz, /metrics (default 127.0.0.1:9090; "off")
      --cache-ttl DUR          how long a fetched mailbox is reused (default 30s)
      --log-level LEVEL        fatal|error|warn|info|debug|trace|silent (default info)

${DECISION_FLAGS_HELP}`;

export async function policydCommand(args: readonly string[], io: Io): Promise<number> {
  const { values } = parseCommandLine(args, {
    ...DECISION_FLAGS,
    listen: { type: 'string', short: 'l' },
    'http-listen': { type: 'string' },
    'cache-ttl': { type: 'string' },
    'log-level': { type: 'string' },
  });
  if (values.help) {
    io.stdout.write(POLICYD_HELP + '\n');
    return EXIT_OK;
  }
  const overrides = {
    ...decisionOverrides(values),
    listen: values.listen,
    http: values['http-listen'] === undefined ? undefined : { listen: values['http-listen'] },
    cache: values['cache-ttl'] === undefined ? undefined : { ttl: values['cache-ttl'] },
    logLevel: values['log-level'],
  };
  applyPolicydV8Flags();
  keepTickShapes();
  const config = await loadPolicydConfig(values.config, overrides);
  const logger = createLogger({ level: config.logLevel });
  const daemon = new PolicyDaemon({ config, logger, password: readPassword(config, io.env) });
  const { policy } = await daemon.start();
  // The config file and password file are reloaded when they change (mounted ConfigMap/Secret).
  const reloader = new ConfigReloader({ configFile: values.config, overrides, initial: config, readPassword: (c) => readPassword(c, io.env), apply: (c, p) => daemon.reconfigure(c, p), logger });
  await reloader.start();
  if ('port' in policy) {
    io.stderr.write(
      `mailwarden policy daemon listening on ${policy.host}:${policy.port}. Point Postfix at it (main.cf):\n` +
        `  smtpd_recipient_restrictions = check_policy_service { inet:${policy.host}:${policy.port}, timeout=10s, { default_action = DEFER_IF_PERMIT Policy service unavailable } }, permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination\n`,
    );
  } else {
    io.stderr.write(`mailwarden policy daemon listening on unix:${policy.path}; in main.cf: check_policy_service unix:${policy.path}\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'signal received');
      reloader.stop();
      daemon.stop().then(resolve, (error: unknown) => {
        logger.error({ err: error }, 'error while stopping');
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  logger.flush();
  return EXIT_OK;
}
