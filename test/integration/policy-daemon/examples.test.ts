import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { KubernetesObjectApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { installCrds } from '../../harness/crds.ts';
import { run } from '../../harness/kube-tools.ts';
import { repoPath } from '../../helpers/paths.ts';

// Every Kubernetes manifest under examples/policydaemon and examples/postfix is accepted by a
// real API server (server-side dry run: schema, CEL rules, defaults); Helm values files are
// checked for the pod labels that opt the pods in.

function manifests(): { file: string; object: KubernetesObject }[] {
  const out: { file: string; object: KubernetesObject }[] = [];
  const dirs = ['examples/policydaemon', 'examples/postfix/docker-mailserver', 'examples/postfix/mailu', 'examples/postfix/bokysan'];
  for (const dir of dirs) {
    for (const file of readdirSync(repoPath(dir)).filter((f) => f.endsWith('.yaml') && f !== 'values.yaml')) {
      for (const doc of parseAllDocuments(readFileSync(repoPath(dir, file), 'utf8'))) {
        const object = doc.toJS() as KubernetesObject | null;
        if (object?.apiVersion && object.kind) out.push({ file: `${dir}/${file}`, object });
      }
    }
  }
  return out;
}

/** The pod-label keys of the three charts' values files. */
interface ChartValues {
  deployment?: { labels?: Record<string, string> };
  postfix?: { podLabels?: Record<string, string> };
  pod?: { labels?: Record<string, string> };
}
const values = (chart: string) => parse(readFileSync(repoPath('examples/postfix', chart, 'values.yaml'), 'utf8')) as ChartValues;

describe('examples', () => {
  let cp: ControlPlane;
  let kc: KubeConfig;

  before(async () => {
    cp = await startControlPlane();
    kc = cp.kubeConfig();
    await installCrds(kc);
    await KubernetesObjectApi.makeApiClient(kc).create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'mail' } });
  });
  after(async () => {
    await cp?.stop();
  });

  test('there are PolicyDaemon examples for both modes and each chart', () => {
    const daemons = manifests().filter((m) => m.object.kind === 'PolicyDaemon');
    assert.ok(daemons.length >= 5, `${daemons.length} PolicyDaemons`);
    const modes = new Set(daemons.map((d) => (d.object as { spec: { mode?: string } }).spec.mode));
    assert.deepEqual([...modes].sort(), ['Service', 'Sidecar']);
  });

  for (const { file, object } of manifests()) {
    test(`${file}: ${object.kind} ${object.metadata?.name} passes a server-side dry run`, async () => {
      const created = await KubernetesObjectApi.makeApiClient(kc).create(object, undefined, 'All');
      assert.equal(created.metadata?.name, object.metadata?.name);
    });
  }

  // The wiring of each chart's Postfix configuration is tested in real Postfix
  // (test/integration/postfix/chart-examples.test.ts); here: the pods get the label the webhook
  // wants and the one their PolicyDaemon selects, through the chart's own pod-label value.
  const POD_LABELS: Record<string, (v: ChartValues) => Record<string, string> | undefined> = {
    'docker-mailserver': (v) => v.deployment?.labels,
    mailu: (v) => v.postfix?.podLabels,
    bokysan: (v) => v.pod?.labels,
  };
  for (const [chart, podLabels] of Object.entries(POD_LABELS)) {
    test(`${chart}: the chart's pod-label value opts the pods in and matches the PolicyDaemon, whatever the release name`, () => {
      const labels = podLabels(values(chart)) ?? {};
      assert.equal(labels['mailwarden.io/inject'], 'true');
      const daemon = parse(readFileSync(repoPath('examples/postfix', chart, 'policydaemon.yaml'), 'utf8')) as { spec: { podSelector: { matchLabels: Record<string, string> } } };
      const selector = Object.entries(daemon.spec.podSelector.matchLabels);
      assert.ok(selector.length > 0);
      for (const [key, value] of selector) assert.equal(labels[key], value, `${key} is set by the values, not by the chart from the release name`);
    });
  }

  test('the per-chart PolicyDaemons read the MailUserRestrictions (no database); their iRedMail option names the MailBackend the kustomization creates', () => {
    const kustomized = readFileSync(repoPath('examples/backends/postgres.yaml'), 'utf8');
    for (const chart of Object.keys(POD_LABELS)) {
      const text = readFileSync(repoPath('examples/postfix', chart, 'policydaemon.yaml'), 'utf8');
      const daemon = parse(text) as { spec: { store?: string; backendRef?: unknown } };
      assert.equal(daemon.spec.store, 'Kubernetes', chart);
      assert.equal(daemon.spec.backendRef, undefined, chart);
      const option = /backendRef: \{ name: ([a-z0-9-]+) \}/.exec(text)?.[1];
      assert.ok(option, `${chart}: the iRedMail option names a MailBackend`);
      assert.match(kustomized, new RegExp(`kind: MailBackend\nmetadata:\n  name: ${option}\n`), chart);
    }
  });

  test('the per-chart PolicyDaemons serve examples/kubernetes-store: created together on the API server, the restrictions in the daemons\' namespace and without backendRef', async () => {
    const built = await run('kubectl', ['kustomize', 'examples/kubernetes-store/']);
    assert.equal(built.code, 0, built.stderr);
    const api = KubernetesObjectApi.makeApiClient(kc);
    const restrictions = parseAllDocuments(built.stdout).map((d) => d.toJS() as KubernetesObject & { spec: { backendRef?: unknown } });
    assert.ok(restrictions.length >= 4, `${restrictions.length} restrictions`);
    const daemons = Object.keys(POD_LABELS).map((chart) => parse(readFileSync(repoPath('examples/postfix', chart, 'policydaemon.yaml'), 'utf8')) as KubernetesObject);
    for (const object of [...daemons, ...restrictions]) await api.create(object);
    for (const daemon of daemons) {
      const served = restrictions.filter((r) => r.metadata?.namespace === daemon.metadata?.namespace && r.spec.backendRef === undefined);
      assert.equal(served.length, restrictions.length, `${daemon.metadata?.name} serves every recipe`);
    }
    for (const r of restrictions) {
      const stored = (await api.read({ apiVersion: r.apiVersion!, kind: r.kind!, metadata: { name: r.metadata!.name!, namespace: r.metadata!.namespace! } })) as KubernetesObject & { spec: { backendRef?: unknown } };
      assert.equal(stored.spec.backendRef, undefined, r.metadata?.name);
    }
  });
});
