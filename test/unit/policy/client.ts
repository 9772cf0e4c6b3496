/** A tiny policy client for tests: collects answers and notices when the server closes. */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { withDeadline } from '../../helpers/deadline.ts';

export class TestClient {
  readonly socket: Socket;
  readonly answers: string[] = [];
  #buffer = '';
  /** Each returns true once satisfied (and is then dropped). */
  #waiters: (() => boolean)[] = [];
  closed = false;
  readonly closedPromise: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => {
      this.#buffer += text;
      let end: number;
      while ((end = this.#buffer.indexOf('\n\n')) !== -1) {
        this.answers.push(this.#buffer.slice(0, end));
        this.#buffer = this.#buffer.slice(end + 2);
      }
      this.#wake();
    });
    socket.on('error', () => {});
    // Not events.once: it rejects on 'error', and a reset is one way for a connection to close.
    this.closedPromise = new Promise<void>((resolve) => socket.once('close', () => resolve())).then(() => {
      this.closed = true;
      this.#wake();
    });
  }

  /** `from`: the local address to connect from (any 127.0.0.0/8 address is this host's). */
  static async open(target: { host: string; port: number } | { path: string }, from?: string): Promise<TestClient> {
    const socket = 'path' in target ? connect(target.path) : connect({ port: target.port, host: target.host, ...(from === undefined ? {} : { localAddress: from }) });
    await once(socket, 'connect');
    return new TestClient(socket);
  }

  send(text: string | Buffer): void {
    this.socket.write(text);
  }

  /** Waits until `count` answers arrived (or the connection closed: then returns what came). */
  async waitAnswers(count: number, timeoutMs = 5000): Promise<string[]> {
    if (this.answers.length < count && !this.closed) {
      const arrived = new Promise<void>((resolve) => {
        this.#waiters.push(() => {
          if (this.answers.length < count && !this.closed) return false;
          resolve();
          return true;
        });
      });
      await withDeadline(arrived, timeoutMs, () => {
        throw new Error(`timed out with ${this.answers.length}/${count} answers`);
      });
    }
    return this.answers.slice(0, count);
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await withDeadline(this.closedPromise, timeoutMs, () => {
      throw new Error('connection still open');
    });
  }

  #wake(): void {
    this.#waiters = this.#waiters.filter((satisfied) => !satisfied());
  }
}

/** A request with the given recipient (and RCPT state). */
export function rcpt(recipient: string, extra = ''): string {
  return `request=smtpd_access_policy\nprotocol_state=RCPT\nsender=s@example.net\nrecipient=${recipient}\n${extra}\n`;
}

/** A logger that records lines, for asserting what was logged. */
export function recordingLogger(): { lines: { level: string; obj: object; msg: string }[]; logger: import('../../../src/observability/logger.ts').Logger } {
  const lines: { level: string; obj: object; msg: string }[] = [];
  const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, obj, msg });
  const logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger };
  return { lines, logger };
}
