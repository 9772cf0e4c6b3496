/**
 * The Postfix policy delegation wire format (https://www.postfix.org/SMTPD_POLICY_README.html):
 * a request is `name=value` lines ended by LF and closed by an empty line; the answer is
 * `action=<text>` and an empty line, LF only.
 *
 * The decoder works on the socket's Buffers directly: it finds line ends with `indexOf` (memchr),
 * matches attribute names byte by byte against the few mailwarden reads, and decodes only those
 * values to strings. Lines are copied only when one straddles two reads.
 */
import { emptyPolicyRequest, type PolicyRequest } from './request.ts';
import type { PolicyServerLimits } from './limits.ts';

/** Why a client's input was refused. Stable: used as a metric label. */
export type ProtocolErrorReason =
  | 'line-too-long'
  | 'request-too-large'
  | 'too-many-attributes'
  | 'malformed-attribute';

/** Input that cannot be a policy request; the connection is closed after the answers before it. */
export class PolicyProtocolError extends Error {
  readonly reason: ProtocolErrorReason;
  constructor(reason: ProtocolErrorReason, message: string) {
    super(message);
    this.name = 'PolicyProtocolError';
    this.reason = reason;
  }
}

export type CodecLimits = Pick<PolicyServerLimits, 'maxLineBytes' | 'maxRequestBytes' | 'maxAttributes'>;

/** Receives each complete request; returning false makes the decoder stop right after it. */
export type RequestSink = (request: PolicyRequest) => boolean;

const LF = 0x0a;
const CR = 0x0d;
const EQUALS = 0x3d;

/** The attributes kept, as bytes, with the field each fills. */
type KeptField = 'request' | 'protocolState' | 'sender' | 'recipient' | 'saslUsername' | 'instance' | 'queueId' | 'clientAddress';
const KEPT: readonly (readonly [Uint8Array, KeptField])[] = (
  [
    ['request', 'request'],
    ['protocol_state', 'protocolState'],
    ['sender', 'sender'],
    ['recipient', 'recipient'],
    ['sasl_username', 'saslUsername'],
    ['instance', 'instance'],
    ['queue_id', 'queueId'],
    ['client_address', 'clientAddress'],
  ] as const
).map(([name, field]) => [Buffer.from(name, 'latin1'), field] as const);

/** KEPT indexed by name length, so most names are rejected by one array load. */
const KEPT_BY_LENGTH: ((readonly [Uint8Array, KeptField])[] | undefined)[] = [];
for (const entry of KEPT) (KEPT_BY_LENGTH[entry[0].length] ??= []).push(entry);

/**
 * Bytes allowed in an attribute name. Postfix names are lower-case words joined by `_`; being
 * a little wider costs nothing, and anything outside (binary, spaces, control bytes) is garbage.
 */
const NAME_BYTE = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  const c = String.fromCharCode(b);
  NAME_BYTE[b] = /[A-Za-z0-9_.-]/.test(c) ? 1 : 0;
}

/**
 * Incremental decoder for one connection. Feed it every chunk in order; it reports each complete
 * request to the sink and stops for good at the first protocol error (see {@link error}).
 */
export class PolicyDecoder {
  readonly #limits: CodecLimits;
  #current: PolicyRequest = emptyPolicyRequest();
  #requestBytes = 0;
  /** The start of a line that did not end in the previous chunk (owned copy, grown on demand). */
  #partial: Buffer | undefined;
  #partialLength = 0;
  #error: PolicyProtocolError | undefined;
  #decoded = 0;

  constructor(limits: CodecLimits) {
    this.#limits = limits;
  }

  /** The protocol error that stopped the decoder, if any. */
  get error(): PolicyProtocolError | undefined {
    return this.#error;
  }

  /** True while a request has begun and not ended (for the read timeout). */
  get inRequest(): boolean {
    return this.#partialLength > 0 || this.#current.attributeCount > 0;
  }

  /** How many complete requests were decoded so far. */
  get decoded(): number {
    return this.#decoded;
  }

