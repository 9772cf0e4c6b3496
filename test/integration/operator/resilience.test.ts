import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FINALIZER } from '../../../src/reconcilers/mail-user-restriction.ts';
import { LIST_NAMES, type RestrictionLists } from '../../../src/restrictions/lists.ts';
import { BACKEND_KINDS, startBackend, type BackendFixture } from '../../harness/backends.ts';
import { eventually, GROUP, resources, startOperatorEnv, VERSION, type Obj, type OperatorEnv } from '../../harness/operator-env.ts';
import { startOperatorProcess, type OperatorProcess } from '../../helpers/operator-process.ts';
import { repoPath } from '../../helpers/paths.ts';

// The operator as users run it (a `mailwarden operator` process), under the failures the issue
// names: the API server restarted under it, and SIGKILL at random moments during a burst of
// changes. Each against PostgreSQL, MariaDB and OpenLDAP.

const empty: RestrictionLists = { allowedSenders: [], rejectedSenders: [], allowedRecipients: [], rejectedRecipients: [] };

/** Retries `fn` while the API server is unavailable or still warming up (429 / connection refused). */
async function retrying<T>(what: string, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  return eventually(what, async () => ({ value: await fn() }), timeoutMs).then((r) => r.value);
}

function sortedLists(lists: Partial<RestrictionLists>): RestrictionLists {
  return Object.fromEntries(LIST_NAMES.map((n) => [n, [...(lists[n] ?? [])].sort()])) as unknown as RestrictionLists;
}

