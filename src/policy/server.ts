/**
 * The Postfix SMTPD access policy delegation server: accepts connections on TCP or a unix socket,
 * bounds them (see {@link PolicyServerLimits}), and hands each connection to a
 * {@link PolicyConnection}. Deciding is the handler's job; this file only owns sockets and time.
 */
import { lstat, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { realClock, type Clock } from '../time/clock.ts';
import { PolicyConnection, type ConnectionContext } from './connection.ts';
import { resolveLimits, type PolicyServerLimits } from './limits.ts';
import { silentLogger, type Logger } from '../observability/logger.ts';
import type { PolicyServerMetrics } from './observe.ts';
import { WarningThrottle } from './warning-throttle.ts';
import type { PolicyHandler } from './request.ts';

export interface PolicyServerOptions {
  /** Decides each request; must not throw, but if it does the failure action is answered. */
  readonly handler: PolicyHandler;
  /**
   * Answer when the handler throws, rejects or returns a non-action (default: spec §4's). A
   * function is asked at each such failure: the owner of the handler's configuration then also
   * owns this answer, and a reload changes both at once.
   */
  readonly failureAction?: string | (() => string);
  readonly limits?: Partial<PolicyServerLimits>;
  readonly logger?: Logger;
  readonly metrics?: PolicyServerMetrics;
  /** Times the timeouts and latencies (default: real time). */
  readonly clock?: Clock;
}

export type ListenTarget = { readonly host: string; readonly port: number } | { readonly path: string };
export type PolicyServerAddress = { readonly host: string; readonly port: number } | { readonly path: string };

export interface CloseOptions {
  /** After this long, connections still open are destroyed and close resolves. Default 10 s. */
  readonly timeoutMs?: number;
}

export type PolicyServerErrorKind =
  /** Another process is serving on the address (a live unix socket, or the port is taken). */
  | 'AddressInUse'
  /** The path exists and is not a socket: we refuse to delete what we did not create. */
  | 'PathNotSocket'
  /** listen was called twice, or after close. */
  | 'InvalidState'
  | 'ListenFailed';

export class PolicyServerError extends Error {
  readonly kind: PolicyServerErrorKind;
  constructor(kind: PolicyServerErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PolicyServerError';
    this.kind = kind;
  }
}

export const DEFAULT_FAILURE_ACTION = 'DEFER_IF_PERMIT Service temporarily unavailable';

/**
 * Connections the kernel completes before we accept them (capped by net.core.somaxconn, 4096 by
 * default since Linux 5.4). When this queue is full the kernel drops new SYNs, and the client
 * (Postfix too) retries only after a second: a flood of connections that outpaces our accepting
 * for a moment (each one evicts another once the limits are reached) must not fill it. Node's
 * default is 511.
 */
const LISTEN_BACKLOG = 4096;

export class PolicyServer {
  readonly #limits: PolicyServerLimits;
  readonly #logger: Logger;
  readonly #metrics: PolicyServerMetrics;
  readonly #context: ConnectionContext;
  readonly #clock: Clock;
  readonly #connections = new Set<PolicyConnection>();
  /** The open connections without a request in flight, the longest-waiting first (see {@link PolicyConnection}). */
  readonly #evictable = new Set<PolicyConnection>();
  /** Open TCP connections by client address (unix-socket clients are not counted here). */
  readonly #perClient = new Map<string, ClientConnections>();
  readonly #warnings: WarningThrottle;
  readonly #server: Server;
  #address: PolicyServerAddress | undefined;
  #sweeper: unknown;
  #state: 'new' | 'listening' | 'closing' | 'closed' = 'new';
  #closed: Promise<void> | undefined;
  #onIdle: (() => void) | undefined;

  constructor(options: PolicyServerOptions) {
    this.#limits = resolveLimits(options.limits);
    this.#logger = options.logger ?? silentLogger;
    this.#metrics = options.metrics ?? {};
    const clock = options.clock ?? realClock;
    this.#clock = clock;
    this.#warnings = new WarningThrottle(this.#logger, clock);
    const failureAction = options.failureAction ?? DEFAULT_FAILURE_ACTION;
    this.#context = {
      handler: options.handler,
      failureAction: typeof failureAction === 'string' ? () => failureAction : failureAction,
      limits: this.#limits,
      logger: this.#logger,
      warn: (kind, context, msg) => this.#warnings.warn(`disconnected:${kind}`, context, msg),
      metrics: this.#metrics,
      now: () => clock.now(),
      onEvictable: (connection, evictable) => this.#onEvictable(connection, evictable),
      onClose: (connection) => this.#onConnectionClosed(connection),
    };
    // allowHalfOpen: a client that sends its requests and then shuts down its side still gets
    // every answer. noDelay: answers are single small writes that must not wait for Nagle.
    this.#server = createServer({ allowHalfOpen: true, noDelay: true, keepAlive: true }, (socket) => this.#accept(socket));
    this.#server.on('error', (err) => this.#logger.error({ err }, 'policy server error'));
  }

  /** The limits in force (defaults merged with the options). */
  get limits(): PolicyServerLimits {
    return this.#limits;
  }

  /** How many connections are open. */
  get connections(): number {
    return this.#connections.size;
  }

  /** Starts serving. A stale unix socket file (nobody listening) is removed first. */
  async listen(target: ListenTarget): Promise<PolicyServerAddress> {
    if (this.#state !== 'new') throw new PolicyServerError('InvalidState', `cannot listen: the policy server is ${this.#state}`);
    this.#state = 'listening';
    if ('path' in target) await removeStaleSocket(target.path);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const where = 'path' in target ? target.path : `${target.host}:${target.port}`;
        reject(
          err.code === 'EADDRINUSE'
            ? new PolicyServerError('AddressInUse', `${where} is already in use`, { cause: err })
            : new PolicyServerError('ListenFailed', `cannot listen on ${where}: ${err.message}`, { cause: err }),
        );
      };
      this.#server.once('error', onError);
      const listening = (): void => {
        this.#server.off('error', onError);
        resolve();
      };
      if ('path' in target) this.#server.listen({ path: target.path, backlog: LISTEN_BACKLOG }, listening);
      else this.#server.listen({ port: target.port, host: target.host, backlog: LISTEN_BACKLOG }, listening);
    }).catch((err: unknown) => {
      this.#state = 'closed';
      throw err;
    });
    const bound = this.#server.address();
    this.#address = typeof bound === 'string' || bound === null ? { path: 'path' in target ? target.path : String(bound) } : { host: bound.address, port: bound.port };
    this.#startSweeper();
    this.#logger.info({ address: this.#address }, 'policy server listening');
    return this.#address;
  }

  /** Where the server listens (the real port when 0 was asked), or undefined before listen. */
  address(): PolicyServerAddress | undefined {
    return this.#address;
  }

  /**
   * Graceful shutdown: stop accepting, answer every complete request already received, then close
   * each connection (idle ones at once). Resolves when all are closed, or after `timeoutMs` by
   * destroying the rest.
   */
  close(options: CloseOptions = {}): Promise<void> {
    this.#closed ??= this.#close(options.timeoutMs ?? 10_000);
    return this.#closed;
  }

  async #close(timeoutMs: number): Promise<void> {
    const wasListening = this.#state === 'listening';
    this.#state = 'closing';
    const stopped = wasListening ? new Promise<void>((resolve) => this.#server.close(() => resolve())) : Promise.resolve();
    const drained = new Promise<void>((resolve) => {
      this.#onIdle = resolve;
      if (this.#connections.size === 0) resolve();
    });
    for (const connection of this.#connections) connection.drain();
    const deadline = this.#clock.setTimeout(() => {
      if (this.#connections.size > 0) this.#logger.warn({ open: this.#connections.size }, 'policy server close deadline reached; destroying connections');
      for (const connection of this.#connections) connection.destroy();
    }, timeoutMs);
    try {
      await Promise.all([stopped, drained]);
    } finally {
      this.#clock.clearTimeout(deadline);
      this.#clock.clearTimeout(this.#sweeper);
      this.#state = 'closed';
    }
    this.#logger.info({}, 'policy server closed');
  }

  #accept(socket: Socket): void {
    if (this.#state !== 'listening') {
      socket.destroy();
      return;
    }
    const client = socket.remoteAddress;
    const fromClient = client === undefined ? undefined : this.#perClient.get(client);
    // One address over its share competes only with its own connections; otherwise a full server
    // frees the slot held longest without a request in flight, whoever holds it.
    const contenders = fromClient !== undefined && fromClient.open >= this.#limits.maxConnectionsPerClient ? fromClient.evictable : this.#connections.size >= this.#limits.maxConnections ? this.#evictable : undefined;
    if (contenders !== undefined) {
      const victim = first(contenders);
      if (victim === undefined) {
        this.#warnings.warn('refused', { remote: client ?? 'unix', open: this.#connections.size, fromClient: fromClient?.open ?? 0 }, 'policy connection refused: every slot has a request in flight');
        this.#metrics.onConnectionShed?.('refused');
        socket.on('error', () => {}); // a reset racing the destroy is of no interest
        socket.destroy();
        return;
      }
      this.#warnings.warn('evicted', { remote: victim.remote, for: client ?? 'unix', open: this.#connections.size }, 'policy connection closed to make room: the longest-waiting connection without a request in flight');
      this.#metrics.onConnectionShed?.('evicted');
      victim.evict();
    }
    const connection = new PolicyConnection(socket, this.#context);
    this.#connections.add(connection);
    this.#evictable.add(connection);
    if (client !== undefined) {
      const own = this.#perClient.get(client);
      if (own === undefined) this.#perClient.set(client, { open: 1, evictable: new Set([connection]) });
      else {
        own.open++;
        own.evictable.add(connection);
      }
    }
    this.#metrics.onConnections?.(this.#connections.size);
    this.#logger.debug({ remote: connection.remote }, 'policy connection opened');
  }

  /** Keeps the evictable sets in the order their waits began: a wait that begins anew goes last. */
  #onEvictable(connection: PolicyConnection, evictable: boolean): void {
    if (!this.#connections.has(connection)) return;
    const own = connection.client === undefined ? undefined : this.#perClient.get(connection.client);
    this.#evictable.delete(connection);
    own?.evictable.delete(connection);
    if (evictable) {
      this.#evictable.add(connection);
      own?.evictable.add(connection);
    }
  }

  #onConnectionClosed(connection: PolicyConnection): void {
    if (!this.#connections.delete(connection)) return;
    this.#evictable.delete(connection);
    const client = connection.client;
    if (client !== undefined) {
      const own = this.#perClient.get(client);
      if (own !== undefined) {
        own.evictable.delete(connection);
        if (--own.open === 0) this.#perClient.delete(client);
      }
    }
    this.#metrics.onConnections?.(this.#connections.size);
    this.#logger.debug({ remote: connection.remote }, 'policy connection closed');
    if (this.#connections.size === 0) this.#onIdle?.();
  }

  /**
   * One timer for all connections instead of one per request: it runs a few times per shortest
   * timeout, so a timeout fires at most a quarter late, and the hot path never touches a timer.
   */
  #startSweeper(): void {
    const shortest = Math.min(this.#limits.requestTimeoutMs, this.#limits.idleTimeoutMs, this.#limits.lingerMs, this.#limits.writeTimeoutMs);
    const every = Math.min(1000, Math.max(5, Math.floor(shortest / 4)));
    const sweep = (): void => {
      const now = this.#clock.now();
      for (const connection of this.#connections) connection.check(now);
      if (this.#state === 'listening' || this.#state === 'closing') this.#sweeper = this.#clock.setTimeout(sweep, every);
    };
    this.#sweeper = this.#clock.setTimeout(sweep, every);
  }
}

/** One client address's open connections. */
interface ClientConnections {
  open: number;
  /** Those without a request in flight, the longest-waiting first. */
  readonly evictable: Set<PolicyConnection>;
}

/** The first member in insertion order. */
function first<T>(set: Set<T>): T | undefined {
  for (const member of set) return member;
  return undefined;
}

/** Removes `path` when it is a unix socket nobody answers on; refuses anything else. */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new PolicyServerError('ListenFailed', `cannot inspect ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!isSocket) throw new PolicyServerError('PathNotSocket', `${path} exists and is not a socket; not removing it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new PolicyServerError('AddressInUse', `${path} is in use by a running server`);
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw new PolicyServerError('ListenFailed', `cannot remove stale socket ${path}: ${err.message}`, { cause: err });
  });
}
