import { keyOfObject } from '../api/object-key.ts';
import type { Logger } from '../observability/logger.ts';
import { StoreError } from '../stores/store.ts';
import type { BackendObject } from './types.ts';

/**
 * What status may say about a failed store operation. A store that could not be reached gets
 * one fixed sentence whatever the cause: a raw error ("ECONNREFUSED 10.0.0.7:5432" against a
 * timeout against a protocol error) in the status of a resource whose URL names any host would
 * make the operator a port scanner for whoever can read that status. The error itself goes to
 * the operator's log, for the cluster admin. Everything else (a missing Secret, a table the
 * credentials cannot read, a value the store refused) is the store's or our own sentence.
 */
export const UNREACHABLE = "the store could not be reached (refused, timed out or closed); the operator's log has the error";

export function statusText(error: unknown, logger: Logger, backend: BackendObject): string {
  if (error instanceof StoreError && error.kind === 'Unavailable') {
    logger.warn({ backend: keyOfObject(backend), err: error.message }, 'store unreachable');
    return UNREACHABLE;
  }
  return error instanceof Error ? error.message : String(error);
}
