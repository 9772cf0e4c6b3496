import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { installCrds, stubCrd } from '../../harness/crds.ts';
import { chartServiceAccount, OPERATOR_NAMESPACE } from '../../harness/operator-env.ts';
import { renderChart, run } from '../../harness/kube-tools.ts';

/** A minimal ServiceMonitor CRD, so the API server knows the kind the chart renders when it exists. */
const SERVICE_MONITOR_CRD = stubCrd('monitoring.coreos.com', 'v1', 'ServiceMonitor');

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
  });
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
  ];
  for (const [name, sets, extra] of variants) {
    test(`the rendered chart is accepted by the API server (server-side dry run): ${name}`, async () => {
      if (extra.length > 0) await run('kubectl', ['apply', '-f', '-'], { input: SERVICE_MONITOR_CRD, kubeconfig });
      const yaml = await renderChart('mw', 'mailwarden-system', sets, extra);
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
    ];
    for (const args of allowed) {
      test(`can ${args.join(' ')}`, async () => assert.equal(await can(...args), 'yes'));
    }
    const denied: string[][] = [
      ['list', 'secrets', '--all-namespaces'],
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