/** A small deterministic PRNG (mulberry32), so a failing burst's sequence of changes can be replayed with BURST_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('operator process resilience', () => {
  let env: OperatorEnv;
  const processes: OperatorProcess[] = [];
  const startOperator = async (ns: string, waitFor: 'started' | 'synced' = 'synced') => {
    const p = await startOperatorProcess({ kubeconfig: env.cp.kubeconfigPath, namespaces: [ns], waitFor });
    processes.push(p);
    return p;
  };
  before(async () => {
    assert.ok(existsSync(repoPath('dist/cli/main.js')), 'run `npm run build` first: the operator runs from dist/');
    env = await startOperatorEnv();
  });
  after(async () => {
    await Promise.all(processes.map((p) => p.kill('SIGKILL')));
    await env?.stopAll();
  });

  for (const kind of BACKEND_KINDS) {
    describe(kind, () => {
      let backend: BackendFixture;
      before(async () => {
        backend = await startBackend(kind);
      });
      after(async () => backend?.stop());

      test('the API server restarted under a running operator: nothing lost, later changes applied, no crash', async () => {
        const ns = await env.namespace(`apirestart-${kind}`);
        const r = resources(env, ns);
        await r.createBackend('vmail', backend.spec, backend.password);
        for (const m of ['kept', 'inflight', 'later', 'gone']) await backend.addMailbox(`${m}@example.com`);
        const operator = await startOperator(ns);

        await r.create('kept', { mailbox: 'kept@example.com', backendRef: { name: 'vmail' }, rejectedSenders: ['@one.test'] });
        await r.create('gone', { mailbox: 'gone@example.com', backendRef: { name: 'vmail' }, rejectedRecipients: ['@.'] });
        await r.waitReason('kept', 'Applied');
        await r.waitReason('gone', 'Applied');

        // Changes made just before the outage: their reconciles (and status writes) race the stop.
        await r.create('inflight', { mailbox: 'inflight@example.com', backendRef: { name: 'vmail' }, allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'] });
        await r.update('kept', { rejectedSenders: ['@two.test'] });
        const down = performance.now();
        await env.cp.stopApiServer();
        const stopMs = performance.now() - down;
        await sleep(3_000);
        const starting = performance.now();
        await env.cp.startApiServer();
        const startMs = performance.now() - starting;
        const outageMs = performance.now() - down;
        const restartedAt = Date.now();

        // After the restart: create, update and delete, once the custom resources are served again.
        await retrying('create after restart', () => r.create('later', { mailbox: 'later@example.com', backendRef: { name: 'vmail' }, allowedSenders: ['@later.test'] }));
        await retrying('update after restart', () => r.update('kept', { rejectedSenders: ['@three.test'] }));
        await retrying('delete after restart', () => r.delete('gone'));

        const converged = performance.now();
        for (const name of ['kept', 'inflight', 'later']) await r.waitReason(name, 'Applied', 60_000);
        await eventually('gone finalized', async () => (await r.get('gone')) === undefined, 60_000);
        const convergeMs = performance.now() - converged;
        assert.deepEqual(await backend.readLists('kept@example.com'), { ...empty, rejectedSenders: ['@three.test'] });
        assert.deepEqual(await backend.readLists('inflight@example.com'), { ...empty, allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'] });
        assert.deepEqual(await backend.readLists('later@example.com'), { ...empty, allowedSenders: ['@later.test'] });
        assert.deepEqual(await backend.readLists('gone@example.com'), empty);

        assert.ok(!operator.hasExited, `the operator exited: ${operator.stderr()}`);
        assert.equal(operator.stderr(), '');
        assert.deepEqual(operator.logs.filter((l) => l.level === 'fatal'), []);
        assert.ok(operator.logged('list/watch failed; retrying with backoff, cache kept').length > 0, 'the outage was noticed');
        const recovered = operator.logged('list and watch recovered').map((l) => Date.parse(String(l.time)) - restartedAt);
        console.log(
          `# ${kind}: API server down for ${(outageMs / 1000).toFixed(1)} s (stop ${(stopMs / 1000).toFixed(1)} s, start ${(startMs / 1000).toFixed(1)} s); ` +
            `informers resumed ${recovered.map((ms) => (ms / 1000).toFixed(1)).join('/')} s after it was ready; changes after the restart applied within ${(convergeMs / 1000).toFixed(1)} s`,
        );
        await operator.kill('SIGTERM');
      });

      test('SIGKILL at 20 random moments during a burst of 500 changes: the store ends exactly as declared', async () => {
        const MAILBOXES = 100;
        const CHANGES = 500;
        const KILLS = 20;
        const BURST_MS = 30_000;
        const seed = Number(process.env.BURST_SEED ?? Math.floor(Math.random() * 2 ** 31));
        const random = prng(seed);
        const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
        const POOL = ['@.', '@a.test', '@.b.test', 'u1@c.test', 'u2@c.test', '@d.test', '@.e.test', 'x@f.test'];
        const randomLists = (): RestrictionLists =>
          Object.fromEntries(LIST_NAMES.map((n) => [n, [...new Set(Array.from({ length: Math.floor(random() * 4) }, () => pick(POOL)))].sort()])) as unknown as RestrictionLists;

        const ns = await env.namespace(`burst-${kind}`);
        const r = resources(env, ns);
        await r.createBackend('vmail', backend.spec, backend.password);
        const mailbox = (i: number) => `burst${i}@example.com`;
        for (let i = 0; i < MAILBOXES; i++) await backend.addMailbox(mailbox(i));

        // The declared state: per mailbox, the live restriction (name and lists) or none.
        const declared = new Map<number, { name: string; lists: RestrictionLists }>();
        const generation = new Array<number>(MAILBOXES).fill(0);
        const busy = new Set<number>();
        const counts = { create: 0, update: 0, delete: 0 };

        let operator = await startOperator(ns, 'synced');
        const started = performance.now();
        const change = async (k: number) => {
          // Paced: change k starts no earlier than its slot, so the burst spans the kills.
          const wait = started + (k * BURST_MS) / CHANGES - performance.now();
          if (wait > 0) await sleep(wait);
          let i: number;
          do i = Math.floor(random() * MAILBOXES);
          while (busy.has(i));
          busy.add(i);
          try {
            const current = declared.get(i);
            if (current === undefined) {
              // A new name each time: the previous restriction may still be finalizing (Conflict, then hand-over).
              const name = `burst${i}-${++generation[i]!}`;
              const lists = randomLists();
              await r.create(name, { mailbox: mailbox(i), backendRef: { name: 'vmail' }, ...lists, deletionPolicy: 'Clear' });
              declared.set(i, { name, lists });
              counts.create++;
            } else if (random() < 0.55) {
              const lists = randomLists();
              await r.update(current.name, lists);
              declared.set(i, { name: current.name, lists });
              counts.update++;
            } else {
              await r.delete(current.name);
              declared.delete(i);
              counts.delete++;
            }
          } finally {
            busy.delete(i);
          }
        };
        let next = 0;
        const lanes = Array.from({ length: 8 }, async () => {
          while (next < CHANGES) await change(next++);
        });

        const phases: string[] = [];
        const killer = (async () => {
          for (let k = 0; k < KILLS; k++) {
            await sleep(Math.random() * 2_500); // kill moments are not part of the seeded sequence
            phases.push(operator.logged('leading: reconciling').length > 0 ? 'reconciling' : operator.logged('operator caches synced').length > 0 ? 'synced' : 'starting');
            const exit = await operator.kill('SIGKILL');
            assert.equal(exit.signal, 'SIGKILL');
            operator = await startOperator(ns, 'started');
          }
        })();
        await Promise.all([...lanes, killer]);
        const burstMs = performance.now() - started;

        const settle = performance.now();
        let last = '';
        await eventually(
          'the store and the API to match the declared state',
          async () => {
            const list = (await env.objects.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'mailuserrestrictions' })) as { items: Obj[] };
            const names = list.items.map((o) => o.metadata.name).sort();
            const expectedNames = [...declared.values()].map((d) => d.name).sort();
            if (JSON.stringify(names) !== JSON.stringify(expectedNames)) return void (last = `restrictions ${names.length} (expected ${expectedNames.length}); extra: ${names.filter((n) => !expectedNames.includes(n)).slice(0, 5).join(',')}`);
            for (const o of list.items) {
              const ready = o.status?.conditions?.find((c) => c.type === 'Ready');
              const deleting = (o.metadata as { deletionTimestamp?: string }).deletionTimestamp;
              if (deleting || ready?.reason !== 'Applied' || o.status?.observedGeneration !== o.metadata.generation || !o.metadata.finalizers?.includes(FINALIZER)) {
                return void (last = `${o.metadata.name}: Ready ${ready?.reason ?? '-'} observed ${o.status?.observedGeneration ?? '-'}/${o.metadata.generation}${deleting ? ' deleting' : ''}`);
              }
            }
            for (let i = 0; i < MAILBOXES; i++) {
              const expected = sortedLists(declared.get(i)?.lists ?? empty);
              const stored = await backend.readLists(mailbox(i));
              if (JSON.stringify(stored) !== JSON.stringify(expected)) return void (last = `${mailbox(i)}: stored ${JSON.stringify(stored)}, declared ${JSON.stringify(expected)}`);
            }
            return true;
          },
          90_000,
        ).catch((error: unknown) => {
          throw new Error(`${(error as Error).message}; last difference: ${last}; seed ${seed}`);
        });
        const convergeMs = performance.now() - settle;

        assert.ok(!operator.hasExited, `the last operator exited: ${operator.stderr()}`);
        const phaseCounts = phases.reduce<Record<string, number>>((acc, p) => ({ ...acc, [p]: (acc[p] ?? 0) + 1 }), {});
        console.log(
          `# ${kind}: ${CHANGES} changes (${counts.create} creates, ${counts.update} updates, ${counts.delete} deletes) over ${MAILBOXES} mailboxes in ${(burstMs / 1000).toFixed(1)} s, ` +
            `${KILLS} SIGKILLs (${Object.entries(phaseCounts).map(([p, n]) => `${n} while ${p}`).join(', ')}); converged ${(convergeMs / 1000).toFixed(1)} s later, seed ${seed}`,
        );
        assert.equal(counts.create + counts.update + counts.delete, CHANGES);
        await operator.kill('SIGTERM');
      });
    });
  }
});
