// The read side of the random amavisd test: the amavisd store's read of one request's facts (one
// statement, as the read-only account) and the decision over them, as the daemon takes them.
import { decideWblist, planWblist } from '../../../src/restrictions/amavisd-wblist.ts';
import { openAmavisdStore } from '../../../src/stores/amavisd-sql.ts';
import type { SqlServer } from '../../harness/containers.ts';
import type { Request, World } from './amavisd-model.ts';

export interface WblistDaemons {
  /** The action for `request`, under the world's settings. */
  ask(world: World, request: Request): Promise<string>;
  stop(): Promise<void>;
}

export async function startWblistDaemons(db: SqlServer): Promise<WblistDaemons> {
  const store = await openAmavisdStore(db.urlFor(db.readOnly), {}, { semantics: 'default', password: db.readOnly.password });
  return {
    async ask(world, request) {
      const options = { recipientDelimiter: '+', bypassOutgoing: world.bypassOutgoing, discardInsteadOfReject: world.discardInsteadOfReject };
      const plan = planWblist({ protocolState: 'RCPT', sender: request.sender, recipient: request.recipient, saslUsername: request.sasl || undefined, clientAddress: request.client }, options);
      if (typeof plan === 'string') return 'DUNNO';
      return decideWblist(plan, await store.facts(plan, AbortSignal.timeout(5000)), options).action;
    },
    stop: () => store.close(),
  };
}
