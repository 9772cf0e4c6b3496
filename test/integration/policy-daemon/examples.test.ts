import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { KubernetesObjectApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { installCrds } from '../../harness/crds.ts';
import { repoPath } from '../../helpers/paths.ts';

// Every Kubernetes manifest under examples/policydaemon and examples/postfix is accepted by a
// real API server (server-side dry run: schema, CEL rules, defaults); Helm values files are
// checked for the keys each chart documents (docs/spec postfix-charts.md).

const POLICY_LINE = /^check_policy_service \{ inet:127\.0\.0\.1:7777, timeout=10s, \{ default_action = DEFER_IF_PERMIT Policy service unavailable \} \}, /;

function manifests(): { file: string; object: KubernetesObject }[] {
  const out: { file: string; object: KubernetesObject }[] = [];
  const dirs = ['examples/policydaemon', 'examples/postfix/docker-mailserver', 'examples/postfix/mailu', 'examples/postfix/bokysan'];
  for (const dir of dirs) {
    for (const file of readdirSync(repoPath(dir)).filter((f) => f.endsWith('.yaml') && f !== 'values.yaml' && !f.endsWith('.patch.yaml'))) {
      for (const doc of parseAllDocuments(readFileSync(repoPath(dir, file), 'utf8'))) {
        const object = doc.toJS() as KubernetesObject | null;
        if (object?.apiVersion && object.kind) out.push({ file: `${dir}/${file}`, object });
      }
    }
  }
  return out;
}

/** The keys the three charts' values files use (postfix-charts.md). */
interface ChartValues {
  configMaps: Record<string, { create: boolean; path: string; data: string }>;
  postfix: { overrides: Record<string, string> };
  config: { postfix: Record<string, string> };
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

  test('docker-mailserver: configMaps.postfix-main.cf restates smtpd_recipient_restrictions, policy check first', () => {
    const cm = values('docker-mailserver').configMaps['postfix-main.cf']!;
    assert.equal(cm.create, true);
    assert.equal(cm.path, 'postfix-main.cf');
    const line = /^smtpd_recipient_restrictions = (.*)$/m.exec(cm.data)?.[1] ?? '';
    assert.match(line, POLICY_LINE);
    // The image's default list follows, whole (the appended setting replaces it).
    for (const r of ['permit_sasl_authenticated', 'permit_mynetworks', 'reject_unauth_destination', 'reject_unauth_pipelining', 'reject_invalid_helo_hostname', 'reject_non_fqdn_helo_hostname', 'reject_unknown_recipient_domain']) {
      assert.ok(line.includes(r), r);
    }
  });

  test('mailu: postfix.overrides."postfix.cf" lines are single postconf settings without " or $', () => {
    const text = values('mailu').postfix.overrides['postfix.cf']!;
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    assert.ok(lines.length >= 1);
    for (const l of lines) assert.doesNotMatch(l, /["$]/);
    const restriction = lines.find((l) => l.startsWith('smtpd_recipient_restrictions='));
    assert.match(restriction!.slice('smtpd_recipient_restrictions='.length), POLICY_LINE);
  });

  test('bokysan: config.postfix.smtpd_recipient_restrictions starts with the policy check', () => {
    const value = values('bokysan').config.postfix.smtpd_recipient_restrictions!;
    assert.match(value, POLICY_LINE);
    assert.doesNotMatch(value, /["$]/);
  });

  test('the inject-label patches add mailwarden.io/inject: "true" to the pod template', () => {
    for (const chart of ['docker-mailserver', 'mailu', 'bokysan']) {
      const patch = parse(readFileSync(repoPath('examples/postfix', chart, 'inject-label.patch.yaml'), 'utf8')) as { spec: { template: { metadata: { labels: Record<string, string> } } } };
      assert.equal(patch.spec.template.metadata.labels['mailwarden.io/inject'], 'true', chart);
    }
  });
});
