/**
 * setupFiles: every worker's own writes to stdout/stderr also go to the run's output log, for the
 * secret scan of the global teardown (see helpers/secrets.ts). Console output of tests reaches
 * the main process, whose output the global setup tees.
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOG_DIR_VARIABLE } from '../helpers/secrets.js';

const PATCHED = Symbol.for('conda-oci.tee-output');
const dir = process.env[LOG_DIR_VARIABLE];
const holder = globalThis as { [PATCHED]?: boolean };

if (dir && !holder[PATCHED]) {
  holder[PATCHED] = true;
  const file = join(dir, `worker-${process.pid}.log`);
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = (chunk: unknown, ...rest: unknown[]) => {
      try {
        appendFileSync(file, typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array));
      } catch {
        // the log is best effort; the test's own output must not fail
      }
      return write(chunk, ...rest);
    };
  }
}
