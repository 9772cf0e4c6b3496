import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The repository root, wherever the tests run from. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export function repoPath(...parts: string[]): string {
  return path.join(REPO_ROOT, ...parts);
}
