import { createHash } from 'node:crypto';
import type { MailBackend } from '../api/mail-backend.ts';
import { storeSettingsOf } from '../api/mail-backend.ts';
import { keyOf, keyOfObject } from '../api/object-key.ts';
import type { Logger } from '../observability/logger.ts';
import { openAnyUrlStore } from '../stores/url-store.ts';
import { StoreError, type MailboxWriter } from '../stores/store.ts';
import type { BackendSecrets } from './credentials.ts';

export type StoreOpener = (url: string, settings: unknown, secrets: BackendSecrets) => Promise<MailboxWriter>;

export const defaultStoreOpener: StoreOpener = (url, settings, secrets) => openAnyUrlStore(url, settings, { semantics: 'default', password: secrets.password, ca: secrets.ca });

interface Entry {
  readonly fingerprint: string;
  readonly store: Promise<MailboxWriter>;
}

/**
 * One open store per MailBackend, reopened when the backend's spec, password or CA changes
 * (rotation) and closed when the backend goes. The fingerprint hashes the password, so it is
 * never kept in clear beside the connection.
 */
export class BackendConnections {
  readonly #open: StoreOpener;
  readonly #logger: Logger | undefined;
  readonly #entries = new Map<string, Entry>();

  constructor(params: { open?: StoreOpener; logger?: Logger } = {}) {
    this.#open = params.open ?? defaultStoreOpener;
    this.#logger = params.logger;
  }

  /** The store for `backend` with its Secrets' password and CA; opens or reopens as needed. */
  async get(backend: MailBackend, secrets: BackendSecrets): Promise<MailboxWriter> {
    const key = keyOfObject(backend);
    const settings = storeSettingsOf(backend.spec);
    const fingerprint = createHash('sha256')
      .update(JSON.stringify([backend.spec.url, settings]))
      .update('\0')
      .update(secrets.password ?? '')
      .update('\0')
      .update(secrets.ca ?? '')
      .digest('hex');
    const existing = this.#entries.get(key);
    if (existing !== undefined && existing.fingerprint === fingerprint) return existing.store;
    if (existing !== undefined) {
      this.#logger?.info({ backend: key }, 'backend settings or credentials changed: reconnecting');
      void this.#closeEntry(existing);
    }
    const store = this.#open(backend.spec.url, settings, secrets);
    const entry: Entry = { fingerprint, store };
    this.#entries.set(key, entry);
    // A store that fails to open is not kept: the next reconcile tries again.
    store.catch(() => {
      if (this.#entries.get(key) === entry) this.#entries.delete(key);
    });
    return store;
  }

  async forget(namespace: string, name: string): Promise<void> {
    const key = keyOf(namespace, name);
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    await this.#closeEntry(entry);
  }

  async closeAll(): Promise<void> {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(entries.map((e) => this.#closeEntry(e)));
  }

  async #closeEntry(entry: Entry): Promise<void> {
    try {
      await (await entry.store).close();
    } catch (error) {
      if (!(error instanceof StoreError)) this.#logger?.debug({ err: error }, 'closing a backend store failed');
    }
  }
}
