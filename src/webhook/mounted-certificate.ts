import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../observability/logger.ts';
import { CertificateError, type KeyPair } from './certificates.ts';
import { RepeatingCheck } from './repeating-check.ts';

export interface MountedCertificateOptions {
  /** A directory holding tls.crt and tls.key: a kubernetes.io/tls Secret mounted as a volume. */
  readonly dir: string;
  /** How often the files are read again (default 1 min; the kubelet updates them within about as long). */
  readonly checkIntervalMs?: number;
  /** Called with the pair whenever it differs from the last one served. */
  readonly onCertificate: (certificate: KeyPair) => void;
  readonly logger: Logger;
}

/**
 * The webhook's serving certificate when someone else issues it (cert-manager writes the Secret
 * and injects its CA into the webhook configuration): read from the mounted Secret, and read
 * again as it is renewed. Nothing is written, neither the Secret nor the configuration.
 */
export class MountedCertificate {
  readonly #o: MountedCertificateOptions;
  readonly #log: Logger;
  readonly #loop: RepeatingCheck;
  #served: string | undefined;

  constructor(options: MountedCertificateOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'webhook-certificates' });
    this.#loop = new RepeatingCheck({
      check: () => this.check(),
      intervalMs: options.checkIntervalMs ?? 60_000,
      onError: (error) => this.#log.warn({ err: error }, 'mounted webhook certificate not (yet) usable; serving the previous one'),
    });
  }

  /** The current pair; fails when the files are missing or do not match. */
  async start(): Promise<KeyPair> {
    const pair = await readPair(this.#o.dir);
    this.#served = pair.cert;
    this.#loop.start();
    return pair;
  }

  stop(): void {
    this.#loop.stop();
  }

  /** Reads the files; hands a changed, matching pair to onCertificate. */
  async check(): Promise<void> {
    const pair = await readPair(this.#o.dir);
    if (pair.cert === this.#served) return;
    this.#served = pair.cert;
    this.#log.info({ notAfter: new X509Certificate(pair.cert).validTo }, 'webhook certificate renewed (mounted Secret)');
    this.#o.onCertificate(pair);
  }
}

async function readPair(dir: string): Promise<KeyPair> {
  let cert: string;
  let key: string;
  try {
    [cert, key] = await Promise.all([readFile(path.join(dir, 'tls.crt'), 'utf8'), readFile(path.join(dir, 'tls.key'), 'utf8')]);
  } catch (error) {
    throw new CertificateError(`webhook certificate: cannot read tls.crt and tls.key in ${dir}`, { cause: error });
  }
  // The kubelet swaps the files at once, but a read can still straddle a swap: serve only a pair.
  let matches: boolean;
  try {
    matches = new X509Certificate(cert).checkPrivateKey(createPrivateKey(key));
  } catch (error) {
    throw new CertificateError(`webhook certificate: tls.crt or tls.key in ${dir} is not PEM`, { cause: error });
  }
  if (!matches) throw new CertificateError(`webhook certificate: tls.key in ${dir} does not belong to tls.crt`);
  return { cert, key };
}
