// LeaderElector against a real kube-apiserver: one leader, hand-over on stop, failover after an
// abandoned leader (short durations, and once at the default 15 s/10 s/2 s), stepping down first.
// Run: source .ci/controlplane.sh && node --test test/integration/controller/leader-election.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinationV1Api, CoreV1Api, RbacAuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { LeaderElector, type LeaderElectorOptions } from '../../../src/controller/leader-election.ts';
import { eventually } from './support.ts';

const NS = 'leases';
const FAST = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 };

interface Candidate {
  elector: LeaderElector;
  started: number[];
  stopped: number[];
}

function candidate(kc: KubeConfig, name: string, identity: string, opts: Partial<LeaderElectorOptions> = FAST): Candidate {
  const c: Candidate = { started: [], stopped: [], elector: undefined as unknown as LeaderElector };
  c.elector = new LeaderElector({
    kubeConfig: kc,
    namespace: NS,
    name,
    identity,
    ...opts,
    onStartedLeading: () => c.started.push(Date.now()),
    onStoppedLeading: () => c.stopped.push(Date.now()),
  });
  return c;
}

describe('LeaderElector (real API server)', () => {
  let cp: ControlPlane;
  let kc: KubeConfig;
  let leases: CoordinationV1Api;
  const running: LeaderElector[] = [];
  const start = (...cs: Candidate[]): void => cs.forEach((c) => { running.push(c.elector); c.elector.start(); });
  const holder = async (name: string): Promise<string> => (await leases.readNamespacedLease({ namespace: NS, name })).spec?.holderIdentity ?? '';
  const renewedAt = async (name: string): Promise<number> => new Date((await leases.readNamespacedLease({ namespace: NS, name })).spec?.renewTime ?? 0).getTime();

  before(async () => {
    cp = await startControlPlane();
    kc = cp.kubeConfig();
    leases = kc.makeApiClient(CoordinationV1Api);
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
  });
  after(async () => {
    for (const e of running) e.abandon();
    await cp?.stop();
  });

  test('of two candidates exactly one leads, and stop() hands over within a few seconds', async () => {
    const a = candidate(kc, 'one-leader', 'a');
    const b = candidate(kc, 'one-leader', 'b');
    start(a, b);
    const first = await eventually('a leader', () => (a.elector.isLeader ? a : b.elector.isLeader ? b : undefined), 10_000);
    const second = first === a ? b : a;
    // Several lease durations with both competing (as the lease's own renew times tell): never two
    // leaders, never none, at every sample.
    const from = await renewedAt('one-leader');
    const wrong: string[] = [];
    let samples = 0;
    await eventually('the lease renewed over 8 s', async () => {
      const leaders = Number(a.elector.isLeader) + Number(b.elector.isLeader);
      if (leaders !== 1) wrong.push(`${leaders} leaders at sample ${samples}`);
      samples++;
      return (await renewedAt('one-leader')) - from >= 8000;
    });
    assert.deepEqual(wrong, []);
    assert.ok(samples > 40, `${samples} samples`);
    assert.equal(await holder('one-leader'), first.elector.identity);
    assert.deepEqual([first.started.length, second.started.length], [1, 0]);

    const t0 = Date.now();
    await first.elector.stop();
    assert.equal(first.stopped.length, 1, 'onStoppedLeading on stop()');
    assert.equal(first.elector.isLeader, false);
    await eventually('hand-over', () => second.elector.isLeader, 5000);
    const handOverMs = Date.now() - t0;
    console.log(`# hand-over after stop(): ${handOverMs} ms`);
    assert.ok(handOverMs < 3000, `hand-over took ${handOverMs} ms`);
    assert.equal(await holder('one-leader'), second.elector.identity);
    await second.elector.stop();
    assert.equal(await holder('one-leader'), '', 'released');
  });

  test('a leader abandoned without release is replaced once its lease expires (short durations)', async () => {
    const a = candidate(kc, 'abandoned', 'a');
    start(a);
    await eventually('a leads', () => a.elector.isLeader, 10_000);
    const b = candidate(kc, 'abandoned', 'b');
    start(b);
    await eventually('b sees a leading', () => b.elector.leader === 'a');
    assert.equal(b.elector.isLeader, false);
    const t0 = Date.now();
    a.elector.abandon();
    await eventually('b leads', () => b.elector.isLeader, 10_000);
    const ms = Date.now() - t0;
    console.log(`# failover with a 3 s lease: ${ms} ms`);
    assert.ok(ms >= 1500 && ms < 6000, `failover after ${ms} ms`);
    await b.elector.stop();
  });

  test('a leader that cannot renew stops leading before another acquires', async () => {
    // The leader runs as a user whose right to the lease is then revoked: its renewals fail (403).
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({ namespace: NS, body: {
      metadata: { name: 'lease-user' },
      rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }],
    } });
    await rbac.createNamespacedRoleBinding({ namespace: NS, body: {
      metadata: { name: 'lease-user' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'lease-user' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'elector-a' }],
    } });
    const userKc = (await cp.userKubeconfig('elector-a')).kubeConfig();
    const a = candidate(userKc, 'cut-off', 'a');
    start(a);
    await eventually('a leads', () => a.elector.isLeader, 10_000);
    const b = candidate(kc, 'cut-off', 'b');
    start(b);
    await eventually('b sees a leading', () => b.elector.leader === 'a');
    await rbac.deleteNamespacedRoleBinding({ namespace: NS, name: 'lease-user' });
    await eventually('b leads', () => b.elector.isLeader, 15_000);
    assert.equal(a.stopped.length, 1, 'a stepped down');
    assert.ok(a.stopped[0]! < b.started[0]!, `a stopped at ${a.stopped[0]}, b started at ${b.started[0]}`);
    assert.ok(b.started[0]! - a.stopped[0]! >= 500, 'with a margin (lease duration − renew deadline)');
    assert.equal(a.elector.isLeader, false);
    await a.elector.stop();
    await b.elector.stop();
  });

  test('failover at the default durations (15 s lease, 10 s renew deadline, 2 s retry) is under 20 s', async () => {
    const a = candidate(kc, 'defaults', 'a', {});
    start(a);
    await eventually('a leads', () => a.elector.isLeader, 10_000);
    const b = candidate(kc, 'defaults', 'b', {});
    start(b);
    await eventually('b sees a leading', () => b.elector.leader === 'a');
    const seen = await renewedAt('defaults');
    await eventually('a renews while b follows', async () => (await renewedAt('defaults')) > seen, 10_000);
    assert.equal(b.elector.isLeader, false);
    const t0 = Date.now();
    a.elector.abandon(); // as SIGKILL: no release
    await eventually('b leads', () => b.elector.isLeader, 25_000);
    const ms = Date.now() - t0;
    console.log(`# failover at default durations: ${ms} ms`);
    assert.ok(ms < 20_000, `failover took ${ms} ms`);
    await b.elector.stop();
  });
});
