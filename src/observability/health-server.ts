import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/**
 * `/healthz` (the process serves), `/readyz` (it can answer from its store), `/metrics`
 * (Prometheus). Kubernetes probes and scrapers are its only clients.
 */
export class HealthServer {
  readonly #server: Server;
  readonly #ready: () => boolean;
  readonly #registry: Registry;

  constructor(params: { registry: Registry; ready: () => boolean }) {
    this.#registry = params.registry;
    this.#ready = params.ready;
    this.#server = createServer((req, res) => {
      const url = req.url?.split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (url === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (url === '/readyz') {
        const ready = this.#ready();
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
      } else if (url === '/metrics') {
        this.#registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': this.#registry.contentType }).end(text),
          () => res.writeHead(500).end(),
        );
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      }
    });
    this.#server.keepAliveTimeout = 5_000;
  }

  listen(target: { host: string; port: number } | { path: string }): Promise<AddressInfo | string> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      const done = () => {
        this.#server.off('error', reject);
        resolve(this.#server.address() as AddressInfo | string);
      };
      if ('path' in target) this.#server.listen(target.path, done);
      else this.#server.listen(target.port, target.host, done);
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}
