/** Action entry: read the inputs, run. */
import * as core from '@actions/core';
import { readInputs } from './inputs.js';
import { run } from './main.js';
import { describeError } from './util/describe-error.js';

try {
  await run(readInputs());
} catch (err) {
  core.setFailed(describeError(err));
}
