import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import type { V1NetworkPolicy, V1Pod, V1Role, V1RoleBinding, V1ServiceAccount } from '@kubernetes/client-node';
import { mailBackendSpecSchema, type MailBackendSpec } from '../../../src/api/mail-backend.ts';
import { policyDaemonSpecSchema, quantityValue } from '../../../src/api/policy-daemon.ts';
import { caOf, CredentialsError } from '../../../src/reconcilers/credentials.ts';
import { configHash, daemonContainer, daemonIdentityObjects, daemonReaders, daemonVolumes, deploymentFor, mountsLegacyToken, networkPolicyFor, nodeHeapOptions, policydConfigYaml } from '../../../src/reconcilers/policy-daemon-objects.ts';

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
    const container = daemonContainer(daemon(), backend, 'mailwarden:test');
    assert.equal(container.resources?.limits?.memory, '256Mi');
    assert.deepEqual(container.env, [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=128 --max-semi-space-size=8' }]);
  });

  test('a raised limit raises the heap with it', () => {
    const container = daemonContainer(daemon({ limits: { memory: '1Gi' } }), backend, 'mailwarden:test');
    assert.deepEqual(container.env, [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=512 --max-semi-space-size=16' }]);
  });

  test("a daemon of the Kubernetes store is started with --expose-gc on its command line, so that it can collect a full list's garbage (stores/heap.ts), and its young generation held at its maximum, which that collection would leave at its smallest; a MailBackend's is not", () => {
    const kube = (resources?: object) => ({
      name: 'mx',
      namespace: 'mail',
      spec: policyDaemonSpecSchema.parse({ store: 'Kubernetes', podSelector: { matchLabels: { app: 'postfix' } }, ...(resources ? { resources } : {}) }),
    });
    const container = daemonContainer(kube(), undefined, 'mailwarden:test');
    assert.deepEqual(container.command, ['node', '--expose-gc', '--min-semi-space-size=8', '/app/bin/mailwarden.js']);
    assert.deepEqual(container.env, [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=128 --max-semi-space-size=8' }]);
    assert.deepEqual(daemonContainer(kube({ limits: { memory: '1Gi' } }), undefined, 'mailwarden:test').command, ['node', '--expose-gc', '--min-semi-space-size=16', '/app/bin/mailwarden.js']);
    assert.deepEqual(daemonContainer(daemon(), backend, 'mailwarden:test').command, ['node', '/app/bin/mailwarden.js']);
  });
});

describe('daemonContainer probes', () => {
  const backend = { store: { url: 'postgres://vmail@127.0.0.1/vmail' } } as unknown as MailBackendSpec;
  const daemon = (mode: 'Sidecar' | 'Service') => ({ name: 'mx', namespace: 'mail', spec: policyDaemonSpecSchema.parse({ backendRef: { name: 'b' }, mode, ...(mode === 'Sidecar' ? { podSelector: { matchLabels: { app: 'postfix' } } } : {}) }) });

  test('a sidecar is ready once it listens: a store outage never makes the Postfix pod unready', () => {
    const container = daemonContainer(daemon('Sidecar'), backend, 'mailwarden:test');
    assert.equal(container.readinessProbe, undefined);
    assert.equal(container.startupProbe?.httpGet?.path, '/healthz');
    assert.equal(container.livenessProbe?.httpGet?.path, '/healthz');
  });

  test('a sidecar with store Kubernetes is ready once it has listed the restrictions (/readyz; it stays so through an API server outage)', () => {
    const kube = { name: 'mx', namespace: 'mail', spec: policyDaemonSpecSchema.parse({ store: 'Kubernetes', mode: 'Sidecar', podSelector: { matchLabels: { app: 'postfix' } } }) };
    const container = daemonContainer(kube, undefined, 'mailwarden:test');
    assert.equal(container.readinessProbe?.httpGet?.path, '/readyz');
    assert.equal(container.startupProbe?.httpGet?.path, '/healthz');
  });

  test('a Service-mode replica is ready only while it can answer from its store', () => {
    const container = daemonContainer(daemon('Service'), backend, 'mailwarden:test');
    assert.equal(container.readinessProbe?.httpGet?.path, '/readyz');
    assert.equal(container.livenessProbe?.httpGet?.path, '/healthz');
  });
});

describe('a MailBackend CA from a Secret (caSecretRef)', () => {
  const daemon = { name: 'mx', namespace: 'mail', spec: policyDaemonSpecSchema.parse({ backendRef: { name: 'vmail' }, podSelector: { matchLabels: { app: 'postfix' } } }) };
  const withCa = mailBackendSpecSchema.parse({
    url: 'postgres://vmail@db.mail.svc/vmail',
    sql: { tls: { mode: 'verify-full' } },
    credentialsSecretRef: { name: 'creds' },
    caSecretRef: { name: 'db-ca' },
  });
  const withoutCa = mailBackendSpecSchema.parse({ url: 'postgres://vmail@db.mail.svc/vmail', sql: { tls: { mode: 'verify-full' } }, credentialsSecretRef: { name: 'creds' } });

  test('the Secret key ca.crt is mounted read-only and the daemon config names it as tls.caFile', () => {
    const volume = daemonVolumes(daemon, withCa).find((v) => v.secret?.secretName === 'db-ca');
    assert.deepEqual(volume?.secret?.items, [{ key: 'ca.crt', path: 'ca.crt' }]);
    const mount = daemonContainer(daemon, withCa, 'mailwarden:test').volumeMounts?.find((m) => m.name === volume?.name);
    assert.equal(mount?.readOnly, true);
    const config = parseYaml(policydConfigYaml(daemon, withCa)) as { storeSettings: { tls: { mode: string; caFile: string } } };
    assert.deepEqual(config.storeSettings.tls, { mode: 'verify-full', caFile: `${mount?.mountPath}/ca.crt` });
  });

  test('without it nothing is mounted and the config names no CA file', () => {
    assert.equal(daemonVolumes(daemon, withoutCa).length, 2, 'config and credentials only');
    const config = parseYaml(policydConfigYaml(daemon, withoutCa)) as { storeSettings: { tls: object } };
    assert.deepEqual(config.storeSettings.tls, { mode: 'verify-full' });
  });

  test('another CA Secret changes the config hash (Service mode rolls its pods)', () => {
    const other = { ...withCa, caSecretRef: { name: 'db-ca-2', key: 'ca.crt' } };
    assert.notEqual(configHash(policydConfigYaml(daemon, withCa), withCa), configHash(policydConfigYaml(daemon, other), other));
  });

  test('it needs tls.mode verify-full; a MailBackend names no tls.caFile at all', () => {
    const parse = (spec: object) => mailBackendSpecSchema.safeParse({ url: 'postgres://vmail@db/vmail', caSecretRef: { name: 'db-ca' }, ...spec });
    assert.match(JSON.stringify(parse({}).error?.issues), /caSecretRef needs sql\.tls\.mode verify-full/);
    assert.match(JSON.stringify(parse({ sql: { tls: { mode: 'require' } } }).error?.issues), /verify-full/);
    assert.match(JSON.stringify(parse({ sql: { tls: { mode: 'verify-full', caFile: '/ca.pem' } } }).error?.issues), /tls\.caFile is not accepted in a MailBackend/);
    // Not even alone: a path the operator would read (/dev/zero, a pipe) is no tenant's to give.
    assert.match(JSON.stringify(mailBackendSpecSchema.safeParse({ url: 'postgres://vmail@db/vmail', sql: { tls: { mode: 'verify-full', caFile: '/dev/zero' } } }).error?.issues), /tls\.caFile is not accepted/);
    const ldap = mailBackendSpecSchema.safeParse({ url: 'ldaps://ldap.mail.svc', caSecretRef: { name: 'ldap-ca' }, ldap: { tls: { mode: 'disable' } } });
    assert.match(JSON.stringify(ldap.error?.issues), /ldap\.tls\.mode verify-full/);
    assert.equal(parse({ sql: { tls: { mode: 'verify-full' } } }).success, true);
  });
});

describe('caOf: the CA certificates a backend names', () => {
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  const backend = (spec: object) => ({ metadata: { name: 'vmail', namespace: 'mail' }, spec: { url: 'postgres://vmail@db/vmail', ...spec } }) as never;
  const secrets = (data: Record<string, string> | undefined) => ({ get: (_ns: string, name: string) => (data === undefined || name !== 'db-ca' ? undefined : { data }), list: () => [] }) as never;

  test('read from the Secret key (default ca.crt, base64 data)', () => {
    assert.equal(caOf(backend({ caSecretRef: { name: 'db-ca' } }), secrets({ 'ca.crt': Buffer.from(pem).toString('base64') })), pem);
    assert.equal(caOf(backend({ caSecretRef: { name: 'db-ca', key: 'bundle.pem' } }), secrets({ 'bundle.pem': Buffer.from(pem).toString('base64') })), pem);
    assert.equal(caOf(backend({}), secrets(undefined)), undefined, 'no caSecretRef: none');
  });

  test('a missing Secret or key, or a value that is no PEM certificate, is a clear CredentialsError', () => {
    assert.throws(() => caOf(backend({ caSecretRef: { name: 'db-ca' } }), secrets(undefined)), (e: Error) => e instanceof CredentialsError && /Secret mail\/db-ca not found/.test(e.message));
    assert.throws(() => caOf(backend({ caSecretRef: { name: 'db-ca' } }), secrets({ other: 'x' })), (e: Error) => e instanceof CredentialsError && /has no key "ca\.crt"/.test(e.message));
    assert.throws(() => caOf(backend({ caSecretRef: { name: 'db-ca' } }), secrets({ 'ca.crt': Buffer.from('not a cert').toString('base64') })), /holds no PEM certificate/);
  });
});

describe('store Kubernetes', () => {
  const spec = (extra: object) => policyDaemonSpecSchema.safeParse({ podSelector: { matchLabels: { app: 'postfix' } }, ...extra });
  const daemon = { name: 'mx', namespace: 'mail', uid: 'u1', spec: policyDaemonSpecSchema.parse({ store: 'Kubernetes', podSelector: { matchLabels: { app: 'postfix' } } }) };

  test('store Kubernetes takes no backendRef; store MailBackend (the default) needs one', () => {
    assert.equal(spec({ store: 'Kubernetes' }).success, true);
    assert.equal(spec({ backendRef: { name: 'b' } }).success, true);
    assert.match(spec({}).error?.issues[0]?.message ?? '', /store MailBackend needs a backendRef/);
    assert.match(spec({ store: 'Kubernetes', backendRef: { name: 'b' } }).error?.issues[0]?.message ?? '', /store Kubernetes takes none/);
  });

  test('the config reads kubernetes:// for the daemon\'s namespace with the mounted token', () => {
    const config = parseYaml(policydConfigYaml(daemon, undefined)) as Record<string, unknown>;
    assert.equal(config.store, 'kubernetes://');
    assert.deepEqual(config.storeSettings, { namespaces: ['mail'], credentialsDir: '/etc/mailwarden/kube' });
    assert.equal(config.passwordFile, undefined);
  });

  test('the container mounts a projected token, the CA and the namespace, read-only; no Secret, nothing of a MailBackend', () => {
    const container = daemonContainer(daemon, undefined, 'mailwarden:test');
    assert.deepEqual(container.volumeMounts?.map((m) => [m.mountPath, m.readOnly]), [['/etc/mailwarden/policyd', true], ['/etc/mailwarden/kube', true]]);
    const volumes = daemonVolumes(daemon, undefined);
    assert.equal(volumes.length, 2);
    assert.ok(volumes.every((v) => v.secret === undefined), 'no Secret volume');
    const sources = volumes[1]?.projected?.sources ?? [];
    assert.deepEqual(sources[0]?.serviceAccountToken, { path: 'token', expirationSeconds: 3600 });
    assert.deepEqual(sources[1]?.configMap, { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }], optional: true });
    assert.equal(sources[2]?.downwardAPI?.items?.[0]?.fieldRef?.fieldPath, 'metadata.namespace');
  });

  const pod = (serviceAccountName: string | undefined, extra: { phase?: string; legacy?: boolean } = {}): V1Pod => ({
    metadata: { namespace: 'mail', name: `p-${serviceAccountName}` },
    spec: { containers: [], ...(serviceAccountName ? { serviceAccountName } : {}), ...(extra.legacy ? { volumes: [{ name: 'k', secret: { secretName: 'mx-policyd-token' } }] } : {}) },
    status: { phase: extra.phase ?? 'Running' },
  });

  test('Sidecar mode reads as the ServiceAccounts of the pods it was injected into (running or starting ones), once each', () => {
    assert.deepEqual(daemonReaders(daemon, []), []);
    assert.deepEqual(daemonReaders(daemon, [pod('postfix'), pod('postfix'), pod(undefined), pod('old', { phase: 'Succeeded' }), pod('pending', { phase: 'Pending' })]), ['default', 'pending', 'postfix']);
  });

  test('Service mode reads as its own ServiceAccount, whatever its pods say', () => {
    const service = { ...daemon, spec: { ...daemon.spec, mode: 'Service' as const } };
    assert.deepEqual(daemonReaders(service, [pod('postfix')]), ['mx-policyd-reader']);
  });

  test('the legacy ServiceAccount reads on while a pod from before the upgrade mounts its token Secret', () => {
    assert.equal(mountsLegacyToken([pod('postfix')], 'mx'), false);
    assert.equal(mountsLegacyToken([pod('postfix'), pod('postfix', { legacy: true })], 'mx'), true);
    assert.deepEqual(daemonReaders(daemon, [pod('postfix', { legacy: true })]), ['mx-policyd', 'postfix']);
  });

  test('its identity can only get, list and watch MailUserRestrictions, is bound to its readers and owned by the PolicyDaemon; no Secret', () => {
    const objects = daemonIdentityObjects(daemon, ['postfix']);
    assert.deepEqual(objects.map((o) => o.kind), ['Role', 'RoleBinding']);
    const [role, binding] = objects as [V1Role, V1RoleBinding];
    assert.deepEqual(role.rules, [{ apiGroups: ['mailwarden.io'], resources: ['mailuserrestrictions'], verbs: ['get', 'list', 'watch'] }]);
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'postfix', namespace: 'mail' }]);
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'mx-policyd' });
    for (const object of objects) assert.equal(object.metadata?.ownerReferences?.[0]?.uid, 'u1');
  });

  test('Service mode: its own ServiceAccount, without an automounted token, which the Deployment runs as with the projected token', () => {
    const service = { ...daemon, spec: { ...daemon.spec, mode: 'Service' as const } };
    const objects = daemonIdentityObjects(service, daemonReaders(service, []));
    assert.deepEqual(objects.map((o) => o.kind), ['ServiceAccount', 'Role', 'RoleBinding']);
    const account = objects[0] as V1ServiceAccount;
    assert.equal(account.metadata?.name, 'mx-policyd-reader');
    assert.equal(account.automountServiceAccountToken, false);
    assert.deepEqual((objects[2] as V1RoleBinding).subjects, [{ kind: 'ServiceAccount', name: 'mx-policyd-reader', namespace: 'mail' }]);
    const template = deploymentFor(service, undefined, 'img:1', 'h').spec!.template.spec!;
    assert.equal(template.serviceAccountName, 'mx-policyd-reader');
    assert.equal(template.automountServiceAccountToken, false);
    assert.ok(template.volumes?.some((v) => v.projected?.sources?.some((s) => s.serviceAccountToken !== undefined)));
  });
});

