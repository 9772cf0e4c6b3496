// Smoke test for the real control plane harness (etcd + kube-apiserver + kube-controller-manager).
// Run: source .ci/controlplane.sh && node --test test/integration/controlplane.test.ts
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  ApiException,
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  RbacAuthorizationV1Api,
  VersionApi,
  type V1CustomResourceDefinition,
} from "@kubernetes/client-node";
import { startControlPlane, type ControlPlane } from "../harness/controlplane.ts";
import { eventually } from "../helpers/eventually.ts";

const GROUP = "smoke.mailwarden.io";
const VERSION = "v1alpha1";
const PLURAL = "widgets";

const crd: V1CustomResourceDefinition = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: `${PLURAL}.${GROUP}` },
  spec: {
    group: GROUP,
    scope: "Namespaced",
    names: { plural: PLURAL, singular: "widget", kind: "Widget", listKind: "WidgetList" },
    versions: [{
      name: VERSION,
      served: true,
      storage: true,
      schema: {
        openAPIV3Schema: {
          type: "object",
          properties: {
            spec: { type: "object", required: ["size"], properties: { size: { type: "integer", minimum: 1 } } },
          },
        },
      },
    }],
  },
};

function widget(name: string, size = 1): Record<string, unknown> {
  return { apiVersion: `${GROUP}/${VERSION}`, kind: "Widget", metadata: { name }, spec: { size } };
}

/** HTTP status of a client call: 2xx on success, the ApiException's code otherwise. */
async function status(call: () => Promise<{ httpStatusCode: number }>): Promise<number> {
  try {
    return (await call()).httpStatusCode;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
}


const getWidget = (kc: KubeConfig, namespace: string, name: string) => () =>
  kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObjectWithHttpInfo({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name });
const listWidgets = (kc: KubeConfig, namespace: string) => () =>
  kc.makeApiClient(CustomObjectsApi).listNamespacedCustomObjectWithHttpInfo({ group: GROUP, version: VERSION, namespace, plural: PLURAL });
const createWidget = (kc: KubeConfig, namespace: string, name: string) => () =>
  kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObjectWithHttpInfo({ group: GROUP, version: VERSION, namespace, plural: PLURAL, body: widget(name) });

describe("real control plane (etcd + kube-apiserver)", () => {
  let cp: ControlPlane;
  let admin: KubeConfig;
  const ns = "smoke";

  before(async () => {
    cp = await startControlPlane();
    admin = cp.kubeConfig();
    console.log(`# control plane ready in ${cp.startupMs} ms at ${cp.server}`);
  });
  after(async () => {
    await cp?.stop();
  });

  test("serves a version stamped 1.34", async () => {
    const core = admin.makeApiClient(CoreV1Api);
    const nsList = await core.listNamespace();
    assert.ok(nsList.items.some((n) => n.metadata?.name === "default"));
    const v = await admin.makeApiClient(VersionApi).getCode();
    assert.equal(v.major, "1");
    assert.equal(v.minor, "34");
    assert.match(v.gitVersion, /^v1\.34\.\d+$/);
  });

  test("namespace, CRD and custom resource", async () => {
    const core = admin.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    assert.deepEqual(await cp.installCRDs([crd as unknown as Record<string, unknown>]), [`${PLURAL}.${GROUP}`]);
    const ext = admin.makeApiClient(ApiextensionsV1Api);
    const c = await ext.readCustomResourceDefinition({ name: `${PLURAL}.${GROUP}` });
    assert.ok(c.status?.conditions?.some((x) => x.type === "Established" && x.status === "True"));
    // The custom-resource handler may lag the Established condition by a moment.
    const created = await eventually("widget created", async () => status(createWidget(admin, ns, "first")));
    assert.equal(created, 201);
    assert.equal(await status(getWidget(admin, ns, "first")), 200);
    // The schema is enforced by the real API server.
    const objs = admin.makeApiClient(CustomObjectsApi);
    const bad = await status(() => objs.createNamespacedCustomObjectWithHttpInfo({
      group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body: widget("bad", 0),
    }));
    assert.equal(bad, 422);
  });

  test("the repository's CRDs install on the real API server", async () => {
    const names = await cp.installCRDs([fileURLToPath(new URL("../../crds/", import.meta.url))]);
    assert.ok(names.length > 0);
    for (const n of names) assert.match(n, /\.mailwarden\.io$/);
  });

  test("a user without RBAC gets 403, the admin 200", async () => {
    const nobody = await cp.userKubeconfig("nobody", ["some-team"]);
    const kc = nobody.kubeConfig();
    assert.equal(await status(getWidget(kc, ns, "first")), 403);
    assert.equal(await status(listWidgets(kc, ns)), 403);
    assert.equal(await status(() => kc.makeApiClient(CoreV1Api).listNamespaceWithHttpInfo()), 403);
    assert.equal(await status(getWidget(admin, ns, "first")), 200);
    assert.equal(await status(listWidgets(admin, ns)), 200);
  });

  test("a ServiceAccount token with a Role that allows exactly one verb", async () => {
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: ns,
      body: { metadata: { name: "widget-getter" }, rules: [{ apiGroups: [GROUP], resources: [PLURAL], verbs: ["get"] }] },
    });
    const sa = await cp.serviceAccountToken(ns, "operator");
    assert.equal(sa.username, `system:serviceaccount:${ns}:operator`);
    assert.ok(sa.token.split(".").length === 3, "a JWT");
    const kc = sa.kubeConfig();
    // Authenticated (not 401) but not yet authorized.
    assert.equal(await status(getWidget(kc, ns, "first")), 403);
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: "operator-widget-getter" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "widget-getter" },
        subjects: [{ kind: "ServiceAccount", name: "operator", namespace: ns }],
      },
    });
    // RBAC is served from an informer cache: wait for the binding to take effect.
    assert.equal(await eventually("binding effective", async () => {
      const s = await status(getWidget(kc, ns, "first"));
      return s === 200 ? s : undefined;
    }), 200);
    assert.equal(await status(listWidgets(kc, ns)), 403);
    assert.equal(await status(createWidget(kc, ns, "second")), 403);
    assert.equal(await status(getWidget(kc, "default", "first")), 403);
    // The kubeconfig file on disk carries the same token.
    const fromFile = new KubeConfig();
    fromFile.loadFromFile(sa.path);
    assert.equal(await status(getWidget(fromFile, ns, "first")), 200);
  });

  test("the API server restarts on the same port with the same etcd", async () => {
    const port = cp.port;
    await cp.stopApiServer();
    assert.notEqual(await status(getWidget(admin, ns, "first")).catch(() => -1), 200);
    await cp.startApiServer();
    assert.equal(cp.port, port);
    assert.equal(await eventually("widget after restart", async () => {
      const s = await status(getWidget(admin, ns, "first"));
      return s === 200 ? s : undefined;
    }), 200);
  });

  test("kube-controller-manager garbage-collects dependents", async () => {
    await cp.startControllerManager();
    const core = admin.makeApiClient(CoreV1Api);
    const owner = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "owner" } } });
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: {
        metadata: {
          name: "dependent",
          ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: owner.metadata!.uid! }],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ namespace: ns, name: "owner" });
    await eventually("dependent garbage-collected", async () => {
      const s = await status(() => core.readNamespacedConfigMapWithHttpInfo({ namespace: ns, name: "dependent" }));
      return s === 404 ? true : undefined;
    }, 60_000);
  });
});
