import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger } from '../../../src/observability/logger.ts';
import { DecisionLog } from '../../../src/policy/decision-log.ts';
import { emptyPolicyRequest, type PolicyRequest } from '../../../src/policy/request.ts';
import type { Decision } from '../../../src/restrictions/decide.ts';

function capture(level: string) {
  const lines: string[] = [];
  const destination = { write: (line: string) => lines.push(line) } as unknown as NodeJS.WritableStream;
  const logger = createLogger({ destination, level }).child({ component: 'decision' });
  return { logger, lines, parsed: () => lines.splice(0).map((line) => JSON.parse(line) as Record<string, unknown>) };
}

const request: PolicyRequest = {
  ...emptyPolicyRequest(),
  protocolState: 'RCPT',
  sender: 'boss@example.com',
  recipient: 'rival"@competitor.example',
  saslUsername: '',
  instance: '1a2b.6734f1a2.2bd31.0',
  queueId: '',
};

const rejection: Decision = {
  verdict: 'reject',
  action: 'REJECT Not authorized',
  direction: 'outbound',
  mailbox: 'boss@example.com',
  list: 'rejectedRecipients',
  entry: '@competitor.example',
  matched: 'rival"@competitor.example',
};

/** What the log says of `rejection` for `request`: undefined and empty request fields left out. */
const REJECTION_FIELDS = {
  verdict: 'reject',
  action: 'REJECT Not authorized',
  sender: 'boss@example.com',
  recipient: 'rival"@competitor.example',
  mailbox: 'boss@example.com',
  list: 'rejectedRecipients',
  entry: '@competitor.example',
  instance: '1a2b.6734f1a2.2bd31.0',
};

describe('DecisionLog', () => {
  test('a rejection is one info line naming the request and the mailbox, list and entry that decided', () => {
    const { logger, parsed } = capture('info');
    new DecisionLog(logger).record(rejection, request);
    const [line, ...rest] = parsed();
    assert.equal(rest.length, 0);
    assert.equal(typeof line?.time, 'string');
    delete line?.time;
    assert.deepEqual(line, { level: 'info', name: 'mailwarden', component: 'decision', ...REJECTION_FIELDS, msg: 'policy decision' });
  });

  test('the optional request fields appear when Postfix sent them', () => {
    const { logger, parsed } = capture('info');
    new DecisionLog(logger).record(rejection, { ...request, saslUsername: 'boss@example.com', queueId: '4FD3A2C01' });
    const [line] = parsed();
    assert.equal(line?.saslUsername, 'boss@example.com');
    assert.equal(line?.queueId, '4FD3A2C01');
  });

  test('a failure is a warn line with its reason; allows only at debug; no-match and skips never', () => {
    const info = capture('info');
    const log = new DecisionLog(info.logger);
    log.record({ verdict: 'failure', action: 'DEFER_IF_PERMIT Policy service unavailable', reason: 'store timed out' }, request);
    log.record({ verdict: 'allow', action: 'DUNNO', mailbox: 'boss@example.com', list: 'allowedRecipients', entry: '@example.com' }, request);
    log.record({ verdict: 'none', action: 'DUNNO', reason: 'no list matched' }, request);
    log.record({ verdict: 'skip', action: 'DUNNO', reason: 'not RCPT' }, request);
    const lines = info.parsed();
    assert.deepEqual(lines.map((l) => [l.level, l.verdict, l.reason]), [['warn', 'failure', 'store timed out']]);

    const debug = capture('debug');
    new DecisionLog(debug.logger).record({ verdict: 'allow', action: 'DUNNO', mailbox: 'boss@example.com', list: 'allowedRecipients', entry: '@example.com' }, request);
    assert.deepEqual(debug.parsed().map((l) => [l.level, l.verdict, l.entry]), [['debug', 'allow', '@example.com']]);
  });

  test('rejections stop when the level is raised above info', () => {
    const { logger, lines } = capture('info');
    const log = new DecisionLog(logger);
    (logger as unknown as { level: string }).level = 'warn';
    log.record(rejection, request);
    assert.deepEqual(lines, []);
  });

  test('a logger that is not ours gets the same fields through its own info()', () => {
    const calls: [object, string][] = [];
    const logger = { info: (obj: object, msg: string) => calls.push([obj, msg]), warn() {}, error() {}, debug() {}, child() {} };
    new DecisionLog(logger as never).record(rejection, request);
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.[1], 'policy decision');
    assert.deepEqual(JSON.parse(JSON.stringify(calls[0]?.[0])), REJECTION_FIELDS);
  });
});
