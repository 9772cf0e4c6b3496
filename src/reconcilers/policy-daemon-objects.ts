import { createHash } from 'node:crypto';
import type { V1Container, V1Deployment, V1NetworkPolicy, V1OwnerReference, V1Pod, V1PodDisruptionBudget, V1Role, V1RoleBinding, V1Service, V1ServiceAccount, V1Volume, V1ConfigMap } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { storeSettingsOf, type MailBackendSpec } from '../api/mail-backend.ts';
import { API_GROUP, API_VERSION } from '../api/mail-user-restriction.ts';
import { POLICY_DAEMON_KIND, quantityValue, type PolicyDaemonSpec } from '../api/policy-daemon.ts';

/**
 * What a PolicyDaemon becomes in Kubernetes objects, as plain data: the daemon's config file
 * (a ConfigMap), its container (shared by the sidecar injection and the Deployment), and for
 * Service mode the Deployment, Service and PodDisruptionBudget. No I/O here.
 */

/** Pods opt in with this label; the webhook's objectSelector admits only them. */
export const INJECT_LABEL = 'mailwarden.io/inject';
/** On injected pods and Service-mode objects: the PolicyDaemon's name (status counts by it). */
export const POLICY_DAEMON_LABEL = 'mailwarden.io/policy-daemon';
/** The injection marker: a pod carrying it is never injected again. */
export const INJECTED_ANNOTATION = 'mailwarden.io/injected';
/** Service mode's pod template: a change of configuration rolls the Deployment. */
export const CONFIG_HASH_ANNOTATION = 'mailwarden.io/config-hash';
export const CONTAINER_NAME = 'mailwarden-policyd';

/**
 * The image's entrypoint, spelled out so a custom image with another entrypoint still runs the
 * daemon. Its V8 settings are the daemon's own business (src/policy/runtime-flags.ts), applied at
 * startup however it is launched; only the heap sizes must be given before it starts (see
 * {@link nodeHeapOptions}).
 */
export const DAEMON_COMMAND = ['node', '/app/bin/mailwarden.js'];
export const FIELD_MANAGER = 'mailwarden-operator';

const CONFIG_DIR = '/etc/mailwarden/policyd';
const SECRET_DIR = '/etc/mailwarden/store-credentials';
const CONFIG_FILE = 'policyd.yaml';
const CONFIG_VOLUME = 'mailwarden-policyd-config';
const SECRET_VOLUME = 'mailwarden-policyd-credentials';
const CA_DIR = '/etc/mailwarden/store-ca';
const CA_FILE = 'ca.crt';
const CA_VOLUME = 'mailwarden-policyd-store-ca';
const KUBE_DIR = '/etc/mailwarden/kube';
const KUBE_VOLUME = 'mailwarden-policyd-kube';
/**
 * The lifetime asked for the daemon's projected token. The kubelet replaces the file at 80 % of
 * it and the daemon reads the file at every request (src/kube/api-credentials.ts). Not 3607 s,
 * the kube-api-access volume's figure, which API servers extend to a year for old clients.
 */
export const TOKEN_EXPIRATION_SECONDS = 3600;
/** The image's user (see Dockerfile): non-root, and the same uid whatever the pod says. */
const RUN_AS = 65532;

export const DEFAULT_RESOURCES = { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } } as const;

const MIB = 1024 * 1024;

/**
 * V8 heap sizes for a daemon container with memory limit `limit`, as NODE_OPTIONS. Node sizes its
 * heap from the whole cgroup limit, so V8 would let garbage grow until the kernel kills the
 * container; and where no cgroup limit is visible it sizes the young generation from the node's
 * memory. Half the limit for the old generation leaves room for the young one, code and socket
 * buffers, and still holds a full mailbox cache (the figures: docs/performance.md).
 */
export function nodeHeapOptions(limit: string | undefined): string | undefined {
  const sizes = heapSizesMiB(limit);
  return sizes === undefined ? undefined : `--max-old-space-size=${sizes.oldSpace} --max-semi-space-size=${sizes.semiSpace}`;
}

function heapSizesMiB(limit: string | undefined): { oldSpace: number; semiSpace: number } | undefined {
  const bytes = limit === undefined ? undefined : quantityValue(limit);
  if (bytes === undefined || !(bytes >= 64 * MIB)) return undefined; // no usable limit: Node's own sizing
  const mib = bytes / MIB;
  return { oldSpace: Math.floor(mib / 2), semiSpace: Math.min(16, Math.max(1, Math.floor(mib / 32))) };
}

