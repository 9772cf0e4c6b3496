import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { KubernetesObject, V1Deployment, V1Pod, V1RoleBinding } from '@kubernetes/client-node';
import { daemonServes, DaemonMessage, DaemonReason, PolicyDaemonReconciler, type PolicyDaemonObject } from '../../../src/reconcilers/policy-daemon.ts';
import { objectName, POLICY_DAEMON_LABEL } from '../../../src/reconcilers/policy-daemon-objects.ts';
import type { PolicyDaemonWriter } from '../../../src/reconcilers/policy-daemon-writer.ts';
import type { BackendObject } from '../../../src/reconcilers/types.ts';
import { lister, Recorder, type RecordedEvent } from './fakes.ts';

const backend = { apiVersion: 'mailwarden.io/v1alpha1', kind: 'MailBackend', metadata: { namespace: 'mail', name: 'pg' }, spec: { url: 'postgres://vmail@127.0.0.1:5432/vmail' } } as BackendObject;
const SIDECAR = { backendRef: { name: 'pg' }, mode: 'Sidecar', podSelector: { matchLabels: { app: 'postfix' } } };
const SERVICE = { backendRef: { name: 'pg' }, mode: 'Service', replicas: 2, podSelector: { matchLabels: { app: 'postfix' } } };
const { podSelector: _, ...SERVICE_FOR_NOBODY } = SERVICE;

function daemon(spec: Record<string, unknown>, extra: { deleting?: boolean; status?: Record<string, unknown> } = {}): PolicyDaemonObject {
  return {
    apiVersion: 'mailwarden.io/v1alpha1',
    kind: 'PolicyDaemon',
    metadata: { namespace: 'mail', name: 'policyd', uid: 'u1', generation: 4, ...(extra.deleting ? { deletionTimestamp: '2026-12-04T14:59:00Z' } : {}) },
    spec,
    status: extra.status,
  } as PolicyDaemonObject;
}

function pod(name: string, phase = 'Running'): V1Pod {
  return { metadata: { namespace: 'mail', name, labels: { [POLICY_DAEMON_LABEL]: 'policyd' } }, status: { phase } };
}

const deployment = (readyReplicas: number): V1Deployment => ({ metadata: { namespace: 'mail', name: objectName('policyd'), labels: { [POLICY_DAEMON_LABEL]: 'policyd' } }, status: { readyReplicas } });

interface Case {
  readonly name: string;
  readonly daemons: PolicyDaemonObject[];
  readonly backends?: BackendObject[];
  readonly pods?: V1Pod[];
  readonly deployments?: V1Deployment[];
  readonly expect: {
    readonly ready?: { status: 'True' | 'False'; reason: string; message?: string };
    readonly fields?: { injectedPods: number | null; readyReplicas: number | null; configHash: 'set' | null };
    readonly applied?: string[];
    readonly removed?: string[];
    readonly events?: Pick<RecordedEvent, 'type' | 'reason'>[];
    readonly debug?: RegExp;
  };
}

