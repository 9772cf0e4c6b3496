/** Measuring aids of the operator bench (test/bench/operator.ts). */
import { readdirSync, readFileSync } from 'node:fs';
import { CustomObjectsApi, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { ResourceInformer } from '../../src/controller/informer.ts';
import { commandOfStat, cpuSecondsOfStat } from '../helpers/proc.ts';
import type { SqlServer } from '../harness/containers.ts';
import { GROUP, VERSION, type Obj, type resources } from '../harness/operator-env.ts';

/** Creates `count` restrictions with at most `inFlight` requests open, retrying 429/5xx. */
export async function createAll(
  r: ReturnType<typeof resources>,
  count: number,
  inFlight: number,
  make: (i: number) => [name: string, spec: Record<string, unknown>],
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) {
        const [name, spec] = make(next++);
        for (let attempt = 0; ; attempt++) {
          try {
            await r.create(name, spec);
            break;
          } catch (error) {
            const code = (error as { code?: number }).code ?? 0;
            if (attempt > 20 || !(code === 429 || code >= 500)) throw error;
            await new Promise((resolve) => setTimeout(resolve, 50 * (attempt + 1)));
          }
        }
      }
    }),
  );
}

/**
 * Watches the namespace's restrictions and counts those Ready for their current generation, and
 * every change of any of them (an operator write: finalizer or status).
 */
export class ReadyTracker {
  readonly #informer: ResourceInformer<KubernetesObject>;
  readonly #ready = new Set<string>();
  #changes = 0;

  constructor(kc: KubeConfig, namespace: string) {
    const objects = kc.makeApiClient(CustomObjectsApi);
    this.#informer = new ResourceInformer<KubernetesObject>({
      kubeConfig: kc,
      path: `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/mailuserrestrictions`,
      list: (o) =>
        objects.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'mailuserrestrictions', ...o }) as Promise<KubernetesListObject<KubernetesObject>>,
    });
    this.#informer.onChange((obj, type) => {
      const o = obj as unknown as Obj;
      if (type === 'update') this.#changes++;
      const ready = o.status?.conditions?.find((c) => c.type === 'Ready');
      if (type !== 'delete' && ready?.status === 'True' && o.status?.observedGeneration === o.metadata.generation) this.#ready.add(o.metadata.name);
      else this.#ready.delete(o.metadata.name);
    });
  }

  async start(): Promise<void> {
    this.#informer.start();
    await this.#informer.waitForSync();
  }

  stop(): Promise<void> {
    return this.#informer.stop();
  }

  get ready(): number {
    return this.#ready.size;
  }

  /** Restrictions the API has (created so far). */
  get seen(): number {
    return this.#informer.keys().length;
  }

  /** Updates of existing restrictions seen on the watch. */
  get changes(): number {
    return this.#changes;
  }
}

/**
 * Counts every row written to vmail.mailbox from now on, exactly and at once: a trigger draws
 * from a sequence (nextval is not transactional). PostgreSQL's own pg_stat_user_tables.n_tup_upd
 * says the same but is published by each backend up to seconds late.
 */
export async function countStoreWrites(pg: SqlServer): Promise<void> {
  for (const sql of [
    'CREATE SEQUENCE IF NOT EXISTS bench_mailbox_writes',
    `CREATE OR REPLACE FUNCTION bench_count_write() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN PERFORM nextval('bench_mailbox_writes'); RETURN NULL; END $$`,
    'DROP TRIGGER IF EXISTS bench_count_write ON mailbox',
    'CREATE TRIGGER bench_count_write AFTER INSERT OR UPDATE OR DELETE ON mailbox FOR EACH ROW EXECUTE FUNCTION bench_count_write()',
    `SELECT nextval('bench_mailbox_writes')`,
  ]) {
    await pg.query(sql, [], pg.admin);
  }
}

/** Rows written to vmail.mailbox since countStoreWrites(). */
export async function storeWrites(pg: SqlServer): Promise<number> {
  const [row] = await pg.query<{ n: string }>('SELECT last_value - 1 AS n FROM bench_mailbox_writes', [], pg.admin);
  return Number(row?.n ?? 0);
}

/** Sum of a Prometheus counter's samples whose labels include `labels`, from /metrics. */
export async function metric(port: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labelText = line.slice(name.length, line.lastIndexOf(' '));
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** The `q` quantile (0..1) of `values`, nearest rank. */
export function percentile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

/** CPU seconds (user + system) used so far by every process whose command name is one of `names`. */
export function cpuByProcess(names: readonly string[]): Record<string, number> {
  const totals: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const comm = commandOfStat(stat);
    if (comm in totals) totals[comm]! += cpuSecondsOfStat(stat);
  }
  return totals;
}
