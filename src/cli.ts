#!/usr/bin/env node
/** CLI entry: `conda-oci <command> [options]` (see cli-main.ts). */
import { describeError } from './util/describe-error.js';
import { redact } from './redact.js';
import { main } from './cli-main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(redact(`conda-oci: ${describeError(err)}\n`));
    process.exitCode = 2;
  },
);
