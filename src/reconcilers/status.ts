import type { Counter } from 'prom-client';
import { findCondition, sameConditions, setCondition, type Condition } from '../api/conditions.ts';
import type { Logger } from '../observability/logger.ts';
import type { EventSink, KubeMeta } from './types.ts';

/**
 * What one reconcile concluded about one object: its Ready condition, the status fields that go
 * with it, and what the controller does next. Reconcilers return these; only the StatusWriter
 * turns them into a status patch, an Event and a metric.
 */
export interface Outcome {
  readonly ready: boolean;
  /** CamelCase, stable, documented (docs/troubleshooting.md). */
  readonly reason: string;
  readonly message: string;
  /**
   * Status fields beside the conditions; a change in one is a reason to write. undefined or null
   * clears the field (merge patch).
   */
  readonly fields?: Readonly<Record<string, StatusField>>;
  /**
   * A feature's own part of the status beside Ready — another condition, its fields, an Event of
   * its own — worked out from the conditions as they will be written and the status as it is.
   */
  readonly extra?: (current: StatusNow) => StatusExtra;
  /** Fields written along with any status write but never a reason for one (a timestamp). */
  readonly stamps?: (now: Date) => Readonly<Record<string, string>>;
  /**
   * An Event recorded with every write of this outcome, in place of the Event on transition:
   * for an outcome that is news each time it happens (a drift corrected), not only when it starts.
   */
  readonly event?: { readonly type: 'Normal' | 'Warning'; readonly message: string };
  /** Look again after this long even if nothing changes (a probe interval, a mailbox yet to exist). */
  readonly requeueAfterMs?: number;
  /** A transient failure: the controller retries with backoff once the status says why. */
  readonly retry?: { readonly cause: unknown };
}

export type StatusField = string | number | readonly string[] | null | undefined;

/** What an Outcome's `extra` is given. */
export interface StatusNow {
  /** The conditions with Ready set. */
  readonly conditions: Condition[];
  readonly status: StatusSubject['status'];
  readonly generation: number | undefined;
  readonly now: Date;
}

/** What an Outcome's `extra` adds: the conditions to write, more fields, maybe an Event. */
export interface StatusExtra {
  readonly conditions: Condition[];
  readonly fields: Readonly<Record<string, StatusField>>;
  /** Recorded whenever returned (the feature decides when it is news). */
  readonly event?: { readonly type: 'Normal' | 'Warning'; readonly reason: string; readonly message: string };
}

/** The outcome asked for a retry: the controller's backoff takes it from here. */
export class RetryError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RetryError';
  }
}

/** An object with the status every mailwarden kind has. */
export interface StatusSubject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata: { readonly name: string; readonly namespace?: string } & KubeMeta;
  readonly status?: { readonly conditions?: readonly Condition[]; readonly observedGeneration?: number; readonly [field: string]: unknown };
}

/** Merge-patches an object's status subresource; a gone object is not an error. */
export type StatusPatch = (namespace: string, name: string, status: Record<string, unknown>) => Promise<void>;

export interface StatusWriterOptions {
  /** The kind and apiVersion the Events name (objects from a list may lack both). */
  readonly kind: string;
  readonly apiVersion: string;
  readonly patch: StatusPatch;
  readonly events: EventSink;
  /** Counts outcomes by kind, ready and reason. */
  readonly outcomes?: Counter<'kind' | 'ready' | 'reason'>;
  readonly logger: Logger;
  readonly now?: () => Date;
}

/**
 * Conditions that mailwarden no longer sets: dropped from the list on the next write, so status
 * does not keep a stale one forever. `Synced` always said the same as `Ready` (docs/architecture.md).
 */
const RETIRED_CONDITIONS: ReadonlySet<string> = new Set(['Synced']);

/**
 * The one place status is written, in the external-secrets way (markAsDone/markAsFailed): the
 * Ready condition, an Event when the reason changes, the outcome counted, and at most one status
 * patch per reconcile — none when nothing changed, since every write queues the object again.
 */
export class StatusWriter {
  readonly #options: StatusWriterOptions;
  readonly #now: () => Date;

  constructor(options: StatusWriterOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * Writes `outcome` to `subject`'s status, then tells the controller what next: throws a
   * RetryError for a retry, else returns the requeue delay if any.
   */
  async settle(subject: StatusSubject, outcome: Outcome): Promise<{ requeueAfterMs?: number } | void> {
    await this.write(subject, outcome);
    if (outcome.retry !== undefined) throw new RetryError(outcome.message, { cause: outcome.retry.cause });
    if (outcome.requeueAfterMs !== undefined) return { requeueAfterMs: outcome.requeueAfterMs };
  }

  /** Ready condition, Event, metric and one status patch, the patch only when something changed. */
  async write(subject: StatusSubject, outcome: Outcome): Promise<void> {
    const { kind, patch, outcomes, logger } = this.#options;
    const now = this.#now();
    const { namespace = '', name, generation } = subject.metadata;
    const status = subject.status;
    const previous = status?.conditions;
    const kept = previous?.filter((c) => !RETIRED_CONDITIONS.has(c.type));
    const ready = setCondition(kept, { type: 'Ready', status: outcome.ready ? 'True' : 'False', reason: outcome.reason, message: outcome.message, observedGeneration: generation }, now);
    const extra = outcome.extra?.({ conditions: ready, status, generation, now });
    const conditions = extra?.conditions ?? ready;
    outcomes?.inc({ kind, ready: String(outcome.ready), reason: outcome.reason });
    if (outcome.event !== undefined) this.event(subject, outcome.event.type, outcome.reason, outcome.event.message);
    if (extra?.event !== undefined) this.event(subject, extra.event.type, extra.event.reason, extra.event.message);

    const fields = Object.entries({ ...outcome.fields, ...extra?.fields }).map(([field, value]) => [field, value ?? null] as const);
    // JSON for the comparison: a field may be a list (its order is the writer's, so it is stable).
    const same = (field: string, value: StatusField) => JSON.stringify(status?.[field] ?? null) === JSON.stringify(value);
    const unchanged = sameConditions(previous, conditions) && status?.observedGeneration === generation && fields.every(([field, value]) => same(field, value));
    if (unchanged) {
      logger.debug({ kind, namespace, name, reason: outcome.reason }, 'status unchanged: not written');
      return;
    }
    if (outcome.event === undefined && findCondition(previous, 'Ready')?.reason !== outcome.reason) {
      this.event(subject, outcome.ready ? 'Normal' : 'Warning', outcome.reason, outcome.message);
    }
    await patch(namespace, name, { observedGeneration: generation, conditions, ...Object.fromEntries(fields), ...outcome.stamps?.(now) });
  }

  /** An Event about `subject` that is not a status transition (a deletion's cleanup). */
  event(subject: StatusSubject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const target = { apiVersion: this.#options.apiVersion, kind: this.#options.kind, metadata: subject.metadata };
    if (type === 'Normal') this.#options.events.normal(target, reason, message);
    else this.#options.events.warning(target, reason, message);
  }
}
