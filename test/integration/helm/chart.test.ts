import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { installCrds, stubCrd } from '../../harness/crds.ts';
import { chartServiceAccount, OPERATOR_NAMESPACE } from '../../harness/operator-env.ts';
import { renderChart, run } from '../../harness/kube-tools.ts';

/** A minimal ServiceMonitor CRD, so the API server knows the kind the chart renders when it exists. */
const SERVICE_MONITOR_CRD = stubCrd('monitoring.coreos.com', 'v1', 'ServiceMonitor');
/** cert-manager's kinds, as schemaless stubs (cert-manager itself is not installed). */
const CERT_MANAGER_CRDS = [stubCrd('cert-manager.io', 'v1', 'Issuer'), stubCrd('cert-manager.io', 'v1', 'Certificate')].join('\n---\n');
const DIGEST = `sha256:${'ab'.repeat(32)}`;

/** Every value the chart added for embedding and GitOps use, at once. */
const EXTENDED_VALUES = `
global: {imageRegistry: registry.example}
commonLabels: {team: mail}
image: {digest: "${DIGEST}"}
imagePullSecrets: [{name: regcred}]
extraEnv: [{name: HTTPS_PROXY, value: "http://proxy.example:3128"}]
extraVolumes: [{name: extra-ca, configMap: {name: extra-ca}}]
extraVolumeMounts: [{name: extra-ca, mountPath: /etc/extra-ca, readOnly: true}]
podSecurityContext: {fsGroupChangePolicy: OnRootMismatch}
securityContext: {privileged: false}
extraObjects:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: "extra-ca", namespace: "{{ .Release.Namespace }}"}
    data: {ca.crt: ""}
  - |
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: {{ .Release.Name }}-notes
      namespace: {{ .Release.Namespace }}
`;
function kinds(yaml: string): string[] {
  return parseAllDocuments(yaml)
    .map((d) => d.toJS() as { kind?: string; metadata?: { name?: string } } | null)
    .filter((o): o is { kind: string; metadata: { name: string } } => Boolean(o?.kind))
    .map((o) => `${o.kind}/${o.metadata.name}`);
}

