import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { findDuplicateMailboxes, parseRestrictionFile, type DocumentProblem, type SourcedRestriction } from '../api/documents.ts';
import { displayName, listsOf, MAIL_USER_RESTRICTION_KIND } from '../api/mail-user-restriction.ts';
import { schemaProblems, type ListSchema } from '../restrictions/schema-forms.ts';
import type { MailboxRecord } from '../restrictions/lists.ts';
import type { Logger } from '../observability/logger.ts';
import { StoreError, type MailboxReader } from './store.ts';
import { FileWatcher } from '../files/watcher.ts';
import { StringPool } from '../controller/cached-object.ts';
import { ListsPool, peekEach } from './in-memory-records.ts';
import { mailboxName } from '../api/restriction-owner.ts';

/** Raised when the manifests cannot be loaded; `problems` holds one line per problem. */
export class ManifestsError extends Error {
  readonly problems: readonly DocumentProblem[];
  constructor(problems: readonly DocumentProblem[]) {
    super(problems.map((p) => `${p.source}: ${p.message}`).join('\n'));
    this.name = 'ManifestsError';
    this.problems = problems;
  }
}

export interface ManifestsStoreOptions {
  /** Files and directories (searched recursively for *.yaml / *.yml). */
  readonly paths: readonly string[];
  readonly logger?: Logger;
  /** Reload when a file changes (default true). */
  readonly watch?: boolean;
  /** Also re-check every this many ms (default 30 s), for file systems where watching misses changes. */
  readonly pollIntervalMs?: number;
}

export interface RestrictionSet {
  readonly restrictions: SourcedRestriction[];
  readonly files: string[];
  /** Every problem found, duplicates across files included; empty when the set is valid. */
  readonly problems: DocumentProblem[];
}

/**
 * Reads every MailUserRestriction under `paths`, collecting every problem instead of stopping.
 * Mailboxes and entries are checked against the forms `schema` holds (default vmail: the
 * manifests store and the vmail columns; amavisd for its tables).
 */
export async function readRestrictions(paths: readonly string[], schema: ListSchema = 'vmail'): Promise<RestrictionSet> {
  const restrictions: SourcedRestriction[] = [];
  const problems: DocumentProblem[] = [];
  let files: string[] = [];
  try {
    files = await yamlFiles(paths);
  } catch (error) {
    if (!(error instanceof ManifestsError)) throw error;
    problems.push(...error.problems);
  }
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      problems.push({ source: file, message: `cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` });
      continue;
    }
    const parsed = parseRestrictionFile(file, text);
    restrictions.push(...parsed.restrictions);
    problems.push(...parsed.problems);
    for (const { document, source } of parsed.restrictions) {
      // The lists only: invalidEntries are kept as stored (the amavisd writer refuses to add one).
      for (const message of schemaProblems(document.spec.mailbox, listsOf(document.spec), schema)) problems.push({ source, message: `${MAIL_USER_RESTRICTION_KIND} ${displayName(document)}: ${message}` });
    }
  }
  problems.push(...findDuplicateMailboxes(restrictions));
  return { restrictions, files, problems };
}

/** Like {@link readRestrictions}, but a set with any problem is refused whole (ManifestsError). */
export async function loadRestrictions(paths: readonly string[], schema: ListSchema = 'vmail'): Promise<RestrictionSet> {
  const set = await readRestrictions(paths, schema);
  if (set.problems.length > 0) throw new ManifestsError(set.problems);
  return set;
}

/**
 * The embedded default store: MailUserRestriction YAML documents from files or directories,
 * held in memory and reloaded on change. A bad edit keeps the last good set and logs why.
 */
export class ManifestsStore implements MailboxReader {
  readonly kind = 'manifests';
  readonly #options: ManifestsStoreOptions;
  #mailboxes = new Map<string, MailboxRecord>();
  #fingerprint = '';
  #listeners: (() => void)[] = [];
  #watcher: FileWatcher | undefined;
  #reloading: Promise<void> | undefined;
  #loaded = false;

  constructor(options: ManifestsStoreOptions) {
    this.#options = options;
  }

