/**
 * globalSetup: tees everything this run prints (reporter output, console output of every test,
 * failures) into memory, gives the workers a directory for their own logs and for captured child
 * output (helpers/secrets.ts), and at the end fails the run if any of it holds a test secret.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findLeaks, LOG_DIR_VARIABLE } from '../helpers/secrets.js';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'conda-oci-test-output-'));
  process.env[LOG_DIR_VARIABLE] = dir;
  const printed: string[] = [];
  const restore: (() => void)[] = [];
  for (const stream of [process.stdout, process.stderr]) {
    const original = stream.write;
    const write = original.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = (chunk: unknown, ...rest: unknown[]) => {
      printed.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
      return write(chunk, ...rest);
    };
    restore.push(() => (stream.write = original));
  }

  return () => {
    for (const undo of restore) undo();
    try {
      const files = readdirSync(dir);
      const secrets = files
        .filter((f) => f.startsWith('secrets-'))
        .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n'))
        .filter(Boolean)
        .map((line) => JSON.parse(line) as string);
      const sources: [string, string][] = [
        ['the output of this run', printed.join('')],
        ...files
          .filter((f) => !f.startsWith('secrets-'))
          .map((f): [string, string] => [f, readFileSync(join(dir, f), 'utf8')]),
      ];
      const found = sources.flatMap(([where, text]) =>
        findLeaks(text, secrets).map((leak) => `${where}: ${leak.form} ${leak.secret}: …${leak.context}…`),
      );
      const scanned = sources.reduce((sum, [, text]) => sum + text.length, 0);
      if (found.length > 0) {
        throw new Error(
          `secret scan: ${found.length} test secret(s) found in output (${scanned} characters scanned):\n` +
            found.slice(0, 20).join('\n'),
        );
      }
      process.stdout.write(
        `secret scan: no test secret in ${scanned} characters of output (${sources.length} sources, ${secrets.length} registered secrets and the marker, plain, URL- and base64-encoded)\n`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}
