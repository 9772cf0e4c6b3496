import { pino, type Logger as PinoLogger } from 'pino';
import { escapeControlCharactersInJson } from '../restrictions/printable-text.ts';

/**
 * The one logging interface every module takes (the operator, the daemon, the stores, the
 * policy server): pino's calling convention, a context object then the message or the message
 * alone, so a pino logger fits as is and a test can record lines.
 */
export interface Logger {
  error(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  debug(obj: object | string, msg?: string): void;
  /** A logger whose lines carry `bindings` as well. */
  child(bindings: Record<string, unknown>): Logger;
}

/**
 * Structured JSON logs on stdout. Secrets never reach a log line: fields that may carry
 * one are redacted wherever they appear, and stores redact passwords from URLs themselves.
 * Request fields, entries and resource names reach log lines too: every line leaves with the
 * control, bidirectional and invisible characters the CLI escapes escaped (TerminalSafeLines).
 */
export function createLogger(options: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {}): PinoLogger {
  return pino(
    {
      name: options.name ?? 'mailwarden',
      level: options.level ?? process.env.MAILWARDEN_LOG_LEVEL ?? 'info',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        // Exact paths only: wildcard paths cost microseconds on every line, and no code passes
        // secrets to a logger — this is the second line of defence for the fields that could.
        paths: ['password', 'secret', 'token', 'authorization', 'bindPassword', 'config.password', 'settings.password', 'storeSettings.password'],
        censor: '[redacted]',
      },
      formatters: { level: levelLabel },
    },
    new TerminalSafeLines(options.destination ?? bufferedStdout()),
  );
}

/** Where log lines go: stdout's LineCoalescer, or a test's recorder. */
interface LineSink {
  write(line: string): unknown;
  flush?(cb?: (err?: Error) => void): void;
}

/**
 * The logger's stream: each JSON line with the characters a terminal would obey (C0 and C1
 * controls, bidi overrides, zero-width and other invisible characters: the CLI's set,
 * restrictions/printable-text.ts) as JSON escapes, so the line parses back to the same values.
 * JSON itself escapes only C0 controls. Lines written by {@link preformattedLines} pass here too.
 */
class TerminalSafeLines {
  readonly #sink: LineSink;

  constructor(sink: LineSink) {
    this.#sink = sink;
  }

  write(line: string): void {
    this.#sink.write(escapeControlCharactersInJson(line));
  }

  flush(cb?: (err?: Error) => void): void {
    if (typeof this.#sink.flush === 'function') this.#sink.flush(cb);
    else cb?.();
  }
}

function levelLabel(label: string): { level: string } {
  return { level: label };
}

/**
 * Writes lines whose fields the caller has already serialised, byte for byte as the logger would
 * write them: for a line logged on nearly every request, where pino's generic path (the object,
 * its walk, redaction, a fresh timestamp) costs more than the decision. Callers put no secret in
 * `fields`.
 */
export interface PreformattedLines {
  /** True when the logger's current level lets `level` lines through. */
  enabled(): boolean;
  /** One line: `fields` is `,"key":value…` (quote strings with {@link jsonString}). */
  write(fields: string): void;
}

/**
 * A {@link PreformattedLines} for `level` lines with message `msg`, or undefined when `logger` is
 * not one of {@link createLogger}'s (or writes to a pino multistream): use the logger then.
 */
export function preformattedLines(logger: Logger, level: 'info' | 'warn', msg: string): PreformattedLines | undefined {
  const state = logger as unknown as Record<symbol, unknown> & { isLevelEnabled?: (level: string) => boolean };
  const stream = state[pino.symbols.streamSym] as { write(line: string): unknown; [key: symbol]: unknown } | undefined;
  const formatters = state[pino.symbols.formattersSym] as { level?: unknown } | undefined;
  const chindings = state[pino.symbols.chindingsSym];
  if (
    stream === undefined ||
    stream[pino.symbols.needsMetadataGsym] === true ||
    typeof state.isLevelEnabled !== 'function' ||
    state[pino.symbols.timeSym] !== pino.stdTimeFunctions.isoTime ||
    formatters?.level !== levelLabel ||
    state[pino.symbols.messageKeySym] !== 'msg' ||
    typeof chindings !== 'string'
  ) {
    return undefined;
  }
  const isLevelEnabled = state.isLevelEnabled.bind(logger);
  const head = `{"level":${jsonString(level)},"time":"`;
  const afterTime = `"${chindings}`;
  const tail = `,"msg":${jsonString(msg)}}\n`;
  let lastMs = NaN;
  let lastTime = '';
  return {
    enabled: () => isLevelEnabled(level),
    write(fields: string): void {
      // pino's isoTime formats a new Date every line; many lines share a millisecond.
      const ms = Date.now();
      if (ms !== lastMs) {
        lastMs = ms;
        lastTime = new Date(ms).toISOString();
      }
      stream.write(head + lastTime + afterTime + fields + tail);
    },
  };
}

/** `value` as a JSON string literal, without JSON.stringify's allocation when nothing needs escaping. */
export function jsonString(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    // Quote, backslash, control characters and surrogates (a lone one is escaped): JSON.stringify.
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(value);
  }
  return `"${value}"`;
}

