// The production image (the repository's Dockerfile): non-root, read-only root filesystem, no
// compilers, no HEALTHCHECK, one entry point for the daemon and the operator.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../../harness/containers.ts';
import { ensureMailwardenImage, imageSize, runImage, startPolicydContainer, waitReady, type PolicydContainer } from '../../harness/mailwarden-image.ts';

const execFileP = promisify(execFile);
const EXAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../examples');

async function docker(...args: string[]): Promise<string> {
  return (await execFileP('docker', args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
}

/** One policy request over a fresh connection; the action line. */
async function ask(port: number, attrs: Record<string, string>): Promise<string> {
  const sock = connect({ host: '127.0.0.1', port });
  sock.setEncoding('utf8');
  let buf = '';
  const answer = new Promise<string>((resolve, reject) => {
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.includes('\n\n')) resolve(buf.split('\n')[0]!);
    });
    sock.on('error', reject);
  });
  sock.write(`${Object.entries({ request: 'smtpd_access_policy', protocol_state: 'RCPT', ...attrs }).map(([k, v]) => `${k}=${v}`).join('\n')}\n\n`);
  try {
    return await answer;
  } finally {
    sock.destroy();
  }
}

describe('the mailwarden image', { timeout: 600_000 }, () => {
  let tag: string;
  before(async () => {
    const info = await ensureMailwardenImage();
    tag = info.tag;
    if (process.env.MAILWARDEN_TEST_VERBOSE) {
      console.error(`image ${tag}: ${(await imageSize(tag)) / 1e6} MB${info.built ? `, built in ${info.buildMs} ms` : ' (cached)'}`);
    }
  });

  test('runs as the numeric user 65532, one entry point, no HEALTHCHECK', async () => {
    const config = JSON.parse(await docker('image', 'inspect', '--format', '{{json .Config}}', tag)) as {
      User: string;
      Entrypoint: string[];
      Healthcheck?: unknown;
    };
    assert.equal(config.User, '65532:65532');
    assert.deepEqual(config.Entrypoint, ['node', '/app/bin/mailwarden.js']);
    assert.equal(config.Healthcheck ?? null, null);
    const id = await runImage([], ['--entrypoint', 'id']);
    assert.equal(id.stdout.trim(), 'uid=65532 gid=65532 groups=65532');
  });

  test('holds no compilers, TypeScript sources or dev dependencies', async () => {
    const r = await runImage(
      ['-c', 'for c in gcc cc c++ g++ make tsc; do command -v $c; done; ls /app; ls /app/node_modules | grep -x -e typescript -e testcontainers -e tsx; true'],
      ['--entrypoint', 'sh'],
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').sort(), ['bin', 'crds', 'dist', 'node_modules', 'package.json']);
  });

  test('the daemon and the operator commands start on a read-only root filesystem', async () => {
    const help = await runImage(['--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: mailwarden COMMAND/);
    for (const cmd of ['policyd', 'operator']) {
      const r = await runImage([cmd, '--help']);
      assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
    }
    const crds = await runImage(['crds']);
    assert.equal(crds.code, 0, crds.stderr);
    assert.match(crds.stdout, /kind: CustomResourceDefinition/);
    assert.equal((await runImage(['no-such-command'])).code, 2);
  });

  describe('the policy daemon', () => {
    let daemon: PolicydContainer;
    before(async () => {
      daemon = await startPolicydContainer({ store: EXAMPLES });
    });
    after(async () => daemon?.stop());

    test('serves on a read-only root filesystem as 65532', async () => {
      const inspect = JSON.parse(await docker('inspect', '--format', '{{json .HostConfig.ReadonlyRootfs}} {{json .Config.User}}', daemon.containerId).then((s) => `[${s.trim().replace(' ', ',')}]`)) as [boolean, string];
      assert.deepEqual(inspect, [true, '65532:65532']);
      assert.equal(await ask(daemon.port, { sender: 'x@gmail.com', recipient: 'bob@example.com' }), 'action=REJECT Not authorized');
      assert.equal(await ask(daemon.port, { sender: 'partner@gmail.com', recipient: 'bob@example.com' }), 'action=DUNNO');
      const ready = await fetch(`http://127.0.0.1:${daemon.httpPort}/readyz`);
      assert.equal(ready.status, 200);
    });

    test('SIGTERM stops it cleanly (exit 0)', async () => {
      await docker('stop', '-t', '10', daemon.containerId);
      assert.equal((await docker('inspect', '--format', '{{.State.ExitCode}}', daemon.containerId)).trim(), '0');
      await daemon.start();
      assert.equal(await ask(daemon.port, { sender: 'x@gmail.com', recipient: 'bob@example.com' }), 'action=REJECT Not authorized');
    });
  });

  test('writes nothing outside /tmp (docker diff of a writable container is empty)', async () => {
    const port = await freePort();
    const httpPort = await freePort();
    const id = (
      await docker('run', '-d', '--network', 'host', '--tmpfs', '/tmp', '-v', `${EXAMPLES}:/etc/mailwarden/restrictions:ro`, tag,
        'policyd', '--listen', `127.0.0.1:${port}`, '--http-listen', `127.0.0.1:${httpPort}`, '--store', '/etc/mailwarden/restrictions')
    ).trim();
    try {
      await waitReady(id, 1, 30_000);
      assert.equal(await ask(port, { sender: 'x@gmail.com', recipient: 'bob@example.com' }), 'action=REJECT Not authorized');
      await fetch(`http://127.0.0.1:${httpPort}/metrics`);
      // Docker itself creates the bind mount's target (and its parents); nothing else may change.
      const mountPoint = new Set(['C /etc', 'A /etc/mailwarden', 'A /etc/mailwarden/restrictions']);
      const changes = (await docker('diff', id)).split('\n').filter((l) => l !== '' && !mountPoint.has(l));
      assert.deepEqual(changes, []);
    } finally {
      await docker('rm', '-f', id);
    }
  });
});
