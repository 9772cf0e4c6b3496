import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import forge from 'node-forge';

/**
 * The webhook's certificates: a self-signed CA and a serving certificate it signs. Node can
 * make keys and read certificates but cannot sign one, so node-forge builds and signs the
 * X.509 structure; keys come from node:crypto (fast, native) and everything leaves as PEM.
 */

/** A certificate and its private key, PEM encoded. */
export interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

export class CertificateError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CertificateError';
  }
}

/** Clock skew between the operator and the API server that a fresh certificate tolerates. */
const BACKDATE_MS = 5 * 60_000;

/** A self-signed CA valid for `validityMs` from `now`. */
export function createCa(commonName: string, now: Date, validityMs: number): KeyPair {
  const { cert, key, forgeKey } = start(commonName, now, validityMs);
  cert.setIssuer(cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forgeKey, forge.md.sha256.create());
  return { cert: toPem(cert), key };
}

/** A serving certificate for `dnsNames` and `ipAddresses`, signed by `ca`. */
export function issueServing(ca: KeyPair, names: { dnsNames: readonly string[]; ipAddresses: readonly string[] }, now: Date, validityMs: number): KeyPair {
  if (names.dnsNames.length === 0 && names.ipAddresses.length === 0) throw new CertificateError('a serving certificate needs at least one DNS name or IP address');
  const commonName = names.dnsNames[0] ?? names.ipAddresses[0]!;
  const { cert, key } = start(commonName, now, validityMs);
  let caCert: forge.pki.Certificate;
  let caKey: forge.pki.rsa.PrivateKey;
  try {
    caCert = forge.pki.certificateFromPem(ca.cert);
    caKey = forge.pki.privateKeyFromPem(ca.key);
  } catch (error) {
    throw new CertificateError(`the webhook CA cannot be read: ${(error as Error).message}`, { cause: error });
  }
  // Never outlive the CA: the API server would stop trusting the serving certificate first.
  if (cert.validity.notAfter > caCert.validity.notAfter) cert.validity.notAfter = caCert.validity.notAfter;
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [...names.dnsNames.map((value) => ({ type: 2, value })), ...names.ipAddresses.map((ip) => ({ type: 7, ip }))],
    },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { cert: toPem(cert), key };
}

/** Validity of the first certificate in a PEM text. */
export function validityOf(pem: string): { notBefore: Date; notAfter: Date } {
  try {
    const x = new X509Certificate(pem);
    return { notBefore: new Date(x.validFrom), notAfter: new Date(x.validTo) };
  } catch (error) {
    throw new CertificateError(`not a PEM certificate: ${(error as Error).message}`, { cause: error });
  }
}

/** The certificates of a PEM bundle, one PEM text each. */
export function splitBundle(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((c) => (c.endsWith('\n') ? c : `${c}\n`)) ?? [];
}

/** True when `cert` was signed by `ca` and `now` is within both validities. */
export function verifyChain(cert: string, ca: string, now: Date): boolean {
  try {
    const leaf = new X509Certificate(cert);
    const issuer = new X509Certificate(ca);
    const inside = (x: X509Certificate) => new Date(x.validFrom) <= now && now <= new Date(x.validTo);
    return leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey) && inside(leaf) && inside(issuer);
  } catch {
    return false;
  }
}

function start(commonName: string, now: Date, validityMs: number) {
  // RSA 2048: what every API server and client accepts; node:crypto makes it in milliseconds.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  // A positive 16-byte serial: the high bit cleared so DER does not read it as negative.
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = new Date(now.getTime() - BACKDATE_MS);
  cert.validity.notAfter = new Date(now.getTime() + validityMs);
  cert.setSubject([{ name: 'commonName', value: commonName }, { name: 'organizationName', value: 'mailwarden' }]);
  return { cert, key, forgeKey };
}

/** forge writes CRLF line ends; everything else here (and in Secrets) uses LF. */
function toPem(cert: forge.pki.Certificate): string {
  return forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n');
}
