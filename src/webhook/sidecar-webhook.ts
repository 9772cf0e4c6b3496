import type { AddressInfo } from 'node:net';
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import type { MailBackendSpec } from '../api/mail-backend.ts';
import { policyDaemonSpecSchema } from '../api/policy-daemon.ts';
import type { Logger } from '../observability/logger.ts';
import { parseBackendSpec } from '../reconcilers/backend-spec.ts';
import type { PolicyDaemonRef } from '../reconcilers/policy-daemon-objects.ts';
import { daemonRefusal, type DaemonAllowance } from '../reconcilers/daemon-allowance.ts';
import type { PolicyDaemonObject } from '../reconcilers/policy-daemon.ts';
import type { BackendObject, Lister } from '../reconcilers/types.ts';
import { AdmissionServer } from './admission-server.ts';
import { CertificateKeeper } from './certificate-keeper.ts';
import { MountedCertificate } from './mounted-certificate.ts';
import type { KeyPair } from './certificates.ts';
import type { WebhookEndpoint } from './configuration.ts';
import { planInjection, type InjectionResult } from './injection.ts';

export interface SidecarWebhookOptions {
  readonly kubeConfig: KubeConfig;
  /** Where the HTTPS server listens, e.g. 0.0.0.0:9443 (127.0.0.1 in tests). */
  readonly listen: { readonly host: string; readonly port: number };
  /** How the API server reaches it (a Service in a cluster, a URL in tests). */
  readonly endpoint: WebhookEndpoint;
  /** Namespace and name of the certificate Secret. */
  readonly secretNamespace: string;
  readonly secretName?: string;
  readonly configurationName?: string;
  readonly dnsNames: readonly string[];
  readonly ipAddresses?: readonly string[];
  /** The informer caches the decisions read: no API call on the admission path. */
  readonly daemons: Lister<PolicyDaemonObject>;
  readonly backends: Lister<BackendObject>;
  readonly image: string;
  /** Pull secrets (names, in the pod's namespace) added to the pods the daemon is injected into. */
  readonly imagePullSecrets?: readonly string[];
  /** Further images and restricted actions the cluster admin allows; others are never injected. */
  readonly allowance?: Omit<DaemonAllowance, 'defaultImage'>;
  /** Serve the certificate in this directory (tls.crt, tls.key: cert-manager's Secret, mounted)
   * instead of issuing one; the Secret and the configuration's caBundle are then left alone. */
  readonly certificateDir?: string;
  readonly certificateCheckIntervalMs?: number;
  readonly caValidityMs?: number;
  readonly servingValidityMs?: number;
  readonly logger: Logger;
}

export const DEFAULT_CONFIGURATION_NAME = 'mailwarden-policyd-injector';
export const DEFAULT_SECRET_NAME = 'mailwarden-webhook-tls';

/**
 * The sidecar injector assembled: certificates (kept in a Secret, their CA in the
 * MutatingWebhookConfiguration) and the HTTPS admission server deciding from informer caches.
 * Every operator replica runs one, leader or not: the API server may call any of them.
 */
export class SidecarWebhook {
  /** The operator's own certificates; undefined when they come from certificateDir. */
  readonly keeper: CertificateKeeper | undefined;
  readonly #certificates: CertificateKeeper | MountedCertificate;
  readonly #o: SidecarWebhookOptions;
  readonly #log: Logger;
  #server: AdmissionServer | undefined;

  constructor(options: SidecarWebhookOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'webhook' });
    const onCertificate = (certificate: KeyPair) => this.#setCertificate(certificate);
    this.keeper =
      options.certificateDir !== undefined
        ? undefined
        : new CertificateKeeper({
            kubeConfig: options.kubeConfig,
            namespace: options.secretNamespace,
            secretName: options.secretName ?? DEFAULT_SECRET_NAME,
            configurationName: options.configurationName ?? DEFAULT_CONFIGURATION_NAME,
            endpoint: options.endpoint,
            dnsNames: options.dnsNames,
            ipAddresses: options.ipAddresses,
            checkIntervalMs: options.certificateCheckIntervalMs,
            caValidityMs: options.caValidityMs,
            servingValidityMs: options.servingValidityMs,
            onCertificate,
            logger: options.logger,
          });
    this.#certificates = this.keeper ?? new MountedCertificate({ dir: options.certificateDir!, checkIntervalMs: options.certificateCheckIntervalMs, onCertificate, logger: options.logger });
  }

  async start(): Promise<AddressInfo> {
    const certificate = await this.#certificates.start();
    this.#server = new AdmissionServer({ certificate, injectPod: (pod, ns) => this.inject(pod, ns), logger: this.#log });
    const address = await this.#server.listen(this.#o.listen);
    this.#log.info({ address }, 'sidecar injection webhook listening');
    return address;
  }

  async stop(): Promise<void> {
    this.#certificates.stop();
    await this.#server?.close();
  }

  /** The decision for one pod, from the caches. */
  inject(pod: V1Pod, namespace: string): InjectionResult {
    const daemons: PolicyDaemonRef[] = [];
    for (const d of this.#o.daemons.list(namespace)) {
      const parsed = policyDaemonSpecSchema.safeParse(d.spec);
      // A daemon the cluster admin does not allow is never injected (its status says why).
      if (parsed.success && daemonRefusal(parsed.data, { ...this.#o.allowance, defaultImage: this.#o.image }) === undefined) daemons.push({ name: d.metadata.name, namespace, uid: d.metadata.uid, spec: parsed.data });
    }
    return planInjection(pod, {
      daemons,
      backendOf: (daemon) => (daemon.spec.backendRef === undefined ? undefined : backendSpec(this.#o.backends.get(namespace, daemon.spec.backendRef.name))),
      image: this.#o.image,
      imagePullSecrets: this.#o.imagePullSecrets,
    });
  }

  #setCertificate(certificate: KeyPair): void {
    // Before start() the server does not exist yet; it is created with the latest certificate.
    this.#server?.setCertificate(certificate);
  }
}

function backendSpec(backend: BackendObject | undefined): MailBackendSpec | undefined {
  if (backend === undefined) return undefined;
  return parseBackendSpec(backend).spec;
}
