// npm run release:build -- [--out DIR] [--repository REPO] [--platform OS/ARCH]... [--build-arg K=V]...
//
// Builds the production image (the Dockerfile) once per platform, writes it as an OCI image
// layout and archive with one image index over the platforms, packages the Helm chart with that
// index's digest (and REPO) pinned in its values, and writes a CycloneDX SBOM of the image. It
// pushes nothing: .github/workflows/release.yml runs this very command, then pushes DIR/image
// and the chart. Without --platform the image is built for the machine's own platform.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { addSavedImage, createLayout, writeImageIndex, type Descriptor } from './oci-layout.ts';
import { cycloneDx, INVENTORY_SCRIPT, type Inventory } from './sbom.ts';

const execFileP = promisify(execFile);
const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const CHART_DIR = path.join(REPO_ROOT, 'charts', 'mailwarden');

class ReleaseError extends Error {
  override readonly name = 'ReleaseError';
}

async function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  try {
    return (await execFileP(cmd, args, { cwd: REPO_ROOT, env, maxBuffer: 256 * 1024 * 1024, timeout: 60 * 60_000 })).stdout;
  } catch (error) {
    const e = error as Error & { stderr?: string };
    throw new ReleaseError(`${cmd} ${args.join(' ')} failed: ${e.message}\n${(e.stderr ?? '').slice(-4000)}`, { cause: error });
  }
}

/** The legacy builder where the buildx plugin is missing (it honours --network host). */
async function dockerBuildEnv(): Promise<NodeJS.ProcessEnv> {
  if (process.env.DOCKER_BUILDKIT !== undefined) return process.env;
  const buildx = await exec('docker', ['buildx', 'version']).then(() => true, () => false);
  return buildx ? process.env : { ...process.env, DOCKER_BUILDKIT: '0' };
}

export interface ReleaseOptions {
  readonly out: string;
  readonly repository: string;
  readonly platforms: readonly string[];
  readonly buildArgs: readonly string[];
  readonly log: (line: string) => void;
}

export interface ReleaseResult {
  readonly version: string;
  /** repository:version@sha256:… — what the packaged chart deploys. */
  readonly image: string;
  readonly digest: string;
  readonly layout: string;
  readonly archive: string;
  readonly chart: string;
  readonly sbom: string;
}

