import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { HealthServer } from '../observability/health-server.ts';
import { createLogger } from '../observability/logger.ts';
import { parseDuration } from '../api/durations.ts';
import { parseListen } from '../policy/config.ts';
import { Operator } from '../operator/manager.ts';
import { RESTRICTED_ACTIONS } from '../reconcilers/daemon-allowance.ts';
import { WebhookSecretMissingError } from '../webhook/certificate-keeper.ts';
import { EXIT_FAILURE, EXIT_OK, parseCommandLine, UsageError, type Io } from './usage.ts';

export const OPERATOR_HELP = `Usage: mailwarden operator [options]

Reconciles MailUserRestriction and MailBackend resources into their SQL or LDAP stores.
Runs in a pod (in-cluster credentials) or against --kubeconfig. SIGTERM finishes the reconciles
in flight, releases the leader lease and exits 0.

      --kubeconfig PATH        kubeconfig file (default: in-cluster, then $KUBECONFIG, ~/.kube/config)
      --namespace NS           watch only NS (repeatable; default all namespaces)
      --workers N              concurrent MailUserRestriction reconciles (default 4)
      --resync DUR             full resync, which also corrects drift (default 5m)
      --leader-elect           campaign for a Lease so that one replica writes
      --lease-namespace NS     where the Lease lives (default $POD_NAMESPACE or "default")
      --lease-name NAME        default mailwarden-operator
      --id NAME                identity in the Lease (default $POD_NAME or host name and pid)
      --http-listen ADDR       /healthz, /readyz, /metrics (default 0.0.0.0:8080; "off")
      --log-level LEVEL        fatal|error|warn|info|debug (default info)
      --backend-secret NAME    the only Secrets (by name, in each watched namespace) the
                               operator reads for MailBackends (repeatable; default any it
                               is allowed to read); a MailBackend naming another is refused

PolicyDaemon (sidecar injection and Service mode):
      --no-policy-daemons      do not reconcile PolicyDaemons (no pod/Deployment watches)
      --policyd-image IMAGE    daemon image when a PolicyDaemon names none
                               (default ghcr.io/mailwarden/mailwarden:<this version>)
      --policyd-image-pull-secret NAME  pull secret for that image, added to the daemons'
                               pods (repeatable; the Secret must exist in their namespace)
      --policyd-allowed-image IMAGE  an image a PolicyDaemon may name besides the default
                               (repeatable; others are refused: NotAllowed)
      --policyd-allowed-action WORD  REDIRECT, BCC, FILTER, HOLD or DISCARD: an answer a
                               PolicyDaemon may give (repeatable; by default none)
      --policyd-metrics-namespace NS  pods of NS may scrape Service-mode daemons' metrics
                               (their NetworkPolicy; repeatable; by default none)
      --webhook-listen ADDR    serve the sidecar injection webhook (HTTPS), e.g. 0.0.0.0:9443
      --webhook-service NAME   the Service in front of the webhook (default mailwarden-webhook)
      --webhook-namespace NS   its namespace, and the certificate Secret's
                               (default $POD_NAMESPACE or "default")
      --webhook-service-port N its port (default 443)
      --webhook-url URL        reach the webhook at this https:// URL instead of a Service
      --webhook-secret NAME    Secret holding the webhook CA and certificate, in the Service's
                               namespace (default <configuration>-webhook-tls, or
                               mailwarden-webhook-tls); it must exist (the Helm
                               chart creates it, empty): filled and rotated, never created
      --webhook-configuration NAME     MutatingWebhookConfiguration kept current
                               (default mailwarden-policyd-injector)
      --webhook-cert-dir DIR   serve tls.crt and tls.key from DIR (cert-manager's Secret,
                               mounted) and reread them as they are renewed; the operator
                               then writes neither the certificate Secret nor the caBundle`;