/**
 * The daemon container's command, for memory limit `limit`. A daemon of the Kubernetes store (no
 * `backend`) gets --expose-gc, with which the store collects a full list's garbage once it has
 * been listed (stores/heap.ts), and its young generation held at the size nodeHeapOptions allows
 * (--min-semi-space-size): that collection leaves it at its smallest, where the request stream
 * keeps it, and it then scavenged about twice as often as a manifests daemon's (docs/performance.md,
 * cause 5). On the command line: Node.js refuses both in NODE_OPTIONS (--expose-gc before 22.3).
 */
export function daemonCommand(backend: MailBackendSpec | undefined, limit: string | undefined = DEFAULT_RESOURCES.limits.memory): string[] {
  if (backend !== undefined) return DAEMON_COMMAND;
  const sizes = heapSizesMiB(limit);
  return [DAEMON_COMMAND[0]!, '--expose-gc', ...(sizes === undefined ? [] : [`--min-semi-space-size=${sizes.semiSpace}`]), ...DAEMON_COMMAND.slice(1)];
}

export interface PolicyDaemonRef {
  readonly name: string;
  readonly namespace: string;
  readonly uid?: string;
  readonly spec: PolicyDaemonSpec;
}

/** Names of the objects a PolicyDaemon owns: one prefix, so `kubectl get all` groups them. */
export function objectName(daemonName: string): string {
  return `${daemonName}-policyd`;
}

/**
 * A daemon reads either the store of a MailBackend (`backend`: its validated spec) or, with
 * `spec.store: Kubernetes` (`backend` undefined), the MailUserRestriction resources of its
 * namespace, with a read-only identity (see {@link daemonIdentityObjects}).
 */

/**
 * The daemon's config file. The sidecar listens for Postfix on 127.0.0.1 only (the pod shares
 * one network namespace); Service mode must listen on the pod IP. The HTTP port (probes,
 * metrics; no decision data) listens on all addresses in both modes, because the kubelet's
 * httpGet probes connect to the pod IP.
 */
export function policydConfigYaml(daemon: PolicyDaemonRef, backend: MailBackendSpec | undefined): string {
  const spec = daemon.spec;
  const p = spec.policy;
  const config: Record<string, unknown> = {
    listen: `${spec.mode === 'Sidecar' ? '127.0.0.1' : '0.0.0.0'}:${spec.port}`,
    ...(backend === undefined
      ? { store: 'kubernetes://', storeSettings: { namespaces: [daemon.namespace], credentialsDir: KUBE_DIR } }
      : { store: backend.url, storeSettings: daemonStoreSettings(backend) }),
    ...(backend?.credentialsSecretRef ? { passwordFile: `${SECRET_DIR}/password` } : {}),
    semantics: p.semantics,
    allowAction: p.allowAction,
    rejectAction: p.rejectAction,
    failureAction: p.failureAction,
    recipientDelimiter: p.recipientDelimiter,
    nullSenderExemption: p.nullSenderExemption,
    subdomainMatching: p.subdomainMatching,
    identityFromSasl: p.identityFromSasl,
    bypassOutgoing: p.bypassOutgoing,
    discardInsteadOfReject: p.discardInsteadOfReject,
    ...(p.cacheTTL ? { cache: { ttl: p.cacheTTL } } : {}),
    lookupTimeout: p.lookupTimeout,
    http: { listen: `0.0.0.0:${spec.httpPort}` },
    logLevel: p.logLevel,
  };
  for (const key of Object.keys(config)) if (config[key] === undefined) delete config[key];
  return `# Written by the mailwarden operator from PolicyDaemon ${daemon.namespace}/${daemon.name}; edits are overwritten.\n${stringify(config)}`;
}

/** The backend's store settings, with tls.caFile where the caSecretRef's Secret is mounted. */
function daemonStoreSettings(backend: MailBackendSpec): unknown {
  const settings = storeSettingsOf(backend) as { tls?: object };
  if (backend.caSecretRef === undefined) return settings;
  return { ...settings, tls: { ...settings.tls, caFile: `${CA_DIR}/${CA_FILE}` } };
}

/** Short, stable hash of what the daemon is configured with (config file and the Secrets' locations). */
export function configHash(configYaml: string, backend: MailBackendSpec | undefined): string {
  const ref = backend?.credentialsSecretRef;
  const ca = backend?.caSecretRef;
  return createHash('sha256')
    .update(configYaml)
    .update('\0')
    .update(ref ? `${ref.name}/${ref.key}` : '')
    .update('\0')
    .update(ca ? `${ca.name}/${ca.key}` : '')
    .digest('hex')
    .slice(0, 16);
}

