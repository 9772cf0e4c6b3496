import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FileWatcher } from '../files/watcher.ts';
import type { Logger } from '../observability/logger.ts';
import { loadPolicydConfig, storeCaFile, type PolicydConfig } from './config.ts';

export interface ConfigReloaderOptions {
  /** The YAML config file (a mounted ConfigMap), if any. */
  readonly configFile: string | undefined;
  /** The command-line values, laid over every reload as at start. */
  readonly overrides: Record<string, unknown>;
  /** The store password for a configuration (reads its passwordFile or environment variable). */
  readonly readPassword: (config: PolicydConfig) => string | undefined;
  /** Applies a valid new configuration; a rejection keeps the old one. */
  readonly apply: (config: PolicydConfig, password: string | undefined) => Promise<void>;
  /** The configuration running now (its password file is watched too). */
  readonly initial: PolicydConfig;
  readonly logger: Logger;
  /** Quiet time after a change before reading (a symlink swap is several events). Default 300 ms. */
  readonly debounceMs?: number;
  /** Periodic re-read, in case a file-system event was missed. Default 10 s; 0 turns it off. */
  readonly pollMs?: number;
}

/**
 * Reloads the daemon's configuration when its files change. Kubernetes updates a mounted
 * ConfigMap or Secret by writing a new timestamped directory and swapping the `..data` symlink,
 * so the file's own inode never changes: the directories are watched, not the files, and every
 * change is confirmed by comparing content. A configuration that does not load or apply is
 * logged and the old one keeps serving.
 */
export class ConfigReloader {
  readonly #o: ConfigReloaderOptions;
  readonly #log: Logger;
  readonly #watcher: FileWatcher;
  #fingerprint: string | undefined;
  #current: PolicydConfig;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(options: ConfigReloaderOptions) {
    this.#o = options;
    this.#current = options.initial;
    this.#log = options.logger.child({ component: 'config-reload' });
    this.#watcher = new FileWatcher({
      what: 'a config directory',
      onEvent: () => void this.check(),
      onPoll: () => void this.check(),
      debounceMs: options.debounceMs ?? 300,
      pollMs: options.pollMs ?? 10_000,
      logger: this.#log,
    });
  }

  /** Starts watching; the files as they are now are the baseline. */
  async start(): Promise<void> {
    this.#fingerprint = await this.#readFingerprint(this.#current);
    this.#watchDirectories(this.#current);
  }

  stop(): void {
    this.#stopped = true;
    this.#watcher.close();
  }

  /** Checks now (and applies if the files changed); resolves when done. */
  async check(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#reload().finally(() => (this.#running = undefined));
    await this.#running;
    if (this.#again && !this.#stopped) {
      this.#again = false;
      await this.check();
    }
  }

  async #reload(): Promise<void> {
    const fingerprint = await this.#readFingerprint(this.#current);
    if (fingerprint === this.#fingerprint) return;
    let config: PolicydConfig;
    let password: string | undefined;
    try {
      config = await loadPolicydConfig(this.#o.configFile, this.#o.overrides);
      password = this.#o.readPassword(config);
    } catch (error) {
      // Remember the bad content so it is reported once, not at every poll.
      this.#fingerprint = fingerprint;
      this.#log.error({ err: { message: (error as Error).message } }, 'new configuration rejected; the previous one keeps serving');
      return;
    }
    try {
      await this.#o.apply(config, password);
    } catch (error) {
      this.#fingerprint = fingerprint;
      this.#log.error({ err: { message: (error as Error).message } }, 'new configuration could not be applied; the previous one keeps serving');
      return;
    }
    this.#current = config;
    this.#fingerprint = await this.#readFingerprint(config);
    // The password file may have moved with the new configuration.
    this.#watchDirectories(config);
  }

  /** The files' contents, hashed: what "changed" means. Missing files hash as missing. */
  async #readFingerprint(config: PolicydConfig): Promise<string> {
    const hash = createHash('sha256');
    for (const file of this.#files(config)) {
      hash.update(file).update('\0');
      hash.update(await readFile(file).catch(() => Buffer.from('\0missing\0'))).update('\0');
    }
    return hash.digest('hex');
  }

  #files(config: PolicydConfig): string[] {
    return [this.#o.configFile, config.passwordFile, storeCaFile(config)].filter((f): f is string => f !== undefined && f !== '');
  }

  /**
   * The directories, not the files: Kubernetes updates a mounted ConfigMap or Secret by swapping
   * a symlink, so the file's own inode never changes.
   */
  #watchDirectories(config: PolicydConfig): void {
    this.#watcher.watch(this.#files(config).map((f) => dirname(f)));
  }
}