async function versions(): Promise<string> {
  const { version } = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const chart = parseYaml(await readFile(path.join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { version: string; appVersion: string };
  if (chart.appVersion !== version || chart.version !== version) {
    throw new ReleaseError(`package.json version ${version}, chart version ${chart.version} and appVersion ${chart.appVersion} must be the same`);
  }
  return version;
}

/** The chart's values.yaml with image.repository and image.digest set. */
export function pinImage(valuesYaml: string, repository: string, digest: string): string {
  const image = /^image:\n((?: {2}.*\n|\s*\n)*)/m.exec(valuesYaml);
  if (image === null) throw new ReleaseError('values.yaml has no image: block');
  let block = image[1]!;
  const replace = (key: string, value: string) => {
    const line = new RegExp(`^  ${key}: .*$`, 'm');
    if (!line.test(block)) throw new ReleaseError(`values.yaml has no image.${key}`);
    block = block.replace(line, `  ${key}: ${JSON.stringify(value)}`);
  };
  replace('repository', repository);
  replace('digest', digest);
  return valuesYaml.slice(0, image.index) + 'image:\n' + block + valuesYaml.slice(image.index + image[0].length);
}

export async function releaseBuild(o: ReleaseOptions): Promise<ReleaseResult> {
  const version = await versions();
  const out = path.resolve(o.out);
  const layout = path.join(out, 'image');
  await rm(layout, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  await createLayout(layout);
  const work = await mkdtemp(path.join(tmpdir(), 'mailwarden-release-'));
  const buildEnv = await dockerBuildEnv();
  const annotations = { 'org.opencontainers.image.version': version, 'org.opencontainers.image.title': 'mailwarden', 'org.opencontainers.image.licenses': 'Apache-2.0' };
  try {
    const manifests: Descriptor[] = [];
    const tags: string[] = [];
    for (const platform of o.platforms.length > 0 ? o.platforms : [undefined]) {
      const tag = `mailwarden-release:${version}${platform ? `-${platform.replaceAll('/', '-')}` : ''}`;
      o.log(`building ${tag}${platform ? ` for ${platform}` : ''}`);
      await exec('docker', ['build', '--network', 'host', ...(platform ? ['--platform', platform] : []), ...o.buildArgs.flatMap((a) => ['--build-arg', a]), '-t', tag, REPO_ROOT], buildEnv);
      const saved = path.join(work, tag.replace(/[^A-Za-z0-9.-]/g, '_'));
      await mkdir(saved);
      await exec('bash', ['-o', 'pipefail', '-c', 'docker save "$1" | tar -x -C "$2"', 'save', tag, saved]);
      manifests.push(await addSavedImage(saved, layout, annotations));
      await rm(saved, { recursive: true, force: true });
      tags.push(tag);
    }
    const index = await writeImageIndex(layout, manifests, version, `${o.repository}:${version}`, annotations);
    const image = `${o.repository}:${version}@${index.digest}`;
    o.log(`image ${image} (${manifests.map((m) => `${m.platform!.os}/${m.platform!.architecture}`).join(', ')})`);

    const archive = path.join(out, `mailwarden-${version}.oci.tar`);
    await exec('tar', ['-C', layout, '-cf', archive, 'oci-layout', 'index.json', 'blobs']);

    const chartCopy = path.join(work, 'mailwarden');
    await cp(CHART_DIR, chartCopy, { recursive: true });
    const values = path.join(chartCopy, 'values.yaml');
    await writeFile(values, pinImage(await readFile(values, 'utf8'), o.repository, index.digest));
    await exec(process.env.HELM ?? 'helm', ['package', chartCopy, '--destination', out]);
    const chart = path.join(out, `mailwarden-${version}.tgz`);
    o.log(`chart ${chart}`);

    // What is inside: from the image built for this machine's platform when there is one (the npm
    // packages are the same on every platform), else the first.
    const hostArch = { x64: 'amd64', arm64: 'arm64' }[process.arch as string];
    const runnable = tags[Math.max(0, manifests.findIndex((m) => m.platform?.architecture === hostArch))]!;
    const inventory = JSON.parse(await exec('docker', ['run', '--rm', '--network', 'none', '--entrypoint', 'node', runnable, '-e', INVENTORY_SCRIPT])) as Inventory;
    const sbom = path.join(out, `mailwarden-${version}.cdx.json`);
    const document = cycloneDx(inventory, { repository: o.repository, version, digest: index.digest }, { serialNumber: `urn:uuid:${randomUUID()}`, timestamp: new Date().toISOString() });
    await writeFile(sbom, JSON.stringify(document, null, 2) + '\n');
    o.log(`SBOM ${sbom}: ${(document.components as unknown[]).length} components`);
    await writeFile(path.join(out, 'image.txt'), `${image}\n`);
    return { version, image, digest: index.digest, layout, archive, chart, sbom };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string', default: 'dist-release' },
      repository: { type: 'string' },
      platform: { type: 'string', multiple: true, default: [] },
      'build-arg': { type: 'string', multiple: true, default: [] },
    },
  });
  const chartValues = parseYaml(await readFile(path.join(CHART_DIR, 'values.yaml'), 'utf8')) as { image: { repository: string } };
  const result = await releaseBuild({
    out: values.out,
    repository: values.repository ?? chartValues.image.repository,
    platforms: values.platform,
    buildArgs: values['build-arg'],
    log: (line) => process.stderr.write(`release: ${line}\n`),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  return 0;
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`release: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
