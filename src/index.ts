/** Action entry: read the inputs, run (see action/run.ts). */
import * as core from '@actions/core';
import { readInputs } from './action/inputs.js';
import { run } from './action/run.js';
import { redact } from './redact.js';
import { describeError } from './util/describe-error.js';

try {
  await run(readInputs());
} catch (err) {
  core.setFailed(redact(describeError(err)));
}