  /**
   * Decodes `chunk` from `offset`. Returns where it stopped: `chunk.length` when everything was
   * consumed (or after an error), less when the sink asked to stop; call again with the rest.
   */
  decode(chunk: Buffer, offset: number, sink: RequestSink): number {
    if (this.#error !== undefined) return chunk.length;
    let start = offset;
    const end = chunk.length;
    if (this.#partialLength > 0) {
      const lf = chunk.indexOf(LF, start);
      if (lf === -1) {
        this.#appendPartial(chunk, start, end);
        return end;
      }
      this.#appendPartial(chunk, start, lf);
      if (this.#error !== undefined) return end;
      const line = this.#partial as Buffer;
      const length = this.#partialLength;
      this.#partialLength = 0;
      const more = this.#line(line, 0, length, length + 1, sink);
      if (this.#error !== undefined) return end;
      start = lf + 1;
      if (!more) return start;
    }
    while (start < end) {
      // Fast path, the shape of nearly every line: a valid name, '=', the value and LF, all in
      // this chunk. One JS pass over the bytes is cheaper than a native indexOf per short line.
      let eq = start;
      while (eq < end && NAME_BYTE[chunk[eq] as number] === 1) eq++;
      if (eq < end && eq > start && chunk[eq] === EQUALS) {
        let lf = eq + 1;
        while (lf < end && chunk[lf] !== LF) lf++;
        if (lf === end) {
          this.#appendPartial(chunk, start, end);
          return end;
        }
        this.#attribute(chunk, start, eq, lf, lf + 1 - start);
        if (this.#error !== undefined) return end;
        start = lf + 1;
        continue;
      }
      // Anything else (the empty line, garbage, a chunk ending inside a name): the general path.
      const lf = chunk.indexOf(LF, start);
      if (lf === -1) {
        this.#appendPartial(chunk, start, end);
        return end;
      }
      const more = this.#line(chunk, start, lf, lf + 1 - start, sink);
      if (this.#error !== undefined) return end;
      start = lf + 1;
      if (!more) return start;
    }
    return end;
  }

  /** One line `buf[start, lf)`; `rawBytes` counts it with its terminator. Returns the sink's wish. */
  #line(buf: Buffer, start: number, lf: number, rawBytes: number, sink: RequestSink): boolean {
    if (lf === start || (lf === start + 1 && buf[start] === CR)) {
      // The empty line: the request is complete (a lone empty line is an empty request, answered too,
      // so a client waiting for an answer to it is never left hanging).
      const request = this.#current;
      this.#current = emptyPolicyRequest();
      this.#requestBytes = 0;
      this.#decoded++;
      return sink(request);
    }
    // Scan the name, checking each byte, up to the first '=': the value is everything after it.
    let eq = start;
    while (eq < lf) {
      const b = buf[eq] as number;
      if (b === EQUALS) break;
      if (NAME_BYTE[b] === 0) return this.#fail('malformed-attribute', `attribute name has byte 0x${b.toString(16).padStart(2, '0')}`);
      eq++;
    }
    if (eq === lf) return this.#fail('malformed-attribute', "attribute line has no '='");
    if (eq === start) return this.#fail('malformed-attribute', 'attribute line has an empty name');
    this.#attribute(buf, start, eq, lf, rawBytes);
    return true;
  }

  /** An attribute line `buf[start, lf)` whose valid name ends at `eq`: checks the limits, keeps the value if wanted. */
  #attribute(buf: Buffer, start: number, eq: number, lf: number, rawBytes: number): void {
    const end = buf[lf - 1] === CR ? lf - 1 : lf;
    if (end - start > this.#limits.maxLineBytes) {
      this.#fail('line-too-long', `attribute line of ${end - start} bytes exceeds the limit of ${this.#limits.maxLineBytes}`);
      return;
    }
    const request = this.#current;
    if (++request.attributeCount > this.#limits.maxAttributes) {
      this.#fail('too-many-attributes', `request has more than ${this.#limits.maxAttributes} attributes`);
      return;
    }
    this.#requestBytes += rawBytes;
    if (this.#requestBytes > this.#limits.maxRequestBytes) {
      this.#fail('request-too-large', `request exceeds ${this.#limits.maxRequestBytes} bytes`);
      return;
    }
    const candidates = KEPT_BY_LENGTH[eq - start];
    if (candidates === undefined) return;
    for (const [name, field] of candidates) {
      if (sameBytes(buf, start, name)) {
        request[field] = buf.toString('utf8', eq + 1, end);
        return;
      }
    }
  }

  #appendPartial(chunk: Buffer, start: number, end: number): void {
    const add = end - start;
    const length = this.#partialLength + add;
    // +1: a line of exactly the limit may still have its CR here, waiting for the LF.
    if (length > this.#limits.maxLineBytes + 1) {
      this.#fail('line-too-long', `attribute line exceeds the limit of ${this.#limits.maxLineBytes} bytes`);
      return;
    }
    if (add === 0) return;
    let partial = this.#partial;
    if (partial === undefined || partial.length < length) {
      const grown = Buffer.allocUnsafe(Math.min(Math.max(256, length * 2), this.#limits.maxLineBytes + 1));
      if (partial !== undefined) partial.copy(grown, 0, 0, this.#partialLength);
      this.#partial = partial = grown;
    }
    chunk.copy(partial, this.#partialLength, start, end);
    this.#partialLength = length;
  }

  #fail(reason: ProtocolErrorReason, message: string): false {
    this.#error = new PolicyProtocolError(reason, message);
    this.#partial = undefined;
    this.#partialLength = 0;
    this.#current = emptyPolicyRequest();
    return false;
  }
}

function sameBytes(buf: Buffer, start: number, name: Uint8Array): boolean {
  for (let i = 0; i < name.length; i++) if (buf[start + i] !== name[i]) return false;
  return true;
}

/** The reply for one request: `action=<text>` and the empty line, LF only. */
export function encodeReply(action: string): string {
  return `action=${action}\n\n`;
}

/** An action is sent verbatim, so it must not carry a line break (that would forge another reply). */
export function isValidAction(action: unknown): action is string {
  return typeof action === 'string' && action.length > 0 && !action.includes('\n') && !action.includes('\r');
}
