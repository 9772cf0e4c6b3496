/**
 * How the benchmarks turn repeated runs into figures. Each round runs a server and its ceiling
 * back to back (their order alternating from round to round), so both see the same state of a
 * shared machine; a ratio is taken within each round, and the reported ratio is the median of
 * those paired ratios, with its range. A single best-of run lets one lucky or unlucky round
 * (±10–20% on a shared 2-core machine) decide the verdict; the paired median does not.
 */
import type { RunResult } from './store-support.ts';

export function median(values: readonly number[]): number {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return NaN;
  const mid = finite.length >> 1;
  return finite.length % 2 === 1 ? (finite[mid] as number) : ((finite[mid - 1] as number) + (finite[mid] as number)) / 2;
}

/** The median of each figure over `runs` (figures taken separately); the answers of the first run. */
export function medianRun(runs: readonly RunResult[]): RunResult {
  const first = runs[0];
  if (first === undefined) throw new RangeError('medianRun: no runs (rounds must be at least 1)');
  const of = (pick: (r: RunResult) => number | undefined): number => median(runs.map((r) => pick(r) ?? NaN));
  return {
    connections: first.connections,
    requests: of((r) => r.requests),
    rps: of((r) => r.rps),
    p50: of((r) => r.p50),
    p99: of((r) => r.p99),
    p999: of((r) => r.p999),
    cpuUs: of((r) => r.cpuUs),
    lookupsPerRequest: first.lookupsPerRequest === undefined ? undefined : of((r) => r.lookupsPerRequest),
    actions: first.actions,
  };
}

/** One figure compared round by round: `measured[i]` against `ceiling[i]`. */
export interface PairedRatio {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly perRound: readonly number[];
}

export function pairedRatio(measured: readonly RunResult[], ceiling: readonly RunResult[], figure: (r: RunResult) => number): PairedRatio {
  if (measured.length !== ceiling.length || measured.length === 0) throw new RangeError('pairedRatio: needs one ceiling run per measured run');
  const perRound = measured.map((m, i) => figure(m) / figure(ceiling[i] as RunResult));
  return { median: median(perRound), min: Math.min(...perRound), max: Math.max(...perRound), perRound };
}

const f = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '-');

/** `0.88 (0.85–0.91)`: the median and the range of a paired ratio. */
export function formatRatio(ratio: PairedRatio): string {
  return ratio.perRound.length === 1 ? f(ratio.median) : `${f(ratio.median)} (${f(ratio.min)}–${f(ratio.max)})`;
}

/** `0.86 0.91 0.85`: a paired ratio round by round. */
export function formatRounds(ratio: PairedRatio): string {
  return ratio.perRound.map(f).join(' ');
}
