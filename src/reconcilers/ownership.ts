import type { MailUserRestriction } from '../api/mail-user-restriction.ts';

/** Where a restriction writes: one mailbox in one backend of one namespace. */
export function targetKey(r: Pick<MailUserRestriction, 'metadata' | 'spec'>): string | undefined {
  const backend = r.spec?.backendRef?.name;
  const mailbox = r.spec?.mailbox;
  if (typeof backend !== 'string' || typeof mailbox !== 'string') return undefined;
  return `${r.metadata.namespace ?? ''}/${backend}/${mailbox.trim().toLowerCase()}`;
}

/**
 * Of the restrictions that write the same mailbox of the same backend, the oldest owns it
 * (creation time, then name); the others are in conflict and write nothing. A restriction being
 * deleted keeps ownership until its finalizer is done, so its cleanup cannot wipe what the next
 * owner wrote.
 */
export function ownerOf<T extends Pick<MailUserRestriction, 'metadata' | 'spec'>>(candidates: readonly T[], target: string): T | undefined {
  let owner: T | undefined;
  for (const r of candidates) {
    if (targetKey(r) !== target) continue;
    if (owner === undefined || isOlder(r, owner)) owner = r;
  }
  return owner;
}

function isOlder(a: Pick<MailUserRestriction, 'metadata'>, b: Pick<MailUserRestriction, 'metadata'>): boolean {
  const ta = createdAt(a);
  const tb = createdAt(b);
  if (ta !== tb) return ta < tb;
  return a.metadata.name < b.metadata.name;
}

function createdAt(r: Pick<MailUserRestriction, 'metadata'>): number {
  const value = (r.metadata as { creationTimestamp?: string | Date }).creationTimestamp;
  if (value === undefined) return Number.MAX_SAFE_INTEGER;
  const time = value instanceof Date ? value.getTime() : Date.parse(value);
  return Number.isNaN(time) ? Number.MAX_SAFE_INTEGER : time;
}

type Owned = Pick<MailUserRestriction, 'metadata' | 'spec'>;

/**
 * Restrictions by the mailbox they write, kept up to date from the informer's events, so that
 * finding the others on a mailbox (the owner, the ones in conflict) costs the few that share it
 * rather than a scan of every restriction — a scan per event and per reconcile made 10,000
 * restrictions quadratic.
 */
export class TargetIndex<T extends Owned> {
  readonly #byTarget = new Map<string, Map<string, T>>();
  readonly #targetOf = new Map<string, string>();

  /** Records an added or updated restriction; returns its previous target when that changed. */
  set(obj: T): string | undefined {
    const key = objectKey(obj);
    const target = targetKey(obj);
    const previous = this.#targetOf.get(key);
    if (previous !== undefined && previous !== target) this.#remove(previous, key);
    if (target === undefined) {
      this.#targetOf.delete(key);
    } else {
      let group = this.#byTarget.get(target);
      if (group === undefined) this.#byTarget.set(target, (group = new Map()));
      group.set(key, obj);
      this.#targetOf.set(key, target);
    }
    return previous !== target ? previous : undefined;
  }

  delete(obj: T): void {
    const key = objectKey(obj);
    const previous = this.#targetOf.get(key);
    if (previous !== undefined) this.#remove(previous, key);
    this.#targetOf.delete(key);
  }

  /** The restrictions that write `target` (a targetKey). */
  get(target: string): T[] {
    return [...(this.#byTarget.get(target)?.values() ?? [])];
  }

  #remove(target: string, key: string): void {
    const group = this.#byTarget.get(target);
    group?.delete(key);
    if (group?.size === 0) this.#byTarget.delete(target);
  }
}

function objectKey(obj: Owned): string {
  return `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
}