/**
 * stdout written in blocks of at least 15 KiB (what one event-loop turn logged past that; at most
 * 60 KiB), flushed every half second: a busy daemon logging each rejection would otherwise pay a
 * write per line, and smaller blocks still cost it measurably (docs/performance.md). Lines reach
 * the log within 0.5 s.
 */
function bufferedStdout(): LineCoalescer {
  // sonic-boom writes each block as given (it handles EAGAIN and partial writes); the blocks are
  // gathered in front of it because its own buffering re-measures the whole pending text on
  // every line.
  const destination = new LineCoalescer(pino.destination({ fd: 1, sync: false, minLength: 0 }), 15 * 1024);
  const timer = setInterval(() => destination.flush(), 500);
  timer.unref();
  process.once('exit', () => {
    try {
      destination.flushSync();
    } catch {
      // stdout already closed: nothing more can be said.
    }
  });
  return destination;
}

/** What LineCoalescer writes to: a sonic-boom stream. */
interface BlockSink {
  write(data: string): boolean;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

/**
 * Gathers log lines into blocks of at least `blockBytes` characters for one write each. A full
 * block is handed over once the current event-loop turn is done (setImmediate): a line logged
 * while answering a request then never puts the block's cost before that answer.
 */
export class LineCoalescer {
  readonly #sink: BlockSink;
  readonly #blockBytes: number;
  #lines: string[] = [];
  #length = 0;
  #scheduled = false;
  readonly #passLater = (): void => {
    this.#scheduled = false;
    this.#pass();
  };

  constructor(sink: BlockSink, blockBytes: number) {
    this.#sink = sink;
    this.#blockBytes = blockBytes;
  }

  write(line: string): boolean {
    this.#lines.push(line);
    this.#length += line.length;
    if (this.#length >= this.#blockBytes) {
      // A turn that logs without end (a synchronous loop) still leaves in bounded blocks.
      if (this.#length >= 4 * this.#blockBytes) this.#pass();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#passLater);
      }
    }
    return true;
  }

  /** Hands what is gathered to the sink, which writes it out (asynchronously). */
  flush(cb?: (err?: Error) => void): void {
    this.#pass();
    this.#sink.flush(cb);
  }

  flushSync(): void {
    this.#pass();
    this.#sink.flushSync();
  }

  #pass(): void {
    if (this.#lines.length === 0) return;
    const block = this.#lines.length === 1 ? (this.#lines[0] as string) : this.#lines.join('');
    this.#lines = [];
    this.#length = 0;
    this.#sink.write(block);
  }
}

/** A logger that drops everything, for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });
