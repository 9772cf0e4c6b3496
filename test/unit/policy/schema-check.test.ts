import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SchemaCheck } from '../../../src/policy/schema-check.ts';
import { StoreError, type MailboxReader } from '../../../src/stores/store.ts';

/** A store whose verifySchema answers from a script, one outcome per call. */
function scriptedStore(outcomes: (StoreError | undefined)[]): MailboxReader & { calls: number } {
  const store = {
    kind: 'postgres',
    calls: 0,
    lookup: async () => new Map(),
    async verifySchema() {
      const outcome = outcomes[store.calls++];
      if (outcome !== undefined) throw outcome;
    },
    close: async () => {},
  };
  return store;
}

/** Timers the test fires by hand. */
function manualTimers() {
  const pending: (() => void)[] = [];
  return {
    pending,
    setTimer: (run: () => void) => {
      pending.push(run);
      return {};
    },
    clearTimer: () => void pending.splice(0),
    async fire() {
      pending.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

function recordingLogger() {
  const lines: { level: string; msg: string }[] = [];
  return { lines, error: (_: object, msg: string) => lines.push({ level: 'error', msg }), info: (_: object, msg: string) => lines.push({ level: 'info', msg }), debug: () => {} };
}

const missing = new StoreError('Misconfigured', 'table mailbox has no column allowedsenders');

describe('store schema check at start', () => {
  test('a store without verifySchema (manifests) is settled at once and has no problem', () => {
    const check = new SchemaCheck({ store: { kind: 'manifests', lookup: async () => new Map(), close: async () => {} }, logger: recordingLogger() });
    void check.start();
    assert.equal(check.settled, true);
    assert.equal(check.problem, undefined);
  });

  test('a missing column: the problem is said once, asked again until fixed, then cleared', async () => {
    const timers = manualTimers();
    const logger = recordingLogger();
    const store = scriptedStore([missing, missing, undefined]);
    const check = new SchemaCheck({ store, logger, ...timers });
    await check.start();
    assert.equal(check.problem, missing.message);
    await timers.fire();
    assert.equal(store.calls, 2);
    assert.deepEqual(logger.lines.filter((l) => l.level === 'error').length, 1, 'the same problem is not logged twice');
    await timers.fire();
    assert.equal(check.problem, undefined);
    assert.equal(timers.pending.length, 0, 'no further checks once the schema is found');
  });

  test('an unreachable store is no schema problem; it is asked again', async () => {
    const timers = manualTimers();
    const store = scriptedStore([new StoreError('Unavailable', 'connection refused'), missing]);
    const check = new SchemaCheck({ store, logger: recordingLogger(), ...timers });
    await check.start();
    assert.equal(check.settled, true);
    assert.equal(check.problem, undefined);
    await timers.fire();
    assert.equal(check.problem, missing.message);
  });

  test('stop cancels the next attempt', async () => {
    const timers = manualTimers();
    const check = new SchemaCheck({ store: scriptedStore([missing, undefined]), logger: recordingLogger(), ...timers });
    await check.start();
    check.stop();
    assert.equal(timers.pending.length, 0);
  });
});
