import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RepeatingCheck } from '../../../src/webhook/repeating-check.ts';
import { FakeClock, turn } from '../../helpers/fake-clock.ts';

describe('RepeatingCheck', () => {
  test('runs once per interval after start, never before, and not after stop', async () => {
    const clock = new FakeClock();
    const errors: unknown[] = [];
    let runs = 0;
    const loop = new RepeatingCheck({ check: async () => void runs++, intervalMs: 1000, onError: (e) => errors.push(e), clock });
    loop.start();
    clock.advance(999);
    assert.equal(runs, 0);
    clock.advance(1);
    await turn();
    assert.equal(runs, 1);
    clock.advance(1000);
    await turn();
    assert.equal(runs, 2);
    loop.stop();
    assert.equal(clock.pending, 0);
    clock.advance(5000);
    await turn();
    assert.equal(runs, 2);
    assert.deepEqual(errors, []);
  });

  test('a failed run goes to onError and the next run still comes', async () => {
    const clock = new FakeClock();
    const errors: unknown[] = [];
    let runs = 0;
    const loop = new RepeatingCheck({ check: async () => { if (++runs === 1) throw new Error('API server down'); }, intervalMs: 1000, onError: (e) => errors.push(e), clock });
    loop.start();
    clock.advance(1000);
    await turn();
    assert.deepEqual(errors.map((e) => (e as Error).message), ['API server down']);
    clock.advance(1000);
    await turn();
    assert.equal(runs, 2);
    loop.stop();
  });

  test('a slow run does not overlap the next: the interval counts from its end', async () => {
    const clock = new FakeClock();
    let running = 0;
    let most = 0;
    let finish: () => void = () => {};
    const loop = new RepeatingCheck({
      check: () => {
        most = Math.max(most, ++running);
        return new Promise<void>((resolve) => (finish = () => ((running--), resolve())));
      },
      intervalMs: 1000,
      onError: (e) => assert.fail(String(e)),
      clock,
    });
    loop.start();
    clock.advance(1000);
    clock.advance(5000); // the run is still going: nothing else starts
    assert.equal(most, 1);
    assert.equal(clock.pending, 0);
    finish();
    await turn();
    assert.equal(clock.pending, 1, 'the next run is scheduled once this one ended');
    loop.stop();
  });
});
