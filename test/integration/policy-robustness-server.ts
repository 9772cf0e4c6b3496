/**
 * The server side of the policy robustness test, in its own process (as in production, and so
 * a crash shows as an exit). Answers with a deterministic function of the recipient, half of the
 * answers synchronously, half asynchronously, and reports over IPC what the test checks: memory,
 * log lines and protocol errors (the metric) by reason, handler failures, and (asked 'idle') the moment no connection is open.
 *
 * argv[2]: the limits as JSON. Run with --expose-gc so memory is measured after a collection.
 */
import { PolicyServer } from '../../src/policy/server.ts';
import type { Logger } from '../../src/observability/logger.ts';
import { answerFor } from './policy-robustness-model.ts';

const limits = JSON.parse(process.argv[2] ?? '{}') as Record<string, number>;
const warnings: Record<string, number> = {};
const protocolErrors: Record<string, number> = {};
let errors = 0;
let maxRss = 0;
const logger: Logger = {
  debug() {},
  info() {},
  warn(obj) {
    const reason = String((obj as { reason?: string }).reason ?? 'other');
    warnings[reason] = (warnings[reason] ?? 0) + 1;
  },
  error(obj, msg) {
    errors++;
    process.stderr.write(`server error log: ${msg} ${String((obj as { err?: unknown }).err)}\n`);
  },
  child: () => logger,
};

/** Waits of the test for the moment no connection is open. */
let idleWaiters = 0;
const server = new PolicyServer({
  logger,
  limits,
  metrics: {
    onProtocolError(reason) {
      protocolErrors[reason] = (protocolErrors[reason] ?? 0) + 1;
    },
    onConnections(open) {
      if (open === 0) answerIdle();
    },
  },
  handler: (request) => {
    const answer = answerFor(request.recipient);
    // The parity of the answer's length decides sync or async, so both interleave on every connection.
    return answer.length % 2 === 0 ? answer : new Promise((resolve) => setImmediate(() => resolve(answer)));
  },
});
const address = await server.listen({ host: '127.0.0.1', port: 0 });
setInterval(() => (maxRss = Math.max(maxRss, process.memoryUsage.rss())), 100).unref();

process.on('message', (message: string) => {
  if (message === 'stats') {
    (globalThis as { gc?: () => void }).gc?.();
    const memory = process.memoryUsage();
    maxRss = Math.max(maxRss, memory.rss);
    process.send?.({ kind: 'stats', heapUsed: memory.heapUsed, rss: memory.rss, maxRss, warnings, protocolErrors, errors, connections: server.connections });
  } else if (message === 'idle') {
    idleWaiters++;
    if (server.connections === 0) answerIdle();
  } else if (message === 'close') {
    void server.close({ timeoutMs: 2000 }).then(() => process.exit(0));
  }
});
process.send?.({ kind: 'listening', address });

function answerIdle(): void {
  for (; idleWaiters > 0; idleWaiters--) process.send?.({ kind: 'idle' });
}
