/**
 * The attacker of policy-lockout.test.ts, in a process of its own so that its work never delays
 * the probe's measurements. Usage: node policy-lockout-attacker.ts MODE PORT|/SOCKET ADDRESS[,ADDRESS…] COUNT
 *   idle       opens COUNT connections from each address and sends nothing
 *   slowloris  opens COUNT connections from each address and sends one byte of a request a second;
 *              a connection the daemon closes is opened again a second later
 *   pipeline   opens COUNT connections from each address that pipeline requests and never read
 * Prints one JSON line per event ({"event":"ready"} once the attack is in place); on a line "stop"
 * on stdin it prints {"event":"stopped","open":N} and exits. Bounded: it exits by itself after 120 s.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

const [mode, portText, addressList, countText] = process.argv.slice(2);
const target = portText?.startsWith('/') ? { path: portText } : { port: Number(portText), host: '127.0.0.1' };
const addresses = (addressList ?? '').split(',');
const count = Number(countText);
const sockets: Socket[] = [];
const say = (event: object) => process.stdout.write(JSON.stringify(event) + '\n');
const open = () => sockets.filter((s) => !s.destroyed).length;

async function openMany(from: string, n: number, parallel = 100): Promise<void> {
  for (let i = 0; i < n; i += parallel) {
    await Promise.all(
      Array.from({ length: Math.min(parallel, n - i) }, () => {
        const socket = connect('path' in target ? target : { ...target, localAddress: from });
        socket.on('error', () => {}); // evicted or refused: a reset is expected
        sockets.push(socket);
        return Promise.race([once(socket, 'connect'), once(socket, 'close')]);
      }),
    );
  }
}

let stopped = false;
process.stdin.setEncoding('utf8').on('data', (text: string) => {
  if (!text.includes('stop')) return;
  stopped = true;
  say({ event: 'stopped', open: open() });
  for (const socket of sockets) socket.destroy();
  process.exit(0);
});
setTimeout(() => process.exit(3), 120_000).unref();

for (const from of addresses) await openMany(from, count);
if (mode === 'idle') {
  say({ event: 'ready', open: open() });
} else if (mode === 'slowloris') {
  // As slow-loris tools do, a connection the daemon closes (timed out or evicted) is opened again
  // a second later, so the attack lasts as long as the attacker runs.
  const partial = 'request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=slow';
  const reopen = (socket: Socket, from: string): void => {
    socket.once('close', () => {
      if (stopped) return;
      setTimeout(() => {
        if (stopped) return;
        const again = connect('path' in target ? target : { ...target, localAddress: from });
        again.on('error', () => {});
        sockets[sockets.indexOf(socket)] = again;
        reopened++;
        reopen(again, from);
      }, 1_000);
    });
  };
  let reopened = 0;
  sockets.forEach((socket, i) => reopen(socket, addresses[Math.floor(i / count)]!));
  say({ event: 'ready', open: open() });
  for (let second = 0; !stopped; second++) {
    for (const socket of sockets) if (!socket.destroyed) socket.write(partial[second % partial.length]!);
    if (second % 5 === 4) say({ event: 'progress', open: open(), reopened });
    await delay(1_000);
  }
} else if (mode === 'pipeline') {
  const burst = 'request=smtpd_access_policy\nprotocol_state=RCPT\nsender=alice@example.com\nrecipient=p@blocked.test\n\n'.repeat(1_000);
  let allClosed = false;
  for (const socket of sockets) {
    socket.pause(); // never reads an answer
    socket.once('close', () => open() === 0 && !allClosed && (allClosed = true) && say({ event: 'all-closed' }));
  }
  // Keep every connection's input topped up; the daemon has stopped reading once none of it has
  // been taken for a whole second. Then keep topping up until the daemon closes them.
  const topUp = () => {
    for (const socket of sockets) if (socket.writableLength === 0 && !socket.destroyed) socket.write(burst);
  };
  let readyAt: number | undefined;
  for (let quietSince = performance.now(); !stopped && open() > 0; ) {
    if (sockets.some((s) => s.writableLength === 0 && !s.destroyed)) quietSince = performance.now();
    if (readyAt === undefined && performance.now() - quietSince > 1_000) {
      readyAt = performance.now();
      say({ event: 'ready', open: open() });
    }
    topUp();
    await delay(20);
  }
} else {
  say({ event: 'error', message: `unknown mode ${String(mode)}` });
  process.exit(2);
}
