import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { BACKEND_KINDS, startBackend, type BackendFixture, type BackendKind } from '../../harness/backends.ts';
import { eventually, resources, startOperatorEnv, type OperatorEnv } from '../../harness/operator-env.ts';
import { isReady, startOperatorProcess, timeUntil, type OperatorProcess } from '../../helpers/operator-process.ts';
import { repoPath } from '../../helpers/paths.ts';

// Two `mailwarden operator --leader-elect` processes on one Lease, writing to PostgreSQL, MariaDB
// and OpenLDAP at once (one MailBackend of each kind in the namespace). The CLI uses the default
// lease timings (15 s lease, 10 s renew deadline, 2 s retry), so a killed leader's lease is taken
// over after at most a lease duration plus one retry period.

const LEASE = 'mailwarden-operator-test';
const FAILOVER_GOAL_MS = 20_000;
const HANDOVER_GOAL_MS = 5_000;

describe('operator processes: leader election and failover (postgres, mariadb, openldap)', () => {
  let env: OperatorEnv;
  let ns: string;
  let r: ReturnType<typeof resources>;
  const backends = new Map<BackendKind, BackendFixture>();
  const processes: OperatorProcess[] = [];
  let leases: CoordinationV1Api;

  const start = async (id: string) => {
    const p = await startOperatorProcess({ kubeconfig: env.cp.kubeconfigPath, namespaces: [ns], leaderElect: true, leaseNamespace: ns, leaseName: LEASE, id });
    processes.push(p);
    return p;
  };
  const holder = async () => (await leases.readNamespacedLease({ namespace: ns, name: LEASE }).catch(() => undefined))?.spec?.holderIdentity ?? '';
  /** Sets `rejectedSenders` of every backend's restriction to [entry]; resolves when all three stores hold it. */
  const change = async (entry: string) => {
    for (const kind of BACKEND_KINDS) await r.update(`le-${kind}`, { rejectedSenders: [entry] });
  };
  const applied = async (entry: string) => {
    for (const [kind, backend] of backends) {
      if ((await backend.readLists(`le-${kind}@example.com`))?.rejectedSenders[0] !== entry) return false;
    }
    return true;
  };

  before(async () => {
    assert.ok(existsSync(repoPath('dist/cli/main.js')), 'run `npm run build` first: the operator runs from dist/');
    const [e, ...fixtures] = await Promise.all([startOperatorEnv(), ...BACKEND_KINDS.map((k) => startBackend(k))]);
    env = e;
    for (const f of fixtures) backends.set(f.kind, f);
    leases = env.kc.makeApiClient(CoordinationV1Api);
    ns = await env.namespace('leader');
    r = resources(env, ns);
    for (const [kind, backend] of backends) {
      await r.createBackend(`store-${kind}`, backend.spec, backend.password);
      await backend.addMailbox(`le-${kind}@example.com`);
    }
  });
  after(async () => {
    await Promise.all(processes.map((p) => p.kill('SIGKILL')));
    await Promise.all([...backends.values()].map((b) => b.stop()));
    await env?.stopAll();
  });

  let leader: OperatorProcess;
  let standby: OperatorProcess;

  test('exactly one of two replicas leads, and changes are applied', async () => {
    const [a, b] = await Promise.all([start('op-a'), start('op-b')]);
    const id = await eventually('a lease holder', async () => (await holder()) || undefined);
    leader = id === 'op-a' ? a : b;
    standby = id === 'op-a' ? b : a;
    await leader.waitForLog('leading: reconciling', 10_000);

    for (const kind of BACKEND_KINDS) {
      await r.create(`le-${kind}`, { mailbox: `le-${kind}@example.com`, backendRef: { name: `store-${kind}` }, rejectedSenders: ['@first.test'] });
    }
    for (const kind of BACKEND_KINDS) await r.waitReason(`le-${kind}`, 'Applied');
    assert.ok(await applied('@first.test'));

    // Several renewals later: still one holder, and the standby never started its controllers.
    assert.equal(await holder(), leader.id);
    assert.equal(leader.logged('leading: reconciling').length, 1);
    assert.equal(standby.logged('leading: reconciling').length, 0, 'the standby must not reconcile');
    assert.equal(standby.logged('controller started').length, 0);
    assert.ok(await isReady(standby), 'a synced standby is ready');
    assert.ok(await isReady(leader));
  });

  test('SIGKILL of the leader: the standby takes over and applies a new change within 20 s', async () => {
    const killedAt = performance.now();
    const killedWall = Date.now();
    const exit = await leader.kill('SIGKILL');
    assert.equal(exit.signal, 'SIGKILL');
    await change('@after-kill.test');
    const appliedMs = await timeUntil(() => applied('@after-kill.test'), FAILOVER_GOAL_MS + 10_000);
    const failoverMs = performance.now() - killedAt;
    const took = await standby.waitForLog('leading: reconciling', 1_000);
    const leadingAfterMs = Date.parse(String(took.time)) - killedWall;
    console.log(`# failover after SIGKILL: standby leading after ${(leadingAfterMs / 1000).toFixed(1)} s, new change in all three stores after ${(failoverMs / 1000).toFixed(1)} s (goal < ${FAILOVER_GOAL_MS / 1000} s; applied ${(appliedMs / 1000).toFixed(1)} s after the update)`);
    assert.ok(failoverMs < FAILOVER_GOAL_MS, `failover took ${Math.round(failoverMs)} ms`);
    assert.equal(await holder(), standby.id);
    for (const kind of BACKEND_KINDS) await r.waitReason(`le-${kind}`, 'Applied');
    [leader, standby] = [standby, await start('op-c')];
  });

  test('SIGTERM releases the lease: the standby takes over within a few seconds, and the old leader exits 0', async () => {
    await change('@before-term.test');
    await eventually('change applied by the current leader', () => applied('@before-term.test'));
    assert.equal(standby.logged('leading: reconciling').length, 0);

    const termAt = performance.now();
    const exit = await leader.kill('SIGTERM');
    const exitMs = performance.now() - termAt;
    assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${leader.stderr()}`);
    assert.ok(leader.logged('released the lease').length === 1, 'the lease is released on SIGTERM');

    const takeoverMs = await timeUntil(async () => (await holder()) === standby.id, HANDOVER_GOAL_MS + 5_000);
    await change('@after-term.test');
    await eventually('change applied by the new leader', () => applied('@after-term.test'));
    const handoverMs = performance.now() - termAt;
    console.log(`# hand-over after SIGTERM: exit 0 after ${exitMs.toFixed(0)} ms, lease taken ${((exitMs + takeoverMs) / 1000).toFixed(1)} s after the signal, new change applied after ${(handoverMs / 1000).toFixed(1)} s`);
    assert.ok(exitMs + takeoverMs < HANDOVER_GOAL_MS, `the standby took ${Math.round(exitMs + takeoverMs)} ms to take the lease`);
    await standby.waitForLog('leading: reconciling', 2_000); // logs are buffered for up to half a second
    assert.equal(standby.logged('leading: reconciling').length, 1);
    assert.ok(!standby.hasExited);
  });
});
