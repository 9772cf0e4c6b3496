import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { HealthServer } from '../observability/health-server.ts';
import type { Logger } from '../observability/logger.ts';
import { PolicyMetrics } from '../observability/metrics.ts';
import { openStore } from '../stores/open.ts';
import { isWblistReader, type StoreReader } from '../stores/store.ts';
import { ConfigError } from '../api/config-error.ts';
import { realClock, type Clock } from '../time/clock.ts';
import { decisionOptionsOf, parseListen, resolverOptionsOf, serverLimitsOf, storeCaFile, wblistSettingsOf, type PolicydConfig } from './config.ts';
import { answerOf, DecisionService, type Decider } from './decision-handler.ts';
import { mailboxSourceFor } from './mailbox-source.ts';
import { SchemaCheck } from './schema-check.ts';
import { PolicyServer, type PolicyServerAddress } from './server.ts';
import { WblistDecider } from './wblist-decisions.ts';

/**
 * The policy daemon assembled: store → mailbox source → decision service → policy server,
 * plus the health/metrics HTTP server. `start` brings it up; `stop` drains it (SIGTERM).
 */
export class PolicyDaemon {
  #config: PolicydConfig;
  readonly #logger: Logger;
  /** Times the server, the cache and the previous store's close (tests drive it). */
  readonly #clock: Clock;
  #password: string | undefined;
  /** The store's CA file as it was opened with: a rotated CA reopens the store. */
  #storeCa: string | undefined;
  /**
   * What the server asks, for answers and for the failure action alike; swapped whole by
   * {@link reconfigure}, so connections stay open and no request mixes two configurations.
   */
  #decisions: Decider | undefined;
  #store: StoreReader | undefined;
  #schemaCheck: SchemaCheck | undefined;
  #server: PolicyServer | undefined;
  #health: HealthServer | undefined;
  #metrics: PolicyMetrics | undefined;
  #stopping = false;

