/**
 * The control of the Kubernetes store's warm comparison (test/bench/kubernetes-store.ts
 * --control): loaded into a manifests daemon with `--import`, it opens the built Kubernetes store
 * on the restrictions of $MW_BENCH_KUBE_SETTINGS (its storeSettings, JSON) and keeps it listing and
 * watching beside the daemon, deciding nothing. Everything on the request path is then the
 * manifests daemon's; what the process does besides is the kubernetes daemon's.
 */
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { ROOT } from './store-support.ts';

type Store = { whenLoaded(): Promise<void> };
const built = pathToFileURL(join(ROOT, 'dist/stores/kubernetes.js')).href;
const { openKubernetesStore } = (await import(built)) as { openKubernetesStore(settings: unknown): Store };
const store = openKubernetesStore(JSON.parse(process.env.MW_BENCH_KUBE_SETTINGS ?? '{}'));
// Held for the life of the process; the daemon starts once the first list is in, as the other does.
(globalThis as { mwBenchKubernetesStore?: Store }).mwBenchKubernetesStore = store;
await store.whenLoaded();
