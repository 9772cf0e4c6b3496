import type { AddressInfo } from 'node:net';
import { HealthServer } from '../observability/health-server.ts';
import type { Logger } from '../observability/logger.ts';
import { PolicyMetrics } from '../observability/metrics.ts';
import { openStore } from '../stores/open.ts';
import type { MailboxStore } from '../stores/store.ts';
import { decisionOptionsOf, parseListen, resolverOptionsOf, serverLimitsOf, ConfigError, type PolicydConfig } from './config.ts';
import { createPolicyHandler, DecisionService } from './decision-handler.ts';
import { MailboxResolver } from './mailbox-resolver.ts';
import { PolicyServer, type PolicyServerAddress } from './server.ts';

/**
 * The policy daemon assembled: store → resolver (cache) → decision service → policy server,
 * plus the health/metrics HTTP server. `start` brings it up; `stop` drains it (SIGTERM).
 */
export class PolicyDaemon {
  readonly #config: PolicydConfig;
  readonly #logger: Logger;
  readonly #password: string | undefined;
  #store: MailboxStore | undefined;
  #server: PolicyServer | undefined;
  #health: HealthServer | undefined;
  #metrics: PolicyMetrics | undefined;
  #stopping = false;

  constructor(params: { config: PolicydConfig; logger: Logger; password?: string | undefined }) {
    this.#config = params.config;
    this.#logger = params.logger;
    this.#password = params.password;
  }

  get metrics(): PolicyMetrics | undefined {
    return this.#metrics;
  }

  /** Opens the store, then listens. Returns the bound addresses. */
  async start(): Promise<{ policy: PolicyServerAddress; http: AddressInfo | string | undefined }> {
    const config = this.#config;
    if (config.store === undefined) throw new ConfigError('no store: give --store PATH|URL or "store:" in the config file');
    const decision = decisionOptionsOf(config);
    const store = await openStore({
      store: config.store,
      settings: config.storeSettings,
      semantics: decision.semantics,
      password: this.#password,
      logger: this.#logger.child({ component: 'store' }),
    });
    this.#store = store;
    const metrics = new PolicyMetrics({ store: store.kind });
    this.#metrics = metrics;
    const resolver = new MailboxResolver({
      store,
      decision,
      options: resolverOptionsOf(config),
      metrics,
      logger: this.#logger.child({ component: 'resolver' }),
    });
    const service = new DecisionService({ resolver, options: decision, metrics, logger: this.#logger.child({ component: 'decision' }) });
    const requestDuration = metrics.requestDuration;
    const server = new PolicyServer({
      handler: createPolicyHandler(service),
      failureAction: decision.failureAction,
      limits: serverLimitsOf(config),
      logger: this.#logger.child({ component: 'policy-server' }),
      metrics: {
        onRequest: (latencyMs) => requestDuration.observe(latencyMs / 1000),
        onProtocolError: (reason) => metrics.protocolErrors.labels(reason).inc(),
        onHandlerFailure: () => metrics.decisions.failure.inc(),
        onConnections: (open) => metrics.connections.set(open),
      },
    });
    this.#server = server;

    let http: AddressInfo | string | undefined;
    if (config.http.listen !== 'off') {
      this.#health = new HealthServer({ registry: metrics.registry, ready: () => this.ready() });
      http = await this.#health.listen(parseListen(config.http.listen));
    }
    const policy = await server.listen(parseListen(config.listen));
    this.#logger.info(
      { listen: policy, http, store: store.kind, semantics: decision.semantics, allowAction: decision.allowAction, failureAction: decision.failureAction },
      'policy daemon ready',
    );
    return { policy, http };
  }

  /** Ready to answer: listening, not draining, and the store able to answer. */
  ready(): boolean {
    return !this.#stopping && this.#server?.address() !== undefined && (this.#store?.ready?.() ?? true);
  }

  /** Stop accepting, answer what is in flight, close the store. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#logger.info({}, 'policy daemon stopping: draining connections');
    await this.#server?.close({ timeoutMs });
    await this.#health?.close();
    await this.#store?.close();
    this.#logger.info({}, 'policy daemon stopped');
  }
}
