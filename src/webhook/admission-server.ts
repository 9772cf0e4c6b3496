import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../observability/logger.ts';
import type { KeyPair } from './certificates.ts';
import type { InjectionResult } from './injection.ts';

/** The path the MutatingWebhookConfiguration calls. */
export const MUTATE_PODS_PATH = '/inject';
/** The API server sends one object; 3 MiB is its own request limit for most objects, plus room. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface AdmissionServerOptions {
  /** The serving certificate and key; replaced with {@link AdmissionServer.setCertificate}. */
  readonly certificate: KeyPair;
  /** Decides what to add to a pod being created in `namespace`. */
  readonly injectPod: (pod: V1Pod, namespace: string) => InjectionResult;
  readonly logger: Logger;
}

/**
 * The HTTPS endpoint the API server calls on every pod CREATE the webhook's objectSelector
 * admits. It always allows: a pod is either patched or passed through unchanged, and a request
 * it cannot read is allowed too (the webhook must never be why mail pods do not start).
 */
export class AdmissionServer {
  readonly #server: Server;
  readonly #options: AdmissionServerOptions;
  readonly #log: Logger;

  constructor(options: AdmissionServerOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#server = createServer({ cert: options.certificate.cert, key: options.certificate.key, minVersion: 'TLSv1.2' }, (req, res) => this.#handle(req, res));
    this.#server.headersTimeout = 10_000;
    this.#server.requestTimeout = 15_000;
    this.#server.keepAliveTimeout = 30_000;
  }

  /** New connections use the new certificate; open ones finish on the old. */
  setCertificate(certificate: KeyPair): void {
    this.#server.setSecureContext({ cert: certificate.cert, key: certificate.key, minVersion: 'TLSv1.2' });
  }

  listen(target: { host: string; port: number }): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(target.port, target.host, () => {
        this.#server.off('error', reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url?.split('?')[0];
    if (path === '/healthz' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path !== MUTATE_PODS_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        res.writeHead(413).end();
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (res.writableEnded) return;
      const body = this.#review(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(body === undefined ? 400 : 200, { 'content-type': 'application/json' }).end(body ?? '{"error":"not an AdmissionReview"}');
    });
  }

  /** AdmissionReview in → AdmissionReview out (JSON text), or undefined when the input is not one. */
  #review(text: string): string | undefined {
    let review: { apiVersion?: string; kind?: string; request?: { uid?: string; namespace?: string; operation?: string; kind?: { kind?: string }; object?: V1Pod } };
    try {
      review = JSON.parse(text);
    } catch {
      return undefined;
    }
    const request = review?.request;
    if (review?.kind !== 'AdmissionReview' || typeof request?.uid !== 'string') return undefined;
    const response: Record<string, unknown> = { uid: request.uid, allowed: true };
    const reply = () => JSON.stringify({ apiVersion: review.apiVersion ?? 'admission.k8s.io/v1', kind: 'AdmissionReview', response });
    if (request.operation !== 'CREATE' || request.kind?.kind !== 'Pod' || request.object === undefined) return reply();
    const pod = request.object;
    const namespace = request.namespace ?? pod.metadata?.namespace ?? '';
    const podName = pod.metadata?.name ?? `${pod.metadata?.generateName ?? ''}*`;
    let result: InjectionResult;
    try {
      result = this.#options.injectPod(pod, namespace);
    } catch (error) {
      // A bug here must not keep the pod out: admit it as it is, loudly.
      this.#log.error({ err: error, namespace, pod: podName }, 'sidecar injection failed; pod admitted unchanged');
      return reply();
    }
    if (result.warnings?.length) response.warnings = [...result.warnings];
    if (!result.injected) {
      this.#log.debug({ namespace, pod: podName, reason: result.reason }, 'pod not injected');
      return reply();
    }
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(result.patch)).toString('base64');
    this.#log.info({ namespace, pod: podName, policyDaemon: result.daemon }, 'policy daemon sidecar injected');
    return reply();
  }
}
