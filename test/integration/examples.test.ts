import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { installCrds, stubCrd } from '../harness/crds.ts';
import { run } from '../harness/kube-tools.ts';
import { eventually } from '../helpers/eventually.ts';

// Every manifest in examples/backends, examples/restrictions and examples/gitops, and the
// kustomization over examples/, is accepted by a real API server (server-side dry run: schema,
// CEL rules, defaults); examples/kubernetes-store's restrictions are created and read back.
// examples/policydaemon and examples/postfix have their own test.

/** Argo CD's Application kind, as a schemaless stub so the API server knows it. */
const ARGO_APPLICATION_CRD = stubCrd('argoproj.io', 'v1alpha1', 'Application');

const FOLDERS = ['examples/backends', 'examples/restrictions', 'examples/gitops'];

describe('examples on a real API server', () => {
  let cp: ControlPlane;
  let kubeconfig: string;

  before(async () => {
    cp = await startControlPlane();
    kubeconfig = cp.kubeconfigPath;
    await installCrds(cp.kubeConfig());
    await run('kubectl', ['apply', '-f', '-'], { input: ARGO_APPLICATION_CRD, kubeconfig });
    for (const ns of ['mail', 'argocd']) await run('kubectl', ['create', 'namespace', ns], { kubeconfig });
    // A CRD just established can answer 404 for a moment.
    await eventually('the Application CRD served', async () => (await run('kubectl', ['get', 'applications.argoproj.io', '-n', 'argocd'], { kubeconfig })).code === 0, 5_000).catch(() => undefined);
  });
  after(async () => cp?.stop());

  for (const folder of FOLDERS) {
    for (const file of readdirSync(folder).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
      test(`${folder}/${file} passes a server-side dry run`, async () => {
        const result = await run('kubectl', ['apply', '--dry-run=server', '-f', `${folder}/${file}`], { kubeconfig });
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, /\(server dry run\)/);
      });
    }
  }

  test('the kustomization over examples/ builds and passes a server-side dry run', async () => {
    const built = await run('kubectl', ['kustomize', 'examples/'], { kubeconfig });
    assert.equal(built.code, 0, built.stderr);
    const result = await run('kubectl', ['apply', '--dry-run=server', '-f', '-'], { input: built.stdout, kubeconfig });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /mailuserrestriction\.mailwarden\.io\/user-same-domain-only created \(server dry run\)/);
    assert.match(result.stdout, /mailbackend\.mailwarden\.io\/vmail-postgres created \(server dry run\)/);
  });

  test('examples/kubernetes-store: the same recipes without backendRef, created on the API server for the store-Kubernetes daemons of namespace mail', async () => {
    const built = await run('kubectl', ['kustomize', 'examples/kubernetes-store/'], { kubeconfig });
    assert.equal(built.code, 0, built.stderr);
    const applied = await run('kubectl', ['apply', '-f', '-'], { input: built.stdout, kubeconfig });
    assert.equal(applied.code, 0, applied.stderr);
    type Listed = { items: { metadata: { name: string; namespace: string }; spec: Record<string, unknown> }[] };
    const got = await run('kubectl', ['get', 'mailuserrestrictions', '-n', 'mail', '-o', 'json'], { kubeconfig });
    assert.equal(got.code, 0, got.stderr);
    const stored = new Map((JSON.parse(got.stdout) as Listed).items.map((r) => [r.metadata.name, r.spec]));
    const recipes = readdirSync('examples/restrictions').filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    assert.equal(stored.size, recipes.length);
    for (const file of recipes) {
      const recipe = parse(readFileSync(`examples/restrictions/${file}`, 'utf8')) as { metadata: { name: string }; spec: { backendRef?: unknown } & Record<string, unknown> };
      assert.deepEqual(recipe.spec.backendRef, { name: 'vmail-postgres' }, `${file}: the iRedMail option`);
      const { backendRef: _named, ...lists } = recipe.spec;
      const spec = stored.get(recipe.metadata.name);
      assert.ok(spec !== undefined && !('backendRef' in spec), `${file}: created without backendRef`);
      // The API server adds its defaults (empty lists, policies): what the recipe says is kept.
      assert.deepEqual(Object.fromEntries(Object.keys(lists).map((k) => [k, spec[k]])), lists, `${file}: the same lists`);
    }
  });

  test('the recipes really are what they say (decided through mailwarden decide)', async () => {
    const { main } = await import('../../src/cli/main.ts');
    const decide = async (sender: string, recipient: string) => {
      let out = '';
      await main(['decide', '--store', 'examples/restrictions', '--sender', sender, '--recipient', recipient], {
        stdout: { write: (t: string) => (out += t) },
        stderr: { write: () => true },
        stdin: (async function* () {})(),
        env: {},
      });
      return out.trim();
    };
    // same-domain-only: user@example.com talks to example.com and gmail.com only.
    assert.equal(await decide('user@example.com', 'friend@gmail.com'), 'DUNNO');
    assert.equal(await decide('user@example.com', 'x@yahoo.test'), 'REJECT Not authorized');
    assert.equal(await decide('x@yahoo.test', 'user@example.com'), 'REJECT Not authorized');
    // receive-only: noreply@example.com sends to nobody and receives from everybody.
    assert.equal(await decide('noreply@example.com', 'bob@example.com'), 'REJECT Not authorized');
    assert.equal(await decide('x@yahoo.test', 'noreply@example.com'), 'DUNNO');
    // block-domain: spam.test and its sub-domains never reach alice.
    assert.equal(await decide('a@mx.eu.spam.test', 'alice@example.com'), 'REJECT Not authorized');
    // allow-exceptions: bob gets nothing from gmail.com except from his partner.
    assert.equal(await decide('partner@gmail.com', 'bob@example.com'), 'DUNNO');
    assert.equal(await decide('other@gmail.com', 'bob@example.com'), 'REJECT Not authorized');
  });
});
