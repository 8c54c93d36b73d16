#!/usr/bin/env node
/** CLI entry: `conda-oci <command> [options]` (see cli/main.ts). */
import { main } from './cli/main.js';
import { redact } from './redact.js';
import { describeError } from './util/describe-error.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(redact(`conda-oci: ${describeError(err)}\n`));
    process.exitCode = 2;
  },
);