export function ownerReference(daemon: PolicyDaemonRef): V1OwnerReference {
  return { apiVersion: API_VERSION, kind: POLICY_DAEMON_KIND, name: daemon.name, uid: daemon.uid ?? '', controller: true, blockOwnerDeletion: true };
}

function labels(daemon: PolicyDaemonRef): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'mailwarden-policyd',
    'app.kubernetes.io/instance': daemon.name,
    'app.kubernetes.io/managed-by': 'mailwarden',
    [POLICY_DAEMON_LABEL]: daemon.name,
  };
}

function selectorLabels(daemon: PolicyDaemonRef): Record<string, string> {
  return { 'app.kubernetes.io/name': 'mailwarden-policyd', 'app.kubernetes.io/instance': daemon.name };
}

export function configMapFor(daemon: PolicyDaemonRef, configYaml: string): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: objectName(daemon.name), namespace: daemon.namespace, labels: labels(daemon), ownerReferences: [ownerReference(daemon)] },
    data: { [CONFIG_FILE]: configYaml },
  };
}

/**
 * The config and credentials as directory mounts — never subPath, which the kubelet does not
 * update — so the daemon sees a change through the `..data` symlink swap and reloads live.
 * Every one is `optional`: the kubelet sets a pod's volumes up before starting any of its
 * containers, so a missing Secret or ConfigMap would hold Postfix back too. Missing, the
 * daemon finds no file and exits, and Postfix answers with its default_action.
 */
export function daemonVolumes(daemon: PolicyDaemonRef, backend: MailBackendSpec | undefined): V1Volume[] {
  const volumes: V1Volume[] = [{ name: CONFIG_VOLUME, configMap: { name: objectName(daemon.name), optional: true } }];
  if (backend === undefined) {
    volumes.push(apiAccessVolume());
    return volumes;
  }
  const ref = backend.credentialsSecretRef;
  // The MailBackend's own Secret, mounted as is: no copy of the password, and a rotation there
  // reaches the daemon. 0444: the daemon's uid is not the file's owner, and no fsGroup is set
  // on a Postfix pod on its behalf.
  if (ref) volumes.push({ name: SECRET_VOLUME, secret: { secretName: ref.name, items: [{ key: ref.key, path: 'password' }], defaultMode: 0o444, optional: true } });
  const ca = backend.caSecretRef;
  if (ca) volumes.push({ name: CA_VOLUME, secret: { secretName: ca.name, items: [{ key: ca.key, path: CA_FILE }], defaultMode: 0o444, optional: true } });
  return volumes;
}

/**
 * The daemon container: beside Postfix in an injected pod (an ordinary container, so nothing
 * about the daemon can hold Postfix back), or alone in Service mode's Deployment.
 */
