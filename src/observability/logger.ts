import { pino, type Logger as PinoLogger } from 'pino';

/** The logging surface the rest of the code uses (pino's, so any pino logger fits). */
export type Logger = Pick<PinoLogger, 'info' | 'warn' | 'error' | 'debug' | 'child'>;

/**
 * Structured JSON logs on stdout. Secrets never reach a log line: fields that may carry
 * one are redacted wherever they appear, and stores redact passwords from URLs themselves.
 */
export function createLogger(options: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {}): PinoLogger {
  return pino(
    {
      name: options.name ?? 'mailwarden',
      level: options.level ?? process.env.MAILWARDEN_LOG_LEVEL ?? 'info',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['password', '*.password', 'secret', '*.secret', 'token', '*.token', 'authorization', '*.authorization', 'bindPassword', '*.bindPassword'],
        censor: '[redacted]',
      },
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that drops everything, for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });
