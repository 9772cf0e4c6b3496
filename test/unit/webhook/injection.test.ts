import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Container, V1Pod, V1Volume } from '@kubernetes/client-node';
import { policyDaemonSpecSchema, selectorMatches } from '../../../src/api/policy-daemon.ts';
import { mailBackendSpecSchema } from '../../../src/api/mail-backend.ts';
import { planInjection, escapePointer, type InjectionContext } from '../../../src/webhook/injection.ts';

const backend = mailBackendSpecSchema.parse({ url: 'postgres://vmail@db:5432/vmail', credentialsSecretRef: { name: 'creds' } });
const daemon = (name: string, spec: Record<string, unknown>) => ({ name, namespace: 'mail', uid: 'u', spec: policyDaemonSpecSchema.parse({ backendRef: { name: 'vmail' }, ...spec }) });
const context = (overrides: Partial<InjectionContext> = {}): InjectionContext => ({
  daemons: [daemon('postfix', { podSelector: { matchLabels: { app: 'postfix' } } })],
  backendOf: () => backend,
  image: 'img:1',
  ...overrides,
});
const pod = (labels: Record<string, string>, extra: Partial<V1Pod> = {}): V1Pod => ({ metadata: { labels, ...extra.metadata }, spec: { containers: [{ name: 'postfix' }], ...extra.spec } });

describe('planInjection', () => {
  const skipped: [string, V1Pod, InjectionContext, RegExp][] = [
    ['no opt-in label', pod({ app: 'postfix' }), context(), /inject/],
    ['opt-in label not "true"', pod({ app: 'postfix', 'mailwarden.io/inject': 'yes' }), context(), /inject/],
    ['selector does not match', pod({ app: 'web', 'mailwarden.io/inject': 'true' }), context(), /no Sidecar PolicyDaemon/],
    ['already annotated', pod({ app: 'postfix', 'mailwarden.io/inject': 'true' }, { metadata: { annotations: { 'mailwarden.io/injected': 'x' } } }), context(), /already/],
    ['container already there', pod({ app: 'postfix', 'mailwarden.io/inject': 'true' }, { spec: { containers: [{ name: 'postfix' }], initContainers: [{ name: 'mailwarden-policyd' }] } }), context(), /already/],
    ['Service-mode daemon', pod({ app: 'postfix', 'mailwarden.io/inject': 'true' }), context({ daemons: [daemon('svc', { mode: 'Service' })] }), /no Sidecar/],
    ['backend missing', pod({ app: 'postfix', 'mailwarden.io/inject': 'true' }), context({ backendOf: () => undefined }), /MailBackend/],
  ];
  for (const [name, p, ctx, reason] of skipped) {
    test(`not injected: ${name}`, () => {
      const result = planInjection(p, ctx);
      assert.equal(result.injected, false);
      if (!result.injected) assert.match(result.reason, reason);
    });
  }

  test('a pod without volumes or annotations gets whole arrays and maps; the daemon goes beside Postfix', () => {
    const result = planInjection(pod({ app: 'postfix', 'mailwarden.io/inject': 'true' }), context());
    assert.ok(result.injected);
    const paths = result.patch.map((op) => op.path);
    assert.deepEqual(paths, ['/spec/containers/-', '/spec/volumes', '/metadata/labels/mailwarden.io~1policy-daemon', '/metadata/annotations']);
    // An ordinary container, not a native sidecar: nothing about it can hold Postfix back.
    assert.equal((result.patch[0]!.value as { restartPolicy?: string }).restartPolicy, undefined);
  });

  test('existing init containers stay as they are; existing volumes are appended to', () => {
    const result = planInjection(pod({ app: 'postfix', 'mailwarden.io/inject': 'true' }, { spec: { containers: [{ name: 'postfix' }], initContainers: [{ name: 'setup' }], volumes: [{ name: 'data' }] } }), context());
    assert.ok(result.injected);
    assert.ok(!result.patch.some((op) => op.path.startsWith('/spec/initContainers')));
    assert.deepEqual(result.patch.filter((op) => op.path === '/spec/volumes/-').length, 2);
  });

  test("the operator's image pull secrets reach the pod: a whole list, or the missing names appended", () => {
    const bare = planInjection(pod({ app: 'postfix', 'mailwarden.io/inject': 'true' }), context({ imagePullSecrets: ['regcred', 'mirror'] }));
    assert.ok(bare.injected);
    assert.deepEqual(bare.patch.find((op) => op.path === '/spec/imagePullSecrets')?.value, [{ name: 'regcred' }, { name: 'mirror' }]);
    const withOwn = planInjection(pod({ app: 'postfix', 'mailwarden.io/inject': 'true' }, { spec: { containers: [{ name: 'postfix' }], imagePullSecrets: [{ name: 'regcred' }] } }), context({ imagePullSecrets: ['regcred', 'mirror'] }));
    assert.ok(withOwn.injected);
    assert.deepEqual(withOwn.patch.filter((op) => op.path.startsWith('/spec/imagePullSecrets')), [{ op: 'add', path: '/spec/imagePullSecrets/-', value: { name: 'mirror' } }]);
    const none = planInjection(pod({ app: 'postfix', 'mailwarden.io/inject': 'true' }), context());
    assert.ok(none.injected);
    assert.ok(!none.patch.some((op) => op.path.startsWith('/spec/imagePullSecrets')));
  });

  test('every volume the daemon mounts is optional: a missing Secret or ConfigMap cannot keep the pod from starting', () => {
    const result = planInjection(pod({ app: 'postfix', 'mailwarden.io/inject': 'true' }), context());
    assert.ok(result.injected);
    const volumes = result.patch.find((op) => op.path === '/spec/volumes')!.value as { configMap?: { optional?: boolean }; secret?: { optional?: boolean } }[];
    assert.ok(volumes.length >= 2);
    for (const v of volumes) assert.equal((v.configMap ?? v.secret)?.optional, true);
  });

  test("store Kubernetes: the daemon's container alone gets the pod's own token, projected and expiring; no Secret", () => {
    const kube = { name: 'mx', namespace: 'mail', uid: 'u', spec: policyDaemonSpecSchema.parse({ store: 'Kubernetes', podSelector: { matchLabels: { app: 'postfix' } } }) };
    const result = planInjection(pod({ app: 'postfix', 'mailwarden.io/inject': 'true' }, { spec: { containers: [{ name: 'postfix' }], serviceAccountName: 'postfix', automountServiceAccountToken: false } }), context({ daemons: [kube], backendOf: () => undefined }));
    assert.ok(result.injected);
    const volumes = result.patch.find((op) => op.path === '/spec/volumes')!.value as V1Volume[];
    assert.ok(volumes.every((v) => v.secret === undefined), 'no Secret volume');
    const token = volumes.find((v) => v.projected !== undefined)!;
    assert.deepEqual(token.projected?.sources?.[0]?.serviceAccountToken, { path: 'token', expirationSeconds: 3600 });
    const container = result.patch.find((op) => op.path === '/spec/containers/-')!.value as V1Container;
    assert.ok(container.volumeMounts?.some((m) => m.name === token.name && m.readOnly === true));
    // The pod's own settings stay: no automounted token appears for Postfix, no ServiceAccount is changed.
    assert.ok(!result.patch.some((op) => op.path.startsWith('/spec/serviceAccountName') || op.path.startsWith('/spec/automountServiceAccountToken')));
  });

  test('several matching daemons: the first by name wins, with a warning', () => {
    const result = planInjection(pod({ app: 'postfix', 'mailwarden.io/inject': 'true' }), context({ daemons: [daemon('b', { podSelector: {} }), daemon('a', { podSelector: { matchLabels: { app: 'postfix' } } })] }));
    assert.ok(result.injected);
    assert.equal(result.daemon, 'a');
    assert.match(result.warnings[0]!, /a, b/);
  });

  test('escapePointer follows RFC 6901', () => {
    assert.equal(escapePointer('a/b~c'), 'a~1b~0c');
  });
});

describe('selectorMatches', () => {
  const cases: [string, Parameters<typeof selectorMatches>[0], Record<string, string>, boolean][] = [
    ['empty selector matches all', {}, { a: '1' }, true],
    ['matchLabels equal', { matchLabels: { a: '1' } }, { a: '1', b: '2' }, true],
    ['matchLabels differ', { matchLabels: { a: '1' } }, { a: '2' }, false],
    ['In', { matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '2'] }] }, { a: '2' }, true],
    ['In, absent', { matchExpressions: [{ key: 'a', operator: 'In', values: ['1'] }] }, {}, false],
    ['NotIn, absent', { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, {}, true],
    ['NotIn', { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, { a: '1' }, false],
    ['Exists', { matchExpressions: [{ key: 'a', operator: 'Exists' }] }, { a: '' }, true],
    ['DoesNotExist', { matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, { a: '' }, false],
  ];
  for (const [name, selector, labels, expected] of cases) test(name, () => assert.equal(selectorMatches(selector, labels), expected));
});

describe('PolicyDaemon spec', () => {
  test('Sidecar mode needs a podSelector', () => {
    const result = policyDaemonSpecSchema.safeParse({ backendRef: { name: 'x' } });
    assert.equal(result.success, false);
  });
  test('defaults: Sidecar, port 7777, httpPort 7778, two replicas', () => {
    const spec = policyDaemonSpecSchema.parse({ backendRef: { name: 'x' }, podSelector: {} });
    assert.deepEqual([spec.mode, spec.port, spec.httpPort, spec.replicas, spec.policy.semantics], ['Sidecar', 7777, 7778, 2, 'default']);
  });
});
