import { execFileSync } from 'node:child_process';

/**
 * V8's feedback for process.nextTick's object literal, one state per property definition (five:
 * MONOMORPHIC or MEGAMORPHIC), in a fresh Node.js that runs `setup` (module code), then ten
 * rounds of many ticks, all run, each followed by `collect` (a statement), then more ticks.
 * Ten rounds, some resumed by a timer: whether a tick object happens to be alive at one
 * collection depends on where the code runs from.
 */
export function tickLiteralFeedback(setup: string, collect: string): string[] {
  const script = `
    ${setup}
    const feedback = new Function('f', 'return %GetFeedback(f)');
    const literal = () => feedback(process.nextTick).filter((slot) => slot?.[0] === 'DefineKeyedOwnPropertyInLiteral').map((slot) => slot[1]);
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    for (let round = 0; round < 10; round++) {
      for (let t = 0; t < 5; t++) {
        for (let i = 0; i < 1000; i++) process.nextTick(() => {});
        await turn();
      }
      if (round % 2) await new Promise((resolve) => setTimeout(resolve, 1));
      ${collect};
    }
    for (let i = 0; i < 100; i++) process.nextTick(() => {});
    await turn();
    process.stdout.write(JSON.stringify(literal()));`;
  return JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--allow-natives-syntax', '--input-type=module', '--eval', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } }));
}