  constructor(params: { config: PolicydConfig; logger: Logger; password?: string | undefined; clock?: Clock }) {
    this.#clock = params.clock ?? realClock;
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
    this.#storeCa = await readStoreCa(config);
    const store = await openStore({
      store: config.store,
      settings: config.storeSettings,
      semantics: decision.semantics,
      password: this.#password,
      ca: this.#storeCa,
      logger: this.#logger.child({ component: 'store' }),
    });
    this.#store = store;
    this.#checkSchema(store);
    const metrics = new PolicyMetrics({ store: store.kind });
    metrics.reportStaleness(() => staleOf(this.#store));
    this.#metrics = metrics;
    this.#decisions = this.#decisionService(store, config, metrics);
    const requestDuration = metrics.requestDuration;
    const server = new PolicyServer({
      clock: this.#clock,
      handler: (request) => answerOf(this.#decisions!, request),
      failureAction: () => this.#decisions!.failureAction,
      limits: serverLimitsOf(config),
      logger: this.#logger.child({ component: 'policy-server' }),
      metrics: {
        onRequest: (latencyMs) => requestDuration.observe(latencyMs / 1000),
        onProtocolError: (reason) => metrics.protocolErrors.labels(reason).inc(),
        onHandlerFailure: () => metrics.decisions.failure.inc(),
        onConnectionShed: (reason) => metrics.connectionsShed[reason].inc(),
      },
    });
    metrics.reportOpenConnections(() => server.connections);
    this.#server = server;

    let http: AddressInfo | string | undefined;
    let policy: PolicyServerAddress;
    try {
      if (config.http.listen !== 'off') {
        this.#health = new HealthServer({ registry: metrics.registry, ready: () => this.ready() });
        http = await this.#health.listen(parseListen(config.http.listen));
      }
      policy = await server.listen(parseListen(config.listen));
    } catch (error) {
      // A daemon that cannot serve Postfix must not stay up answering /healthz: close what did
      // start, so the process exits non-zero and Kubernetes restarts it.
      await this.#release();
      throw error;
    }
    this.#logger.info(
      { listen: policy, http, store: store.kind, semantics: decision.semantics, allowAction: decision.allowAction, failureAction: decision.failureAction },
      'policy daemon ready',
    );
    return { policy, http };
  }

  /**
   * Applies a new configuration without dropping connections: decision options, cache and the
   * store (reopened when its URL, settings or password changed). The new store is opened before
   * anything is swapped, so a failure leaves the old configuration serving. Listen addresses and
   * limits need a restart and are kept.
   */
  async reconfigure(config: PolicydConfig, password: string | undefined): Promise<void> {
    const old = this.#config;
    if (this.#stopping || this.#metrics === undefined || this.#store === undefined) return;
    if (config.listen !== old.listen || config.http.listen !== old.http.listen || JSON.stringify(config.limits) !== JSON.stringify(old.limits)) {
      this.#logger.warn({}, 'listen addresses and limits change on restart only; the rest of the new configuration is applied');
    }
    const storeCa = await readStoreCa(config);
    const storeChanged =
      config.store !== old.store ||
      JSON.stringify(config.storeSettings) !== JSON.stringify(old.storeSettings) ||
      password !== this.#password ||
      storeCa !== this.#storeCa ||
      config.semantics !== old.semantics;
    const previous = this.#store;
    const store = storeChanged
      ? await openStore({ store: config.store ?? '', settings: config.storeSettings, semantics: decisionOptionsOf(config).semantics, password, ca: storeCa, logger: this.#logger.child({ component: 'store' }) })
      : previous;
    if (store !== previous && !isWblistReader(store) && store.whenLoaded !== undefined) {
      // A store that fills in the background takes over once it has its data, not before.
      try {
        await store.whenLoaded();
      } catch (error) {
        await store.close();
        throw error;
      }
    }
    // A fresh source (empty cache): the old one's entries were read under the old options.
    this.#decisions = this.#decisionService(store, config, this.#metrics);
    this.#store = store;
    if (store !== previous) this.#checkSchema(store);
    this.#config = { ...config, listen: old.listen, http: old.http, limits: old.limits };
    this.#password = password;
    this.#storeCa = storeCa;
    if (store !== previous) {
      // Lookups already running on the old store finish first (they are bounded by the lookup timeout).
      const grace = (resolverOptionsOf(old).lookupTimeoutMs ?? 1_000) + 1_000;
      this.#clock.setTimeout(() => void previous.close().catch((error: unknown) => this.#logger.warn({ err: error }, 'closing the previous store failed')), grace);
    }
    const decision = decisionOptionsOf(config);
    this.#logger.info({ store: store.kind, storeReopened: store !== previous, semantics: decision.semantics, allowAction: decision.allowAction, rejectAction: decision.rejectAction, failureAction: decision.failureAction }, 'configuration reloaded');
  }

  #decisionService(store: StoreReader, config: PolicydConfig, metrics: PolicyMetrics): Decider {
    const decision = decisionOptionsOf(config);
    if (isWblistReader(store)) {
      return new WblistDecider({ store, options: decision, wblist: wblistSettingsOf(config), resolver: resolverOptionsOf(config), metrics, logger: this.#logger.child({ component: 'decision' }), clock: this.#clock });
    }
    const source = mailboxSourceFor({ store, decision, options: resolverOptionsOf(config), metrics, logger: this.#logger.child({ component: 'resolver' }), clock: this.#clock });
    return new DecisionService({ source, options: decision, metrics, logger: this.#logger.child({ component: 'decision' }) });
  }

  /** Starts checking `store`'s schema, instead of any check of a previous store. */
  #checkSchema(store: StoreReader): void {
    this.#schemaCheck?.stop();
    const check = new SchemaCheck({ store, logger: this.#logger.child({ component: 'store' }), clock: this.#clock });
    this.#schemaCheck = check;
    void check.start();
  }

  /** What keeps the daemon from being ready, when it is its store's schema. */
  get storeProblem(): string | undefined {
    return this.#schemaCheck?.problem;
  }

  /** Ready to answer Postfix. */
  ready(): boolean {
    // Listening and not draining. A store outage does not make the daemon unready: it still
    // answers every request (last known good data, else the failure action, spec §4), and an
    // unready sidecar would take its whole Postfix pod out of service. Store health is in
    // /metrics (mailwarden_store_errors_total) and in the MailBackend's status.
    // The exceptions: an in-memory store that has not loaded its data yet answers nobody, and a
    // store whose schema lacks the configured columns is a configuration error (every answer would
    // be the failure action), so the daemon is not ready until it is fixed.
    const check = this.#schemaCheck;
    if (check !== undefined && (!check.settled || check.problem !== undefined)) return false;
    const store = this.#store;
    const loaded = store === undefined || isWblistReader(store) ? true : (store.loaded?.() ?? true);
    return !this.#stopping && this.#server?.address() !== undefined && loaded;
  }

  /** Stop accepting, answer what is in flight, close the store. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#schemaCheck?.stop();
    this.#logger.info({}, 'policy daemon stopping: draining connections');
    await this.#release(timeoutMs);
    this.#logger.info({}, 'policy daemon stopped');
  }

  async #release(timeoutMs = 10_000): Promise<void> {
    this.#stopping = true;
    await this.#server?.close({ timeoutMs });
    await this.#health?.close();
    await this.#store?.close();
  }
}

/** Whether a store answers from data its source can no longer confirm (the Kubernetes store). */
function staleOf(store: StoreReader | undefined): boolean {
  return store !== undefined && !isWblistReader(store) && (store.stale?.() ?? false);
}

/**
 * The content of the store's tls.caFile, read once: compared at reload and handed to the store.
 * Undefined when none is named or it cannot be read (the store then reads the file itself and
 * reports why it cannot).
 */
async function readStoreCa(config: PolicydConfig): Promise<string | undefined> {
  const file = storeCaFile(config);
  return file === undefined ? undefined : readFile(file, 'utf8').catch(() => undefined);
}
