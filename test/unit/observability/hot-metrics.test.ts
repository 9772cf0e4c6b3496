import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from '../../../src/observability/hot-metrics.ts';

/** The sample lines of one metric in a registry's text exposition. */
async function samples(registry: Registry, name: string): Promise<string[]> {
  return (await registry.metrics()).split('\n').filter((line) => line.startsWith(name));
}

describe('hot metrics', () => {
  test("a HotHistogram exposes exactly what prom-client's Histogram does for the same observations", async () => {
    const buckets = [0.0001, 0.001, 0.01, 0.1, 1];
    const hot = new Registry();
    const reference = new Registry();
    const h = new HotHistogram({ name: 'h_seconds', help: 'help', buckets, registers: [hot] });
    const r = new Histogram({ name: 'h_seconds', help: 'help', buckets, registers: [reference] });
    // Bounds themselves (le is inclusive), between them, below the first and above the last.
    for (const v of [0, 0.00005, 0.0001, 0.0002, 0.001, 0.005, 0.1, 0.5, 1, 1.5, 30]) {
      h.observe(v);
      r.observe(v);
    }
    assert.deepEqual(await samples(hot, 'h_seconds'), await samples(reference, 'h_seconds'));
    assert.equal((await hot.metrics()).includes('# TYPE h_seconds histogram'), true);
  });

  test('a HotCounter reports every label value, zero until counted', async () => {
    const registry = new Registry();
    const c = new HotCounter({ name: 'decisions_total', help: 'help', label: 'verdict', values: ['allow', 'reject'] as const, registers: [registry] });
    c.children.reject.inc();
    c.children.reject.inc(2);
    assert.deepEqual(await samples(registry, 'decisions_total'), ['decisions_total{verdict="allow"} 0', 'decisions_total{verdict="reject"} 3']);
  });

  test('unsorted buckets are sorted; repeated or infinite ones are refused', () => {
    const registry = new Registry();
    assert.doesNotThrow(() => new HotHistogram({ name: 'a', help: 'h', buckets: [1, 0.1], registers: [registry] }));
    assert.throws(() => new HotHistogram({ name: 'b', help: 'h', buckets: [0.1, 0.1], registers: [registry] }), /distinct/);
    assert.throws(() => new HotHistogram({ name: 'c', help: 'h', buckets: [Infinity], registers: [registry] }), /finite/);
  });
});
