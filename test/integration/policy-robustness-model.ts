/**
 * The robustness test's model of the protocol: an independent, deliberately plain reference
 * decoder (strings and arrays, nothing shared with src/policy/codec.ts) that says which answers a
 * byte stream must get and whether the server must refuse it, plus the deterministic answer
 * both sides compute from a recipient.
 */
export interface ModelLimits {
  readonly maxLineBytes: number;
  readonly maxRequestBytes: number;
  readonly maxAttributes: number;
}

/** FNV-1a over UTF-16 code units: cheap, and any decoding difference changes it. */
export function answerFor(recipient: string | undefined): string {
  if (recipient === undefined) return 'DUNNO';
  let h = 0x811c9dc5;
  for (let i = 0; i < recipient.length; i++) h = Math.imul(h ^ recipient.charCodeAt(i), 0x01000193);
  return `REJECT h${(h >>> 0).toString(36)}`;
}

const NAME = /^[A-Za-z0-9_.-]+$/;
const utf8 = new TextDecoder('utf-8');

/**
 * Streaming model of the server's decoding: feed the bytes of a connection in any pieces; it
 * lists the answers due and, once the input is certainly invalid, the offset of the byte that
 * made it so (everything after is ignored, as the server does).
 */
export class ProtocolModel {
  readonly answers: string[] = [];
  /** Offset (in all bytes fed) of the byte at which the input became invalid, or -1. */
  errorAt = -1;
  readonly #limits: ModelLimits;
  #line: number[] = [];
  #fed = 0;
  #recipient: string | undefined;
  #attributes = 0;
  #requestBytes = 0;

  constructor(limits: ModelLimits) {
    this.#limits = limits;
  }

  feed(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length && this.errorAt < 0; i++) {
      const b = bytes[i] as number;
      if (b !== 10) {
        this.#line.push(b);
        // A line cannot be valid once it holds more than the limit plus a possible CR.
        if (this.#line.length > this.#limits.maxLineBytes + 1) this.errorAt = this.#fed + i;
        continue;
      }
      if (!this.#endOfLine()) this.errorAt = this.#fed + i;
    }
    this.#fed += bytes.length;
  }

  /** Handles the line just ended by LF; false when it makes the input invalid. */
  #endOfLine(): boolean {
    const raw = this.#line.length + 1;
    const line = this.#line.at(-1) === 13 ? this.#line.slice(0, -1) : this.#line;
    this.#line = [];
    if (line.length > this.#limits.maxLineBytes) return false;
    if (line.length === 0) {
      this.answers.push(answerFor(this.#recipient));
      this.#recipient = undefined;
      this.#attributes = 0;
      this.#requestBytes = 0;
      return true;
    }
    this.#attributes++;
    this.#requestBytes += raw;
    if (this.#attributes > this.#limits.maxAttributes || this.#requestBytes > this.#limits.maxRequestBytes) return false;
    const eq = line.indexOf(61);
    if (eq <= 0 || !NAME.test(String.fromCharCode(...line.slice(0, eq)))) return false;
    if (eq === 9 && String.fromCharCode(...line.slice(0, eq)) === 'recipient') this.#recipient = utf8.decode(new Uint8Array(line.slice(eq + 1)));
    return true;
  }
}

/** The answers due for `bytes` and where (if anywhere) they turn invalid. */
export function model(bytes: Uint8Array, limits: ModelLimits): { answers: string[]; errorAt: number } {
  const m = new ProtocolModel(limits);
  m.feed(bytes);
  return { answers: m.answers, errorAt: m.errorAt };
}
