/**
 * One client connection: bytes in → decoder → handler → answers out, strictly in request order.
 *
 * Answers the handler gives synchronously are written at once when nothing is ahead of them;
 * otherwise they wait in a queue behind the pending ones. Reading stops (the socket is paused and
 * the rest of the chunk held) while too many answers are pending or the client is not reading
 * them, so a pipelining client costs bounded memory yet every complete request is answered.
 * A connection also answers at most {@link REQUESTS_PER_TURN} requests before it lets the event
 * loop turn, so a client that pipelines thousands of requests delays the others by one slice of
 * its work, not by all of it.
 */
import type { Socket } from 'node:net';
import { PolicyDecoder, encodeReply, isValidAction, type RequestSink } from './codec.ts';
import type { PolicyServerLimits } from './limits.ts';
import type { Logger } from '../observability/logger.ts';
import type { DisconnectReason, PolicyServerMetrics } from './observe.ts';
import type { PolicyHandler, PolicyRequest } from './request.ts';

/** What a connection needs from its server. */
export interface ConnectionContext {
  readonly handler: PolicyHandler;
  /** Asked at each failure: the answer may change while the connection is open (a reload). */
  readonly failureAction: () => string;
  readonly limits: PolicyServerLimits;
  readonly logger: Logger;
  /**
   * Warns at most once an interval per kind: for what a client can cause at will (each of an
   * attack's connections timing out or breaking the protocol).
   */
  readonly warn: (kind: string, context: object, msg: string) => void;
  readonly metrics: PolicyServerMetrics;
  readonly now: () => number;
  /**
   * The connection became evictable, or its wait restarted (it is now the one that has waited
   * least), or it stopped being evictable. Not called for the state it opens in (evictable).
   */
  readonly onEvictable: (connection: PolicyConnection, evictable: boolean) => void;
  readonly onClose: (connection: PolicyConnection) => void;
}

/**
 * open: reading. draining: the server is closing; no more reads, answer what was received.
 * failing: protocol error or stall; no more reads, answer what was complete. closing: our side is
 * ended. closed: the socket is gone.
 */
type State = 'open' | 'draining' | 'failing' | 'closing' | 'closed';

/**
 * Requests one connection answers before it yields to the event loop (the rest of its input is
 * held and taken up in a later turn, after other connections' input and new connections). smtpd
 * sends one request at a time, so only a pipelining client ever reaches it.
 */
export const REQUESTS_PER_TURN = 32;

interface PendingAnswer {
  answer: string | undefined;
  readonly startedAt: number;
}