describe('deploymentFor (Service mode)', () => {
  const backend = mailBackendSpecSchema.parse({ url: 'postgres://vmail@db:5432/vmail', credentialsSecretRef: { name: 'creds' } });
  const daemon = { name: 'relay', namespace: 'mail', uid: 'u', spec: policyDaemonSpecSchema.parse({ backendRef: { name: 'vmail' }, mode: 'Service' }) };

  test("the operator's image pull secrets go into the pod template", () => {
    const deployment = deploymentFor(daemon, backend, 'registry.example/mailwarden@sha256:' + '0'.repeat(64), 'h', ['regcred']);
    assert.deepEqual(deployment.spec?.template.spec?.imagePullSecrets, [{ name: 'regcred' }]);
    assert.equal(deployment.spec?.template.spec?.containers[0]?.image, 'registry.example/mailwarden@sha256:' + '0'.repeat(64));
  });

  test('none given: no imagePullSecrets field', () => {
    assert.equal(deploymentFor(daemon, backend, 'img:1', 'h').spec?.template.spec?.imagePullSecrets, undefined);
  });
});

describe('networkPolicyFor (Service mode)', () => {
  const daemon = (extra: Record<string, unknown>) => ({ name: 'relay', namespace: 'mail', uid: 'u', spec: policyDaemonSpecSchema.parse({ backendRef: { name: 'vmail' }, mode: 'Service', ...extra }) });
  const rules = (policy: V1NetworkPolicy) => JSON.parse(JSON.stringify(policy.spec?.ingress)) as unknown;

  test('the policy port admits the pods podSelector names, in the daemon\'s namespace only', () => {
    const policy = networkPolicyFor(daemon({ podSelector: { matchLabels: { app: 'postfix' } } }));
    assert.deepEqual(policy.spec?.policyTypes, ['Ingress']);
    assert.deepEqual(rules(policy), [{ _from: [{ podSelector: { matchLabels: { app: 'postfix' } } }], ports: [{ protocol: 'TCP', port: 7777 }] }]);
  });

  test('without podSelector no pod is admitted to the policy port (no rule: a rule without from would admit everyone)', () => {
    assert.deepEqual(rules(networkPolicyFor(daemon({}))), []);
    assert.deepEqual(rules(networkPolicyFor(daemon({}), ['monitoring'])), [{ _from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ protocol: 'TCP', port: 7778 }] }]);
  });

  test('an empty podSelector is the admin\'s explicit choice: every pod of the namespace', () => {
    assert.deepEqual(rules(networkPolicyFor(daemon({ podSelector: {} }))), [{ _from: [{ podSelector: {} }], ports: [{ protocol: 'TCP', port: 7777 }] }]);
  });
});
