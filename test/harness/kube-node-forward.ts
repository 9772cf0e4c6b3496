// Host side of the node's doorway (netns-proxy.ts): a TCP listener on 127.0.0.1 whose every
// connection is joined, through the proxy's Unix socket, to one address inside the node's network
// namespace. Lets the test process, helm and kubectl reach the API server, a pod or a Service
// without any address of the namespace existing outside it.
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Forward {
  /** The local port on 127.0.0.1. */
  readonly port: number;
  close(): Promise<void>;
}

/** Opens a connection to host:port inside the namespace; resolves once the proxy has connected. */
export function dialThrough(socketPath: string, host: string, port: number, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let head = '';
    const timer = setTimeout(() => fail(new Error(`connecting to ${host}:${port} in the node namespace timed out`)), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      const nl = head.indexOf('\n');
      if (nl === -1) return;
      sock.off('data', onData);
      sock.off('error', fail);
      clearTimeout(timer);
      const line = head.slice(0, nl);
      if (line !== 'OK') {
        sock.destroy();
        reject(new Error(`${host}:${port} in the node namespace: ${line.replace(/^ERR /, '')}`));
        return;
      }
      sock.pause();
      const rest = Buffer.from(head.slice(nl + 1), 'latin1');
      if (rest.length > 0) sock.unshift(rest);
      resolve(sock);
    };
    sock.on('data', onData);
    sock.once('error', fail);
    sock.once('connect', () => sock.write(`${host} ${port}\n`));
  });
}

/** A listener on 127.0.0.1:<free port> forwarding to host:port inside the namespace. */
export function forwardTo(socketPath: string, host: string, port: number): Promise<Forward> {
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    open.add(client);
    client.once('close', () => open.delete(client));
    client.on('error', () => undefined);
    client.pause();
    dialThrough(socketPath, host, port).then(
      (upstream) => {
        open.add(upstream);
        upstream.once('close', () => {
          open.delete(upstream);
          client.destroy();
        });
        upstream.on('error', () => client.destroy());
        client.once('close', () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
        upstream.resume();
      },
      () => client.destroy(),
    );
  });
  server.unref();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const local = typeof address === 'object' && address !== null ? address.port : 0;
      resolve({
        port: local,
        close: () =>
          new Promise<void>((done) => {
            for (const s of open) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
