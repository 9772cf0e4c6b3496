import type { SocketConstructorOpts } from 'node:net';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { HttpResponseError, HttpResponseParser, type ResponseSink } from './http-response-parser.ts';

/** The TLS side of one API server identity. */
export interface TlsMaterial {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly servername?: string;
  readonly rejectUnauthorized: boolean;
}

/** What becomes of one GET: a {@link ResponseSink}, and `error` once if the exchange fails instead. */
export interface ExchangeHandlers extends ResponseSink {
  error(err: Error): void;
}

export interface Exchange {
  /** Ends the exchange and closes its connection; no handler is called afterwards. */
  abort(): void;
}

/** Idle connections kept for the next request (a list's pages go one after another). */
const MAX_IDLE = 2;
/** Bytes read from the TLS layer at a time, into one buffer every connection shares. */
const READ_BUFFER_BYTES = 64 * 1024;

/**
 * Keep-alive HTTPS connections to one server, for GETs read with {@link HttpResponseParser}.
 * Bytes arrive in a buffer of ours (tls.connect's `onread`) rather than through node:http's
 * response streams: those share V8's compiled stream code with the policy connections' sockets,
 * and with a second kind of socket and response in the process, every policy request paid for it
 * (docs/performance.md).
 */
export class HttpsConnections {
  readonly #tls: TlsMaterial;
  readonly #idle: PooledConnection[] = [];
  readonly #open = new Set<PooledConnection>();
  readonly #readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  #destroyed = false;

  constructor(tls: TlsMaterial) {
    this.#tls = tls;
  }

