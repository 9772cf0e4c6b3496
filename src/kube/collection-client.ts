import { setTimeout as delay } from 'node:timers/promises';
import type { ApiCredentials } from './api-credentials.ts';
import type { ResponseHead } from './http-response-parser.ts';
import type { HttpsConnections } from './https-connections.ts';

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
/** A watch event longer than this ends the watch (the API server stores objects of at most 1.5 MB). */
const MAX_EVENT_BYTES = 16 * 1024 * 1024;

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
      const response = await getText(this.#credentials.connections, url, this.#headers());
      const text = response.text;
      if (response.statusCode === 200) {
        const list = JSON.parse(text) as { items?: T[]; metadata?: { resourceVersion?: string; continue?: string } };
        return { items: list.items ?? [], metadata: { resourceVersion: list.metadata?.resourceVersion, _continue: list.metadata?.continue || undefined } };
      }
      const delay = attempt < PAGE_RETRIES ? retryDelayMs(response, text) : undefined;
      if (delay === undefined) throw new ApiStatusError(response.statusCode, `HTTP ${response.statusCode} listing ${path}: ${text.slice(0, 300)}`);
      await this.#sleep(delay);
    }
  }

  /**
   * Watches `path` with `query` (client-node's Watch.watch, which the informer also accepts):
   * `onEvent` for each event, `done` once when the stream ends (null), fails (an error; HTTP
   * errors carry `statusCode`) or is aborted (an AbortError). Resolves when the response has
   * begun, with a handle to abort it.
   */
  watch(
    path: string,
    query: Readonly<Record<string, string | boolean>>,
    onEvent: (type: string, object: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<{ abort(): void }> {
    return new Promise((resolve) => {
      let ended = false;
      let begun = false;
      let failure: { statusCode: number; chunks: Buffer[] } | undefined;
      /** The bytes of an event not yet ended by its newline. */
      let partial: Buffer[] = [];
      let partialBytes = 0;
      let exchange: { abort(): void } | undefined;
      const handle = {
        abort: (): void => {
          const aborted = new Error(`the watch of ${path} was aborted`);
          aborted.name = 'AbortError';
          finish(aborted);
        },
      };
      const finish = (err: unknown): void => {
        if (ended) return;
        ended = true;
        clearTimeout(timer);
        exchange?.abort();
        if (!begun) {
          begun = true;
          resolve(handle);
        }
        done(err);
      };
      const timer = setTimeout(() => {
        const timeout = new Error(`no data on the watch of ${path} for ${WATCH_INACTIVITY_MS} ms`);
        timeout.name = 'TimeoutError';
        finish(timeout);
      }, WATCH_INACTIVITY_MS);
      timer.unref();
      const line = (text: string): void => {
        if (ended || text === '' || text === '\r') return;
        let event: { type?: string; object?: unknown };
        try {
          event = JSON.parse(text) as typeof event;
        } catch (error) {
          finish(new Error(`watch of ${path}: an event that is not JSON`, { cause: error }));
          return;
        }
        onEvent(String(event.type), event.object);
      };
      try {
        exchange = this.#credentials.connections.get(this.#url(path, { ...query, watch: true }), this.#headers(), {
          head: (head) => {
            if (head.statusCode !== 200) {
              failure = { statusCode: head.statusCode, chunks: [] };
              return;
            }
            begun = true;
            resolve(handle);
          },
          body: (view) => {
            timer.refresh();
            if (failure !== undefined) {
              failure.chunks.push(Buffer.from(view));
              return;
            }
            // Split on the newline byte: it never occurs inside a UTF-8 sequence.
            let at = 0;
            for (;;) {
              const newline = view.indexOf(10, at);
              if (newline === -1) {
                if (at < view.length) {
                  partial.push(Buffer.from(view.subarray(at)));
                  partialBytes += view.length - at;
                  if (partialBytes > MAX_EVENT_BYTES) finish(new Error(`watch of ${path}: an event longer than ${MAX_EVENT_BYTES} bytes`));
                }
                return;
              }
              let text: string;
              if (partial.length === 0) {
                text = view.toString('utf8', at, newline);
              } else {
                partial.push(view.subarray(at, newline));
                text = Buffer.concat(partial).toString('utf8');
                partial = [];
                partialBytes = 0;
              }
              at = newline + 1;
              line(text);
              if (ended) return;
            }
          },
          end: () => {
            if (failure === undefined) {
              finish(null);
              return;
            }
            const text = Buffer.concat(failure.chunks).toString('utf8');
            finish(new ApiStatusError(failure.statusCode, `HTTP ${failure.statusCode} watching ${path}: ${text.slice(0, 300)}`));
          },
          // A connection cut before the stream's end: an error, not a clean end (resumed either way).
          error: (error) => finish(error instanceof Error && error.name === 'HttpResponseError' ? new Error(`the watch of ${path} was cut off`, { cause: error }) : error),
        });
      } catch (error) {
        finish(error);
      }
    });
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

/** A whole response as text. */
function getText(connections: HttpsConnections, url: URL, headers: Record<string, string>): Promise<ResponseHead & { text: string }> {
  return new Promise((resolve, reject) => {
    let head: ResponseHead | undefined;
    const chunks: Buffer[] = [];
    connections.get(url, headers, {
      head: (h) => void (head = h),
      body: (view) => void chunks.push(Buffer.from(view)),
      end: () => resolve({ ...head!, text: Buffer.concat(chunks).toString('utf8') }),
      error: reject,
    });
  });
}

/**
 * How long to wait before asking for a refused page again: for 429 and 5xx answers that name a
 * delay (the Retry-After header, or the Status's details.retryAfterSeconds); undefined otherwise.
 */
function retryDelayMs(response: ResponseHead, text: string): number | undefined {
  const status = response.statusCode;
  if (status !== 429 && status < 500) return undefined;
  let seconds = Number(response.headers.get('retry-after'));
  if (!Number.isFinite(seconds)) {
    try {
      seconds = Number((JSON.parse(text) as { details?: { retryAfterSeconds?: unknown } }).details?.retryAfterSeconds);
    } catch {
      return undefined;
    }
  }
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds * 1000, MAX_RETRY_DELAY_MS) : undefined;
}