export function daemonContainer(daemon: PolicyDaemonRef, backend: MailBackendSpec | undefined, image: string): V1Container {
  const spec = daemon.spec;
  const http = { path: '/healthz', port: spec.httpPort, scheme: 'HTTP' };
  const limits = { ...DEFAULT_RESOURCES.limits, ...spec.resources?.limits };
  const heap = nodeHeapOptions(limits.memory);
  const container: V1Container = {
    name: CONTAINER_NAME,
    image: spec.image ?? image,
    ...(spec.imagePullPolicy ? { imagePullPolicy: spec.imagePullPolicy } : {}),
    command: daemonCommand(backend, limits.memory),
    args: ['policyd', '-c', `${CONFIG_DIR}/${CONFIG_FILE}`],
    ports: [
      ...(spec.mode === 'Service' ? [{ name: 'mw-policy', containerPort: spec.port, protocol: 'TCP' }] : []),
      { name: 'mw-policyd-http', containerPort: spec.httpPort, protocol: 'TCP' },
    ],
    ...(heap === undefined ? {} : { env: [{ name: 'NODE_OPTIONS', value: heap }] }),
    resources: { requests: { ...DEFAULT_RESOURCES.requests, ...spec.resources?.requests }, limits },
    securityContext: {
      runAsNonRoot: true,
      runAsUser: RUN_AS,
      runAsGroup: RUN_AS,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    // Started = listening, not the store's reachability: a store outage the daemon answers with
    // the failure action, and restarting the daemon would not bring the store back. Two minutes:
    // on a busy node Node.js took over 30 s to listen, and a kill then only starts it over.
    startupProbe: { httpGet: http, periodSeconds: 1, failureThreshold: 120, timeoutSeconds: 2 },
    livenessProbe: { httpGet: http, periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 2 },
    // Service mode: only replicas that reach the store get sessions. A sidecar of a SQL or LDAP
    // store has no readiness probe: its readiness is the Postfix pod's, and a store outage would
    // take every Postfix pod out of its Services at once, when Postfix could still answer with
    // the failure action. With store Kubernetes it is ready once it has listed the restrictions
    // and stays so through an API server outage: the probe holds back only that first list, and
    // tells the operator (readySidecars) that the daemon serves its restrictions.
    ...(spec.mode === 'Service' || backend === undefined ? { readinessProbe: { httpGet: { ...http, path: '/readyz' }, periodSeconds: 5, failureThreshold: 3, timeoutSeconds: 2 } } : {}),
    volumeMounts: [
      { name: CONFIG_VOLUME, mountPath: CONFIG_DIR, readOnly: true },
      ...(backend?.credentialsSecretRef ? [{ name: SECRET_VOLUME, mountPath: SECRET_DIR, readOnly: true }] : []),
      ...(backend?.caSecretRef ? [{ name: CA_VOLUME, mountPath: CA_DIR, readOnly: true }] : []),
      ...(backend === undefined ? [{ name: KUBE_VOLUME, mountPath: KUBE_DIR, readOnly: true }] : []),
    ],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  return container;
}

export function deploymentFor(daemon: PolicyDaemonRef, backend: MailBackendSpec | undefined, image: string, hash: string, imagePullSecrets: readonly string[] = []): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: objectName(daemon.name), namespace: daemon.namespace, labels: labels(daemon), ownerReferences: [ownerReference(daemon)] },
    spec: {
      replicas: daemon.spec.replicas,
      selector: { matchLabels: selectorLabels(daemon) },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: labels(daemon), annotations: { [CONFIG_HASH_ANNOTATION]: hash } },
        spec: {
          // store Kubernetes: the daemon's own read-only ServiceAccount, its token projected
          // (apiAccessVolume); otherwise the namespace's default one. Never an automounted token.
          ...(backend === undefined ? { serviceAccountName: serviceAccountName(daemon.name) } : {}),
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: { runAsNonRoot: true, runAsUser: RUN_AS, runAsGroup: RUN_AS, seccompProfile: { type: 'RuntimeDefault' } },
          ...(imagePullSecrets.length > 0 ? { imagePullSecrets: imagePullSecrets.map((name) => ({ name })) } : {}),
          containers: [daemonContainer(daemon, backend, image)],
          volumes: daemonVolumes(daemon, backend),
          // Spread replicas so one node's loss does not take the policy service away.
          topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selectorLabels(daemon) } }],
        },
      },
    },
  };
}

export function serviceFor(daemon: PolicyDaemonRef): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: objectName(daemon.name), namespace: daemon.namespace, labels: labels(daemon), ownerReferences: [ownerReference(daemon)] },
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels(daemon),
      ports: [{ name: 'policy', port: daemon.spec.port, targetPort: 'mw-policy', protocol: 'TCP' }],
    },
  };
}

/**
 * Service mode listens on the pod IP: without a policy any pod in the cluster could open
 * connections to it (and hold its connection slots). This admits to the policy port only the
 * Postfix pods `podSelector` names, and without one no pod at all: a Service-mode daemon has no
 * other way to know its clients (no webhook labels them), and "every pod of the namespace" would
 * let any workload there fill its slots. To the HTTP port (probes, metrics) only the namespaces the
 * chart lists; the kubelet's probes come from the node, which network policies always admit.
 * (`_from` is the client's name for `from`.)
 */
export function networkPolicyFor(daemon: PolicyDaemonRef, metricsNamespaces: readonly string[] = []): V1NetworkPolicy {
  const clients = daemon.spec.podSelector;
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: objectName(daemon.name), namespace: daemon.namespace, labels: labels(daemon), ownerReferences: [ownerReference(daemon)] },
    spec: {
      podSelector: { matchLabels: selectorLabels(daemon) },
      policyTypes: ['Ingress'],
      ingress: [
        // No rule rather than a rule without `from`, which would admit every source.
        ...(clients === undefined ? [] : [{ _from: [{ podSelector: { ...clients } }], ports: [{ protocol: 'TCP', port: daemon.spec.port }] }]),
        ...(metricsNamespaces.length === 0
          ? []
          : [
              {
                _from: metricsNamespaces.map((namespace) => ({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } } })),
                ports: [{ protocol: 'TCP', port: daemon.spec.httpPort }],
              },
            ]),
      ],
    },
  };
}

export function podDisruptionBudgetFor(daemon: PolicyDaemonRef): V1PodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: objectName(daemon.name), namespace: daemon.namespace, labels: labels(daemon), ownerReferences: [ownerReference(daemon)] },
    // maxUnavailable, not minAvailable: a single replica must not block node drains for ever.
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels(daemon) } },
  };
}

