import { request, type Agent } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import type { ApiCredentials } from './api-credentials.ts';

/** An HTTP status other than success from the API server (`statusCode` as client-node's errors have it). */
export class ApiStatusError extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.name = 'ApiStatusError';
    this.statusCode = statusCode;
  }
}

export interface CollectionPage<T> {
  readonly items: T[];
  /** `_continue`: the name the informer (after client-node's list type) reads the token by. */
  readonly metadata?: { resourceVersion?: string; _continue?: string };
}

/** Times a page is asked again when the server says to (client-go's REST client: 10). */
const PAGE_RETRIES = 10;
/** The longest wait for one retry, whatever the server says. */
const MAX_RETRY_DELAY_MS = 10_000;

/** No byte for this long ends a watch as TimeoutError (a connection gone silent); bookmarks come about every minute. */
const WATCH_INACTIVITY_MS = 90_000;

/**
 * Lists and watches one collection with {@link ApiCredentials}: the two requests an informer
 * makes, as plain HTTP over the credentials' connection pool. Objects stay the API server's JSON.
 */
export class CollectionClient {
  readonly #credentials: ApiCredentials;
  readonly #sleep: (ms: number) => Promise<unknown>;

  /** `sleep`: how a retry waits (tests drive it). */
  constructor(credentials: ApiCredentials, sleep: (ms: number) => Promise<unknown> = delay) {
    this.#credentials = credentials;
    this.#sleep = sleep;
  }

  /**
   * One page of `path`. A page the server asks to have again later (429, or a 5xx with a retry
   * delay: a watch cache still behind the page's resourceVersion answers 504) is asked again
   * after that delay, as client-go's REST client does, up to {@link PAGE_RETRIES} times: failing
   * it would start a list of every page over.
   */
  async list<T>(path: string, options: { labelSelector?: string; fieldSelector?: string; limit?: number; _continue?: string }): Promise<CollectionPage<T>> {
    const url = this.#url(path, { labelSelector: options.labelSelector, fieldSelector: options.fieldSelector, limit: options.limit, continue: options._continue });
    for (let attempt = 0; ; attempt++) {
      const response = await get(url, this.#headers(), this.#credentials.agent);
      const text = await readAll(response);
      if (response.statusCode === 200) {
        const list = JSON.parse(text) as { items?: T[]; metadata?: { resourceVersion?: string; continue?: string } };
        return { items: list.items ?? [], metadata: { resourceVersion: list.metadata?.resourceVersion, _continue: list.metadata?.continue || undefined } };
      }
      const delay = attempt < PAGE_RETRIES ? retryDelayMs(response, text) : undefined;
      if (delay === undefined) throw new ApiStatusError(response.statusCode ?? 0, `HTTP ${response.statusCode} listing ${path}: ${text.slice(0, 300)}`);
      await this.#sleep(delay);
    }
  }

  /**
   * Watches `path` with `query` (client-node's Watch.watch, which the informer also accepts):
   * `onEvent` for each event, `done` once when the stream ends (null) or fails (an error; HTTP
   * errors carry `statusCode`). Resolves when the response has begun, with a handle to abort it.
   */
  async watch(
    path: string,
    query: Readonly<Record<string, string | boolean>>,
    onEvent: (type: string, object: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<{ abort(): void }> {
    const controller = new AbortController();
    let ended = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: unknown): void => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      controller.abort();
      done(err);
    };
    const idle = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        const timeout = new Error(`no data on the watch of ${path} for ${WATCH_INACTIVITY_MS} ms`);
        timeout.name = 'TimeoutError';
        finish(timeout);
      }, WATCH_INACTIVITY_MS);
      timer.unref();
    };
    try {
      idle();
      const url = this.#url(path, { ...query, watch: true });
      const response = await get(url, this.#headers(), this.#credentials.agent, controller.signal);
      if (response.statusCode !== 200) {
        const text = await readAll(response).catch(() => '');
        finish(new ApiStatusError(response.statusCode ?? 0, `HTTP ${response.statusCode} watching ${path}: ${text.slice(0, 300)}`));
        return controller;
      }
      response.on('data', idle);
      response.on('error', finish);
      // A connection cut before the stream's end: an error, not a clean end (resumed either way).
      response.on('aborted', () => finish(new Error(`the watch of ${path} was cut off`)));
      const lines = createInterface({ input: response, crlfDelay: Infinity });
      // readline re-emits the response's errors (a reset connection): unhandled, they end the process.
      lines.on('error', finish);
      lines.on('line', (line) => {
        if (ended || line === '') return;
        let event: { type?: string; object?: unknown };
        try {
          event = JSON.parse(line) as typeof event;
        } catch (error) {
          finish(new Error(`watch of ${path}: an event that is not JSON`, { cause: error }));
          return;
        }
        onEvent(String(event.type), event.object);
      });
      lines.on('close', () => finish(response.complete ? null : new Error(`the watch of ${path} was cut off`)));
    } catch (error) {
      finish(error);
    }
    return controller;
  }

  #url(path: string, query: Readonly<Record<string, string | number | boolean | undefined>>): URL {
    const url = new URL(this.#credentials.server + path);
    for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== '') url.searchParams.set(key, String(value));
    return url;
  }

  #headers(): Record<string, string> {
    const authorization = this.#credentials.authorization();
    return { accept: 'application/json', ...(authorization === undefined ? {} : { authorization }) };
  }
}

function get(url: URL, headers: Record<string, string>, agent: Agent, signal?: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', headers, agent, signal }, resolve);
    req.on('error', reject);
    req.end();
  });
}

function readAll(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    response.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    response.on('error', reject);
    response.on('aborted', () => reject(new Error('the response was cut off')));
  });
}

/**
 * How long to wait before asking for a refused page again: for 429 and 5xx answers that name a
 * delay (the Retry-After header, or the Status's details.retryAfterSeconds); undefined otherwise.
 */
function retryDelayMs(response: IncomingMessage, text: string): number | undefined {
  const status = response.statusCode ?? 0;
  if (status !== 429 && status < 500) return undefined;
  let seconds = Number(response.headers['retry-after']);
  if (!Number.isFinite(seconds)) {
    try {
      seconds = Number((JSON.parse(text) as { details?: { retryAfterSeconds?: unknown } }).details?.retryAfterSeconds);
    } catch {
      return undefined;
    }
  }
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds * 1000, MAX_RETRY_DELAY_MS) : undefined;
}
