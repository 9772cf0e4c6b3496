import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, repoPath } from './paths.ts';

/** One compatibility case of `vectors-iredapd.json` (see ../shared/spec/). */
export interface IredapdVector {
  readonly id: string;
  readonly why: string;
  readonly tags: readonly string[];
  readonly mailbox_rows: readonly Record<string, string | number | null>[];
  readonly request: Readonly<Record<string, string>>;
  readonly expected_action: string;
  readonly expected_by_store?: Readonly<Record<'postgresql' | 'mysql', string>>;
}

/** The in-repo copy of the spec's vectors (the spec folder is beside the repo, not in it). */
export const VECTORS_PATH = repoPath('test/fixtures/vectors-iredapd.json');
/** Where the spec itself lives in a development checkout, when it is there. */
export const SPEC_VECTORS_PATH = path.resolve(REPO_ROOT, '../shared/spec/vectors-iredapd.json');

export function loadVectors(): IredapdVector[] {
  const specCopy = existsSync(SPEC_VECTORS_PATH) ? SPEC_VECTORS_PATH : VECTORS_PATH;
  return JSON.parse(readFileSync(specCopy, 'utf8')) as IredapdVector[];
}