/**
 * store Kubernetes, Service mode: the daemon's own ServiceAccount, which its Deployment runs as.
 * Not `objectName`: that name was the ServiceAccount of a legacy token Secret (see
 * {@link legacyServiceAccountName}), whose removal must not take a running pod's identity along.
 */
export function serviceAccountName(daemonName: string): string {
  return `${objectName(daemonName)}-reader`;
}

/**
 * Before projected tokens, the daemon read with a token Secret (type
 * kubernetes.io/service-account-token, named {@link legacyTokenSecretName}) of a ServiceAccount
 * named like its other objects. Deleting that ServiceAccount makes Kubernetes' token controller
 * delete the Secret: the operator itself holds no write verb on Secrets.
 */
export function legacyServiceAccountName(daemonName: string): string {
  return objectName(daemonName);
}

export function legacyTokenSecretName(daemonName: string): string {
  return `${objectName(daemonName)}-token`;
}

/** Whether one of `pods` still mounts the legacy token Secret (an injected pod or a replica from before the upgrade). */
export function mountsLegacyToken(pods: readonly V1Pod[], daemonName: string): boolean {
  const secret = legacyTokenSecretName(daemonName);
  return pods.some((pod) => (pod.spec?.volumes ?? []).some((volume) => volume.secret?.secretName === secret));
}

/**
 * The projected volume the daemon reads the API server with (store Kubernetes): the token of the
 * pod's ServiceAccount — short-lived, bound to the pod and to the API server's audience, renewed
 * by the kubelet, never stored in a Secret — the cluster's CA, and the namespace; the same three
 * files as the kubelet's kube-api-access volume, mounted only into the daemon's container.
 * The CA is optional like every daemon volume: missing, the daemon exits and Postfix still runs.
 */
export function apiAccessVolume(): V1Volume {
  return {
    name: KUBE_VOLUME,
    projected: {
      defaultMode: 0o444,
      sources: [
        { serviceAccountToken: { path: 'token', expirationSeconds: TOKEN_EXPIRATION_SECONDS } },
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }], optional: true } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
      ],
    },
  };
}

/**
 * The ServiceAccounts a daemon reads as (store Kubernetes). In Service mode, its own. In Sidecar
 * mode, the ServiceAccount of each pod it was injected into (`pods`: those labelled with its
 * name): a pod can project only its own ServiceAccount's token, so the sidecar reads as the
 * Postfix pod's identity, as Istio's and Linkerd's proxies do. The legacy ServiceAccount stays
 * while a pod from before the upgrade still reads with its Secret.
 */
export function daemonReaders(daemon: PolicyDaemonRef, pods: readonly V1Pod[]): string[] {
  const readers = new Set<string>();
  if (daemon.spec.mode === 'Service') readers.add(serviceAccountName(daemon.name));
  else {
    for (const pod of pods) {
      const phase = pod.status?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') continue;
      readers.add(pod.spec?.serviceAccountName || 'default');
    }
  }
  if (mountsLegacyToken(pods, daemon.name)) readers.add(legacyServiceAccountName(daemon.name));
  return [...readers].sort();
}

/**
 * store Kubernetes: a Role that can get, list and watch the MailUserRestrictions of the daemon's
 * namespace and nothing else, bound to the `readers` ({@link daemonReaders}); in Service mode
 * also the daemon's own ServiceAccount, without an automounted token. No Secret: each token is
 * projected into the daemon's container by the kubelet ({@link apiAccessVolume}).
 */
export function daemonIdentityObjects(daemon: PolicyDaemonRef, readers: readonly string[]): (V1ServiceAccount | V1Role | V1RoleBinding)[] {
  const name = objectName(daemon.name);
  const metadata = (named = name) => ({ name: named, namespace: daemon.namespace, labels: labels(daemon), ownerReferences: [ownerReference(daemon)] });
  const account: V1ServiceAccount[] = daemon.spec.mode === 'Service' ? [{ apiVersion: 'v1', kind: 'ServiceAccount', metadata: metadata(serviceAccountName(daemon.name)), automountServiceAccountToken: false }] : [];
  return [
    ...account,
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: metadata(),
      rules: [{ apiGroups: [API_GROUP], resources: ['mailuserrestrictions'], verbs: ['get', 'list', 'watch'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: metadata(),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: readers.map((reader) => ({ kind: 'ServiceAccount', name: reader, namespace: daemon.namespace })),
    },
  ];
}