const cases: Case[] = [
  { name: 'a PolicyDaemon gone: nothing (its objects are garbage-collected)', daemons: [], expect: { applied: [], debug: /gone or going/ } },
  { name: 'a PolicyDaemon being deleted: nothing', daemons: [daemon(SIDECAR, { deleting: true })], expect: { applied: [], debug: /gone or going/ } },
  {
    name: 'an invalid spec: InvalidSpec, nothing applied, counts cleared',
    daemons: [daemon({ backendRef: { name: 'pg' }, mode: 'Sidecar' })],
    expect: { ready: { status: 'False', reason: DaemonReason.InvalidSpec }, fields: { injectedPods: null, readyReplicas: null, configHash: null }, applied: [], events: [{ type: 'Warning', reason: 'InvalidSpec' }], debug: /not converged/ },
  },
  {
    name: 'the MailBackend does not exist: BackendNotFound',
    daemons: [daemon(SIDECAR)],
    backends: [],
    expect: { ready: { status: 'False', reason: DaemonReason.BackendNotFound, message: DaemonMessage.backendNotFound('pg', 'mail') }, applied: [], debug: /not converged/ },
  },
  {
    name: 'Sidecar mode: the ConfigMap applied, the running injected pods counted',
    daemons: [daemon(SIDECAR)],
    pods: [pod('a'), pod('b'), pod('done', 'Succeeded')],
    expect: { ready: { status: 'True', reason: DaemonReason.Injecting, message: DaemonMessage.injecting(2) }, fields: { injectedPods: 2, readyReplicas: null, configHash: 'set' }, applied: ['ConfigMap'], events: [{ type: 'Normal', reason: 'Injecting' }] },
  },
  {
    name: 'store Kubernetes (no backendRef): its read-only identity applied before the ConfigMap',
    daemons: [daemon({ store: 'Kubernetes', mode: 'Sidecar', podSelector: { matchLabels: { app: 'postfix' } } })],
    backends: [],
    expect: { ready: { status: 'True', reason: DaemonReason.Injecting }, applied: ['Role', 'RoleBinding', 'ConfigMap'] },
  },
  {
    name: 'switched from Service to Sidecar mode: the Deployment, Service and PDB removed',
    daemons: [daemon(SIDECAR)],
    deployments: [deployment(2)],
    expect: { ready: { status: 'True', reason: DaemonReason.Injecting }, applied: ['ConfigMap'], removed: ['Deployment', 'Service', 'PodDisruptionBudget', 'NetworkPolicy'] },
  },
  {
    name: 'Service mode with ready replicas: Available, everything applied',
    daemons: [daemon(SERVICE)],
    deployments: [deployment(2)],
    expect: { ready: { status: 'True', reason: DaemonReason.Available }, fields: { injectedPods: null, readyReplicas: 2, configHash: 'set' }, applied: ['ConfigMap', 'NetworkPolicy', 'Deployment', 'Service', 'PodDisruptionBudget'] },
  },
  {
    name: 'Service mode with no replica ready yet: Progressing',
    daemons: [daemon(SERVICE)],
    expect: { ready: { status: 'False', reason: DaemonReason.Progressing, message: DaemonMessage.progressing(objectName('policyd')) }, fields: { injectedPods: null, readyReplicas: 0, configHash: 'set' }, events: [{ type: 'Warning', reason: 'Progressing' }] },
  },
  {
    name: 'Service mode without podSelector: everything applied, but not Ready (its NetworkPolicy admits no client)',
    daemons: [daemon(SERVICE_FOR_NOBODY)],
    deployments: [deployment(2)],
    expect: {
      ready: { status: 'False', reason: DaemonReason.NoClientsAdmitted, message: DaemonMessage.noClientsAdmitted(objectName('policyd'), 7777, 2, 2) },
      fields: { injectedPods: null, readyReplicas: 2, configHash: 'set' },
      applied: ['ConfigMap', 'NetworkPolicy', 'Deployment', 'Service', 'PodDisruptionBudget'],
      events: [{ type: 'Warning', reason: 'NoClientsAdmitted' }],
    },
  },
];

describe('daemonServes: whether a PolicyDaemon decides mail now (what restrictions without backendRef report as Served)', () => {
  const daemon = (mode: 'Sidecar' | 'Service', status: PolicyDaemonObject['status']) => ({ metadata: { name: 'mx', namespace: 'mail' }, spec: { store: 'Kubernetes', mode }, status }) as unknown as PolicyDaemonObject;
  const admitted = { type: 'Ready', status: 'False' as const, reason: DaemonReason.Progressing, message: '', lastTransitionTime: '2026-12-05T00:00:00Z' };
  const nobody = { ...admitted, reason: DaemonReason.NoClientsAdmitted };

  test('a sidecar daemon serves once one of its sidecars is ready', () => {
    assert.equal(daemonServes(daemon('Sidecar', { readySidecars: 1 })), true);
    assert.equal(daemonServes(daemon('Sidecar', { readySidecars: 0, injectedPods: 3 })), false);
    assert.equal(daemonServes(daemon('Sidecar', undefined)), false);
  });

  test('a Service-mode daemon serves once a replica is ready and its NetworkPolicy admits Postfix pods', () => {
    assert.equal(daemonServes(daemon('Service', { readyReplicas: 2, conditions: [admitted] })), true);
    assert.equal(daemonServes(daemon('Service', { readyReplicas: 0, conditions: [admitted] })), false);
  });

  test('a Service-mode daemon that admits no pod (NoClientsAdmitted) serves nobody, however many replicas are ready', () => {
    assert.equal(daemonServes(daemon('Service', { readyReplicas: 2, conditions: [nobody] })), false);
  });
});

