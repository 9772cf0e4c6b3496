import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { createLogger, jsonString, LineCoalescer, preformattedLines, silentLogger } from '../../../src/observability/logger.ts';

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
  test('a full block leaves after the current event-loop turn, in order, nothing lost', async () => {
    const sink = recordingSink();
    const out = new LineCoalescer(sink, 20);
    for (let i = 0; i < 3; i++) out.write(`line ${i}\n`); // 7 characters each
    assert.deepEqual(sink.writes, [], 'not while the turn that logged is running');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(sink.writes, ['line 0\nline 1\nline 2\n']);
    for (let i = 3; i < 10; i++) {
      out.write(`line ${i}\n`);
      if (i % 3 === 2) await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual(sink.writes, ['line 0\nline 1\nline 2\n', 'line 3\nline 4\nline 5\n', 'line 6\nline 7\nline 8\n']);
    out.flush();
    assert.equal(sink.writes.join(''), Array.from({ length: 10 }, (_, i) => `line ${i}\n`).join(''));
  });

  test('a turn that never yields still hands over blocks of at most four times the block size', () => {
    const sink = recordingSink();
    const out = new LineCoalescer(sink, 20);
    for (let i = 0; i < 24; i++) out.write(`line ${i}\n`);
    assert.ok(sink.writes.length >= 2);
    for (const block of sink.writes) assert.ok(block.length >= 80 && block.length < 80 + 7, `block of ${block.length}`);
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

  test('pino writes through it: whole JSON lines, secrets redacted', async () => {
    const sink = recordingSink();
    const out = new LineCoalescer(sink, 1);
    const logger = createLogger({ destination: out as unknown as NodeJS.WritableStream, level: 'info' });
    logger.info({ mailbox: 'alice@example.com', password: 'hunter2' }, 'hello');
    await new Promise((r) => setImmediate(r));
    assert.equal(sink.writes.length, 1);
    const line = JSON.parse(sink.writes[0]!) as Record<string, unknown>;
    assert.equal(line.msg, 'hello');
    assert.equal(line.level, 'info');
    assert.equal(line.password, '[redacted]');
  });
});

describe('preformattedLines', () => {
  const odd = ['', 'plain@example.com', 'quote"back\\slash', 'tab\tnew\nline\u0000', 'ünïcødé ✉', 'pair \ud83d\udce7', 'lone \ud800 high', 'lone \udc00 low'];

  test('jsonString is JSON.stringify for every kind of text', () => {
    for (const text of odd) assert.equal(jsonString(text), JSON.stringify(text), JSON.stringify(text));
  });

  test('a line is byte for byte what the logger writes for the same fields', () => {
    const lines: string[] = [];
    const destination = { write: (line: string) => lines.push(line) } as unknown as NodeJS.WritableStream;
    const logger = createLogger({ destination, level: 'info' }).child({ component: 'decision' });
    const fast = preformattedLines(logger, 'info', 'policy decision');
    assert.ok(fast !== undefined);
    for (const text of odd) {
      logger.info({ verdict: 'reject', entry: text, skipped: undefined }, 'policy decision');
      fast.write(`,"verdict":"reject","entry":${jsonString(text)}`);
      const [viaPino, viaFast] = lines.splice(0);
      // The time may differ by a millisecond between the two calls: compare it apart.
      const time = /"time":"[^"]*"/;
      assert.match(viaFast!, time);
      if (/[\ud800-\udfff]/.test(text) && !/[\ud800-\udbff][\udc00-\udfff]/.test(text)) {
        // pino writes a lone surrogate raw (it reaches the log as U+FFFD); escaped, it survives.
        assert.deepEqual(JSON.parse(viaFast!.replace(time, '"time":""')), JSON.parse(viaPino!.replace(time, '"time":""')));
      } else {
        assert.equal(viaFast!.replace(time, ''), viaPino!.replace(time, ''));
      }
      assert.ok(viaFast!.endsWith('}\n'));
    }
  });

  test('follows the logger level as it changes', () => {
    const lines: string[] = [];
    const destination = { write: (line: string) => lines.push(line) } as unknown as NodeJS.WritableStream;
    const logger = createLogger({ destination, level: 'info' });
    const fast = preformattedLines(logger, 'info', 'm');
    assert.equal(fast?.enabled(), true);
    logger.level = 'warn';
    assert.equal(fast?.enabled(), false);
  });

  test('is not offered for loggers it cannot imitate', () => {
    const lines: string[] = [];
    const destination = { write: (line: string) => lines.push(line) } as unknown as NodeJS.WritableStream;
    assert.equal(preformattedLines(pino({ base: undefined }, destination), 'info', 'm'), undefined); // epoch time, numeric level
    assert.equal(preformattedLines(silentLogger, 'info', 'm'), undefined);
    assert.equal(preformattedLines({ info() {}, warn() {}, error() {}, debug() {}, child() {} } as never, 'info', 'm'), undefined);
  });
});
