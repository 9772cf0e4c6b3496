/**
 * Fakes of mailwarden's own interfaces for the reconcilers' unit tests: listers over arrays, a
 * store that keeps lists in a map, a recorder of status patches and Events, a logger that keeps
 * its lines. No fake of Kubernetes or of a database: the integration tests run the real ones.
 */
import { Writable } from 'node:stream';
import { Registry, Counter } from 'prom-client';
import { createLogger } from '../../../src/observability/logger.ts';
import { changedLists, diffLists } from '../../../src/restrictions/list-diff.ts';
import { EMPTY_LISTS, type RestrictionLists } from '../../../src/restrictions/lists.ts';
import { StoreError, type ApplyResult, type MailboxWriter, type ReachedEntry, type StoredMailbox } from '../../../src/stores/store.ts';
import { StatusWriter } from '../../../src/reconcilers/status.ts';
import type { EventSink, EventTarget, Lister } from '../../../src/reconcilers/types.ts';

export const NOW = new Date('2026-12-04T15:00:00Z');

/** A Lister over fixed objects. */
export function lister<T extends { metadata?: { namespace?: string; name?: string } }>(...objects: T[]): Lister<T> {
  return {
    get: (namespace, name) => objects.find((o) => (o.metadata?.namespace ?? '') === namespace && o.metadata?.name === name),
    list: (namespace) => objects.filter((o) => namespace === undefined || (o.metadata?.namespace ?? '') === namespace),
  };
}

/**
 * A store writer holding lists per mailbox, comparing as the real ones do (as sets, writing only
 * on a difference); `fail` makes the named operation throw.
 */
export class FakeStore implements MailboxWriter {
  readonly kind = 'fake';
  readonly lists = new Map<string, RestrictionLists>();
  readonly writes: string[] = [];
  fail: Partial<Record<'observe' | 'apply' | 'clear' | 'ping', StoreError>> = {};

  /** Further addresses of a mailbox's entry (an LDAP shadowAddress), each to its mailbox. */
  readonly #aliases: Record<string, string>;

  constructor(mailboxes: Record<string, Partial<RestrictionLists>> = {}, aliases: Record<string, string> = {}) {
    for (const [mailbox, lists] of Object.entries(mailboxes)) this.lists.set(mailbox, { ...EMPTY_LISTS, ...lists });
    this.#aliases = aliases;
  }

  /** Each mailbox entryOf was asked for, in order. */
  readonly entryLookups: string[] = [];

  async entryOf(mailbox: string): Promise<ReachedEntry> {
    this.entryLookups.push(mailbox);
    const id = this.lists.has(mailbox) ? mailbox : this.#aliases[mailbox];
    if (id === undefined || !this.lists.has(id)) throw new StoreError('MailboxNotFound', `mailbox ${mailbox} not found`);
    return { id, addresses: [id, ...Object.keys(this.#aliases).filter((alias) => this.#aliases[alias] === id)], primary: id };
  }

  async mailboxesWithLists(): Promise<StoredMailbox[]> {
    throw new Error('not used by the reconcilers');
  }

  async ping(): Promise<void> {
    if (this.fail.ping) throw this.fail.ping;
  }

  async observe(mailbox: string): Promise<RestrictionLists> {
    if (this.fail.observe) throw this.fail.observe;
    const lists = this.lists.get(mailbox);
    if (lists === undefined) throw new StoreError('MailboxNotFound', `mailbox ${mailbox} not found`);
    return lists;
  }

  async apply(mailbox: string, lists: RestrictionLists): Promise<ApplyResult> {
    if (this.fail.apply) throw this.fail.apply;
    return this.#write('apply', mailbox, lists);
  }

  async clear(mailbox: string): Promise<ApplyResult> {
    if (this.fail.clear) throw this.fail.clear;
    return this.#write('clear', mailbox, EMPTY_LISTS);
  }

  #write(what: string, mailbox: string, lists: RestrictionLists): ApplyResult {
    const stored = this.lists.get(mailbox);
    if (stored === undefined) throw new StoreError('MailboxNotFound', `mailbox ${mailbox} not found`);
    const changed = changedLists(diffLists(stored, lists));
    if (changed.length === 0) return { changed, written: false };
    this.lists.set(mailbox, lists);
    this.writes.push(`${what} ${mailbox}`);
    return { changed, written: true };
  }

  async close(): Promise<void> {}
}

export interface RecordedEvent {
  readonly type: 'Normal' | 'Warning';
  readonly kind: string;
  readonly name: string;
  readonly reason: string;
  readonly message: string;
}

/** Status patches, Events and outcome counts as a reconcile made them, and the debug lines. */
export class Recorder {
  readonly patches: { namespace: string; name: string; status: Record<string, unknown> }[] = [];
  readonly events: RecordedEvent[] = [];
  readonly lines: { level: string; msg: string }[] = [];
  readonly registry = new Registry();
  readonly outcomes = new Counter({ name: 'outcomes_total', help: 'outcomes', labelNames: ['kind', 'ready', 'reason'] as const, registers: [this.registry] });
  readonly logger = createLogger({
    level: 'debug',
    destination: new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        for (const line of chunk.toString().split('\n').filter(Boolean)) this.lines.push(JSON.parse(line) as { level: string; msg: string });
        done();
      },
    }),
  });
  readonly sink: EventSink = {
    normal: (t, reason, message) => this.events.push(event('Normal', t, reason, message)),
    warning: (t, reason, message) => this.events.push(event('Warning', t, reason, message)),
  };

  statusWriter(kind: string): StatusWriter {
    return new StatusWriter({
      kind,
      apiVersion: 'mailwarden.io/v1alpha1',
      patch: async (namespace, name, status) => void this.patches.push({ namespace, name, status }),
      events: this.sink,
      outcomes: this.outcomes,
      logger: this.logger,
      now: () => NOW,
    });
  }

  /** The single status patch of a reconcile (fails on more than one). */
  onlyPatch(): Record<string, unknown> | undefined {
    if (this.patches.length > 1) throw new Error(`${this.patches.length} status patches in one reconcile`);
    return this.patches[0]?.status;
  }

  /** The Ready condition of the single patch. */
  ready(): { status: string; reason: string; message: string } | undefined {
    const conditions = this.onlyPatch()?.conditions as { type: string; status: string; reason: string; message: string }[] | undefined;
    return conditions?.find((c) => c.type === 'Ready');
  }

  debugLines(): string[] {
    return this.lines.filter((l) => l.level === 'debug').map((l) => l.msg);
  }

  async counted(): Promise<Record<string, number>> {
    const values = (await this.outcomes.get()).values;
    return Object.fromEntries(values.map((v) => [`${v.labels.kind}/${v.labels.reason}`, v.value]));
  }
}

function event(type: 'Normal' | 'Warning', t: EventTarget, reason: string, message: string): RecordedEvent {
  return { type, kind: t.kind, name: t.metadata.name, reason, message };
}
