import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from '../observability/logger.ts';

export interface FileWatcherOptions {
  /** What is watched, for log lines: `config directory`, `manifests`. */
  readonly what: string;
  /** Called once the paths have been quiet for `debounceMs` after a change event. */
  readonly onEvent: () => void;
  /** Called every `pollMs`, whether or not an event came. */
  readonly onPoll: () => void;
  /**
   * Quiet time after an event: a ConfigMap update (a symlink swap) or an editor's save is several
   * events, and the files are read once they settle.
   */
  readonly debounceMs: number;
  /** Period of `onPoll`, for file systems whose events go missing (some network and overlay mounts); 0: no polling. */
  readonly pollMs: number;
  /** Watch each directory's whole subtree, not only its entries. */
  readonly recursive?: boolean;
  readonly logger?: Logger | undefined;
}

/**
 * The one way mailwarden notices that files changed: fs.watch on files or directories, events
 * debounced, and a poll behind them in case an event is lost. It says when to look; what
 * "changed" means (content, size and time) is the caller's, who reads the files again. Nothing it
 * holds keeps the process alive.
 */
export class FileWatcher {
  readonly #o: FileWatcherOptions;
  readonly #watchers = new Map<string, FSWatcher>();
  #timer: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: FileWatcherOptions) {
    this.#o = options;
  }

  /** Watches exactly `paths` from now on (paths no longer named are let go); starts the poll on the first call. */
  watch(paths: Iterable<string>): void {
    if (this.#closed) return;
    const wanted = new Set(paths);
    for (const [path, watcher] of this.#watchers) {
      if (wanted.has(path)) continue;
      watcher.close();
      this.#watchers.delete(path);
    }
    for (const path of wanted) {
      if (this.#watchers.has(path)) continue;
      try {
        const watcher = watch(path, { recursive: this.#o.recursive ?? false, persistent: false }, () => this.#schedule());
        watcher.on('error', (error) => this.#o.logger?.warn({ err: error, path }, `watching ${this.#o.what} failed; polling only`));
        this.#watchers.set(path, watcher);
      } catch (error) {
        this.#o.logger?.warn({ err: error, path }, `cannot watch ${this.#o.what}; polling only`);
      }
    }
    if (this.#poll === undefined && this.#o.pollMs > 0) {
      this.#poll = setInterval(() => this.#o.onPoll(), this.#o.pollMs);
      this.#poll.unref();
    }
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    clearInterval(this.#poll);
    for (const watcher of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#o.onEvent(), this.#o.debounceMs);
    this.#timer.unref();
  }
}
