/** The bytes are not an HTTP/1.1 response this client can read; the message says where. */
export class HttpResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HttpResponseError';
  }
}

export interface ResponseHead {
  readonly statusCode: number;
  /** Header names in lower case; a repeated header's values joined by ", ". */
  readonly headers: ReadonlyMap<string, string>;
}

/** Where a parsed response goes. `body` gets a view that is only valid during the call: copy what is kept. */
export interface ResponseSink {
  head(head: ResponseHead): void;
  body(view: Buffer): void;
  end(): void;
}

/** A status line and headers longer than this are refused (the API server's are a few hundred bytes). */
const MAX_HEAD_BYTES = 64 * 1024;
/** A chunk-size line longer than this is refused (hex size and extensions). */
const MAX_CHUNK_LINE_BYTES = 4096;

const CR = 13;
const LF = 10;

type State = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-data-end' | 'trailers' | 'until-close' | 'done';

/**
 * An incremental reader of one HTTP/1.1 response to a GET: status line, headers, and a body
 * delimited by Content-Length, chunked transfer coding, or the connection's end. Pure: bytes in,
 * sink calls out. The daemon's Kubernetes client reads with it instead of node:http, whose
 * response streams share V8's type feedback with the policy connections' sockets (see
 * docs/performance.md).
 */
export class HttpResponseParser {
  readonly #sink: ResponseSink;
  #state: State = 'head';
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Body bytes left in a Content-Length body or the current chunk. */
  #remaining = 0;
  #closeAfter = false;

  constructor(sink: ResponseSink) {
    this.#sink = sink;
  }

  /** The whole response has been read. */
  get complete(): boolean {
    return this.#state === 'done';
  }

  /** The response ended where its own framing says and the connection may carry another. */
  get reusable(): boolean {
    return this.#state === 'done' && !this.#closeAfter;
  }

  /**
   * Reads `bytes` (a view that may be reused after the call). Returns how many were part of this
   * response: fewer than given only once it is complete. Throws HttpResponseError on bytes that
   * break HTTP/1.1.
   */
  feed(bytes: Buffer): number {
    let at = 0;
    while (at < bytes.length && this.#state !== 'done') {
      switch (this.#state) {
        case 'head': {
          at = this.#readHead(bytes, at);
          break;
        }
        case 'length':
        case 'chunk-data': {
          const take = Math.min(this.#remaining, bytes.length - at);
          this.#sink.body(bytes.subarray(at, at + take));
          at += take;
          this.#remaining -= take;
          if (this.#remaining === 0) {
            if (this.#state === 'length') this.#finish();
            else this.#state = 'chunk-data-end';
          }
          break;
        }
        case 'chunk-data-end':
        case 'chunk-size':
        case 'trailers': {
          const line = this.#line(bytes, at, MAX_CHUNK_LINE_BYTES);
          if (line === undefined) return bytes.length;
          at = line.next;
          this.#onLine(line.text);
          break;
        }
        case 'until-close': {
          this.#sink.body(bytes.subarray(at));
          at = bytes.length;
          break;
        }
      }
    }
    return at;
  }

  /** The connection ended: completes a body read until close; throws if the response was cut off. */
  eof(): void {
    if (this.#state === 'done') return;
    if (this.#state === 'until-close') {
      this.#closeAfter = true;
      this.#finish();
      return;
    }
    throw new HttpResponseError(this.#state === 'head' && this.#pendingBytes === 0 ? 'the connection closed before a response' : 'the response was cut off');
  }

  #readHead(bytes: Buffer, at: number): number {
    const before = this.#pendingBytes;
    this.#keep(bytes.subarray(at));
    const kept = this.#takePending();
    // The blank line may straddle reads: search from the last three bytes kept before this one.
    const found = kept.indexOf('\r\n\r\n', Math.max(0, before - 3), 'latin1');
    if (found === -1) {
      if (kept.length > MAX_HEAD_BYTES) throw new HttpResponseError(`the response head is longer than ${MAX_HEAD_BYTES} bytes`);
      this.#keep(kept);
      return bytes.length;
    }
    this.#onHead(kept.toString('latin1', 0, found));
    return at + found + 4 - before;
  }

  #onHead(text: string): void {
    const lines = text.split('\r\n');
    const status = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0]!);
    if (status === null) throw new HttpResponseError(`not an HTTP/1.x status line: ${JSON.stringify(lines[0]!.slice(0, 80))}`);
    const statusCode = Number(status[2]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new HttpResponseError(`a malformed header line: ${JSON.stringify(line.slice(0, 80))}`);
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const before = headers.get(name);
      headers.set(name, before === undefined ? value : `${before}, ${value}`);
    }
    // An interim answer (100 Continue and the like) is followed by the real one.
    if (statusCode >= 100 && statusCode < 200) return;
    const connection = headers.get('connection')?.toLowerCase() ?? '';
    this.#closeAfter = status[1] === '0' ? !connection.includes('keep-alive') : connection.split(',').some((token) => token.trim() === 'close');
    this.#sink.head({ statusCode, headers });
    const coding = headers.get('transfer-encoding');
    const length = headers.get('content-length');
    if (statusCode === 204 || statusCode === 304) {
      this.#finish();
    } else if (coding !== undefined) {
      if (coding.toLowerCase() !== 'chunked') throw new HttpResponseError(`a transfer coding this client does not read: ${coding}`);
      this.#state = 'chunk-size';
    } else if (length !== undefined) {
      if (!/^\d{1,15}$/.test(length)) throw new HttpResponseError(`a malformed Content-Length: ${JSON.stringify(length.slice(0, 40))}`);
      this.#remaining = Number(length);
      if (this.#remaining === 0) this.#finish();
      else this.#state = 'length';
    } else {
      this.#state = 'until-close';
    }
  }

  #onLine(text: string): void {
    switch (this.#state) {
      case 'chunk-data-end':
        if (text !== '') throw new HttpResponseError('a chunk longer than its size');
        this.#state = 'chunk-size';
        return;
      case 'chunk-size': {
        const size = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(text);
        if (size === null) throw new HttpResponseError(`a malformed chunk size: ${JSON.stringify(text.slice(0, 40))}`);
        this.#remaining = parseInt(size[1]!, 16);
        this.#state = this.#remaining === 0 ? 'trailers' : 'chunk-data';
        return;
      }
      case 'trailers':
        if (text === '') this.#finish();
        return;
      default:
        throw new Error(`unreachable parser state ${this.#state}`);
    }
  }

  /** The next CRLF-terminated line from `at` (with what earlier reads left), or undefined if it has not all arrived. */
  #line(bytes: Buffer, at: number, max: number): { text: string; next: number } | undefined {
    const lf = bytes.indexOf(LF, at);
    if (lf === -1) {
      this.#keep(bytes.subarray(at));
      if (this.#pendingBytes > max) throw new HttpResponseError(`a line longer than ${max} bytes in a chunked body`);
      return undefined;
    }
    this.#keep(bytes.subarray(at, lf + 1));
    const line = this.#takePending();
    if (line.length < 2 || line[line.length - 2] !== CR) throw new HttpResponseError('a line in a chunked body without CRLF');
    return { text: line.toString('latin1', 0, line.length - 2), next: lf + 1 };
  }

  #keep(view: Buffer): void {
    if (view.length === 0) return;
    this.#pending.push(Buffer.from(view));
    this.#pendingBytes += view.length;
  }

  #takePending(): Buffer {
    const joined = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending);
    this.#pending = [];
    this.#pendingBytes = 0;
    return joined;
  }

  #finish(): void {
    this.#state = 'done';
    this.#sink.end();
  }
}
