/**
 * Prometheus metrics for the policy daemon's hot path: one histogram and one counter per
 * label value, each updated with a few arithmetic operations. prom-client's Histogram and
 * labelled Counter cost hundreds of nanoseconds per update (label hashing, value validation),
 * which the daemon pays on every request; these register with a prom-client Registry as
 * ordinary metrics and expose the same text format.
 */
import type { Registry } from 'prom-client';

interface Sample {
  readonly value: number;
  readonly labels: Record<string, string | number>;
  readonly metricName?: string;
}

interface Collected {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram' | 'counter';
  readonly values: Sample[];
  readonly aggregator: 'sum';
}

/** What a Registry needs of a metric (prom-client reads name/help/type and calls get()). */
abstract class HotMetric {
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;

  constructor(name: string, help: string, registers: readonly Registry[]) {
    this.name = name;
    this.help = help;
    for (const registry of registers) registry.registerMetric(this as never);
  }
  abstract get(): Promise<Collected>;
}

/** A histogram without labels: `observe(v)` counts v into the first bucket whose bound is ≥ v. */
export class HotHistogram extends HotMetric {
  readonly type = 'histogram';
  readonly #bounds: readonly number[];
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  constructor(options: { name: string; help: string; buckets: readonly number[]; registers: readonly Registry[] }) {
    super(options.name, options.help, options.registers);
    const bounds = [...options.buckets].sort((a, b) => a - b);
    if (bounds.some((b, i) => !Number.isFinite(b) || (i > 0 && b === bounds[i - 1]))) throw new RangeError(`${options.name}: buckets must be finite and distinct`);
    this.#bounds = bounds;
    this.#counts = new Float64Array(bounds.length + 1); // the last one is +Inf
  }

  observe(value: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.#counts[i]!++;
    this.#sum += value;
    this.#count++;
  }

  async get(): Promise<Collected> {
    const values: Sample[] = [];
    let cumulative = 0;
    for (let i = 0; i < this.#bounds.length; i++) {
      cumulative += this.#counts[i]!;
      values.push({ value: cumulative, labels: { le: this.#bounds[i]! }, metricName: `${this.name}_bucket` });
    }
    values.push({ value: this.#count, labels: { le: '+Inf' }, metricName: `${this.name}_bucket` });
    values.push({ value: this.#sum, labels: {}, metricName: `${this.name}_sum` });
    values.push({ value: this.#count, labels: {}, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

/** One series of a {@link HotCounter}. */
export class HotCounterChild {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

/** A counter with one label whose values are all known up front. */
export class HotCounter<V extends string> extends HotMetric {
  readonly type = 'counter';
  readonly #label: string;
  readonly children: Readonly<Record<V, HotCounterChild>>;

  constructor(options: { name: string; help: string; label: string; values: readonly V[]; registers: readonly Registry[] }) {
    super(options.name, options.help, options.registers);
    this.#label = options.label;
    this.children = Object.fromEntries(options.values.map((v) => [v, new HotCounterChild()])) as Record<V, HotCounterChild>;
  }

  async get(): Promise<Collected> {
    const values = Object.entries<HotCounterChild>(this.children).map(([v, child]) => ({ value: child.value, labels: { [this.#label]: v } }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
