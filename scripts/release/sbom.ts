// A CycloneDX 1.5 SBOM of the image, from what is inside it: the Debian packages (dpkg's
// status file), the Node.js runtime and every npm package under /app/node_modules.

/** Run in the image with `node -e`: prints what it holds as JSON. CommonJS, no dependencies. */
export const INVENTORY_SCRIPT = `
const fs = require('fs'), path = require('path');
const npm = [];
const walk = (dir) => {
  let names = [];
  try { names = fs.readdirSync(dir); } catch { return; }
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const full = path.join(dir, name);
    if (name.startsWith('@')) { walk(full); continue; }
    try {
      const p = JSON.parse(fs.readFileSync(path.join(full, 'package.json'), 'utf8'));
      if (p.name && p.version) npm.push({ name: p.name, version: p.version, license: typeof p.license === 'string' ? p.license : undefined, path: full });
    } catch {}
    walk(path.join(full, 'node_modules'));
  }
};
walk('/app/node_modules');
const dpkg = [];
let status = '';
try { status = fs.readFileSync('/var/lib/dpkg/status', 'utf8'); } catch {}
for (const para of status.split(/\\n\\n+/)) {
  const field = (k) => (new RegExp('^' + k + ': (.*)$', 'm').exec(para) || [])[1];
  if (field('Package') && field('Version') && /install ok installed/.test(field('Status') || '')) dpkg.push({ name: field('Package'), version: field('Version'), arch: field('Architecture') });
}
let os = {};
try { for (const l of fs.readFileSync('/etc/os-release', 'utf8').split('\\n')) { const m = /^(\\w+)=\"?([^\"]*)\"?$/.exec(l); if (m) os[m[1]] = m[2]; } } catch {}
process.stdout.write(JSON.stringify({ node: process.version.slice(1), npm, dpkg, os: { id: os.ID, version: os.VERSION_ID } }));
`;

export interface Inventory {
  readonly node: string;
  readonly npm: readonly { name: string; version: string; license?: string; path: string }[];
  readonly dpkg: readonly { name: string; version: string; arch?: string }[];
  readonly os: { readonly id?: string; readonly version?: string };
}

export interface ImageIdentity {
  readonly repository: string;
  readonly version: string;
  readonly digest: string;
}

/** The CycloneDX document (JSON-ready); serialNumber and timestamp are the caller's, for reproducibility. */
export function cycloneDx(inventory: Inventory, image: ImageIdentity, meta: { serialNumber: string; timestamp: string }): Record<string, unknown> {
  const seen = new Set<string>();
  const components: Record<string, unknown>[] = [];
  const add = (c: Record<string, unknown> & { purl: string }) => {
    if (seen.has(c.purl)) return;
    seen.add(c.purl);
    components.push({ 'bom-ref': c.purl, ...c });
  };
  for (const p of inventory.npm) {
    const [scope, name] = p.name.startsWith('@') ? [p.name.slice(0, p.name.indexOf('/')), p.name.slice(p.name.indexOf('/') + 1)] : [undefined, p.name];
    add({
      type: 'library',
      ...(scope ? { group: scope } : {}),
      name,
      version: p.version,
      purl: `pkg:npm/${scope ? `${encodeURIComponent(scope)}/` : ''}${encodeURIComponent(name)}@${encodeURIComponent(p.version)}`,
      ...(p.license ? { licenses: [{ expression: p.license }] } : {}),
    });
  }
  add({ type: 'platform', name: 'node', version: inventory.node, purl: `pkg:generic/node@${inventory.node}` });
  const distro = inventory.os.id ?? 'debian';
  for (const p of inventory.dpkg) {
    add({ type: 'library', name: p.name, version: p.version, purl: `pkg:deb/${distro}/${encodeURIComponent(p.name)}@${encodeURIComponent(p.version)}${p.arch ? `?arch=${p.arch}` : ''}` });
  }
  const name = image.repository.slice(image.repository.lastIndexOf('/') + 1);
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    serialNumber: meta.serialNumber,
    version: 1,
    metadata: {
      timestamp: meta.timestamp,
      tools: { components: [{ type: 'application', name: 'mailwarden release:build' }] },
      component: {
        type: 'container',
        'bom-ref': `pkg:oci/${name}@${encodeURIComponent(image.digest)}`,
        name: image.repository,
        version: image.version,
        purl: `pkg:oci/${name}@${encodeURIComponent(image.digest)}?repository_url=${encodeURIComponent(image.repository)}&tag=${encodeURIComponent(image.version)}`,
        hashes: [{ alg: 'SHA-256', content: image.digest.replace(/^sha256:/, '') }],
      },
    },
    components,
  };
}