  /**
   * Sends `GET url` with `headers` and reads the response into `handlers`. A request on a kept
   * connection that the server closed before answering is sent once more on a new connection.
   */
  get(url: URL, headers: Readonly<Record<string, string>>, handlers: ExchangeHandlers): Exchange {
    let finished = false;
    let connection: PooledConnection | undefined;
    const guarded: ExchangeHandlers = {
      head: (head) => {
        if (!finished) handlers.head(head);
      },
      body: (view) => {
        if (!finished) handlers.body(view);
      },
      end: () => {
        if (finished) return;
        finished = true;
        handlers.end();
      },
      error: (err) => {
        if (finished) return;
        finished = true;
        handlers.error(err);
      },
    };
    let request: string;
    try {
      request = requestText(url, headers);
      if (this.#destroyed) throw new Error('the API server connections are closed');
    } catch (error) {
      queueMicrotask(() => guarded.error(error as Error));
      return { abort: () => void (finished = true) };
    }
    const send = (fresh: boolean): void => {
      const reused = fresh ? undefined : this.#idle.pop();
      connection = reused ?? this.#connect(url);
      connection.send(request, guarded, reused === undefined ? undefined : () => send(true));
    };
    send(false);
    return {
      abort: () => {
        if (finished) return;
        finished = true;
        connection?.destroy();
      },
    };
  }

  /** Closes every connection; later requests fail. */
  destroy(): void {
    this.#destroyed = true;
    for (const connection of [...this.#open]) connection.destroy();
    this.#idle.length = 0;
  }

  #connect(url: URL): PooledConnection {
    const connection = new PooledConnection(url, this.#tls, this.#readBuffer, {
      idle: (c) => {
        if (this.#destroyed || this.#idle.length >= MAX_IDLE) c.destroy();
        else this.#idle.push(c);
      },
      gone: (c) => {
        this.#open.delete(c);
        const at = this.#idle.indexOf(c);
        if (at !== -1) this.#idle.splice(at, 1);
      },
    });
    this.#open.add(connection);
    return connection;
  }
}

interface Current {
  readonly parser: HttpResponseParser;
  readonly handlers: ExchangeHandlers;
  /** Sends the request again elsewhere if this kept connection turns out closed before answering. */
  readonly resend: (() => void) | undefined;
  received: boolean;
}

/** One TLS connection carrying one request at a time. */
class PooledConnection {
  readonly #socket: TLSSocket;
  readonly #pool: { idle(c: PooledConnection): void; gone(c: PooledConnection): void };
  #current: Current | undefined;

  constructor(url: URL, tls: TlsMaterial, readBuffer: Buffer, pool: { idle(c: PooledConnection): void; gone(c: PooledConnection): void }) {
    this.#pool = pool;
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    // tls.connect passes these on to net.connect (absent from @types/node's TLS options).
    const options: ConnectionOptions & Pick<SocketConstructorOpts, 'onread' | 'keepAlive' | 'keepAliveInitialDelay' | 'noDelay'> = {
      host,
      port: Number(url.port || 443),
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(tls.cert ? { cert: tls.cert } : {}),
      ...(tls.key ? { key: tls.key } : {}),
      // SNI takes a name, never an address.
      ...(tls.servername ? { servername: tls.servername } : /^[\d.]+$|:/.test(host) ? {} : { servername: host }),
      rejectUnauthorized: tls.rejectUnauthorized,
      // A watch is quiet for minutes: the kernel's probes find a peer that vanished.
      keepAlive: true,
      keepAliveInitialDelay: 30_000,
      noDelay: true,
      onread: { buffer: readBuffer, callback: (bytes: number, buffer: Uint8Array) => this.#read(buffer as Buffer, bytes) },
    };
    this.#socket = connect(options);
    this.#socket.on('error', (error) => this.#fail(error));
    this.#socket.on('close', () => this.#closed());
  }

  send(request: string, handlers: ExchangeHandlers, resend: (() => void) | undefined): void {
    this.#current = { parser: new HttpResponseParser(handlers), handlers, resend, received: false };
    this.#socket.ref();
    // As bytes: a string would reach the same call of node's write path as the policy
    // connections' answers (writeUtf8String) with a second kind of handle, and V8 would compile
    // that call for both, slower for every answer.
    this.#socket.write(Buffer.from(request, 'latin1'));
  }

  destroy(): void {
    this.#current = undefined;
    this.#socket.destroy();
  }

  /** Always true: reading never pauses (a list is gathered, a watch's events are taken as they come). */
  #read(buffer: Buffer, bytes: number): true {
    this.#take(buffer, bytes);
    return true;
  }

  #take(buffer: Buffer, bytes: number): void {
    const current = this.#current;
    if (current === undefined) {
      // Bytes no request asked for: the connection is out of step.
      this.#socket.destroy();
      return;
    }
    current.received = true;
    const view = buffer.subarray(0, bytes);
    let used: number;
    try {
      used = current.parser.feed(view);
    } catch (error) {
      this.#fail(error as Error);
      this.#socket.destroy();
      return;
    }
    if (!current.parser.complete) return;
    this.#current = undefined;
    if (current.parser.reusable && used === bytes) {
      this.#socket.unref();
      this.#pool.idle(this);
    } else {
      this.#socket.destroy();
    }
  }

  #fail(error: Error): void {
    const current = this.#current;
    if (current === undefined) return;
    this.#current = undefined;
    if (!current.received && current.resend !== undefined) current.resend();
    else current.handlers.error(error);
  }

  #closed(): void {
    this.#pool.gone(this);
    const current = this.#current;
    if (current === undefined) return;
    try {
      current.parser.eof();
      this.#current = undefined;
    } catch (error) {
      this.#fail(error instanceof HttpResponseError ? error : new Error(String(error)));
    }
  }
}

/** The request's bytes; a header value with a line break (a token file's) would split the request, so it is refused. */
function requestText(url: URL, headers: Readonly<Record<string, string>>): string {
  let text = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (/[\r\n]/.test(value)) throw new Error(`the ${name} header holds a line break`);
    text += `${name}: ${value}\r\n`;
  }
  return `${text}\r\n`;
}
