import { Readable } from 'node:stream';
import { main } from '../../src/cli/main.ts';

/** Runs the CLI in-process with captured output and `stdin` as standard input. */
export async function runCli(args: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    stdin: Readable.from([Buffer.from(stdin)]),
    env: {},
  });
  return { code, stdout, stderr };
}