  /** Loads the initial set (throws ManifestsError when it is not valid) and starts watching. */
  async start(): Promise<void> {
    const { restrictions, files } = await loadRestrictions(this.#options.paths);
    this.#install(restrictions, await this.#fingerprintOf(files));
    this.#options.logger?.info({ mailboxes: this.#mailboxes.size, files: files.length }, 'manifests loaded');
    if (this.#options.watch ?? true) this.#watch();
  }

  get size(): number {
    return this.#mailboxes.size;
  }

  ready(): boolean {
    return this.#loaded;
  }

  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  peek(key: string): MailboxRecord | undefined {
    return this.#mailboxes.get(key);
  }

  async lookup(keys: readonly string[], _signal?: AbortSignal): Promise<ReadonlyMap<string, MailboxRecord>> {
    if (!this.#loaded) throw new StoreError('Unavailable', 'the manifests have not been loaded');
    return peekEach(keys, (key) => this.#mailboxes.get(key));
  }

  /** Re-reads the files now; resolves after the new set is installed or refused. */
  reload(): Promise<void> {
    this.#reloading ??= this.#reload().finally(() => (this.#reloading = undefined));
    return this.#reloading;
  }

  async close(): Promise<void> {
    this.#watcher?.close();
    await this.#reloading;
  }

  async #reload(): Promise<void> {
    const log = this.#options.logger;
    try {
      const { restrictions, files } = await loadRestrictions(this.#options.paths);
      const fingerprint = await this.#fingerprintOf(files);
      const before = this.#mailboxes.size;
      this.#install(restrictions, fingerprint);
      log?.info({ mailboxes: this.#mailboxes.size, before }, 'manifests reloaded');
      for (const listener of this.#listeners) listener();
    } catch (error) {
      if (error instanceof ManifestsError) {
        for (const p of error.problems) log?.error({ source: p.source }, `manifests reload refused, keeping the last good set: ${p.source}: ${p.message}`);
      } else {
        log?.error({ err: error }, 'manifests reload failed, keeping the last good set');
      }
    }
  }

  #install(restrictions: readonly SourcedRestriction[], fingerprint: string): void {
    const mailboxes = new Map<string, MailboxRecord>();
    const lists = new ListsPool({ strings: new StringPool() });
    for (const { document } of restrictions) {
      const address = mailboxName(document.spec.mailbox);
      mailboxes.set(address, { address, lists: lists.of(listsOf(document.spec)) });
    }
    this.#mailboxes = mailboxes;
    this.#fingerprint = fingerprint;
    this.#loaded = true;
  }

  #watch(): void {
    this.#watcher = new FileWatcher({
      what: 'manifests',
      // An event reloads whatever the files' sizes and times say: a rewrite within the same
      // millisecond and of the same size changes neither.
      onEvent: () => void this.reload(),
      onPoll: () => void this.#pollOnce(),
      debounceMs: 200,
      pollMs: this.#options.pollIntervalMs ?? 30_000,
      recursive: true,
      logger: this.#options.logger,
    });
    this.#watcher.watch(this.#options.paths);
  }

  async #pollOnce(): Promise<void> {
    try {
      const fingerprint = await this.#fingerprintOf(await yamlFiles(this.#options.paths));
      if (fingerprint !== this.#fingerprint) await this.reload();
    } catch {
      // A path that vanished mid-scan: the next poll or a watch event will reload.
    }
  }

  async #fingerprintOf(files: readonly string[]): Promise<string> {
    const parts: string[] = [];
    for (const file of files) {
      try {
        const s = await stat(file);
        parts.push(`${file}:${s.size}:${s.mtimeMs}`);
      } catch {
        parts.push(`${file}:gone`);
      }
    }
    return parts.join('|');
  }
}

/** Every *.yaml / *.yml file under `paths`, sorted, following symlinks (ConfigMap mounts). */
export async function yamlFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    let info;
    try {
      info = await stat(p);
    } catch (error) {
      throw new ManifestsError([{ source: p, message: `cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` }]);
    }
    if (info.isFile()) out.push(p);
    else await walk(p, out);
  }
  return out.sort();
}

async function walk(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const entry of entries) {
    // Kubernetes ConfigMap mounts keep old copies in hidden ..timestamp folders.
    if (entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    let isDir = entry.isDirectory();
    let isFile = entry.isFile();
    if (entry.isSymbolicLink()) {
      const s = await stat(full).catch(() => undefined);
      isDir = s?.isDirectory() ?? false;
      isFile = s?.isFile() ?? false;
    }
    if (isDir) await walk(full, out);
    else if (isFile && /\.ya?ml$/i.test(entry.name)) out.push(full);
  }
}
