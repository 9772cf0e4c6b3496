import { asciiAddress } from '../restrictions/idn.ts';
import type { MailUserRestriction } from './mail-user-restriction.ts';

/**
 * Which MailUserRestriction owns a mailbox when several name it: the oldest (creation time,
 * then name). One rule for the operator, which reports the others as Conflict, and for the
 * policy daemon's Kubernetes store, which decides from the owner only — so status and answers
 * agree.
 */

type Owned = Pick<MailUserRestriction, 'metadata' | 'spec'>;

/**
 * Where a restriction applies: one mailbox in one backend of one namespace. A restriction
 * without backendRef is served by the Kubernetes store (the resource is the store): its backend
 * part is empty, which no MailBackend name can be.
 */
export function targetKey(r: Owned): string | undefined {
  const mailbox = r.spec?.mailbox;
  if (typeof mailbox !== 'string') return undefined;
  const backend = r.spec?.backendRef?.name;
  if (backend !== undefined && typeof backend !== 'string') return undefined;
  return `${r.metadata.namespace ?? ''}/${backend ?? ''}/${mailboxName(mailbox)}`;
}

/**
 * A mailbox as stores key it: lower-case, an internationalised domain in its ASCII form, so
 * `user@bücher.example` and `user@xn--bcher-kva.example` are one mailbox (one owner).
 */
export function mailboxName(mailbox: string): string {
  return asciiAddress(mailbox.trim().toLowerCase());
}

/**
 * Of the restrictions that write the same mailbox of the same backend, the oldest owns it
 * (creation time, then name); the others are in conflict and write nothing. A restriction being
 * deleted keeps ownership until its finalizer is done, so its cleanup cannot wipe what the next
 * owner wrote.
 */
export function ownerOf<T extends Owned>(candidates: readonly T[], target: string): T | undefined {
  let owner: T | undefined;
  for (const r of candidates) {
    if (targetKey(r) !== target) continue;
    if (owner === undefined || isOlder(r, owner)) owner = r;
  }
  return owner;
}

/** True when `a` was created before `b` (ties broken by name): `a` wins a mailbox over `b`. */
export function isOlder(a: Pick<MailUserRestriction, 'metadata'>, b: Pick<MailUserRestriction, 'metadata'>): boolean {
  const ta = createdAt(a);
  const tb = createdAt(b);
  if (ta !== tb) return ta < tb;
  if (a.metadata.name !== b.metadata.name) return a.metadata.name < b.metadata.name;
  return (a.metadata.namespace ?? '') < (b.metadata.namespace ?? '');
}

function createdAt(r: Pick<MailUserRestriction, 'metadata'>): number {
  const value = (r.metadata as { creationTimestamp?: string | Date }).creationTimestamp;
  if (value === undefined) return Number.MAX_SAFE_INTEGER;
  const time = value instanceof Date ? value.getTime() : Date.parse(value);
  return Number.isNaN(time) ? Number.MAX_SAFE_INTEGER : time;
}
