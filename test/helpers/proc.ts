/** Process figures from Linux's /proc, for benchmarks. */
import { readFileSync } from 'node:fs';

/** The command name in a /proc/PID/stat line (between the first `(` and the last `)`). */
export function commandOfStat(stat: string): string {
  return stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
}

/** CPU seconds (user + system) in a /proc/PID/stat line. */
export function cpuSecondsOfStat(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks (USER_HZ = 100)
}

/** CPU seconds process `pid` has used so far; NaN when it is gone. */
export function processCpuSeconds(pid: number | undefined): number {
  try {
    return cpuSecondsOfStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return NaN;
  }
}
