// The read side of the random amavisd test: the built `mailwarden policyd` over the amavisd tables
// (as the read-only account), one daemon per combination of the two settings, each asked over
// one persistent policy connection as Postfix asks. No cache (--cache-ttl 0ms): every answer is
// read from the tables as they are.
import { startDaemon, type DaemonProcess } from '../../helpers/daemon.ts';
import { TestClient } from '../../unit/policy/client.ts';
import type { SqlServer } from '../../harness/containers.ts';
import type { Request, World } from './amavisd-model.ts';

export interface WblistDaemons {
  /** The daemon's action (`action=` of its answer) for `request`, under the world's settings. */
  ask(world: World, request: Request): Promise<string>;
  stop(): Promise<void>;
}

interface Asked {
  readonly daemon: DaemonProcess;
  readonly client: TestClient;
}

export async function startWblistDaemons(db: SqlServer): Promise<WblistDaemons> {
  const daemons = new Map<string, Asked>();
  const settingsKey = (bypass: boolean, discard: boolean): string => `${bypass}/${discard}`;
  try {
    for (const bypass of [false, true]) {
      for (const discard of [false, true]) {
        const args = ['--store', db.urlFor(db.readOnly), '--store-schema', 'amavisd', '--cache-ttl', '0ms', '--recipient-delimiter', '+'];
        if (bypass) args.push('--bypass-outgoing');
        if (discard) args.push('--discard-instead-of-reject');
        const daemon = await startDaemon(args, { MAILWARDEN_STORE_PASSWORD: db.readOnly.password });
        daemons.set(settingsKey(bypass, discard), { daemon, client: await TestClient.open({ host: '127.0.0.1', port: daemon.port }) });
      }
    }
  } catch (error) {
    await Promise.all([...daemons.values()].map(({ daemon }) => daemon.stop()));
    throw error;
  }
  return {
    async ask(world, request) {
      const { client } = daemons.get(settingsKey(world.bypassOutgoing, world.discardInsteadOfReject))!;
      const attributes = [
        'request=smtpd_access_policy',
        'protocol_state=RCPT',
        'protocol_name=ESMTP',
        `sender=${request.sender}`,
        `recipient=${request.recipient}`,
        `client_address=${request.client}`,
        `sasl_username=${request.sasl}`,
      ];
      client.send(attributes.join('\n') + '\n\n');
      const answers = await client.waitAnswers(client.answers.length + 1);
      const answer = answers.at(-1)!;
      return answer.startsWith('action=') ? answer.slice('action='.length) : answer;
    },
    async stop() {
      for (const { daemon, client } of daemons.values()) {
        client.socket.destroy();
        await daemon.stop();
      }
    },
  };
}
