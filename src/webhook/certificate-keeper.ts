import { X509Certificate } from 'node:crypto';
import {
  AdmissionregistrationV1Api,
  ApiException,
  CoreV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1MutatingWebhookConfiguration,
  type V1Secret,
} from '@kubernetes/client-node';
import type { Logger } from '../observability/logger.ts';
import { FIELD_MANAGER } from '../reconcilers/policy-daemon-objects.ts';
import { createCa, issueServing, splitBundle, validityOf, verifyChain, type KeyPair } from './certificates.ts';
import { CA_BUNDLE_FIELD_MANAGER, caBundleApply, legacyOwnershipToDrop, webhookConfiguration, type WebhookEndpoint } from './configuration.ts';
import { RepeatingCheck } from './repeating-check.ts';

const DAY_MS = 86_400_000;

/**
 * The certificate Secret does not exist. The operator fills and rotates it but never creates it
 * (RBAC cannot narrow `create` to one name): the Helm chart creates it, empty.
 */
export class WebhookSecretMissingError extends Error {
  readonly secret: string;

  constructor(namespace: string, name: string) {
    super(
      `the webhook certificate Secret ${namespace}/${name} does not exist. The Helm chart creates it, empty; the operator fills and rotates it but never creates a Secret. ` +
        `Restore it with \`helm upgrade\` (or \`kubectl create secret generic ${name} -n ${namespace}\`), or serve a mounted certificate (--webhook-cert-dir)`,
    );
    this.name = 'WebhookSecretMissingError';
    this.secret = `${namespace}/${name}`;
  }
}

export interface CertificateKeeperOptions {
  readonly kubeConfig: KubeConfig;
  /** Where the Secret lives (the operator's namespace). */
  readonly namespace: string;
  readonly secretName: string;
  /** The MutatingWebhookConfiguration whose caBundle is kept current. */
  readonly configurationName: string;
  readonly endpoint: WebhookEndpoint;
  /** Names in the serving certificate: the Service's DNS names, or 127.0.0.1 in tests. */
  readonly dnsNames: readonly string[];
  readonly ipAddresses?: readonly string[];
  /** Default 365 days. */
  readonly caValidityMs?: number;
  /** Default 90 days. */
  readonly servingValidityMs?: number;
  /** How often the Secret and the configuration are checked (default 1 min). */
  readonly checkIntervalMs?: number;
  /** Called with the serving certificate whenever it differs from the last one. */
  readonly onCertificate: (certificate: KeyPair) => void;
  readonly logger: Logger;
  readonly now?: () => Date;
}

/** What the Secret holds: the current CA (its key too), the bundle to trust, and the serving pair. */
interface Material {
  readonly ca: KeyPair;
  /** The current CA first, then a previous one while it is still valid. */
  readonly bundle: string;
  readonly serving: KeyPair;
}

/**
 * Keeps the webhook's certificates in a Secret and the configuration's caBundle current. Every
 * operator replica runs one (each serves the webhook); writes use the Secret's resourceVersion,
 * so two replicas never both rotate — the loser reads what the winner wrote. The Secret must
 * exist (the chart creates it empty); only its data is written, so what the chart set (labels,
 * annotations, Helm's ownership) stays.
 *
 * Renewal starts when a third of a certificate's life is left. A new CA is published in the
 * caBundle, next to the old one, before any serving certificate it signed is written, so the
 * API server trusts every replica's certificate throughout; the old CA leaves the bundle when
 * it expires.
 */
export class CertificateKeeper {
  readonly #o: CertificateKeeperOptions;
  readonly #core: CoreV1Api;
  readonly #objects: KubernetesObjectApi;
  readonly #admission: AdmissionregistrationV1Api;
  readonly #log: Logger;
  readonly #loop: RepeatingCheck;
  #served: string | undefined;
  #checking: Promise<KeyPair> | undefined;