describe('Helm chart', () => {
  let cp: ControlPlane;
  let kubeconfig: string;

  before(async () => {
    cp = await startControlPlane();
    kubeconfig = cp.kubeconfigPath;
    await installCrds(cp.kubeConfig());
    for (const ns of ['mailwarden-system', 'mail', 'mail-eu', 'restricted']) {
      await run('kubectl', ['create', 'namespace', ns], { kubeconfig });
    }
    await run('kubectl', ['label', 'namespace', 'restricted', 'pod-security.kubernetes.io/enforce=restricted'], { kubeconfig });
    await run('kubectl', ['apply', '-f', '-'], { input: CERT_MANAGER_CRDS, kubeconfig });
    valuesDir = mkdtempSync(path.join(tmpdir(), 'mw-chart-values-'));
    writeFileSync(path.join(valuesDir, 'extended.yaml'), EXTENDED_VALUES);
  });
  let valuesDir: string;
  after(() => rmSync(valuesDir, { recursive: true, force: true }));
  after(async () => cp?.stop());

  test('helm lint --strict passes', async () => {
    const result = await run('helm', ['lint', '--strict', 'charts/mailwarden']);
    assert.equal(result.code, 0, result.stdout + result.stderr);
  });

  test('values.schema.json refuses a value the chart does not have, and a bad one', async () => {
    const unknown = await run('helm', ['template', 'mw', 'charts/mailwarden', '--set', 'replicas=3']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /replicas/);
    const bad = await run('helm', ['template', 'mw', 'charts/mailwarden', '--set', 'replicaCount=0']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /replicaCount/);
  });

  const variants: [string, string[], string[]][] = [
    ['default values', [], []],
    ['several watched namespaces', ['watchNamespaces={mail,mail-eu}'], []],
    ['a single replica (no PodDisruptionBudget)', ['replicaCount=1'], []],
    ['webhook disabled', ['webhook.enabled=false'], []],
    ['metrics Service off', ['metrics.service.enabled=false'], []],
    ['ServiceMonitor when its API exists', [], ['--api-versions', 'monitoring.coreos.com/v1/ServiceMonitor']],
    ['cert-manager issues the webhook certificate', ['webhook.certManager.enabled=true'], []],
    ['cert-manager with an existing ClusterIssuer', ['webhook.certManager.enabled=true', 'webhook.certManager.issuerRef.name=ca', 'webhook.certManager.issuerRef.kind=ClusterIssuer'], []],
    ['extended values (global, commonLabels, digest, pull secrets, extra env/volumes/objects, security contexts)', [], ['--values', 'EXTENDED']],
  ];
  for (const [name, sets, extra] of variants) {
    test(`the rendered chart is accepted by the API server (server-side dry run): ${name}`, async () => {
      if (extra.length > 0) await run('kubectl', ['apply', '-f', '-'], { input: SERVICE_MONITOR_CRD, kubeconfig });
      const yaml = await renderChart('mw', 'mailwarden-system', sets, extra.map((e) => (e === 'EXTENDED' ? path.join(valuesDir, 'extended.yaml') : e)));
      const result = await run('kubectl', ['apply', '--dry-run=server', '-f', '-'], { input: yaml, kubeconfig });
      assert.equal(result.code, 0, result.stderr);
      const rendered = kinds(yaml);
      assert.ok(rendered.includes('Deployment/mw-mailwarden'), rendered.join(', '));
      if (name.startsWith('a single replica')) assert.ok(!rendered.some((k) => k.startsWith('PodDisruptionBudget/')));
      else assert.ok(rendered.includes('PodDisruptionBudget/mw-mailwarden'));
      if (name.startsWith('ServiceMonitor')) assert.ok(rendered.includes('ServiceMonitor/mw-mailwarden'));
      else assert.ok(!rendered.some((k) => k.startsWith('ServiceMonitor/')), 'no ServiceMonitor without its API');
      if (name === 'webhook disabled') assert.ok(!rendered.some((k) => k.startsWith('MutatingWebhookConfiguration/')));
    });
  }

  test('usable as a subchart: a parent with global values and mailwarden under charts/ renders', async () => {
    const parent = mkdtempSync(path.join(tmpdir(), 'mw-parent-'));
    try {
      writeFileSync(path.join(parent, 'Chart.yaml'), 'apiVersion: v2\nname: mail-platform\nversion: 1.0.0\ndependencies:\n  - name: mailwarden\n    version: ">=0.0.0-0"\n');
      writeFileSync(path.join(parent, 'values.yaml'), 'global:\n  imageRegistry: registry.example\n  storageClass: fast\nmailwarden:\n  watchNamespaces: [mail]\n');
      cpSync('charts/mailwarden', path.join(parent, 'charts', 'mailwarden'), { recursive: true });
      const result = await run('helm', ['template', 'platform', parent, '--namespace', 'mailwarden-system']);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /--namespace=mail\n/);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  test('extended values reach the operator: digest-pinned image for it and its daemons, pull secrets, labels, env, mounts', async () => {
    const yaml = await renderChart('mw', 'mailwarden-system', [], ['--values', path.join(valuesDir, 'extended.yaml')]);
    const objects = parseAllDocuments(yaml).map((d) => d.toJS() as { kind: string; metadata: { name: string; labels?: Record<string, string> }; spec?: Record<string, unknown> } | null).filter((o) => o !== null);
    for (const o of objects) if (o.kind !== 'ConfigMap') assert.equal(o.metadata.labels?.team, 'mail', `${o.kind}/${o.metadata.name} has commonLabels`);
    const deployment = objects.find((o) => o.kind === 'Deployment')! as unknown as { spec: { template: { metadata: { labels: Record<string, string> }; spec: { securityContext: Record<string, unknown>; containers: { image: string; args: string[]; env: { name: string }[]; volumeMounts: { name: string }[]; securityContext: Record<string, unknown> }[] } } } };
    const pod = deployment.spec.template;
    const container = pod.spec.containers[0]!;
    const image = `ghcr.io/mailwarden/mailwarden:0.1.0@${DIGEST}`;
    assert.equal(container.image, image);
    assert.ok(container.args.includes(`--policyd-image=${image}`));
    assert.ok(container.args.includes('--policyd-image-pull-secret=regcred'));
    assert.ok(container.env.some((e) => e.name === 'HTTPS_PROXY'));
    assert.ok(container.volumeMounts.some((m) => m.name === 'extra-ca'));
    assert.equal(pod.metadata.labels.team, 'mail');
    // Given values are merged over the restricted defaults, which stay.
    assert.equal(pod.spec.securityContext.fsGroupChangePolicy, 'OnRootMismatch');
    assert.equal(pod.spec.securityContext.runAsNonRoot, true);
    assert.equal(container.securityContext.privileged, false);
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.ok(objects.some((o) => o.kind === 'ConfigMap' && o.metadata.name === 'mw-notes'));
  });

  test('tenancy values reach the operator as flags and the Role as resourceNames (#25)', async () => {
    const sets = ['rbac.backendSecretNames={vmail-db,vmail-ca}', 'policyDaemon.allowedImages={mirror.example/mailwarden:1}', 'policyDaemon.allowedActions={BCC}'];
    const yaml = await renderChart('mw', 'mailwarden-system', sets);
    for (const flag of ['--backend-secret=vmail-db', '--backend-secret=vmail-ca', '--policyd-allowed-image=mirror.example/mailwarden:1', '--policyd-allowed-action=BCC']) assert.ok(yaml.includes(`- ${flag}\n`), flag);
    assert.match(yaml, /resources: \["secrets"\]\n\s+resourceNames: \["vmail-db","vmail-ca"\]\n\s+verbs: \["get", "list", "watch"\]/);
    assert.match(yaml, /expression: "\[\\"ghcr\.io\/mailwarden\/mailwarden:[^"]*\\",\\"mirror\.example\/mailwarden:1\\"\]"/);
  });

  test('cert-manager mode: the configuration asks for CA injection, the operator serves the mounted Secret and may not touch the configuration', async () => {
    const yaml = await renderChart('mw', 'mailwarden-system', ['webhook.certManager.enabled=true']);
    const objects = parseAllDocuments(yaml).map((d) => d.toJS() as { kind: string; metadata: { name: string; annotations?: Record<string, string> }; spec?: { secretName?: string } } | null).filter((o) => o !== null);
    const configuration = objects.find((o) => o.kind === 'MutatingWebhookConfiguration')!;
    assert.equal(configuration.metadata.annotations?.['cert-manager.io/inject-ca-from'], 'mailwarden-system/mw-mailwarden-webhook');
    const certificate = objects.find((o) => o.kind === 'Certificate' && o.metadata.name === 'mw-mailwarden-webhook')!;
    assert.ok(objects.some((o) => o.kind === 'Issuer'));
    assert.match(yaml, /--webhook-cert-dir=\/etc\/mailwarden\/webhook-tls/);
    assert.match(yaml, new RegExp(`secretName: ${certificate.spec!.secretName}`));
    // The only ClusterRoles left are the tenant roles for the admin to bind (docs/tenancy.md); none is bound to the operator.
    assert.ok(!objects.some((o) => o.kind === 'ClusterRoleBinding'), 'no cluster-wide grant to the operator');
    assert.ok(!/mutatingwebhookconfigurations/.test(JSON.stringify(objects.filter((o) => o.kind === 'ClusterRole'))), 'no grant on the MutatingWebhookConfiguration');
  });

  test('the operator pod is Pod Security "restricted" compliant', async () => {
    const yaml = await renderChart('mw', 'restricted', [], ['--show-only', 'templates/deployment.yaml']);
    const deployment = parseAllDocuments(yaml)[0]!.toJS() as { spec: { template: { spec: Record<string, unknown> } } };
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'operator-pod-check', namespace: 'restricted' }, spec: deployment.spec.template.spec };
    const result = await run('kubectl', ['apply', '--dry-run=server', '-f', '-'], { input: JSON.stringify(pod), kubeconfig });
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /violate PodSecurity/);
  });

  test('helm install, upgrade with changed values, and uninstall against the API server', async () => {
    const install = await run('helm', ['install', 'rel', 'charts/mailwarden', '--namespace', 'mailwarden-system', '--set', 'watchNamespaces={mail}'], { kubeconfig });
    assert.equal(install.code, 0, install.stderr);
    assert.match(install.stdout, /The operator watches: mail/);
    assert.doesNotMatch(install.stdout, /WARNING/);
    const deployment = async () =>
      (await run('kubectl', ['-n', 'mailwarden-system', 'get', 'deployment', 'rel-mailwarden', '-o', 'jsonpath={.spec.replicas} {.spec.template.spec.containers[0].args}'], { kubeconfig })).stdout;
    assert.match(await deployment(), /^2 .*"--namespace=mail"/);

    const upgrade = await run('helm', ['upgrade', 'rel', 'charts/mailwarden', '--namespace', 'mailwarden-system', '--set', 'watchNamespaces={mail,mail-eu}', '--set', 'replicaCount=3', '--set', 'operator.workers=8'], { kubeconfig });
    assert.equal(upgrade.code, 0, upgrade.stderr);
    const upgraded = await deployment();
    assert.match(upgraded, /^3 /);
    assert.match(upgraded, /--namespace=mail-eu/);
    assert.match(upgraded, /--workers=8/);
    const role = await run('kubectl', ['-n', 'mail-eu', 'get', 'role', 'rel-mailwarden'], { kubeconfig });
    assert.equal(role.code, 0, 'the upgrade granted access to the new namespace');

    const uninstall = await run('helm', ['uninstall', 'rel', '--namespace', 'mailwarden-system'], { kubeconfig });
    assert.equal(uninstall.code, 0, uninstall.stderr);
    const gone = await run('kubectl', ['-n', 'mailwarden-system', 'get', 'deployment', 'rel-mailwarden'], { kubeconfig });
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /NotFound/);
    const crd = await run('kubectl', ['get', 'crd', 'mailuserrestrictions.mailwarden.io'], { kubeconfig });
    assert.equal(crd.code, 0, 'CRDs stay after uninstall (Helm never deletes crds/)');
  });

  describe('the webhook certificate Secret: the chart creates it empty, the operator fills it (#25)', () => {
    const NS = 'mailwarden-system';
    // What the operator writes (a merge patch of data alone); the contents do not matter to Helm.
    const FILLED = { 'ca.crt': 'Y2EtY2VydA==', 'ca.key': 'Y2Eta2V5', 'tls.crt': 'dGxzLWNlcnQ=', 'tls.key': 'dGxzLWtleQ==' };
    type Secret = { type?: string; data?: Record<string, string>; metadata: { labels?: Record<string, string>; annotations?: Record<string, string> } };
    const secret = async (release: string): Promise<Secret | undefined> => {
      const got = await run('kubectl', ['-n', NS, 'get', 'secret', `${release}-mailwarden-webhook-tls`, '-o', 'json'], { kubeconfig });
      if (got.code !== 0) return undefined;
      return JSON.parse(got.stdout) as Secret;
    };
    const helm = async (...args: string[]) => run('helm', [...args, '--namespace', NS], { kubeconfig });

    for (const [method, serverSide] of [['client-side three-way merge', 'false'], ['server-side apply', 'true']] as const) {
      test(`what the operator wrote survives helm upgrade (${method}); helm uninstall deletes it`, async () => {
        const release = serverSide === 'true' ? 'ssa' : 'csa';
        const install = await helm('install', release, 'charts/mailwarden', `--server-side=${serverSide}`, '--set', 'watchNamespaces={mail}');
        assert.equal(install.code, 0, install.stderr);
        const created = await secret(release);
        assert.ok(created, 'helm install created it');
        assert.equal(created.data, undefined, 'empty');
        assert.equal(created.type, 'Opaque');
        const filled = await run('kubectl', ['-n', NS, 'patch', 'secret', `${release}-mailwarden-webhook-tls`, '--type', 'merge', '-p', JSON.stringify({ data: FILLED })], { kubeconfig });
        assert.equal(filled.code, 0, filled.stderr);

        const upgrade = await helm('upgrade', release, 'charts/mailwarden', '--set', 'watchNamespaces={mail,mail-eu}', '--set', 'operator.resync=10m');
        assert.equal(upgrade.code, 0, upgrade.stderr);
        assert.deepEqual((await secret(release))?.data, FILLED, 'the CA and certificate kept');

        const uninstall = await helm('uninstall', release);
        assert.equal(uninstall.code, 0, uninstall.stderr);
        assert.equal(await secret(release), undefined, 'deleted with the release');
      });
    }

    for (const [method, serverSide] of [['client-side', 'false'], ['server-side apply, with --force-conflicts', 'true']] as const) {
      test(`upgrading from 0.1.0, whose operator created the Secret itself: helm upgrade --take-ownership (${method}) adopts it, certificate and type kept`, async () => {
        // A release without the Secret in its manifest, and the Secret as 0.1.0's operator wrote it.
        const release = serverSide === 'true' ? 'old-ssa' : 'old-csa';
        const name = `${release}-mailwarden-webhook-tls`;
        const install = await helm('install', release, 'charts/mailwarden', `--server-side=${serverSide}`, '--set', 'watchNamespaces={mail}', '--set', 'webhook.enabled=false');
        assert.equal(install.code, 0, install.stderr);
        const legacy = { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace: NS, labels: { 'app.kubernetes.io/part-of': 'mailwarden', 'app.kubernetes.io/managed-by': 'mailwarden' } }, data: FILLED };
        const created = await run('kubectl', ['create', '-f', '-'], { input: JSON.stringify(legacy), kubeconfig });
        assert.equal(created.code, 0, created.stderr);
        try {
          const refused = await helm('upgrade', release, 'charts/mailwarden', '--set', 'watchNamespaces={mail}');
          assert.notEqual(refused.code, 0);
          assert.match(refused.stderr, new RegExp(`${name}.*exists and cannot be imported into the current release`));
          // Server-side apply: 0.1.0's operator owns the managed-by label the chart sets.
          const adopted = await helm('upgrade', release, 'charts/mailwarden', '--set', 'watchNamespaces={mail}', '--take-ownership', ...(serverSide === 'true' ? ['--force-conflicts'] : []));
          assert.equal(adopted.code, 0, adopted.stderr);
          const kept = await secret(release);
          assert.deepEqual(kept?.data, FILLED, 'the CA and certificate kept');
          assert.equal(kept?.type, 'kubernetes.io/tls', 'the chart sets no type, so the old one stays (a type cannot change)');
          assert.equal(kept?.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm');
          assert.equal(kept?.metadata.annotations?.['meta.helm.sh/release-name'], release);
        } finally {
          await helm('uninstall', release);
        }
      });
    }
  });

  test('NOTES warn when the operator would miss the namespaces the user meant', async () => {
    // A PolicyDaemon already in "mail", and a release that watches only its own namespace.
    const daemon = 'apiVersion: mailwarden.io/v1alpha1\nkind: PolicyDaemon\nmetadata: {name: notes-check, namespace: mail}\nspec: {backendRef: {name: vmail-postgres}, mode: Service}\n';
    const created = await run('kubectl', ['apply', '-f', '-'], { input: daemon, kubeconfig });
    assert.equal(created.code, 0, created.stderr);
    try {
      const install = await run('helm', ['install', 'notes', 'charts/mailwarden', '--namespace', 'mailwarden-system', '--dry-run=server'], { kubeconfig });
      assert.equal(install.code, 0, install.stderr);
      assert.match(install.stdout, /WARNING: watchNamespaces is empty, so the operator watches only its own namespace/);
      assert.match(install.stdout, /WARNING: mailwarden objects exist in namespace\(s\) the operator does not watch:\n  mail\n/);
      const watching = await run('helm', ['install', 'notes', 'charts/mailwarden', '--namespace', 'mailwarden-system', '--dry-run=server', '--set', 'watchNamespaces={mail}'], { kubeconfig });
      assert.equal(watching.code, 0, watching.stderr);
      assert.doesNotMatch(watching.stdout, /WARNING/);
    } finally {
      await run('kubectl', ['delete', '-f', '-'], { input: daemon, kubeconfig });
    }
  });

  describe('RBAC grants nothing beyond what the operator uses', () => {
    let saKubeconfig: string;
    before(async () => {
      saKubeconfig = (await chartServiceAccount(cp, ['mail'])).path;
    });
    const can = async (...args: string[]) => (await run('kubectl', ['auth', 'can-i', ...args], { kubeconfig: saKubeconfig })).stdout.trim();

    const allowed: string[][] = [
      ['list', 'mailuserrestrictions.mailwarden.io', '-n', 'mail'],
      ['patch', 'mailuserrestrictions.mailwarden.io', '--subresource=status', '-n', 'mail'],
      ['watch', 'secrets', '-n', 'mail'],
      ['create', 'events', '-n', 'mail'],
      ['update', 'leases.coordination.k8s.io', '-n', OPERATOR_NAMESPACE],
      // The webhook's certificate Secret, which the chart creates: filled and rotated by name.
      ['get', 'secrets/mw-mailwarden-webhook-tls', '-n', OPERATOR_NAMESPACE],
      ['update', 'secrets/mw-mailwarden-webhook-tls', '-n', OPERATOR_NAMESPACE],
      ['patch', 'secrets/mw-mailwarden-webhook-tls', '-n', OPERATOR_NAMESPACE],
    ];
    for (const args of allowed) {
      test(`can ${args.join(' ')}`, async () => assert.equal(await can(...args), 'yes'));
    }
    const denied: string[][] = [
      ['list', 'secrets', '--all-namespaces'],
      // #25: Secrets are read, never written (the daemon's token is projected, not a Secret).
      ['create', 'secrets', '-n', 'mail'],
      ['update', 'secrets', '-n', 'mail'],
      ['patch', 'secrets', '-n', 'mail'],
      ['delete', 'secrets', '-n', 'mail'],
      ['deletecollection', 'secrets', '-n', 'mail'],
      // #25: nor in its own namespace, where the chart creates the webhook's Secret for it.
      ['create', 'secrets', '-n', OPERATOR_NAMESPACE],
      ['get', 'secrets', '-n', OPERATOR_NAMESPACE],
      ['list', 'secrets', '-n', OPERATOR_NAMESPACE],
      ['update', 'secrets', '-n', OPERATOR_NAMESPACE],
      ['patch', 'secrets/other', '-n', OPERATOR_NAMESPACE],
      ['delete', 'secrets/mw-mailwarden-webhook-tls', '-n', OPERATOR_NAMESPACE],
      ['get', 'secrets', '-n', 'kube-system'],
      ['get', 'secrets', '-n', 'mail-eu'],
      ['list', 'mailuserrestrictions.mailwarden.io', '-n', 'mail-eu'],
      ['delete', 'pods', '-n', 'mail'],
      ['create', 'pods', '-n', 'mail'],
      ['create', 'customresourcedefinitions.apiextensions.k8s.io'],
      ['delete', 'mailuserrestrictions.mailwarden.io', '-n', 'mail'],
      ['create', 'mailuserrestrictions.mailwarden.io', '-n', 'mail'],
      ['list', 'nodes'],
      ['create', 'clusterrolebindings.rbac.authorization.k8s.io'],
      ['update', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/some-other-webhook'],
      ['list', 'leases.coordination.k8s.io', '-n', 'kube-system'],
      ['*', '*'],
    ];
    for (const args of denied) {
      test(`cannot ${args.join(' ')}`, async () => assert.equal(await can(...args), 'no'));
    }
  });
});