export async function operatorCommand(args: readonly string[], io: Io): Promise<number> {
  const { values } = parseCommandLine(args, {
    kubeconfig: { type: 'string' },
    namespace: { type: 'string', multiple: true },
    workers: { type: 'string' },
    resync: { type: 'string' },
    'leader-elect': { type: 'boolean' },
    'lease-namespace': { type: 'string' },
    'lease-name': { type: 'string' },
    id: { type: 'string' },
    'http-listen': { type: 'string' },
    'log-level': { type: 'string' },
    'no-policy-daemons': { type: 'boolean' },
    'policyd-image': { type: 'string' },
    'policyd-image-pull-secret': { type: 'string', multiple: true },
    'policyd-allowed-image': { type: 'string', multiple: true },
    'policyd-allowed-action': { type: 'string', multiple: true },
    'policyd-metrics-namespace': { type: 'string', multiple: true },
    'backend-secret': { type: 'string', multiple: true },
    'webhook-listen': { type: 'string' },
    'webhook-service': { type: 'string' },
    'webhook-namespace': { type: 'string' },
    'webhook-service-port': { type: 'string' },
    'webhook-url': { type: 'string' },
    'webhook-secret': { type: 'string' },
    'webhook-configuration': { type: 'string' },
    'webhook-cert-dir': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    io.stdout.write(OPERATOR_HELP + '\n');
    return EXIT_OK;
  }
  const workers = values.workers === undefined ? 4 : Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new UsageError('--workers takes a whole number from 1 to 64');
  const allowedActions = values['policyd-allowed-action'] ?? [];
  for (const word of allowedActions) if (!RESTRICTED_ACTIONS.includes(word)) throw new UsageError(`--policyd-allowed-action takes one of ${RESTRICTED_ACTIONS.join(', ')}`);
  const logger = createLogger({ level: values['log-level'] ?? 'info', name: 'mailwarden-operator' });
  const kc = new KubeConfig();
  if (values.kubeconfig !== undefined) kc.loadFromFile(values.kubeconfig);
  else kc.loadFromDefault();

  let exitCode = EXIT_OK;
  // Resolves with why the operator is to stop: a signal, or leadership lost (the manager calls
  // back at once, so nothing here polls for it).
  let stopFor!: (why: string) => void;
  const stopRequested = new Promise<string>((resolve) => (stopFor = resolve));
  const operator = new Operator({
    kubeConfig: kc,
    namespaces: values.namespace,
    workers,
    resyncMs: values.resync === undefined ? undefined : parseDuration(values.resync),
    leaderElection: values['leader-elect']
      ? {
          namespace: values['lease-namespace'] ?? io.env.POD_NAMESPACE ?? 'default',
          name: values['lease-name'],
          identity: values.id ?? io.env.POD_NAME,
        }
      : undefined,
    onLostLeadership: () => {
      exitCode = EXIT_FAILURE;
      stopFor('leadership lost');
    },
    logger,
    backendSecretNames: values['backend-secret'],
    policyDaemons: values['no-policy-daemons']
      ? undefined
      : {
          image: values['policyd-image'] ?? defaultImage(),
          imagePullSecrets: values['policyd-image-pull-secret'],
          allowance: { images: values['policyd-allowed-image'], actions: allowedActions },
          metricsNamespaces: values['policyd-metrics-namespace'],
          webhook: webhookOptions(values, io.env),
        },
  });
  const listen = values['http-listen'] ?? '0.0.0.0:8080';
  const health = listen === 'off' ? undefined : new HealthServer({ registry: operator.registry, ready: () => operator.ready() });
  const http = await health?.listen(parseListen(listen));
  logger.info({ http, namespaces: values.namespace ?? 'all', leaderElection: Boolean(values['leader-elect']) }, 'operator starting');
  try {
    await operator.start();
  } catch (error) {
    // Stop what did start (the informers' watches), or the process would never exit.
    await operator.stop().catch((err: unknown) => logger.error({ err }, 'stopping after a failed start failed'));
    await health?.close();
    if (!(error instanceof WebhookSecretMissingError)) throw error;
    logger.error({ certificateSecret: error.secret }, error.message);
    logger.flush();
    return EXIT_FAILURE;
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'signal received: draining');
      stopFor(signal);
    });
  }
  const why = await stopRequested;
  logger.info({ reason: why }, 'stopping');
  await operator.stop().catch((err: unknown) => logger.error({ err }, 'stopping failed'));
  await health?.close();
  logger.info({ exitCode }, 'operator stopped');
  logger.flush();
  return exitCode;
}

/** The image of this very release: the daemon and the operator ship as one image. */
function defaultImage(): string {
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return `ghcr.io/mailwarden/mailwarden:${version}`;
}

/** The webhook's options from the flags; undefined (no webhook) without --webhook-listen. */
function webhookOptions(values: Record<string, string | boolean | string[] | undefined>, env: NodeJS.ProcessEnv) {
  const listen = values['webhook-listen'] as string | undefined;
  if (listen === undefined) return undefined;
  const address = parseListen(listen);
  if ('path' in address) throw new UsageError('--webhook-listen takes HOST:PORT');
  const namespace = (values['webhook-namespace'] as string | undefined) ?? env.POD_NAMESPACE ?? 'default';
  const service = (values['webhook-service'] as string | undefined) ?? 'mailwarden-webhook';
  const port = values['webhook-service-port'] === undefined ? 443 : Number(values['webhook-service-port']);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError('--webhook-service-port takes a port number');
  const url = values['webhook-url'] as string | undefined;
  if (url !== undefined && !url.startsWith('https://')) throw new UsageError('--webhook-url must be an https:// URL');
  const urlHost = url === undefined ? undefined : new URL(url).hostname.replace(/^\[|\]$/g, '');
  const isIp = urlHost !== undefined && /^[\d.]+$|:/.test(urlHost);
  return {
    listen: address,
    endpoint: url !== undefined ? { url } : { service: { name: service, namespace, port } },
    secretNamespace: namespace,
    // <configuration>-webhook-tls: the name the Helm chart's RBAC grants (its configuration is named after the release).
    secretName: (values['webhook-secret'] as string | undefined) ?? `${(values['webhook-configuration'] as string | undefined) ?? 'mailwarden'}-webhook-tls`,
    configurationName: values['webhook-configuration'] as string | undefined,
    certificateDir: values['webhook-cert-dir'] as string | undefined,
    // The names the API server dials: the Service's, or the URL's host.
    dnsNames: urlHost === undefined ? [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`] : isIp ? [] : [urlHost],
    ipAddresses: isIp ? [urlHost!] : [],
  };
}
