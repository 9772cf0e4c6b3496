// An OCI image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
// from `docker save` output: the layers gzip-compressed, a manifest per platform and one image
// index over them. The index's digest is the image's: pushed with its bytes unchanged
// (`skopeo copy --all --preserve-digests`), the registry serves the same digest, and imported
// as an archive (`ctr images import`, `kind load image-archive`) the node knows it too.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';

export const INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';
export const MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const CONFIG_MEDIA_TYPE = 'application/vnd.oci.image.config.v1+json';
const LAYER_MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly platform?: { readonly os: string; readonly architecture: string; readonly variant?: string };
  readonly annotations?: Record<string, string>;
}

export class OciLayoutError extends Error {
  override readonly name = 'OciLayoutError';
}

const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Writes `data` as a blob of the layout; its descriptor. */
async function writeBlob(layout: string, mediaType: string, data: Buffer): Promise<Descriptor> {
  const digest = sha256(data);
  await writeFile(path.join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length)), data);
  return { mediaType, digest, size: data.length };
}

/** A stream stage that hashes what passes through. */
function hashing(): { stage: Transform; digest: () => string } {
  const h = createHash('sha256');
  const stage = new Transform({
    transform(chunk: Buffer, _enc, done) {
      h.update(chunk);
      done(null, chunk);
    },
  });
  return { stage, digest: () => `sha256:${h.digest('hex')}` };
}

async function isGzip(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(2);
    await handle.read(head, 0, 2, 0);
    return head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/** One layer of `docker save` into the layout, gzip-compressed; checked against its diff_id. */
async function addLayer(layout: string, file: string, diffId: string): Promise<Descriptor> {
  const partial = path.join(layout, 'blobs', 'sha256', `.partial-${path.basename(path.dirname(file))}-${process.pid}`);
  const uncompressed = hashing();
  const compressed = hashing();
  if (await isGzip(file)) {
    // A daemon with the containerd image store saves layers compressed already: keep their bytes.
    await pipeline(createReadStream(file), compressed.stage, createWriteStream(partial));
    await pipeline(createReadStream(file), createGunzip(), uncompressed.stage, new Transform({ transform: (_c, _e, done) => done() }));
  } else {
    await pipeline(createReadStream(file), uncompressed.stage, createGzip({ level: 6 }), compressed.stage, createWriteStream(partial));
  }
  if (uncompressed.digest() !== diffId) throw new OciLayoutError(`${file}: content ${uncompressed.digest()} is not the image's layer ${diffId}`);
  const digest = compressed.digest();
  await rename(partial, path.join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length)));
  return { mediaType: LAYER_MEDIA_TYPE, digest, size: (await stat(path.join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length)))).size };
}

interface DockerConfig {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
  readonly rootfs: { readonly diff_ids: readonly string[] };
}

/**
 * The image in `savedDir` (an extracted `docker save` of one image) into `layout` as a manifest;
 * its descriptor with the platform. The layout's blobs/sha256 directory must exist.
 */
export async function addSavedImage(savedDir: string, layout: string, annotations: Record<string, string>): Promise<Descriptor> {
  const saved = JSON.parse(await readFile(path.join(savedDir, 'manifest.json'), 'utf8')) as { Config: string; Layers: string[] }[];
  if (saved.length !== 1) throw new OciLayoutError(`${savedDir}: expected the save of one image, found ${saved.length}`);
  const configBytes = await readFile(path.join(savedDir, saved[0]!.Config));
  const config = JSON.parse(configBytes.toString('utf8')) as DockerConfig;
  if (config.rootfs.diff_ids.length !== saved[0]!.Layers.length) throw new OciLayoutError(`${savedDir}: ${saved[0]!.Layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids`);
  const configDescriptor = await writeBlob(layout, CONFIG_MEDIA_TYPE, configBytes);
  const layers: Descriptor[] = [];
  for (const [i, layer] of saved[0]!.Layers.entries()) layers.push(await addLayer(layout, path.join(savedDir, layer), config.rootfs.diff_ids[i]!));
  const manifest = { schemaVersion: 2, mediaType: MANIFEST_MEDIA_TYPE, config: configDescriptor, layers, annotations };
  const descriptor = await writeBlob(layout, MANIFEST_MEDIA_TYPE, Buffer.from(JSON.stringify(manifest)));
  return { ...descriptor, platform: { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) } };
}

/** Creates an empty layout directory. */
export async function createLayout(layout: string): Promise<void> {
  await mkdir(path.join(layout, 'blobs', 'sha256'), { recursive: true });
  await writeFile(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
}

/**
 * The image index over the platform manifests, named `tag` (for skopeo: oci:<layout>:<tag>) and
 * `imageName` (for containerd's import) in index.json; the index's descriptor.
 */
export async function writeImageIndex(layout: string, manifests: readonly Descriptor[], tag: string, imageName: string, annotations: Record<string, string>): Promise<Descriptor> {
  const index = { schemaVersion: 2, mediaType: INDEX_MEDIA_TYPE, manifests, annotations };
  const descriptor = await writeBlob(layout, INDEX_MEDIA_TYPE, Buffer.from(JSON.stringify(index)));
  const top = {
    schemaVersion: 2,
    mediaType: INDEX_MEDIA_TYPE,
    manifests: [{ ...descriptor, annotations: { 'org.opencontainers.image.ref.name': tag, 'io.containerd.image.name': imageName } }],
  };
  await writeFile(path.join(layout, 'index.json'), JSON.stringify(top));
  return descriptor;
}

/** Reads a blob back and checks it against its digest (tests, and the build's own final check). */
export async function readBlob(layout: string, digest: string): Promise<Buffer> {
  const data = await readFile(path.join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
  if (sha256(data) !== digest) throw new OciLayoutError(`blob ${digest} does not match its content`);
  return data;
}
