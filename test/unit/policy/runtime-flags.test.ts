import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { missingPolicydNodeFlags, POLICYD_NODE_FLAGS } from '../../../src/policy/runtime-flags.ts';
import { DAEMON_COMMAND } from '../../../src/reconcilers/policy-daemon-objects.ts';

describe('policyd node flags', () => {
  it('names the command-line flags a process was started without', () => {
    assert.deepEqual(missingPolicydNodeFlags([]), ['--no-memory-reducer']);
    assert.deepEqual(missingPolicydNodeFlags(['--no-memory-reducer', '--enable-source-maps']), []);
  });

  it('are passed by the sidecar command, before the script', () => {
    assert.deepEqual(DAEMON_COMMAND, ['node', ...POLICYD_NODE_FLAGS, '/app/bin/mailwarden.js']);
  });

  it('are flags this node accepts', () => {
    // node refuses an unknown V8 flag at startup: a renamed flag would stop the sidecar.
    const run = spawnSync(process.execPath, [...POLICYD_NODE_FLAGS, '-e', 'process.stdout.write(JSON.stringify(process.execArgv))'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(missingPolicydNodeFlags(JSON.parse(run.stdout) as string[]), []);
  });
});