  constructor(options: CertificateKeeperOptions) {
    this.#o = options;
    this.#core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#objects = KubernetesObjectApi.makeApiClient(options.kubeConfig);
    this.#admission = options.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    this.#log = options.logger.child({ component: 'webhook-certificates' });
    this.#loop = new RepeatingCheck({
      check: () => this.check(),
      intervalMs: options.checkIntervalMs ?? 60_000,
      onError: (error) => this.#log.error({ err: error }, 'webhook certificate check failed; retrying at the next interval'),
    });
  }

  /** Ensures the certificates and the configuration, then checks again on an interval. */
  async start(): Promise<KeyPair> {
    const serving = await this.check();
    this.#loop.start();
    return serving;
  }

  stop(): void {
    this.#loop.stop();
  }

  /** One pass: read the Secret (fill it when empty), renew what is due, publish the bundle. */
  check(): Promise<KeyPair> {
    this.#checking ??= this.#check({}).finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  /** Renews now, whatever the dates say (tests; an operator who suspects a leaked key). */
  async rotate(what: { ca?: boolean } = {}): Promise<KeyPair> {
    await this.#checking?.catch(() => undefined);
    return this.#check({ forceServing: true, forceCa: what.ca === true });
  }

  async #check(force: { forceServing?: boolean; forceCa?: boolean }): Promise<KeyPair> {
    for (let attempt = 0; ; attempt++) {
      try {
        const material = await this.#reconcileSecret(force);
        await this.#applyConfiguration(material.bundle);
        if (material.serving.cert !== this.#served) {
          this.#served = material.serving.cert;
          this.#o.onCertificate(material.serving);
        }
        return material.serving;
      } catch (error) {
        // Another replica wrote the Secret first: take what it wrote.
        if (error instanceof ApiException && error.code === 409 && attempt < 3) {
          force = {};
          continue;
        }
        throw error;
      }
    }
  }

  async #reconcileSecret(force: { forceServing?: boolean; forceCa?: boolean }): Promise<Material> {
    const now = this.#now();
    const secret = await this.#readSecret();
    const current = materialOf(secret);
    if (current === undefined || !verifyChain(current.serving.cert, current.ca.cert, now)) {
      const ca = createCa('mailwarden-webhook-ca', now, this.#o.caValidityMs ?? 365 * DAY_MS);
      // A previous CA stays trusted while it is valid: replicas may still serve what it signed.
      const bundle = joinBundle([ca.cert, ...(current ? stillValid(current.bundle, now) : [])]);
      if (current !== undefined) await this.#applyConfiguration(bundle);
      const material = { ca, bundle, serving: this.#issue(ca, now) };
      await this.#writeSecret(secret, material);
      this.#log.info({ reason: current === undefined ? 'empty or unreadable' : 'invalid chain' }, 'webhook CA and serving certificate created');
      return material;
    }
    if (force.forceCa || dueForRenewal(current.ca.cert, now)) {
      const ca = createCa('mailwarden-webhook-ca', now, this.#o.caValidityMs ?? 365 * DAY_MS);
      const bundle = joinBundle([ca.cert, ...stillValid(current.bundle, now)]);
      // Publish first: the API server must trust the new CA before anyone serves its certificate.
      await this.#applyConfiguration(bundle);
      const material = { ca, bundle, serving: this.#issue(ca, now) };
      await this.#writeSecret(secret, material);
      this.#log.info({ notAfter: validityOf(ca.cert).notAfter }, 'webhook CA rotated');
      return material;
    }
    const bundle = joinBundle(stillValid(current.bundle, now));
    const renewServing = force.forceServing === true || dueForRenewal(current.serving.cert, now) || !this.#coversNames(current.serving.cert);
    if (!renewServing && bundle === current.bundle) return current;
    // Either a new serving certificate from the same CA, or an expired old CA out of the bundle.
    const material = { ca: current.ca, bundle, serving: renewServing ? this.#issue(current.ca, now) : current.serving };
    await this.#writeSecret(secret, material);
    if (renewServing) this.#log.info({ notAfter: validityOf(material.serving.cert).notAfter }, 'webhook serving certificate renewed');
    return material;
  }

  #issue(ca: KeyPair, now: Date): KeyPair {
    return issueServing(ca, { dnsNames: this.#o.dnsNames, ipAddresses: this.#o.ipAddresses ?? [] }, now, this.#o.servingValidityMs ?? 90 * DAY_MS);
  }

  #coversNames(cert: string): boolean {
    return hasNames(cert, this.#o.dnsNames, this.#o.ipAddresses ?? []);
  }

  async #readSecret(): Promise<V1Secret> {
    try {
      return await this.#core.readNamespacedSecret({ namespace: this.#o.namespace, name: this.#o.secretName });
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) throw new WebhookSecretMissingError(this.#o.namespace, this.#o.secretName);
      throw error;
    }
  }

  /**
   * The data alone, as a merge patch carrying the resourceVersion read: a replica that wrote in
   * between makes this one fail with 409 (and read again), and the Secret's type, labels and
   * annotations stay the chart's.
   */
  async #writeSecret(previous: V1Secret, material: Material): Promise<void> {
    const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
    const body = {
      metadata: { resourceVersion: previous.metadata?.resourceVersion },
      data: { 'ca.crt': base64(material.bundle), 'ca.key': base64(material.ca.key), 'tls.crt': base64(material.serving.cert), 'tls.key': base64(material.serving.key) },
    };
    await this.#core.patchNamespacedSecret({ namespace: this.#o.namespace, name: this.#o.secretName, body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  }

  /**
   * The caBundle, and nothing else, through its own field manager. The configuration itself is
   * the chart's; only where nobody created it (no chart: tests, a run outside a cluster) does the
   * operator create it whole.
   */
  async #applyConfiguration(bundle: string): Promise<void> {
    const name = this.#o.configurationName;
    const existing = await this.#readConfiguration();
    if (existing === undefined) {
      await this.#objects.patch(webhookConfiguration(name, this.#o.endpoint, bundle), undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    } else {
      await this.#dropLegacyOwnership(existing);
    }
    await this.#objects.patch(caBundleApply(name, bundle) as KubernetesObject, undefined, undefined, CA_BUNDLE_FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }

  async #readConfiguration(): Promise<V1MutatingWebhookConfiguration | undefined> {
    try {
      return await this.#admission.readMutatingWebhookConfiguration({ name: this.#o.configurationName });
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return undefined;
      throw error;
    }
  }

  /** An earlier operator applied the whole object; where the chart manages it, let go of that. */
  async #dropLegacyOwnership(configuration: V1MutatingWebhookConfiguration): Promise<void> {
    const index = legacyOwnershipToDrop(configuration.metadata?.managedFields, FIELD_MANAGER);
    if (index === undefined) return;
    // test first: the entry is removed only if it is still the one we looked at.
    const patch = [
      { op: 'test', path: `/metadata/managedFields/${index}/manager`, value: FIELD_MANAGER },
      { op: 'remove', path: `/metadata/managedFields/${index}` },
    ];
    try {
      await this.#admission.patchMutatingWebhookConfiguration({ name: this.#o.configurationName, body: patch }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
      this.#log.info({ configuration: this.#o.configurationName }, 'gave up ownership of the webhook configuration taken by an earlier version; the operator keeps its caBundle only');
    } catch (error) {
      // Changed meanwhile: the next check looks again.
      if (error instanceof ApiException && (error.code === 409 || error.code === 422)) return;
      throw error;
    }
  }

  #now(): Date {
    return (this.#o.now ?? (() => new Date()))();
  }
}

/** What the Secret holds, or undefined while it is empty (as the chart creates it) or incomplete. */
function materialOf(secret: V1Secret): Material | undefined {
  const text = (key: string) => (secret.data?.[key] === undefined ? undefined : Buffer.from(secret.data[key]!, 'base64').toString('utf8'));
  const bundle = text('ca.crt');
  const caKey = text('ca.key');
  const cert = text('tls.crt');
  const key = text('tls.key');
  if (!bundle || !caKey || !cert || !key) return undefined;
  const caCert = splitBundle(bundle)[0];
  if (caCert === undefined) return undefined;
  return { ca: { cert: caCert, key: caKey }, bundle, serving: { cert, key } };
}

/** A third of the certificate's life or less is left. */
function dueForRenewal(cert: string, now: Date): boolean {
  const { notBefore, notAfter } = validityOf(cert);
  const life = notAfter.getTime() - notBefore.getTime();
  return notAfter.getTime() - now.getTime() <= life / 3;
}

function stillValid(bundle: string, now: Date): string[] {
  return splitBundle(bundle).filter((cert) => {
    try {
      return validityOf(cert).notAfter > now;
    } catch {
      return false;
    }
  });
}

function joinBundle(certs: readonly string[]): string {
  return [...new Set(certs)].join('');
}

function hasNames(cert: string, dnsNames: readonly string[], ips: readonly string[]): boolean {
  // Node's X509Certificate.subjectAltName: "DNS:a, DNS:b, IP Address:127.0.0.1".
  let san: string;
  try {
    san = new X509Certificate(cert).subjectAltName ?? '';
  } catch {
    return false;
  }
  const names = new Set(san.split(', '));
  return dnsNames.every((n) => names.has(`DNS:${n}`)) && ips.every((ip) => names.has(`IP Address:${ip}`));
}
