import { ApiException, CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../observability/logger.ts';
import { silentLogger } from '../observability/logger.ts';
import { realClock, type Clock } from '../time/clock.ts';

export interface LeaderElectorOptions {
  kubeConfig: KubeConfig;
  /** Namespace and name of the coordination.k8s.io/v1 Lease. */
  namespace: string;
  name: string;
  /** Unique per replica, e.g. the pod name. */
  identity: string;
  /** How long a lease not renewed stays held; default 15 s. */
  leaseDurationMs?: number;
  /** A leader that has not renewed for this long stops leading; default 10 s, < leaseDurationMs. */
  renewDeadlineMs?: number;
  /** Interval between acquire/renew attempts; default 2 s. */
  retryPeriodMs?: number;
  /** Called when this replica becomes the leader. */
  onStartedLeading?: () => void;
  /** Called when this replica stops leading (lost the lease, or stop()). */
  onStoppedLeading?: () => void;
  /** Called when the observed holder changes (any replica, or '' when released). */
  onNewLeader?: (identity: string) => void;
  logger?: Logger;
  clock?: Clock;
}

/** The options cannot give the guarantee leader election exists for. */
export class LeaderElectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LeaderElectionError';
  }
}

/** A hung request must not hold the loop past the point where it matters. */
class RequestTimeout extends Error {
  constructor(ms: number) {
    super(`lease request took longer than ${ms} ms`);
    this.name = 'RequestTimeout';
  }
}

/**
 * Leader election on a Lease, as client-go's leaderelection package: candidates poll the Lease
 * every retry period and take it once it is free or has not been renewed for a lease duration
 * (measured on the candidate's own clock from when it saw the last change, so clock skew between
 * replicas does not matter); the leader renews every retry period. Every write is a replace with
 * the resourceVersion that was read, so two candidates can never both win.
 *
 * Safety: the leader stops leading once `renewDeadlineMs` has passed since the start of its last
 * successful renew, on a timer that does not wait for a hung request. Since renewDeadline <
 * leaseDuration, the old leader has stepped down before any candidate can see the lease expired.
 *
 * `stop()` releases the lease (holderIdentity cleared) so a standby takes over at its next poll.
 */
export class LeaderElector {
  readonly identity: string;
  readonly #api: CoordinationV1Api;
  readonly #opts: LeaderElectorOptions;
  readonly #leaseMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryMs: number;
  readonly #log: Logger;
  readonly #clock: Clock;
  #leading = false;
  #running = false;
  #loopTimer: unknown;
  #deadlineTimer: unknown;
  #inFlight: Promise<void> | undefined;
  /** The lease as last read or written, and when (on our clock) its content last changed. */
  #observed: V1Lease | undefined;
  #observedAt = 0;
  #observedHolder = '';
  #lastRenewStart = 0;

  constructor(options: LeaderElectorOptions) {
    this.#opts = options;
    this.identity = options.identity;
    this.#leaseMs = options.leaseDurationMs ?? 15_000;
    this.#renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.#retryMs = options.retryPeriodMs ?? 2_000;
    if (!(this.#renewDeadlineMs < this.#leaseMs)) throw new LeaderElectionError('renewDeadlineMs must be shorter than leaseDurationMs');
    if (!(this.#retryMs < this.#renewDeadlineMs)) throw new LeaderElectionError('retryPeriodMs must be shorter than renewDeadlineMs');
    if (!options.identity) throw new LeaderElectionError('identity must not be empty');
    this.#api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.#log = (options.logger ?? silentLogger).child({ lease: `${options.namespace}/${options.name}`, identity: options.identity });
    this.#clock = options.clock ?? realClock;
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** The holder last observed ('' when free or unknown). */
  get leader(): string {
    return this.#observedHolder;
  }

  /** Starts competing for the lease. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(0);
  }

  /**
   * Stops competing; a leader releases the lease (best effort) and calls onStoppedLeading.
   * A failed release only delays the takeover by one lease duration.
   */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#clock.clearTimeout(this.#loopTimer);
    await this.#inFlight;
    // An attempt that was in flight may have won the lease without our knowing it yet.
    if (this.#leading || this.#observedHolder === this.identity) {
      await this.#release().catch((err: unknown) => this.#log.warn({ err }, 'could not release the lease; a standby takes over when it expires'));
      this.#stepDown('stopped');
    }
  }

  /**
   * Abandons the lease without releasing it, as a killed process would: loops stop, nothing is
   * written, callbacks are not called. For tests of failover.
   */
  abandon(): void {
    this.#running = false;
    this.#clock.clearTimeout(this.#loopTimer);
    this.#clock.clearTimeout(this.#deadlineTimer);
    this.#leading = false;
  }

  #schedule(ms: number): void {
    if (!this.#running) return;
    this.#loopTimer = this.#clock.setTimeout(() => {
      this.#inFlight = this.#attempt().finally(() => { this.#inFlight = undefined; });
    }, ms);
  }

  async #attempt(): Promise<void> {
    const started = this.#clock.now();
    let ok = false;
    try {
      ok = await this.#withTimeout(this.#tryAcquireOrRenew(started));
    } catch (err) {
      this.#log.debug({ err: err instanceof Error ? err.message : String(err) }, 'lease attempt failed');
    }
    if (!this.#running) return;
    if (ok) {
      this.#lastRenewStart = started;
      if (!this.#leading) {
        this.#leading = true;
        this.#log.info('became the leader');
        this.#call(this.#opts.onStartedLeading);
      }
      this.#armDeadline();
      return this.#schedule(this.#retryMs);
    }
    if (this.#leading) {
      // Renew failed; keep trying until the deadline timer makes us step down.
      return this.#schedule(this.#retryMs);
    }
    // Candidate: poll with jitter, but wake exactly when the observed lease expires.
    const jittered = this.#retryMs * (1 + 0.2 * Math.random());
    const untilExpiry = this.#observedHolder ? this.#observedAt + this.#leaseDuration() - this.#clock.now() + 1 : jittered;
    this.#schedule(Math.max(0, Math.min(jittered, untilExpiry)));
  }

  #armDeadline(): void {
    this.#clock.clearTimeout(this.#deadlineTimer);
    const due = this.#lastRenewStart + this.#renewDeadlineMs - this.#clock.now();
    this.#deadlineTimer = this.#clock.setTimeout(() => {
      if (!this.#leading) return;
      this.#log.warn({ renewDeadlineMs: this.#renewDeadlineMs }, 'could not renew the lease in time; stopping leading');
      this.#stepDown('lost');
    }, Math.max(0, due));
  }

