import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { processCpuNanoseconds } from '../../helpers/proc.ts';

describe("a process's CPU time for benchmarks", () => {
  it('counts every thread of the process, not only its main thread', async () => {
    const before = processCpuNanoseconds(process.pid);
    // A worker thread runs for at least 200 ms of its own CPU while this thread waits.
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
       const start = process.threadCpuUsage();
       let spent = 0;
       while (spent < 200_000) { const u = process.threadCpuUsage(start); spent = u.user + u.system; }
       parentPort.postMessage(spent);`,
      { eval: true },
    );
    const workerMicros = await new Promise<number>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    // Read while the worker thread still exists: an ended thread no longer counts.
    const after = processCpuNanoseconds(process.pid);
    await worker.terminate();
    assert.ok(workerMicros >= 200_000);
    assert.ok(after - before >= workerMicros * 1000 * 0.95, `process CPU rose ${(after - before) / 1e6} ms; the worker alone ran ${workerMicros / 1000} ms`);
  });

  it('is NaN for a process that does not exist', () => {
    assert.ok(Number.isNaN(processCpuNanoseconds(2 ** 22 + 1)));
  });
});