describe('PolicyDaemonReconciler', () => {
  for (const c of cases) {
    test(c.name, async () => {
      const recorder = new Recorder();
      const applied: string[] = [];
      const removed: string[] = [];
      const writer: PolicyDaemonWriter = {
        apply: async (o: KubernetesObject) => void applied.push(o.kind!),
        remove: async (o) => void removed.push(o.kind),
        removeOwned: async () => undefined,
      };
      const reconciler = new PolicyDaemonReconciler({
        daemons: lister(...c.daemons),
        backends: lister(...(c.backends ?? [backend])),
        pods: lister(...(c.pods ?? [])),
        deployments: lister(...(c.deployments ?? [])),
        writer,
        status: recorder.statusWriter('PolicyDaemon'),
        logger: recorder.logger,
        image: 'ghcr.io/mailwarden/mailwarden:test',
      });
      await reconciler.reconcile('mail/policyd');
      const e = c.expect;
      if (e.ready === undefined) assert.equal(recorder.onlyPatch(), undefined);
      else {
        assert.equal(recorder.ready()?.status, e.ready.status);
        assert.equal(recorder.ready()?.reason, e.ready.reason);
        if (e.ready.message !== undefined) assert.equal(recorder.ready()?.message, e.ready.message);
      }
      if (e.fields !== undefined) {
        const status = recorder.onlyPatch()!;
        assert.equal(status.injectedPods, e.fields.injectedPods);
        assert.equal(status.readyReplicas, e.fields.readyReplicas);
        if (e.fields.configHash === null) assert.equal(status.configHash, null);
        else assert.match(String(status.configHash), /^[0-9a-f]{8,}$/);
      }
      if (e.applied !== undefined) assert.deepEqual(applied, e.applied);
      assert.deepEqual(removed, e.removed ?? []);
      if (e.events !== undefined) assert.deepEqual(recorder.events.map(({ type, reason }) => ({ type, reason })), e.events);
      if (e.debug !== undefined) assert.ok(recorder.debugLines().some((l) => e.debug!.test(l)), recorder.debugLines().join(' | '));
      for (const event of recorder.events) assert.equal(event.kind, 'PolicyDaemon');
    });
  }
});

describe('PolicyDaemonReconciler, store Kubernetes: the identity the daemon reads as', () => {
  const KUBE_SIDECAR = { store: 'Kubernetes', mode: 'Sidecar', podSelector: { matchLabels: { app: 'postfix' } } };
  const injected = (name: string, serviceAccountName: string, legacy = false): V1Pod => ({
    metadata: { namespace: 'mail', name, labels: { [POLICY_DAEMON_LABEL]: 'policyd' } },
    spec: { containers: [], serviceAccountName, ...(legacy ? { volumes: [{ name: 'kube', secret: { secretName: 'policyd-policyd-token' } }] } : {}) },
    status: { phase: 'Running' },
  });
  const other: V1Pod = { metadata: { namespace: 'mail', name: 'x', labels: { [POLICY_DAEMON_LABEL]: 'another' } }, spec: { containers: [], serviceAccountName: 'intruder' }, status: { phase: 'Running' } };

  async function reconcile(spec: Record<string, unknown>, pods: V1Pod[], times = 1) {
    const recorder = new Recorder();
    const applied: KubernetesObject[] = [];
    const removedOwned: { name: string; owner: string }[] = [];
    const writer: PolicyDaemonWriter = {
      apply: async (o) => void applied.push(o),
      remove: async () => undefined,
      removeOwned: async (o, owner) => void removedOwned.push({ name: `${o.kind}/${o.metadata.name}`, owner }),
    };
    const reconciler = new PolicyDaemonReconciler({
      daemons: lister(daemon(spec)),
      backends: lister(),
      pods: lister(...pods),
      deployments: lister(),
      writer,
      status: recorder.statusWriter('PolicyDaemon'),
      logger: recorder.logger,
      image: 'ghcr.io/mailwarden/mailwarden:test',
    });
    for (let i = 0; i < times; i++) await reconciler.reconcile('mail/policyd');
    const binding = applied.find((o) => o.kind === 'RoleBinding') as V1RoleBinding | undefined;
    return { applied, removedOwned, subjects: binding?.subjects?.map((s) => s.name) };
  }

  test("Sidecar mode: bound to the ServiceAccounts of its injected pods, not another daemon's", async () => {
    const { subjects, applied } = await reconcile(KUBE_SIDECAR, [injected('a', 'postfix'), injected('b', 'postfix'), other]);
    assert.deepEqual(subjects, ['postfix']);
    assert.ok(!applied.some((o) => o.kind === 'Secret' || o.kind === 'ServiceAccount'));
  });

  test('Service mode: its own ServiceAccount applied and bound before the Deployment that runs as it', async () => {
    const { subjects, applied } = await reconcile({ store: 'Kubernetes', mode: 'Service' }, []);
    assert.deepEqual(subjects, ['policyd-policyd-reader']);
    const kinds = applied.map((o) => o.kind);
    assert.ok(kinds.indexOf('RoleBinding') < kinds.indexOf('Deployment'), kinds.join(','));
    assert.equal(kinds.filter((k) => k === 'ServiceAccount').length, 1);
  });

  test('the legacy ServiceAccount (and so its token Secret) removed once no pod mounts that Secret, once per process', async () => {
    const kept = await reconcile(KUBE_SIDECAR, [injected('old', 'postfix', true), injected('new', 'postfix')]);
    assert.deepEqual(kept.subjects, ['policyd-policyd', 'postfix']);
    assert.deepEqual(kept.removedOwned, []);
    const gone = await reconcile(KUBE_SIDECAR, [injected('new', 'postfix')], 3);
    assert.deepEqual(gone.subjects, ['postfix']);
    assert.deepEqual(gone.removedOwned, [{ name: 'ServiceAccount/policyd-policyd', owner: 'u1' }]);
  });
});
