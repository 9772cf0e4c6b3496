import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { POLICYD_V8_FLAGS } from '../../../src/policy/runtime-flags.ts';

describe('policyd V8 flags', () => {
  it('are flags this node knows', () => {
    // setFlagsFromString ignores a flag V8 no longer has; node refuses one on its command line.
    const run = spawnSync(process.execPath, [...POLICYD_V8_FLAGS, '-e', '0'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stderr, '');
  });
});
