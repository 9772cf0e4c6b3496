import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger, LineCoalescer } from '../../../src/observability/logger.ts';

/** A sink that records what reaches it, as sonic-boom would write it. */
function recordingSink() {
  const writes: string[] = [];
  let flushedSync = 0;
  return {
    writes,
    get flushedSync() {
      return flushedSync;
    },
    write(data: string) {
      writes.push(data);
      return true;
    },
    flush(cb?: (err?: Error) => void) {
      cb?.();
    },
    flushSync() {
      flushedSync++;
    },
  };
}

describe('LineCoalescer', () => {
  test('lines leave in blocks of at least the block size, in order, nothing lost', () => {
    const sink = recordingSink();
    const out = new LineCoalescer(sink, 20);
    for (let i = 0; i < 10; i++) out.write(`line ${i}\n`); // 7 characters each
    assert.deepEqual(sink.writes, ['line 0\nline 1\nline 2\n', 'line 3\nline 4\nline 5\n', 'line 6\nline 7\nline 8\n']);
    out.flush();
    assert.equal(sink.writes.join(''), Array.from({ length: 10 }, (_, i) => `line ${i}\n`).join(''));
  });

  test('flushSync hands over the rest and flushes the sink synchronously; an empty flush writes nothing', () => {
    const sink = recordingSink();
    const out = new LineCoalescer(sink, 4096);
    out.flush();
    assert.deepEqual(sink.writes, []);
    out.write('a\n');
    out.flushSync();
    assert.deepEqual(sink.writes, ['a\n']);
    assert.equal(sink.flushedSync, 1);
  });

  test('pino writes through it: whole JSON lines, secrets redacted', () => {
    const sink = recordingSink();
    const out = new LineCoalescer(sink, 1);
    const logger = createLogger({ destination: out as unknown as NodeJS.WritableStream, level: 'info' });
    logger.info({ mailbox: 'alice@example.com', password: 'hunter2' }, 'hello');
    assert.equal(sink.writes.length, 1);
    const line = JSON.parse(sink.writes[0]!) as Record<string, unknown>;
    assert.equal(line.msg, 'hello');
    assert.equal(line.level, 'info');
    assert.equal(line.password, '[redacted]');
  });
});
