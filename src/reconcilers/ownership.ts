import type { MailUserRestriction } from '../api/mail-user-restriction.ts';
import { keyOfObject } from '../api/object-key.ts';
import { targetKey } from '../api/restriction-owner.ts';

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
    const key = keyOfObject(obj);
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
    const key = keyOfObject(obj);
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
