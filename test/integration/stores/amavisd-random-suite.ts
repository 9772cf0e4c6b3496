// Random worlds of accounts, parties and W/B pairs, written through the operator's writer (the
// amavisd store's apply) into real amavisd tables, then asked of the built policy daemon
// (`mailwarden policyd --store-schema amavisd`, amavisd-daemons.ts) over the policy protocol;
// every answer must be one the independent model (amavisd-model.ts) allows. Seeded: the seed is
// printed, and MAILWARDEN_TEST_SEED=<seed> replays a run.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LIST_NAMES, type ListName, type RestrictionLists } from '../../../src/restrictions/lists.ts';
import { openAmavisdStore, type AmavisdWblistStore } from '../../../src/stores/amavisd-sql.ts';
import { type SqlServer, startMariadb, startPostgres } from '../../harness/containers.ts';
import { clearAmavisdTables, loadAmavisdTables } from './helpers.ts';
import { prng } from '../../bench/fixtures.ts';
import { modelActions, randomRequest, randomWorld, type Account, type Request, type World } from './amavisd-model.ts';
import { startWblistDaemons, type WblistDaemons } from './amavisd-daemons.ts';

const WORLDS = 30;
const REQUESTS_PER_WORLD = 80;

/** The lists an account's pairs stand for. */
function listsOf(account: Account): RestrictionLists {
  const lists: Record<ListName, string[]> = { allowedSenders: [], rejectedSenders: [], allowedRecipients: [], rejectedRecipients: [] };
  for (const [party, wb] of account.inbound) lists[wb === 'W' ? 'allowedSenders' : 'rejectedSenders'].push(party);
  for (const [party, wb] of account.outbound) lists[wb === 'W' ? 'allowedRecipients' : 'rejectedRecipients'].push(party);
  return lists;
}

function describeWorld(world: World): string {
  const lines = world.accounts.map((a) => `  ${a.email}: ${LIST_NAMES.map((n) => `${n}=[${listsOf(a)[n].join(' ')}]`).join(' ')}`);
  return `bypassOutgoing=${world.bypassOutgoing} discardInsteadOfReject=${world.discardInsteadOfReject}\n${lines.join('\n')}`;
}

function describeRequest(r: Request): string {
  return `sender=${r.sender || '<>'} recipient=${r.recipient} sasl_username=${r.sasl || '-'} client_address=${r.client}`;
}

export function amavisdRandomSuite(kind: 'postgres' | 'mariadb'): void {
  describe(`random amavisd worlds against the model on ${kind === 'postgres' ? 'PostgreSQL 15' : 'MariaDB 10.11'}`, () => {
    let db: SqlServer;
    let writer: AmavisdWblistStore;
    let daemons: WblistDaemons;

    before(async () => {
      db = kind === 'postgres' ? await startPostgres() : await startMariadb();
      await loadAmavisdTables(db);
      writer = await openAmavisdStore(db.url, {}, { semantics: 'default', password: db.password });
      daemons = await startWblistDaemons(db);
    });
    after(async () => {
      await daemons?.stop();
      await writer?.close();
      await db?.stop();
    });

    test(`${WORLDS} worlds × ${REQUESTS_PER_WORLD} requests: every answer is one the spec allows`, async () => {
      const seed = Number(process.env.MAILWARDEN_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
      console.error(`  [amavisd random ${kind}] seed ${seed} (replay: MAILWARDEN_TEST_SEED=${seed})`);
      const random = prng(seed);
      const seen = new Map<string, number>();
      let open = 0;
      for (let w = 0; w < WORLDS; w++) {
        const world = randomWorld(random);
        await clearAmavisdTables(db);
        for (const account of world.accounts) await writer.apply(account.email, listsOf(account));
        for (let r = 0; r < REQUESTS_PER_WORLD; r++) {
          const request = randomRequest(random);
          const allowed = modelActions(world, request);
          const answer = await daemons.ask(world, request);
          seen.set(answer, (seen.get(answer) ?? 0) + 1);
          if (allowed.size > 1) open++;
          assert.ok(
            allowed.has(answer),
            `seed ${seed}, world ${w}, request ${r}: answered ${JSON.stringify(answer)}, the model allows ${JSON.stringify([...allowed])}\n${describeRequest(request)}\n${describeWorld(world)}`,
          );
        }
      }
      console.error(`  [amavisd random ${kind}] answers ${JSON.stringify(Object.fromEntries(seen))}; ${open} request(s) where order was open`);
      // The worlds reach every kind of answer, or the run proved little.
      for (const action of ['OK', 'REJECT Blacklisted', 'DISCARD Policy discard', 'DUNNO']) assert.ok((seen.get(action) ?? 0) > 0, `no ${action} in ${WORLDS * REQUESTS_PER_WORLD} requests (seed ${seed})`);
    });
  });
}