export class PolicyConnection {
  readonly #socket: Socket;
  readonly #ctx: ConnectionContext;
  readonly #decoder: PolicyDecoder;
  readonly #client: string | undefined;
  readonly #timed: boolean;
  readonly #queue: PendingAnswer[] = [];
  #head = 0;
  /** The unread rest of a chunk while reading is held back. */
  #held: Buffer | undefined;
  #heldOffset = 0;
  #writeBlocked = false;
  /** When our writes last became blocked (the peer stopped reading); meaningful while blocked. */
  #writeBlockedSince = 0;
  #peerEnded = false;
  #state: State = 'open';
  #lastActivity: number;
  #requestStartedAt = 0;
  #lingerUntil = Infinity;
  /** Requests left before this connection yields the event loop (see REQUESTS_PER_TURN). */
  #turnBudget = REQUESTS_PER_TURN;
  /** Yielded: reading waits for the next turn (#nextTurn). */
  #yielded = false;
  /** When the wait that makes this connection evictable began, as last reported (see #noteEvictable). */
  #evictableSince: number | undefined;
  readonly #sink: RequestSink = (request) => this.#onRequest(request);
  readonly #nextTurn = (): void => {
    this.#yielded = false;
    this.#turnBudget = REQUESTS_PER_TURN;
    this.#resumeIfPossible();
    this.#noteEvictable();
  };

  constructor(socket: Socket, ctx: ConnectionContext) {
    this.#socket = socket;
    this.#ctx = ctx;
    this.#decoder = new PolicyDecoder(ctx.limits);
    this.#client = socket.remoteAddress;
    this.#timed = ctx.metrics.onRequest !== undefined;
    this.#lastActivity = ctx.now();
    this.#evictableSince = this.#lastActivity;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => {
      this.#peerEnded = true;
      this.#maybeFinish();
      this.#noteEvictable();
    });
    // Resets and the like: the 'close' that follows does the cleanup; an unhandled 'error' would crash.
    socket.on('error', (err) => ctx.logger.debug({ remote: this.remote, err }, 'policy connection error'));
    socket.on('close', () => this.#onClose());
  }

  /** The peer, for logs: `address:port`, or `unix`. */
  get remote(): string {
    return this.#client === undefined ? 'unix' : `${this.#client}:${this.#socket.remotePort}`;
  }

  /** The peer's address (no port), or undefined on a unix socket. */
  get client(): string | undefined {
    return this.#client;
  }

  /**
   * Since when this connection has held its slot without a request in flight — idle between
   * requests, stalled mid-request, or with answers the peer does not read — or undefined while an
   * answer is being worked on or the connection is already ending. Such a connection is
   * evictable: a full server gives the slot of the one that has waited longest to a new
   * connection. The server keeps evictable connections in the order it hears that their wait
   * began ({@link ConnectionContext.onEvictable}), so the longest wait comes first without a
   * search: each of these times is the current time when it changes, and a wait that began
   * earlier than the moment the connection became evictable (a request begun behind one in
   * flight) counts from that moment.
   */
  #evictableSinceNow(): number | undefined {
    if (this.#state !== 'open') return undefined;
    if (this.#writeBlocked) return this.#writeBlockedSince;
    if (this.#queue.length - this.#head > 0) return undefined;
    if (this.#decoder.inRequest && this.#requestStartedAt !== 0) return this.#requestStartedAt;
    return this.#lastActivity;
  }

  /** Tells the server when the connection's evictable wait began anew or ended (after each event). */
  #noteEvictable(): void {
    const since = this.#evictableSinceNow();
    if (since === this.#evictableSince) return;
    this.#evictableSince = since;
    this.#ctx.onEvictable(this, since !== undefined);
  }

  /** Closes at once and gives up the slot now, without waiting for the socket's 'close'. */
  evict(): void {
    this.#socket.destroy();
    this.#onClose();
  }

  /** Stop reading and close once every request already received is answered (graceful shutdown). */
  drain(): void {
    if (this.#state !== 'open') return;
    this.#state = 'draining';
    this.#socket.pause();
    this.#resumeIfPossible();
    this.#maybeFinish();
    this.#noteEvictable();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  /** Enforces the timeouts; called periodically by the server with the current time. */
  check(now: number): void {
    this.#checkTimeouts(now);
    this.#noteEvictable();
  }

  #checkTimeouts(now: number): void {
    if (this.#state === 'closing') {
      if (now > this.#lingerUntil) this.#socket.destroy();
      return;
    }
    if (this.#state === 'closed') return;
    if (this.#writeBlocked && now - this.#writeBlockedSince > this.#ctx.limits.writeTimeoutMs) {
      this.#ctx.warn('write-timeout', { remote: this.remote, reason: 'write-timeout' }, `policy client disconnected: it read none of its answers for more than ${this.#ctx.limits.writeTimeoutMs} ms`);
      this.#ctx.metrics.onProtocolError?.('write-timeout');
      this.evict();
      return;
    }
    if (this.#state !== 'open') return;
    if (this.#requestStartedAt !== 0 && now - this.#requestStartedAt > this.#ctx.limits.requestTimeoutMs) {
      this.#fail('request-timeout', `client stalled mid-request for more than ${this.#ctx.limits.requestTimeoutMs} ms`);
    } else if (this.#isIdle() && now - this.#lastActivity > this.#ctx.limits.idleTimeoutMs) {
      this.#ctx.logger.debug({ remote: this.remote }, 'closing idle policy connection');
      this.#close(false);
    }
  }

  #isIdle(): boolean {
    return this.#head === this.#queue.length && this.#held === undefined && !this.#decoder.inRequest;
  }

  #onData(chunk: Buffer): void {
    if (this.#state !== 'open' && this.#state !== 'draining') return; // failing or closing: discarded
    this.#lastActivity = this.#ctx.now();
    if (this.#held !== undefined) {
      // Defensive: no data should arrive while paused, but never drop or reorder it if it does.
      this.#held = Buffer.concat([this.#held.subarray(this.#heldOffset), chunk]);
      this.#heldOffset = 0;
    } else if (this.#yielded) {
      // The previous read used this turn's budget up to its last byte: this one waits too.
      this.#hold(chunk, 0);
    } else {
      // The budget is per read: a client that sends one request at a time never waits a turn.
      this.#turnBudget = REQUESTS_PER_TURN;
      this.#consume(chunk, 0);
    }
    this.#noteEvictable();
  }

  #consume(chunk: Buffer, offset: number): void {
    const decodedBefore = this.#decoder.decoded;
    this.#socket.cork(); // answers to a pipelined burst leave in one write
    const stoppedAt = this.#decoder.decode(chunk, offset, this.#sink);
    this.#socket.uncork();
    const error = this.#decoder.error;
    if (error !== undefined) {
      this.#fail(error.reason, error.message);
      return;
    }
    if (stoppedAt < chunk.length) this.#hold(chunk, stoppedAt);
    if (!this.#decoder.inRequest) this.#requestStartedAt = 0;
    else if (this.#requestStartedAt === 0 || this.#decoder.decoded !== decodedBefore) this.#requestStartedAt = this.#ctx.now();
    this.#maybeFinish();
  }

  /** Keeps the unread rest of `chunk` and stops reading until it is taken up (#resumeIfPossible). */
  #hold(chunk: Buffer, offset: number): void {
    this.#held = chunk;
    this.#heldOffset = offset;
    this.#socket.pause();
  }

  #onRequest(request: PolicyRequest): boolean {
    const startedAt = this.#timed ? this.#ctx.now() : 0;
    let answer: string | Promise<string>;
    try {
      answer = this.#ctx.handler(request);
    } catch (err) {
      answer = this.#handlerFailed(err);
    }
    if (typeof answer === 'string') {
      if (!isValidAction(answer)) answer = this.#handlerFailed(new TypeError(`invalid action ${JSON.stringify(answer)}`));
      if (this.#head === this.#queue.length) this.#write(answer, startedAt);
      else this.#queue.push({ answer, startedAt });
    } else {
      const pending: PendingAnswer = { answer: undefined, startedAt };
      this.#queue.push(pending);
      // Promise.resolve: whatever thenable (or mistake) the handler returned becomes one promise.
      Promise.resolve(answer as unknown).then(
        (value) => {
          pending.answer = isValidAction(value) ? value : this.#handlerFailed(new TypeError(`invalid action ${JSON.stringify(value)}`));
          this.#flush();
        },
        (err: unknown) => {
          pending.answer = this.#handlerFailed(err);
          this.#flush();
        },
      );
    }
    if (--this.#turnBudget === 0) {
      this.#yielded = true;
      setImmediate(this.#nextTurn);
    }
    return this.#accepting();
  }

  #handlerFailed(err: unknown): string {
    this.#ctx.metrics.onHandlerFailure?.();
    this.#ctx.logger.error({ remote: this.remote, err }, 'policy handler failed; answering the failure action');
    return this.#ctx.failureAction();
  }

  #accepting(): boolean {
    return (
      (this.#state === 'open' || this.#state === 'draining') &&
      !this.#writeBlocked &&
      !this.#yielded &&
      this.#queue.length - this.#head < this.#ctx.limits.maxPendingPerConnection
    );
  }

  #write(answer: string, startedAt: number): void {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded) return;
    if (!socket.write(encodeReply(answer)) && !this.#writeBlocked) {
      this.#writeBlocked = true;
      this.#writeBlockedSince = this.#ctx.now();
      socket.once('drain', () => this.#onDrain()); // only now: most connections never block
    }
    if (this.#timed) this.#ctx.metrics.onRequest?.(this.#ctx.now() - startedAt);
  }

  #onDrain(): void {
    this.#writeBlocked = false;
    this.#lastActivity = this.#ctx.now();
    this.#resumeIfPossible();
    this.#noteEvictable();
  }

  /** Writes the answers at the head of the queue that are ready, then reads on if it may. */
  #flush(): void {
    const queue = this.#queue;
    this.#socket.cork();
    while (this.#head < queue.length) {
      const next = queue[this.#head] as PendingAnswer;
      if (next.answer === undefined) break;
      this.#write(next.answer, next.startedAt);
      this.#head++;
    }
    this.#socket.uncork();
    if (this.#head === queue.length) {
      queue.length = 0;
      this.#head = 0;
      this.#lastActivity = this.#ctx.now();
    }
    this.#resumeIfPossible();
    this.#maybeFinish();
    this.#noteEvictable();
  }

  #resumeIfPossible(): void {
    if (!this.#accepting()) return;
    const held = this.#held;
    if (held !== undefined) {
      this.#held = undefined;
      this.#consume(held, this.#heldOffset);
    }
    if (this.#held === undefined && this.#state === 'open' && !this.#peerEnded) this.#socket.resume();
  }

  /** Closes our side once nothing is left to answer, when the connection is meant to end. */
  #maybeFinish(): void {
    const state = this.#state;
    const ending = state === 'failing' || state === 'draining' || this.#peerEnded;
    if (!ending || state === 'closing' || state === 'closed') return;
    if (this.#head !== this.#queue.length) return;
    if (this.#held !== undefined && state !== 'failing') return;
    this.#close(state === 'failing');
  }

  /** One (rate-limited) log line, then answer what was complete and close. */
  #fail(reason: DisconnectReason, message: string): void {
    if (this.#state !== 'open' && this.#state !== 'draining') return;
    this.#state = 'failing';
    this.#held = undefined;
    this.#socket.pause();
    this.#ctx.warn(reason, { remote: this.remote, reason }, `policy client disconnected: ${message}`);
    this.#ctx.metrics.onProtocolError?.(reason);
    this.#maybeFinish();
  }

  /**
   * Ends our side. After a protocol error the client may still be sending: keep reading and
   * discarding for a while (see `lingerMs`) so closing does not reset the connection under the
   * answers it has not read. Otherwise the client is between requests: close once our FIN is out.
   */
  #close(linger: boolean): void {
    this.#state = 'closing';
    const socket = this.#socket;
    // Also the backstop when our FIN never leaves (a client that stopped reading).
    this.#lingerUntil = this.#ctx.now() + this.#ctx.limits.lingerMs;
    if (linger) {
      socket.end();
      socket.resume();
    } else {
      socket.end(() => socket.destroy());
    }
  }

  #onClose(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#held = undefined;
    this.#queue.length = 0;
    this.#head = 0;
    this.#ctx.onClose(this);
  }
}
