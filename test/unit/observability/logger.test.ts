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

describe('log lines escape what a terminal would obey (#25), as the CLI does', () => {
  /** C1 CSI, bidi override and isolate, zero-width space, soft hyphen, BOM, a tag character, ESC, DEL. */
  const HOSTILE = 'x\u009b31m\u202e\u2066\u200b\u00ad\ufeff\u{e0041}\u001b[2J\u007f@evil.example';
  /** Any of them left raw in a line (C0 controls but newline, C1, and the invisible ones). */
  const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\u{e0000}-\u{e0fff}]/u;

  function capture() {
    const lines: string[] = [];
    const destination = { write: (line: string) => lines.push(line) } as unknown as NodeJS.WritableStream;
    return { lines, logger: createLogger({ destination, level: 'info', name: 'mailwarden-operator' }) };
  }

  test('fields, bindings and the message leave escaped and parse back to the exact values', () => {
    const { lines, logger } = capture();
    logger.child({ backend: `ns/${HOSTILE}` }).warn({ sender: HOSTILE, [`key${HOSTILE}`]: 1 }, `message ${HOSTILE}`);
    assert.equal(lines.length, 1);
    const line = lines[0]!;
    assert.doesNotMatch(line.slice(0, -1), RAW, JSON.stringify(line));
    assert.ok(line.endsWith('}\n'));
    assert.match(line, /x\\u009B31m\\u202E\\u2066\\u200B\\u00AD\\uFEFF\\uDB40\\uDC41\\u001b\[2J\\u007F@evil/);
    const record = JSON.parse(line) as Record<string, unknown>;
    assert.equal(record.sender, HOSTILE);
    assert.equal(record.backend, `ns/${HOSTILE}`);
    assert.equal(record.msg, `message ${HOSTILE}`);
    assert.equal(record[`key${HOSTILE}`], 1);
  });

  test('lines written past pino (preformattedLines) are escaped the same way', () => {
    const { lines, logger } = capture();
    const fast = preformattedLines(logger, 'info', 'policy decision');
    assert.ok(fast !== undefined);
    fast.write(`,"sender":${jsonString(HOSTILE)}`);
    assert.doesNotMatch(lines[0]!.slice(0, -1), RAW);
    assert.equal((JSON.parse(lines[0]!) as { sender: string }).sender, HOSTILE);
  });

  test('a line without such characters is written as it is; letters of any script are not escaped', () => {
    const { lines, logger } = capture();
    logger.info({ domain: 'bücher.example', name: 'пример例' }, 'plain');
    assert.match(lines[0]!, /"domain":"bücher\.example","name":"пример例","msg":"plain"/);
  });
});
