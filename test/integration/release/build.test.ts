// `npm run release:build` in its smoke form: the same command the release workflow runs, for
// this machine's platform only and pushing nothing. It must leave an OCI image whose index digest
// is the one the packaged chart deploys, an archive a cluster can import, and an SBOM of what the
// image really holds.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { parseAllDocuments } from 'yaml';
import { readBlob, type Descriptor } from '../../../scripts/release/oci-layout.ts';
import { startContainerd } from '../../harness/containerd.ts';
import { ensureNodeImage } from '../../harness/mailwarden-image.ts';
import { kubeTools, run } from '../../harness/kube-tools.ts';
import { repoPath } from '../../helpers/paths.ts';

const execFileP = promisify(execFile);
const REPOSITORY = 'registry.example/mail/mailwarden';

interface Result {
  version: string;
  image: string;
  digest: string;
  layout: string;
  archive: string;
  chart: string;
  sbom: string;
}

describe('npm run release:build (smoke: this platform, nothing pushed)', { timeout: 1_800_000 }, () => {
  let out: string;
  let result: Result;

  before(async () => {
    out = await mkdtemp(path.join(tmpdir(), 'mw-release-'));
    const nodeImage = await ensureNodeImage();
    const { helm } = kubeTools();
    const args = ['run', 'release:build', '--silent', '--', '--out', out, '--repository', REPOSITORY, ...(nodeImage ? ['--build-arg', `NODE_IMAGE=${nodeImage}`] : [])];
    const { stdout } = await execFileP('npm', args, { cwd: repoPath(), env: { ...process.env, HELM: helm }, maxBuffer: 16 * 1024 * 1024, timeout: 1_500_000 });
    result = JSON.parse(stdout) as Result;
  });
  after(async () => {
    if (out !== undefined) await rm(out, { recursive: true, force: true });
  });

  test('the OCI layout names one image index; every blob below it matches its digest', async () => {
    const top = JSON.parse(await readFile(path.join(result.layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    assert.equal(top.manifests.length, 1);
    assert.equal(top.manifests[0]!.digest, result.digest);
    assert.equal(top.manifests[0]!.annotations?.['io.containerd.image.name'], `${REPOSITORY}:${result.version}`);
    const index = JSON.parse((await readBlob(result.layout, result.digest)).toString('utf8')) as { manifests: Descriptor[] };
    assert.equal(index.manifests.length, 1, 'one platform in the smoke build');
    assert.equal(index.manifests[0]!.platform?.os, 'linux');
    const manifest = JSON.parse((await readBlob(result.layout, index.manifests[0]!.digest)).toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
    const config = JSON.parse((await readBlob(result.layout, manifest.config.digest)).toString('utf8')) as { config: { User: string; Entrypoint: string[] } };
    assert.equal(config.config.User, '65532:65532');
    assert.deepEqual(config.config.Entrypoint, ['node', '/app/bin/mailwarden.js']);
    // The application is in the layers (gzip tar): bin/mailwarden.js and the compiled dist/.
    const files: string[] = [];
    for (const layer of manifest.layers) {
      const tar = gunzipSync(await readBlob(result.layout, layer.digest));
      for (let at = 0; at + 512 <= tar.length; ) {
        const name = tar.subarray(at, at + 100).toString('utf8').replace(/\0.*$/s, '');
        if (name === '') break;
        const size = Number.parseInt(tar.subarray(at + 124, at + 136).toString('utf8').replace(/\0.*$/s, '').trim() || '0', 8);
        files.push(name);
        at += 512 + Math.ceil(size / 512) * 512;
      }
    }
    assert.ok(files.includes('app/bin/mailwarden.js'), 'app/bin/mailwarden.js in a layer');
    assert.ok(files.includes('app/dist/cli/main.js'), 'app/dist/cli/main.js in a layer');
  });

  test('containerd imports the archive as a node would (ctr -n k8s.io images import): named, by that digest, unpacked', async () => {
    const containerd = await startContainerd();
    try {
      const imported = await containerd.ctr(['-n', 'k8s.io', 'images', 'import', result.archive]);
      assert.match(imported, new RegExp(`unpacking ${REPOSITORY}:${result.version} \\(${result.digest}\\)\\.\\.\\.done`));
      const checked = await containerd.ctr(['-n', 'k8s.io', 'images', 'check']);
      const line = checked.split('\n').find((l) => l.startsWith(`${REPOSITORY}:${result.version} `));
      assert.ok(line, checked);
      assert.match(line, new RegExp(`${result.digest} +complete \\((\\d+)/\\1\\)`));
    } finally {
      await containerd.stop();
    }
  });

  test('the packaged chart deploys the image by that digest, for the operator and the daemons', async () => {
    assert.equal(result.image, `${REPOSITORY}:${result.version}@${result.digest}`);
    assert.equal((await readFile(path.join(out, 'image.txt'), 'utf8')).trim(), result.image);
    const lint = await run('helm', ['lint', '--strict', result.chart]);
    assert.equal(lint.code, 0, lint.stdout + lint.stderr);
    const rendered = await run('helm', ['template', 'mw', result.chart, '--namespace', 'mailwarden-system', '--set', 'watchNamespaces={mail}']);
    assert.equal(rendered.code, 0, rendered.stderr);
    const deployment = parseAllDocuments(rendered.stdout)
      .map((d) => d.toJS() as { kind?: string; spec?: { template: { spec: { containers: { image: string; args: string[] }[] } } } } | null)
      .find((o) => o?.kind === 'Deployment')!;
    const container = deployment.spec!.template.spec.containers[0]!;
    assert.equal(container.image, result.image);
    assert.ok(container.args.includes(`--policyd-image=${result.image}`));
  });

  test('the SBOM lists what the image holds: the runtime npm packages at their locked versions, no dev ones, and the OS packages', async () => {
    const sbom = JSON.parse(await readFile(result.sbom, 'utf8')) as { bomFormat: string; specVersion: string; metadata: { component: { hashes: { content: string }[] } }; components: { purl: string }[] };
    assert.equal(sbom.bomFormat, 'CycloneDX');
    assert.equal(sbom.metadata.component.hashes[0]!.content, result.digest.slice('sha256:'.length));
    const purls = new Set(sbom.components.map((c) => c.purl));
    const lock = JSON.parse(await readFile(repoPath('package-lock.json'), 'utf8')) as { packages: Record<string, { version: string; dev?: boolean }> };
    for (const name of ['zod', 'pg', '@kubernetes/client-node']) {
      const version = lock.packages[`node_modules/${name}`]!.version;
      const purl = name.startsWith('@') ? `pkg:npm/${encodeURIComponent(name.split('/')[0]!)}/${name.split('/')[1]}@${version}` : `pkg:npm/${name}@${version}`;
      assert.ok(purls.has(purl), `${purl} in the SBOM`);
    }
    assert.ok(![...purls].some((p) => p.startsWith('pkg:npm/typescript@') || p.startsWith('pkg:npm/testcontainers@')), 'no dev dependencies');
    assert.ok([...purls].some((p) => p.startsWith('pkg:deb/')), 'OS packages');
    assert.ok([...purls].some((p) => p.startsWith('pkg:generic/node@24.')), 'the Node.js runtime');
  });
});
