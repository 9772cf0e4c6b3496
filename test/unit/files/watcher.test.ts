import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { FileWatcher, type FileWatcherOptions } from '../../../src/files/watcher.ts';
import type { Logger } from '../../../src/observability/logger.ts';

const dir = mkdtempSync(join(tmpdir(), 'mw-watcher-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A watcher whose calls are counted; `next(kind)` resolves at the next call of that kind. */
function counted(options: Partial<FileWatcherOptions>) {
  const calls = { event: 0, poll: 0 };
  const waiting: { kind: 'event' | 'poll'; resolve: () => void }[] = [];
  const called = (kind: 'event' | 'poll') => () => {
    calls[kind]++;
    for (const w of waiting.filter((w) => w.kind === kind)) w.resolve();
  };
  const watcher = new FileWatcher({ what: 'test files', onEvent: called('event'), onPoll: called('poll'), debounceMs: 20, pollMs: 0, ...options });
  const next = (kind: 'event' | 'poll') =>
    new Promise<void>((resolve, reject) => {
      waiting.push({ kind, resolve });
      AbortSignal.timeout(5_000).addEventListener('abort', () => reject(new Error(`no ${kind} within 5 s`)));
    });
  return { watcher, calls, next };
}

describe('FileWatcher', () => {
  test('a burst of writes in a watched directory is one onEvent once it settles', async () => {
    const { watcher, calls, next } = counted({ debounceMs: 50 });
    watcher.watch([dir]);
    try {
      const event = next('event');
      for (let i = 0; i < 5; i++) writeFileSync(join(dir, `f${i}.yaml`), `n: ${i}\n`);
      await event;
      assert.equal(calls.event, 1);
      assert.equal(calls.poll, 0, 'no poll was asked for');
    } finally {
      watcher.close();
    }
  });

  test('the poll calls onPoll with no event at all', async () => {
    const { watcher, calls, next } = counted({ pollMs: 10 });
    watcher.watch([dir]);
    try {
      await next('poll');
      await next('poll');
      assert.ok(calls.poll >= 2);
      assert.equal(calls.event, 0);
    } finally {
      watcher.close();
    }
  });

  test('a path that cannot be watched is logged once, and the poll still runs', async () => {
    const warnings: string[] = [];
    const logger: Logger = { debug() {}, info() {}, error() {}, warn: (_obj, msg) => void warnings.push(String(msg)), child: () => logger };
    const { watcher, next } = counted({ pollMs: 10, logger });
    watcher.watch([join(dir, 'missing')]);
    try {
      await next('poll');
      assert.deepEqual(warnings, ['cannot watch test files; polling only']);
    } finally {
      watcher.close();
    }
  });
});
