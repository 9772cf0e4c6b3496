import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MailBackendSpec } from '../../../src/api/mail-backend.ts';
import { policyDaemonSpecSchema, quantityValue } from '../../../src/api/policy-daemon.ts';
import { daemonContainer, nodeHeapOptions } from '../../../src/reconcilers/policy-daemon-objects.ts';

describe('quantityValue', () => {
  const cases: [string, number | undefined][] = [
    ['256Mi', 256 * 2 ** 20],
    ['1Gi', 2 ** 30],
    ['512Ki', 512 * 1024],
    ['1G', 1e9],
    ['300M', 3e8],
    ['128k', 128_000],
    ['268435456', 268_435_456],
    ['5e8', 5e8],
    ['2.5Gi', 2.5 * 2 ** 30],
    ['1E', 1e18],
    ['500m', 0.5],
    ['1Mb', undefined],
    ['Mi', undefined],
    ['1K', undefined],
    ['1mi', undefined],
    ['-1Gi', undefined],
  ];
  for (const [text, expected] of cases) test(`${text} → ${expected}`, () => assert.equal(quantityValue(text), expected));
});

describe('nodeHeapOptions', () => {
  test('half the limit for the old generation, a thirty-second for each semi-space (1 to 16 MiB)', () => {
    assert.equal(nodeHeapOptions('256Mi'), '--max-old-space-size=128 --max-semi-space-size=8');
    assert.equal(nodeHeapOptions('128Mi'), '--max-old-space-size=64 --max-semi-space-size=4');
    assert.equal(nodeHeapOptions('1Gi'), '--max-old-space-size=512 --max-semi-space-size=16');
    assert.equal(nodeHeapOptions('1G'), '--max-old-space-size=476 --max-semi-space-size=16');
  });

  test('no limit, an unreadable one or one too small to size from: Node keeps its own sizing', () => {
    assert.equal(nodeHeapOptions(undefined), undefined);
    assert.equal(nodeHeapOptions('lots'), undefined);
    assert.equal(nodeHeapOptions('32Mi'), undefined);
  });
});

describe('daemonContainer heap options', () => {
  const backend = { store: { url: 'postgres://vmail@127.0.0.1/vmail' } } as unknown as MailBackendSpec;
  const daemon = (resources?: object) => ({ name: 'mx', namespace: 'mail', spec: policyDaemonSpecSchema.parse({ backendRef: { name: 'b' }, podSelector: { matchLabels: { app: 'postfix' } }, ...(resources ? { resources } : {}) }) });

  test('the default 256Mi limit gives the daemon a 128 MiB old generation', () => {
    const container = daemonContainer(daemon(), backend, 'mailwarden:test', true);
    assert.equal(container.resources?.limits?.memory, '256Mi');
    assert.deepEqual(container.env, [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=128 --max-semi-space-size=8' }]);
  });

  test('a raised limit raises the heap with it', () => {
    const container = daemonContainer(daemon({ limits: { memory: '1Gi' } }), backend, 'mailwarden:test', false);
    assert.deepEqual(container.env, [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=512 --max-semi-space-size=16' }]);
  });
});
