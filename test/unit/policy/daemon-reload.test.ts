import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Logger } from '../../../src/observability/logger.ts';
import { loadPolicydConfig, type PolicydConfig } from '../../../src/policy/config.ts';
import { PolicyDaemon } from '../../../src/policy/daemon.ts';
import { TestClient, rcpt } from './client.ts';

const RESTRICTION = `apiVersion: mailwarden.io/v1alpha1
kind: MailUserRestriction
metadata: { name: alice }
spec:
  mailbox: alice@example.com
  rejectedRecipients: ["@.spam.test"]
`;

/**
 * A logger whose decision lines throw for one recipient: a handler that crashes half-way
 * through a request, as any bug in the decision path would.
 */
function crashingLogger(recipient: string): Logger {
  const logger = {
    debug() {},
    info(fields: { recipient?: string }, msg?: string) {
      if (msg === 'policy decision' && fields.recipient === recipient) throw new Error('the decision log crashed');
    },
    warn() {},
    error() {},
    child: () => logger,
  };
  return logger as unknown as Logger;
}

describe('policy daemon reload: the failure action', () => {
  let dir: string;
  let daemon: PolicyDaemon;
  let client: TestClient;
  let config: (failureAction: string) => Promise<PolicydConfig>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailwarden-daemon-'));
    await writeFile(join(dir, 'alice.yaml'), RESTRICTION);
    config = (failureAction) => loadPolicydConfig(undefined, { listen: '127.0.0.1:0', store: dir, failureAction, http: { listen: 'off' } });
    daemon = new PolicyDaemon({ config: await config('DEFER_IF_PERMIT first'), logger: crashingLogger('x@crash.spam.test') });
    const { policy } = await daemon.start();
    client = await TestClient.open(policy as { host: string; port: number });
  });
  after(async () => {
    client?.socket.destroy();
    await daemon?.stop(1_000);
    await rm(dir, { recursive: true, force: true });
  });

  test('a handler crash is answered with the failure action of the configuration in force', async () => {
    client.send(rcpt('x@crash.spam.test').replace('sender=s@example.net', 'sender=alice@example.com'));
    assert.equal((await client.waitAnswers(1))[0], 'action=DEFER_IF_PERMIT first');
    await daemon.reconfigure(await config('DEFER_IF_PERMIT second'), undefined);
    client.send(rcpt('x@crash.spam.test').replace('sender=s@example.net', 'sender=alice@example.com'));
    assert.equal((await client.waitAnswers(2))[1], 'action=DEFER_IF_PERMIT second', 'the reloaded failure action, not the one at start');
  });
});
