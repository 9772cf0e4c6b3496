// Counts the places where tests wait on the wall clock (issue #24: "test sleeps outside benches and
// container start-up reduced by at least half"). Run it on any checkout, so a baseline and today are
// counted by the same rules:
//
//   node scripts/count-test-sleeps.ts [checkout] [--list]
//
// It reads test/unit, test/integration and test/helpers (bench folders left out; test/harness, which
// starts the containers, the API server and the node, is not read) with the TypeScript scanner and counts calls of
// `setTimeout` and of `sleep`/`delay`/`setTimeout as X` from node:timers/promises. Not counted:
// import lines, calls on an object (a fake clock's `clock.setTimeout`, `t.mock.timers`), the body of
// a local sleep helper (its callers count), and guards — a timer raced against the real wait
// (`Promise.race`) or one that kills, rejects or aborts rather than resolving a wait. What is
// counted is split into fixed sleeps and poll intervals (a sleep in a loop that re-checks a state).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';

type Kind = 'sleep' | 'poll' | 'guard';

interface Site {
  readonly file: string;
  readonly line: number;
  readonly kind: Kind;
  readonly text: string;
}

const SLEEP_HELPER_NAMES = new Set(['sleep', 'delay']);

function testFiles(root: string): string[] {
  const out: string[] = [];
  for (const dir of ['test/unit', 'test/integration', 'test/helpers']) {
    if (!existsSync(join(root, dir))) continue;
    for (const entry of readdirSync(join(root, dir), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
      const file = join(entry.parentPath, entry.name);
      if (relative(root, file).split('/').includes('bench')) continue;
      out.push(file);
    }
  }
  return out.sort();
}

/** Local names bound to node:timers/promises' setTimeout (`import { setTimeout as sleep }`). */
function promiseTimerNames(source: ts.SourceFile): Set<string> {
  const names = new Set<string>();
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier)) continue;
    if (!/^(node:)?timers\/promises$/.test(statement.moduleSpecifier.text)) continue;
    const bindings = statement.importClause?.namedBindings;
    if (!bindings || !ts.isNamedImports(bindings)) continue;
    for (const element of bindings.elements) {
      if ((element.propertyName ?? element.name).text === 'setTimeout') names.add(element.name.text);
    }
  }
  return names;
}

function enclosingFunction(node: ts.Node): ts.SignatureDeclaration | undefined {
  for (let n = node.parent; n; n = n.parent) if (ts.isFunctionLike(n)) return n as ts.SignatureDeclaration;
  return undefined;
}

function functionName(fn: ts.SignatureDeclaration): string | undefined {
  if (fn.name && ts.isIdentifier(fn.name)) return fn.name.text;
  const parent = fn.parent;
  if (parent && ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name)) return parent.name.text;
  return undefined;
}

function isPromiseRace(node: ts.Node): boolean {
  return ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) && node.expression.name.text === 'race' && ts.isIdentifier(node.expression.expression) && node.expression.expression.text === 'Promise';
}

/** Names passed (inside an array) to a Promise.race anywhere in the file. */
function racedNames(source: ts.SourceFile): Set<string> {
  const names = new Set<string>();
  const visit = (node: ts.Node): void => {
    if (isPromiseRace(node)) {
      const walk = (n: ts.Node): void => {
        if (ts.isIdentifier(n)) names.add(n.text);
        ts.forEachChild(n, walk);
      };
      (node as ts.CallExpression).arguments.forEach(walk);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return names;
}

/** Whether a global setTimeout's callback resolves the Promise it sits in (a sleep), not a guard. */
function resolvesEnclosingPromise(call: ts.CallExpression): boolean {
  const callback = call.arguments[0];
  if (!callback) return false;
  const resolvers = new Set<string>();
  for (let n: ts.Node | undefined = call.parent; n; n = n.parent) {
    if (ts.isNewExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === 'Promise') {
      const executor = n.arguments?.[0];
      const first = executor && (ts.isArrowFunction(executor) || ts.isFunctionExpression(executor)) ? executor.parameters[0] : undefined;
      if (first && ts.isIdentifier(first.name)) resolvers.add(first.name.text);
    }
  }
  if (ts.isIdentifier(callback)) return resolvers.has(callback.text);
  if (ts.isArrowFunction(callback) || ts.isFunctionExpression(callback)) {
    let calls = false;
    const walk = (n: ts.Node): void => {
      if (ts.isCallExpression(n) && ts.isIdentifier(n.expression) && resolvers.has(n.expression.text)) calls = true;
      ts.forEachChild(n, walk);
    };
    walk(callback.body);
    return calls;
  }
  return false;
}

function classify(call: ts.CallExpression, isGlobalTimer: boolean, raced: Set<string>): Kind {
  let inLoop = false;
  // Up to the enclosing function, passing through a `new Promise` executor (a timer that settles a
  // promise which is then raced is a guard as much as one raced directly).
  const isExecutor = (n: ts.Node): boolean => (ts.isArrowFunction(n) || ts.isFunctionExpression(n)) && ts.isNewExpression(n.parent);
  for (let n: ts.Node | undefined = call.parent; n && (!ts.isFunctionLike(n) || isExecutor(n)); n = n.parent) {
    if (isPromiseRace(n)) return 'guard';
    if (ts.isVariableDeclaration(n) && ts.isIdentifier(n.name) && raced.has(n.name.text)) return 'guard';
    if (ts.isWhileStatement(n) || ts.isDoStatement(n) || ts.isForStatement(n) || ts.isForOfStatement(n) || ts.isForInStatement(n)) inLoop = true;
  }
  if (isGlobalTimer && !resolvesEnclosingPromise(call)) return 'guard';
  // A loop around the wait (a sleep inside `new Promise` in a loop is one too): a poll that re-checks a state.
  return inLoop ? 'poll' : 'sleep';
}

function sitesIn(root: string, file: string): Site[] {
  const text = readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const promiseTimers = promiseTimerNames(source);
  const raced = racedNames(source);
  const sites: Site[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && ts.isIdentifier(node.expression)) {
      const name = node.expression.text;
      const isPromiseTimer = promiseTimers.has(name) || (SLEEP_HELPER_NAMES.has(name) && !promiseTimers.has(name) && name !== 'setTimeout');
      const isGlobalTimer = name === 'setTimeout' && !promiseTimers.has(name);
      const fn = enclosingFunction(node);
      const inHelper = fn !== undefined && SLEEP_HELPER_NAMES.has(functionName(fn) ?? '');
      if ((isPromiseTimer || isGlobalTimer) && !inHelper) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart());
        sites.push({ file: relative(root, file), line: line + 1, kind: classify(node, isGlobalTimer, raced), text: text.split('\n')[line]!.trim() });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return sites;
}

const args = process.argv.slice(2);
const root = resolve(args.find((a) => !a.startsWith('--')) ?? '.');
const sites = testFiles(root).flatMap((file) => sitesIn(root, file));
if (args.includes('--list')) for (const s of sites) console.log(`${s.kind.padEnd(5)} ${s.file}:${s.line}  ${s.text}`);
const count = (kind: Kind): number => sites.filter((s) => s.kind === kind).length;
console.log(`${root}: ${count('sleep') + count('poll')} waits on the clock in test/unit + test/integration + test/helpers (${count('sleep')} fixed sleeps, ${count('poll')} poll intervals); ${count('guard')} guards not counted`);