  #stepDown(why: 'lost' | 'stopped'): void {
    this.#clock.clearTimeout(this.#deadlineTimer);
    if (!this.#leading) return;
    this.#leading = false;
    this.#log.info({ why }, 'stopped leading');
    this.#call(this.#opts.onStoppedLeading);
  }

  /** True when the lease is ours after this call (created, acquired or renewed). */
  async #tryAcquireOrRenew(now: number): Promise<boolean> {
    let lease: V1Lease;
    try {
      lease = await this.#api.readNamespacedLease({ namespace: this.#opts.namespace, name: this.#opts.name });
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 404)) throw err;
      const created = await this.#api.createNamespacedLease({ namespace: this.#opts.namespace, body: this.#leaseBody(undefined, now) });
      this.#observe(created);
      return true;
    }
    this.#observe(lease);
    const holder = lease.spec?.holderIdentity ?? '';
    const mine = holder === this.identity;
    if (!mine && holder && this.#clock.now() < this.#observedAt + this.#leaseDuration()) return false;
    if (!mine && this.#leading) {
      // Someone took it (our renewals must have stalled past the lease duration): not ours.
      this.#stepDown('lost');
      return false;
    }
    const updated = await this.#api.replaceNamespacedLease({ namespace: this.#opts.namespace, name: this.#opts.name, body: this.#leaseBody(lease, now) });
    this.#observe(updated);
    return true;
  }

  #leaseBody(current: V1Lease | undefined, now: number): V1Lease {
    const spec = current?.spec ?? {};
    const acquiring = spec.holderIdentity !== this.identity;
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { ...current?.metadata, name: this.#opts.name, namespace: this.#opts.namespace },
      spec: {
        ...spec,
        holderIdentity: this.identity,
        leaseDurationSeconds: Math.ceil(this.#leaseMs / 1000),
        renewTime: new V1MicroTime(now),
        acquireTime: acquiring ? new V1MicroTime(now) : spec.acquireTime,
        leaseTransitions: acquiring && current ? (spec.leaseTransitions ?? 0) + 1 : (spec.leaseTransitions ?? 0),
      },
    };
  }

  async #release(): Promise<void> {
    const lease = await this.#withTimeout(this.#api.readNamespacedLease({ namespace: this.#opts.namespace, name: this.#opts.name }));
    if (lease.spec?.holderIdentity !== this.identity) return;
    const now = new V1MicroTime(this.#clock.epochMs());
    await this.#withTimeout(this.#api.replaceNamespacedLease({
      namespace: this.#opts.namespace,
      name: this.#opts.name,
      body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now } },
    }));
    this.#log.info('released the lease');
  }

  /** Records the lease; its observation time moves only when its content changes. */
  #observe(lease: V1Lease): void {
    const rv = lease.metadata?.resourceVersion;
    if (rv !== this.#observed?.metadata?.resourceVersion) this.#observedAt = this.#clock.now();
    this.#observed = lease;
    const holder = lease.spec?.holderIdentity ?? '';
    if (holder !== this.#observedHolder) {
      this.#observedHolder = holder;
      this.#call(this.#opts.onNewLeader ? () => this.#opts.onNewLeader?.(holder) : undefined);
    }
  }

  /** The held duration of the observed lease: its own setting, else ours. */
  #leaseDuration(): number {
    const seconds = this.#observed?.spec?.leaseDurationSeconds;
    return seconds && seconds > 0 ? seconds * 1000 : this.#leaseMs;
  }

  #withTimeout<R>(p: Promise<R>): Promise<R> {
    const ms = Math.max(this.#retryMs, Math.min(this.#renewDeadlineMs / 2, 5000));
    let handle: unknown;
    const timeout = new Promise<never>((_, reject) => {
      handle = this.#clock.setTimeout(() => reject(new RequestTimeout(ms)), ms);
    });
    return Promise.race([p, timeout]).finally(() => this.#clock.clearTimeout(handle));
  }

  #call(fn: (() => void) | undefined): void {
    try {
      fn?.();
    } catch (err) {
      this.#log.error({ err }, 'leader election callback threw');
    }
  }
}
