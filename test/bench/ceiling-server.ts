/**
 * The benchmark's ceiling: the real codec and server with a handler that decides nothing and
 * answers DUNNO. Whatever the daemon does beyond this (store lookups, the decision, metrics) is
 * what the benchmark's ratio measures.
 *
 * Usage: node test/bench/ceiling-server.ts --listen HOST:PORT [--store DIR (ignored)]
 * Takes the daemon's arguments so it can stand in for it.
 */
import { parseArgs } from 'node:util';
import { PolicyServer } from '../../src/policy/server.ts';
import { applyPolicydV8Flags } from '../../src/policy/runtime-flags.ts';

// The daemon's own V8 settings (it applies them at startup): ratios then compare code alone.
applyPolicydV8Flags();

const { values } = parseArgs({ options: { listen: { type: 'string' }, store: { type: 'string' } }, strict: false });
const listen = String(values.listen ?? '127.0.0.1:7777');
const colon = listen.lastIndexOf(':');
const server = new PolicyServer({ handler: () => 'DUNNO' });
const address = await server.listen({ host: listen.slice(0, colon), port: Number(listen.slice(colon + 1)) });
process.stdout.write(`ceiling server listening on ${JSON.stringify(address)}\n`);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => void server.close({ timeoutMs: 1000 }).then(() => process.exit(0)));
}
