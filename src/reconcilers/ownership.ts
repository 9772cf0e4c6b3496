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
