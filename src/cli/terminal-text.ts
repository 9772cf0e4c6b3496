import { escapeControlCharacters } from '../restrictions/printable-text.ts';
import type { Io } from './usage.ts';

/** `io` with both outputs escaped: every command writes through it. */
export function terminalSafeIo(io: Io): Io {
  return {
    stdout: { write: (text: string) => io.stdout.write(escapeControlCharacters(text)) },
    stderr: { write: (text: string) => io.stderr.write(escapeControlCharacters(text)) },
    stdin: io.stdin,
    env: io.env,
  };
}
