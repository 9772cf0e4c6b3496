// The test node's doorway: run INSIDE the node's network namespace (nsenter --net), it listens on
// a Unix socket — a file, so processes outside the namespace can connect to it — and joins each
// connection to a TCP address inside the namespace. The first line a client sends is the target,
// "HOST PORT\n"; the proxy answers "OK\n" once connected (or "ERR <reason>\n" and closes), then
// copies bytes both ways. Nothing in the namespace is reachable from outside except through here,
// and nothing here ever connects outside the namespace.
//
//   nsenter --net=/var/run/netns/NAME -- node test/harness/netns-proxy.ts SOCKET
//
// The host side is forwardTo() in kube-node-client.ts (a TCP listener on 127.0.0.1 per target).
import { rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';

const socketPath = process.argv[2];
if (socketPath === undefined) {
  console.error('usage: netns-proxy.ts SOCKET');
  process.exit(2);
}

const TARGET = /^([0-9A-Za-z.:-]+) (\d{1,5})$/;

function serve(client: Socket): void {
  let head = '';
  const onData = (chunk: Buffer): void => {
    head += chunk.toString('latin1');
    const nl = head.indexOf('\n');
    if (nl === -1) {
      if (head.length > 300) client.destroy();
      return;
    }
    client.off('data', onData);
    client.pause();
    const match = TARGET.exec(head.slice(0, nl).trim());
    const rest = Buffer.from(head.slice(nl + 1), 'latin1');
    if (match === null) {
      client.end('ERR bad target line\n');
      return;
    }
    const upstream = connect({ host: match[1]!, port: Number(match[2]) });
    upstream.setNoDelay(true);
    upstream.once('connect', () => {
      client.write('OK\n');
      if (rest.length > 0) upstream.write(rest);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.once('error', (err) => {
      if (upstream.connecting) client.end(`ERR ${err.message.replace(/\n/g, ' ')}\n`);
      else client.destroy();
    });
    client.once('error', () => upstream.destroy());
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  };
  client.on('data', onData);
  client.on('error', () => undefined);
}

rmSync(socketPath, { force: true });
const server = createServer(serve);
server.listen(socketPath, () => console.log(`netns-proxy listening on ${socketPath}`));
const stop = (): void => {
  server.close();
  rmSync(socketPath, { force: true });
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
