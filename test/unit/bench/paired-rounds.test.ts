import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { formatRatio, formatRounds, median, medianRun, pairedRatio } from '../../bench/paired-rounds.ts';
import type { RunResult } from '../../bench/store-support.ts';

const run = (rps: number, p99: number): RunResult => ({ connections: 8, requests: rps, rps, p50: p99 / 2, p99, p999: p99 * 2, cpuUs: 1e6 / rps, actions: { DUNNO: rps } });

describe('paired rounds', () => {
  it('takes the median of odd and even counts, ignoring NaN', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([NaN, 5]), 5);
    assert.ok(Number.isNaN(median([])));
  });

  it('compares each run with the ceiling run of its own round', () => {
    // Round 2 ran on a slow machine for both: its pair still has the ratio of the others.
    const ceiling = [run(100, 1), run(50, 2), run(100, 1)];
    const daemon = [run(90, 1.1), run(45, 2.2), run(80, 1.3)];
    const rps = pairedRatio(daemon, ceiling, (r) => r.rps);
    assert.deepEqual(rps.perRound, [0.9, 0.9, 0.8]);
    assert.equal(rps.median, 0.9);
    assert.equal(rps.min, 0.8);
    assert.equal(formatRatio(rps), '0.90 (0.80–0.90)');
    assert.equal(formatRounds(rps), '0.90 0.90 0.80');
    assert.throws(() => pairedRatio(daemon, ceiling.slice(1), (r) => r.rps), RangeError);
  });

  it('reports each figure as its own median over the rounds', () => {
    const m = medianRun([run(100, 3), run(300, 1), run(200, 2)]);
    assert.equal(m.rps, 200);
    assert.equal(m.p99, 2);
    assert.equal(m.connections, 8);
    assert.deepEqual(m.actions, { DUNNO: 100 });
    assert.throws(() => medianRun([]), RangeError);
  });
});
