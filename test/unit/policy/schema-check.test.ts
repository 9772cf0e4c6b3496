import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SchemaCheck } from '../../../src/policy/schema-check.ts';
import { StoreError, type MailboxReader } from '../../../src/stores/store.ts';
import { FakeClock, turn } from '../../helpers/fake-clock.ts';

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

/** The retry period the tests give the check: advancing the clock by it runs the next attempt. */
const RETRY_MS = 10_000;

/** Advances past the next attempt and lets it finish. */
async function nextAttempt(clock: FakeClock): Promise<void> {
  clock.advance(RETRY_MS);
  await turn();
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
    const clock = new FakeClock();
    const logger = recordingLogger();
    const store = scriptedStore([missing, missing, undefined]);
    const check = new SchemaCheck({ store, logger, clock, retryMs: RETRY_MS });
    await check.start();
    assert.equal(check.problem, missing.message);
    await nextAttempt(clock);
    assert.equal(store.calls, 2);
    assert.deepEqual(logger.lines.filter((l) => l.level === 'error').length, 1, 'the same problem is not logged twice');
    await nextAttempt(clock);
    assert.equal(check.problem, undefined);
    assert.equal(clock.pending, 0, 'no further checks once the schema is found');
  });

  test('an unreachable store is no schema problem; it is asked again', async () => {
    const clock = new FakeClock();
    const store = scriptedStore([new StoreError('Unavailable', 'connection refused'), missing]);
    const check = new SchemaCheck({ store, logger: recordingLogger(), clock, retryMs: RETRY_MS });
    await check.start();
    assert.equal(check.settled, true);
    assert.equal(check.problem, undefined);
    await nextAttempt(clock);
    assert.equal(check.problem, missing.message);
  });

  test('stop cancels the next attempt', async () => {
    const clock = new FakeClock();
    const check = new SchemaCheck({ store: scriptedStore([missing, undefined]), logger: recordingLogger(), clock, retryMs: RETRY_MS });
    await check.start();
    check.stop();
    assert.equal(clock.pending, 0);
  });
});
