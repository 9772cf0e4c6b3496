import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decide, planDecision } from '../../../src/restrictions/decide.ts';
import { compileMailbox } from '../../../src/restrictions/mailbox.ts';
import { resolveOptions } from '../../../src/restrictions/options.ts';
import { ManifestsError, ManifestsStore } from '../../../src/stores/manifests.ts';
import { withDeadline } from '../../helpers/deadline.ts';
import { pino } from 'pino';
import { Writable } from 'node:stream';

const restriction = (name: string, mailbox: string, extra = '') => `apiVersion: mailwarden.io/v1alpha1
kind: MailUserRestriction
metadata: { name: ${name} }
spec:
  mailbox: ${mailbox}
  rejectedRecipients: ["@."]
${extra}`;

/** Things that happened (log lines, store changes): each notifies the waits of {@link waitFor}. */
const happened = new Set<() => void>();
const notify = (): void => happened.forEach((check) => check());

function captureLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      notify();
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

const signal = new AbortController().signal;

describe('manifests store', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mw-manifests-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  test('reads files and directories recursively, multi-document files too', async () => {
    const root = path.join(dir, 'tree');
    await mkdir(path.join(root, 'sub'), { recursive: true });
    await writeFile(path.join(root, 'a.yaml'), restriction('a', 'a@example.com'));
    await writeFile(path.join(root, 'sub', 'b.yml'), `${restriction('b', 'b@example.com')}\n---\n${restriction('c', 'c@example.com')}`);
    await writeFile(path.join(root, 'notes.txt'), 'not yaml');
    const store = new ManifestsStore({ paths: [root], watch: false });
    await store.start();
    assert.equal(store.size, 3);
    const found = await store.lookup(['a@example.com', 'c@example.com', 'zz@example.com'], signal);
    assert.deepEqual([...found.keys()], ['a@example.com', 'c@example.com']);
    assert.deepEqual(found.get('a@example.com')!.lists, { allowedSenders: null, rejectedSenders: null, allowedRecipients: null, rejectedRecipients: ['@.'] });
    await store.close();
  });

  test('internationalised domains are held in ASCII form and matched from either form', async () => {
    const root = path.join(dir, 'idn');
    await mkdir(root, { recursive: true });
    await writeFile(path.join(root, 'anna.yaml'), restriction('anna', 'Anna@Bücher.example', '  rejectedSenders: ["@例え.test"]'));
    const store = new ManifestsStore({ paths: [root], watch: false });
    await store.start();
    try {
      assert.deepEqual(store.peek('anna@xn--bcher-kva.example')?.lists.rejectedSenders, ['@xn--r8jz45g.test']);
      const options = resolveOptions('default');
      for (const [sender, recipient] of [
        ['x@例え.test', 'anna@bücher.example'],
        ['x@xn--r8jz45g.test', 'anna@xn--bcher-kva.example'],
      ] as const) {
        const plan = planDecision({ protocolState: 'RCPT', sender, recipient, saslUsername: undefined }, options);
        assert.ok(typeof plan !== 'string');
        const decision = decide(plan, (key) => {
          const record = store.peek(key);
          return record === undefined ? undefined : compileMailbox(record, options);
        }, options);
        assert.equal(decision.verdict, 'reject', `${sender} -> ${recipient}`);
      }
    } finally {
      await store.close();
    }
  });

  test('an invalid set at start-up is refused with every problem', async () => {
    const root = path.join(dir, 'bad');
    await mkdir(root, { recursive: true });
    await writeFile(path.join(root, 'one.yaml'), restriction('one', 'x@example.com'));
    await writeFile(path.join(root, 'two.yaml'), restriction('two', 'x@example.com'));
    await writeFile(path.join(root, 'three.yaml'), restriction('three', 'y@example.com', '  allowedSenders: [example.com]'));
    const store = new ManifestsStore({ paths: [root], watch: false });
    await assert.rejects(store.start(), (error: unknown) => {
      assert.ok(error instanceof ManifestsError);
      assert.match(error.message, /x@example\.com is restricted twice: by one in .*one\.yaml and by two in .*two\.yaml/);
      assert.match(error.message, /three\.yaml: MailUserRestriction three: spec\.allowedSenders\[0\]/);
      return true;
    });
  });

  test('a missing path is a clear error', async () => {
    const store = new ManifestsStore({ paths: [path.join(dir, 'nope')], watch: false });
    await assert.rejects(store.start(), /nope: cannot be read: ENOENT/);
  });

  test('reloads on change; a bad edit keeps the last good set and logs why', async () => {
    const root = path.join(dir, 'live');
    await mkdir(root, { recursive: true });
    const file = path.join(root, 'r.yaml');
    await writeFile(file, restriction('r', 'r@example.com'));
    const { logger, lines } = captureLogger();
    const store = new ManifestsStore({ paths: [root], logger, pollIntervalMs: 100 });
    let changes = 0;
    store.onChange(() => {
      changes++;
      notify();
    });
    await store.start();

    await writeFile(file, restriction('r', 'r@example.com', '  allowedRecipients: ["@example.com"]'));
    await waitFor(() => changes === 1);
    assert.deepEqual((await store.lookup(['r@example.com'], signal)).get('r@example.com')!.lists.allowedRecipients, ['@example.com']);

    await writeFile(file, restriction('r', 'r@example.com', '  allowedRecipients: ["example.com"]'));
    await waitFor(() => lines.some((l) => String(l.msg).includes('reload refused')));
    assert.equal(changes, 1);
    assert.deepEqual((await store.lookup(['r@example.com'], signal)).get('r@example.com')!.lists.allowedRecipients, ['@example.com']);
    const refusal = lines.find((l) => String(l.msg).includes('reload refused'))!;
    assert.match(String(refusal.msg), /r\.yaml: MailUserRestriction r: spec\.allowedRecipients\[0\]: "example\.com" is not an entry/);
    await store.close();
  });
});

/** Resolves once `condition` holds, checked at each thing that happens. */
function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  let check = (): void => {};
  const met = new Promise<void>((resolve) => {
    check = () => {
      if (condition()) resolve();
    };
    happened.add(check);
    check();
  });
  return withDeadline(met, timeoutMs, () => {
    throw new Error('condition not met in time');
  }).finally(() => happened.delete(check));
}
