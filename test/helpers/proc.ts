/** Process figures from Linux's /proc, for benchmarks. */
import { readdirSync, readFileSync } from 'node:fs';

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

/**
 * Nanoseconds process `pid` has run on a CPU so far, all its threads together (the first field of
 * each /proc/PID/task/TID/schedstat); NaN when it is gone. Finer than /proc/PID/stat's 10 ms
 * ticks, so a window of a few seconds is measured to well under 1 %. A thread that ended before
 * the reading no longer counts.
 */
export function processCpuNanoseconds(pid: number | undefined): number {
  try {
    let total = 0;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // The thread ended between the listing and the reading.
      }
    }
    return total;
  } catch {
    return NaN;
  }
}
