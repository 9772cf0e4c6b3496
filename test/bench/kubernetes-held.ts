/**
 * What the Kubernetes store holds per restriction, and what a list of them costs the daemon,
 * without an API server: the informer and index of src/stores/kubernetes.ts fed pages of 500
 * objects as the API server sends them (JSON text, managedFields and all) with the benchmark's
 * mailboxes and lists (test/bench/fixtures.ts). Per size it prints the time to take in the list
 * (parse, slim, validate, index) and the heap it leaves live after a full collection, per
 * restriction: the daemon's own part of start → ready in
 * test/bench/kubernetes-store.ts, apart from the API server's.
 *
 *   node --expose-gc test/bench/kubernetes-held.ts [--sizes 10000,100000]
 *
 * Run it with the daemon's heap options to see what its container's limit does:
 *   NODE_OPTIONS='--max-old-space-size=128 --max-semi-space-size=8' node --expose-gc …
 */
import { parseArgs } from 'node:util';
import { ResourceInformer } from '../../src/controller/informer.ts';
import { StringPool } from '../../src/controller/cached-object.ts';
import { ListsPool } from '../../src/stores/in-memory-records.ts';
import { holdRestriction, RestrictionIndex, type HeldRestriction, type HoldPools } from '../../src/stores/restriction-index.ts';
import type { KubernetesObject } from '@kubernetes/client-node';
import { listsFor, mailbox } from './fixtures.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

/** One stored restriction as the API server lists it (the bench seeds this form into etcd). */
function listed(i: number): unknown {
  const spec = { mailbox: mailbox(i), ...listsFor(i) };
  const fields = Object.fromEntries([['.', {}], ...Object.keys(spec).map((k) => [`f:${k}`, {}])]);
  return {
    apiVersion: 'mailwarden.io/v1alpha1',
    kind: 'MailUserRestriction',
    metadata: {
      name: `user${i}`,
      namespace: 'mail',
      uid: `0b6f6a52-5d1c-4c4e-9d0e-${String(i).padStart(12, '0')}`,
      resourceVersion: String(1000 + i),
      generation: 1,
      creationTimestamp: '2026-12-04T18:00:00Z',
      managedFields: [{ apiVersion: 'mailwarden.io/v1alpha1', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': fields }, manager: 'node-fetch', operation: 'Update', time: '2026-12-04T18:00:00Z' }],
    },
    spec: { allowedSenders: [], rejectedSenders: [], allowedRecipients: [], rejectedRecipients: [], ...spec },
  };
}

/** Page `n` (500 objects) of a list of `size`, as JSON text: what the store parses per request. */
function page(n: number, size: number): string {
  const items = [];
  for (let i = n * 500; i < Math.min(size, (n + 1) * 500); i++) items.push(listed(i));
  const last = (n + 1) * 500 >= size;
  return JSON.stringify({ apiVersion: 'mailwarden.io/v1alpha1', kind: 'MailUserRestrictionList', metadata: { resourceVersion: '999', _continue: last ? undefined : String(n + 1) }, items });
}

async function measure(size: number): Promise<void> {
  const pageCount = Math.ceil(size / 500);
  // Making the pages is the API server's work: timed alone, then taken off the list's time.
  let made = performance.now();
  for (let n = 0; n < pageCount; n++) page(n, size);
  made = performance.now() - made;
  gc!();
  const before = process.memoryUsage().heapUsed;
  const strings = new StringPool();
  const pools: HoldPools = { strings, lists: new ListsPool({ strings }) };
  const index = new RestrictionIndex();
  const informer = new ResourceInformer<KubernetesObject>({
    path: '/apis/mailwarden.io/v1alpha1/namespaces/mail/mailuserrestrictions',
    namespace: 'mail',
    list: async (o) => JSON.parse(page(Number(o._continue ?? 0), size)),
    // A watch that never sends: the list is what is measured.
    watch: async () => ({ abort() {} }),
    transform: (obj) => holdRestriction(obj, pools) as KubernetesObject,
  });
  informer.onAdd((obj) => index.set(obj as HeldRestriction));
  const started = performance.now();
  informer.start();
  await informer.waitForSync(600_000);
  const ms = performance.now() - started - made;
  const uncollected = process.memoryUsage().heapUsed - before;
  gc!();
  const held = process.memoryUsage().heapUsed - before;
  process.stdout.write(
    `${size}: listed in ${(ms / 1000).toFixed(2)} s (${((ms * 1000) / size).toFixed(1)} µs each); ${(held / size).toFixed(0)} B of heap per restriction (${(held / 1e6).toFixed(1)} MB), ${index.size} mailboxes; ${(uncollected / 1e6).toFixed(1)} MB before that collection\n`,
  );
  await informer.stop();
}

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '10000,100000' } } });
for (const size of String(values.sizes).split(',').map(Number)) await measure(size);
