import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ApiException, AppsV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { objectName } from '../../../src/reconcilers/policy-daemon-objects.ts';
import { UNREACHABLE } from '../../../src/reconcilers/status-text.ts';
import { startBackend, type BackendFixture } from '../../harness/backends.ts';
import { renderChart, run } from '../../harness/kube-tools.ts';
import { eventually, GROUP, OPERATOR_NAMESPACE, resources, startOperatorEnv, VERSION, type Obj, type OperatorEnv } from '../../harness/operator-env.ts';

/**
 * #25 from the attacker's side, on a real API server and a real PostgreSQL: a namespace that may
 * write MailUserRestrictions reaches only the mailboxes of its MailBackend's domains — refused at
 * admission (the chart's ValidatingAdmissionPolicy) and by the operator where admission is not
 * there; a PolicyDaemon's image and diverting actions need the admin; status tells no network
 * probe apart; the operator reads and caches only the Secrets named.
 */

const IMAGE = 'ghcr.io/mailwarden/mailwarden:test';
const empty = { allowedSenders: [], rejectedSenders: [], allowedRecipients: [], rejectedRecipients: [] };

describe('tenancy on a real API server (#25)', () => {
  let env: OperatorEnv;
  let pg: BackendFixture;
  before(async () => {
    env = await startOperatorEnv();
    pg = await startBackend('postgres');
  });
  after(async () => {
    await env?.stopAll();
    await pg?.stop();
  });

  const custom = (plural: string, namespace: string, name: string, spec: Record<string, unknown>, kind: string) => ({
    group: GROUP,
    version: VERSION,
    namespace,
    plural,
    body: { apiVersion: `${GROUP}/${VERSION}`, kind, metadata: { name }, spec },
  });

  /** The message of the API server's refusal of `create`, or undefined when it accepted. */
  async function refusal(create: () => Promise<unknown>): Promise<{ code: number; message: string } | undefined> {
    try {
      await create();
      return undefined;
    } catch (error) {
      assert.ok(error instanceof ApiException, String(error));
      return { code: error.code, message: (JSON.parse(String(error.body)) as { message: string }).message };
    }
  }

  async function daemonReady(namespace: string, name: string, reason: string): Promise<Obj> {
    return eventually(`PolicyDaemon ${namespace}/${name} Ready reason ${reason}`, async () => {
      const obj = (await env.objects.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'policydaemons', name })) as Obj;
      return obj.status?.conditions?.find((c) => c.type === 'Ready')?.reason === reason ? obj : undefined;
    });
  }

  describe('at admission: a tenant ServiceAccount with the restriction-editor role', () => {
    let tenantNs: string;
    let tenant: CustomObjectsApi;
    before(async () => {
      tenantNs = await env.namespace('tenant');
      // What the cluster admin installs and grants: the chart's policies and roles, a RoleBinding.
      const yaml = await renderChart('mw', OPERATOR_NAMESPACE, [`watchNamespaces={${tenantNs}}`], ['--show-only', 'templates/admission-policy.yaml', '--show-only', 'templates/tenant-roles.yaml']);
      const applied = await run('kubectl', ['apply', '-f', '-'], { input: yaml, kubeconfig: env.cp.kubeconfigPath });
      assert.equal(applied.code, 0, applied.stderr);
      const creds = await env.cp.serviceAccountToken(tenantNs, 'team');
      const bound = await run('kubectl', ['create', 'rolebinding', 'team', '-n', tenantNs, '--clusterrole=mw-mailwarden-restriction-editor', `--serviceaccount=${tenantNs}:team`], { kubeconfig: env.cp.kubeconfigPath });
      assert.equal(bound.code, 0, bound.stderr);
      tenant = creds.kubeConfig().makeApiClient(CustomObjectsApi);
      await env.objects.createNamespacedCustomObject(custom('mailbackends', tenantNs, 'vmail', { url: 'postgres://vmail@db.mail.svc:5432/vmail', domains: ['example.com', 'example.net'] }, 'MailBackend'));
    });

    test('a mailbox outside the MailBackend\'s domains is refused, with the domains named', async () => {
      const outside = custom('mailuserrestrictions', tenantNs, 'steal', { mailbox: 'postmaster@other.org', backendRef: { name: 'vmail' }, deletionPolicy: 'Clear' }, 'MailUserRestriction');
      // The API server loads a new policy and its params within a moment: probe with dry runs.
      const refused = await eventually('the policy in force', async () => refusal(() => tenant.createNamespacedCustomObject({ ...outside, dryRun: 'All' })));
      assert.equal(refused.code, 403, refused.message);
      assert.match(refused.message, /mailbox postmaster@other\.org is outside the domains of MailBackend vmail \(example\.com, example\.net\)/);
      assert.match((await refusal(() => tenant.createNamespacedCustomObject(outside)))?.message ?? 'accepted', /outside the domains/);
      // Case does not get around it.
      assert.match((await refusal(() => tenant.createNamespacedCustomObject(custom('mailuserrestrictions', tenantNs, 'steal-2', { mailbox: 'PostMaster@Other.ORG', backendRef: { name: 'vmail' } }, 'MailUserRestriction'))))?.message ?? 'accepted', /outside the domains/);
    });

    test('a mailbox of its domains is accepted, and cannot be moved out of them by an update', async () => {
      await tenant.createNamespacedCustomObject(custom('mailuserrestrictions', tenantNs, 'alice', { mailbox: 'Alice@Example.com', backendRef: { name: 'vmail' } }, 'MailUserRestriction'));
      const current = (await tenant.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: tenantNs, plural: 'mailuserrestrictions', name: 'alice' })) as Obj;
      const moved = await refusal(() =>
        tenant.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: tenantNs, plural: 'mailuserrestrictions', name: 'alice', body: { ...current, spec: { ...current.spec, mailbox: 'postmaster@other.org' } } }),
      );
      assert.match(moved?.message ?? 'accepted', /outside the domains/);
    });

    test('an internationalised domain listed in its xn-- form admits a mailbox spelling it either way; a Unicode domain cannot be listed', async () => {
      await env.objects.createNamespacedCustomObject(custom('mailbackends', tenantNs, 'idn', { url: 'postgres://vmail@db.mail.svc:5432/vmail', domains: ['xn--bcher-kva.example', 'example.org'] }, 'MailBackend'));
      const dryRun = (mailbox: string) => refusal(() => tenant.createNamespacedCustomObject({ ...custom('mailuserrestrictions', tenantNs, 'idn-probe', { mailbox, backendRef: { name: 'idn' } }, 'MailUserRestriction'), dryRun: 'All' }));
      // The policy sees the new MailBackend among its params within a moment.
      await eventually('the idn MailBackend in force', async () => dryRun('postmaster@other.org'));
      for (const mailbox of ['jörg@bücher.example', 'Jörg@BÜCHER.Example', 'jorg@xn--bcher-kva.example', 'jorg@XN--BCHER-KVA.example', 'ана@example.org']) {
        assert.equal((await dryRun(mailbox))?.message, undefined, `${mailbox} admitted`);
      }
      for (const mailbox of ['jörg@bücher.other', 'jörg@bücher.example.org', 'jörg@sub.bücher.example', 'jörg@xn--mnchen-3ya.example', 'jörg@bücher.org']) {
        assert.match((await dryRun(mailbox))?.message ?? `${mailbox} accepted`, /is outside the domains of MailBackend idn \(xn--bcher-kva\.example, example\.org\)/);
      }
      // CEL has no punycode: an unlisted Unicode domain of a listed one's shape passes here, and
      // the operator refuses it (the test below); docs/tenancy.md says so.
      assert.equal((await dryRun('jörg@münchen.example'))?.message, undefined);
      const unicode = await refusal(() => env.objects.createNamespacedCustomObject(custom('mailbackends', tenantNs, 'idn-unicode', { url: 'postgres://vmail@db.mail.svc:5432/vmail', domains: ['bücher.example'] }, 'MailBackend')));
      assert.equal(unicode?.code, 422);
      assert.match(unicode?.message ?? 'accepted', /is written in Unicode: list an internationalised domain in its ASCII \(xn--\) form; mailboxes may spell it either way/);
    });

    test('the tenant may not create or change MailBackends and PolicyDaemons (RBAC)', async () => {
      const backend = await refusal(() => tenant.createNamespacedCustomObject(custom('mailbackends', tenantNs, 'mine', { url: 'postgres://vmail@db.mail.svc:5432/vmail' }, 'MailBackend')));
      assert.equal(backend?.code, 403);
      const widen = await refusal(() => tenant.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: tenantNs, plural: 'mailbackends', name: 'vmail', body: [{ op: 'remove', path: '/spec/domains' }] }));
      assert.equal(widen?.code, 403);
      const daemon = await refusal(() => tenant.createNamespacedCustomObject(custom('policydaemons', tenantNs, 'spy', { mode: 'Service', backendRef: { name: 'vmail' } }, 'PolicyDaemon')));
      assert.equal(daemon?.code, 403);
      const can = await run('kubectl', ['auth', 'can-i', 'delete', 'mailuserrestrictions.mailwarden.io', '-n', tenantNs, `--as=system:serviceaccount:${tenantNs}:team`], { kubeconfig: env.cp.kubeconfigPath });
      assert.equal(can.stdout.trim(), 'yes');
    });

    test('a PolicyDaemon image or a diverting action the chart does not allow is refused (even to the admin)', async () => {
      const image = await refusal(() => env.objects.createNamespacedCustomObject(custom('policydaemons', tenantNs, 'evil', { mode: 'Service', backendRef: { name: 'vmail' }, image: 'evil.example/steal:1' }, 'PolicyDaemon')));
      assert.match(image?.message ?? 'accepted', /image evil\.example\/steal:1 is not one the cluster admin allows/);
      const bcc = await refusal(() => env.objects.createNamespacedCustomObject(custom('policydaemons', tenantNs, 'bcc', { mode: 'Service', backendRef: { name: 'vmail' }, policy: { rejectAction: 'BCC spy@evil.example' } }, 'PolicyDaemon')));
      assert.match(bcc?.message ?? 'accepted', /need the cluster admin's consent/);
      await env.objects.createNamespacedCustomObject(custom('policydaemons', tenantNs, 'plain', { mode: 'Service', backendRef: { name: 'vmail' }, policy: { rejectAction: 'REJECT no' } }, 'PolicyDaemon'));
    });
  });

  describe('by the operator, where no admission policy is installed', () => {
    let ns: string;
    let r: ReturnType<typeof resources>;
    before(async () => {
      ns = await env.namespace('op');
      r = resources(env, ns);
      await r.createBackend('vmail', { ...pg.spec, domains: ['example.com'] }, pg.password);
      await env.operator([ns], { policyDaemons: { image: IMAGE } });
    });

    test('a restriction outside the domains writes nothing, and deleting it (Clear) clears nothing', async () => {
      await pg.addMailbox('postmaster@other.org');
      await pg.writeList('postmaster@other.org', 'rejectedSenders', ['@spam.test']);
      await r.create('steal', { mailbox: 'postmaster@other.org', backendRef: { name: 'vmail' }, rejectedSenders: [], allowedSenders: ['@evil.test'], deletionPolicy: 'Clear' });
      const { ready } = await r.waitReason('steal', 'OutsideDomains');
      assert.match(ready.message, /mailbox postmaster@other\.org is outside the domains of MailBackend vmail \(example\.com\); nothing is written or cleared/);
      assert.deepEqual(await pg.readLists('postmaster@other.org'), { ...empty, rejectedSenders: ['@spam.test'] });
      await r.delete('steal');
      await eventually('steal gone', async () => (await r.get('steal')) === undefined);
      assert.deepEqual(await pg.readLists('postmaster@other.org'), { ...empty, rejectedSenders: ['@spam.test'] }, 'the lists an administrator set are still there');
    });

    test('an internationalised domain: the Unicode spelling of a listed xn-- domain is written to the row stores hold, is one target with the xn-- spelling, and an unlisted one is refused', async () => {
      await r.createBackend('idn', { ...pg.spec, domains: ['xn--bcher-kva.example'] }, pg.password);
      await pg.addMailbox('jorg@xn--bcher-kva.example');
      // Created in the same second, two restrictions are ordered by name: these names follow creation.
      await r.create('idn-1-unicode', { mailbox: 'jorg@Bücher.example', backendRef: { name: 'idn' }, rejectedSenders: ['@spam.test'] });
      await r.waitReason('idn-1-unicode', 'Applied');
      assert.deepEqual(await pg.readLists('jorg@xn--bcher-kva.example'), { ...empty, rejectedSenders: ['@spam.test'] });
      await r.create('idn-2-ascii', { mailbox: 'jorg@xn--bcher-kva.example', backendRef: { name: 'idn' }, rejectedSenders: ['@other.test'] });
      const { ready } = await r.waitReason('idn-2-ascii', 'Conflict');
      assert.match(ready.message, /already managed by MailUserRestriction idn-1-unicode \(the oldest wins\)/);
      assert.deepEqual(await pg.readLists('jorg@xn--bcher-kva.example'), { ...empty, rejectedSenders: ['@spam.test'] });
      await r.create('idn-outside', { mailbox: 'jorg@münchen.example', backendRef: { name: 'idn' }, rejectedSenders: ['@evil.test'] });
      const outside = await r.waitReason('idn-outside', 'OutsideDomains');
      assert.match(outside.ready.message, /mailbox jorg@münchen\.example is outside the domains of MailBackend idn \(xn--bcher-kva\.example\)/);
    });

    test('a restriction of its domains is applied', async () => {
      await pg.addMailbox('alice@example.com');
      await r.create('alice', { mailbox: 'alice@example.com', backendRef: { name: 'vmail' }, rejectedRecipients: ['@.'] });
      await r.waitReason('alice', 'Applied');
      assert.deepEqual(await pg.readLists('alice@example.com'), { ...empty, rejectedRecipients: ['@.'] });
    });

    test('a PolicyDaemon with an image or action the admin did not allow: NotAllowed, and no Deployment runs it', async () => {
      const apps = env.kc.makeApiClient(AppsV1Api);
      await env.objects.createNamespacedCustomObject(custom('policydaemons', ns, 'evil', { mode: 'Service', backendRef: { name: 'vmail' }, image: 'evil.example/steal:1' }, 'PolicyDaemon'));
      await env.objects.createNamespacedCustomObject(custom('policydaemons', ns, 'bcc', { mode: 'Service', backendRef: { name: 'vmail' }, policy: { failureAction: 'REDIRECT spy@evil.example' } }, 'PolicyDaemon'));
      const evil = await daemonReady(ns, 'evil', 'NotAllowed');
      assert.match(evil.status!.conditions!.find((c) => c.type === 'Ready')!.message, /image evil\.example\/steal:1 is not one the cluster admin allows/);
      const bcc = await daemonReady(ns, 'bcc', 'NotAllowed');
      assert.match(bcc.status!.conditions!.find((c) => c.type === 'Ready')!.message, /policy\.failureAction REDIRECT is not an action the cluster admin allows/);
      // A daemon it does run, reconciled after the two: their Deployments would exist by now.
      await env.objects.createNamespacedCustomObject(custom('policydaemons', ns, 'plain', { mode: 'Service', backendRef: { name: 'vmail' } }, 'PolicyDaemon'));
      await eventually('the allowed daemon deployed', async () => (await apps.readNamespacedDeployment({ namespace: ns, name: objectName('plain') }).catch(() => undefined)) !== undefined);
      for (const name of ['evil', 'bcc']) {
        const missing = await refusal(() => apps.readNamespacedDeployment({ namespace: ns, name: objectName(name) }));
        assert.equal(missing?.code, 404, `no Deployment for ${name}`);
      }
    });

    test('an unreachable store reads the same in status whatever answered (no port scanner)', async () => {
      const closed = await freePort();
      const resetting: Server = createServer((socket) => socket.destroy());
      await new Promise<void>((resolve) => resetting.listen(0, '127.0.0.1', resolve));
      const port = (resetting.address() as { port: number }).port;
      try {
        const sql = { connectTimeoutMs: 500 };
        await r.createBackend('scan-closed', { url: `postgres://vmail@127.0.0.1:${closed}/vmail`, sql });
        await r.createBackend('scan-open', { url: `postgres://vmail@127.0.0.1:${port}/vmail`, sql });
        const messages: string[] = [];
        for (const name of ['scan-closed', 'scan-open']) {
          messages.push(
            await eventually(`${name} Unavailable`, async () => {
              const obj = (await env.objects.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'mailbackends', name })) as Obj;
              const ready = obj.status?.conditions?.find((c) => c.type === 'Ready');
              return ready?.reason === 'Unavailable' ? ready.message : undefined;
            }),
          );
        }
        assert.deepEqual(messages, [UNREACHABLE, UNREACHABLE]);
      } finally {
        resetting.close();
      }
    });
  });

  describe('least privilege: the Secrets MailBackends name, read only', () => {
    let ns: string;
    let r: ReturnType<typeof resources>;
    let saKubeconfig: string;
    const values = ['rbac.backendSecretNames={vmail-credentials}'];
    before(async () => {
      ns = await env.namespace('lp');
      r = resources(env, ns);
      for (let i = 0; i < 5; i++) await env.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: `unrelated-${i}` }, stringData: { token: `t${i}` } } });
      await r.createBackend('vmail', pg.spec, pg.password);
      saKubeconfig = (await env.chartServiceAccount([ns], values)).path;
    });

    test('the operator reaches the store through a Role that names the Secret, caches only it, and refuses another name', async () => {
      const operator = await env.operator([ns], { backendSecretNames: ['vmail-credentials'] }, values);
      await r.createBackend('other', pg.spec, pg.password);
      const status = async (name: string) => {
        const obj = (await env.objects.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'mailbackends', name })) as Obj;
        return obj.status?.conditions?.find((c) => c.type === 'Ready');
      };
      await eventually('vmail Connected', async () => (await status('vmail'))?.reason === 'Connected');
      const other = await eventually('other refused', async () => ((await status('other'))?.reason === 'SecretNotFound' ? status('other') : undefined));
      assert.match(other!.message, new RegExp(`Secret ${ns}/other-credentials is not one the operator may read`));
      assert.deepEqual(operator.cachedSecrets, [`${ns}/vmail-credentials`]);
    });

    const can = async (...args: string[]) => (await run('kubectl', ['auth', 'can-i', ...args, '-n', ns], { kubeconfig: saKubeconfig })).stdout.trim();

    test('kubectl auth can-i: the named Secret may be read, nothing else, and no Secret changed', async () => {
      for (const verb of ['get', 'list', 'watch']) assert.equal(await can(verb, 'secrets/vmail-credentials'), 'yes', verb);
      const denied = [
        ['get', 'secrets'],
        ['list', 'secrets'],
        ['watch', 'secrets'],
        ['get', 'secrets/unrelated-0'],
        ['get', 'secrets/other-credentials'],
        ['create', 'secrets'],
        ['update', 'secrets/vmail-credentials'],
        ['patch', 'secrets/vmail-credentials'],
        ['delete', 'secrets/vmail-credentials'],
        ['update', 'secrets'],
        ['patch', 'secrets'],
        ['delete', 'secrets'],
        ['deletecollection', 'secrets'],
      ];
      for (const args of denied) assert.equal(await can(...args), 'no', args.join(' '));
    });
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
