/** The step's outputs, for later steps: the result document and handy views of it. */
import * as core from '@actions/core';
import type { CommandResult } from '../commands/report.js';
import { redact } from '../redact.js';

export const OUTPUT_RESULT = 'result';
export const OUTPUT_ARTIFACTS = 'artifacts';
export const OUTPUT_OUTPUTS = 'outputs';
export const OUTPUT_FAILED = 'failed';

/** Outputs end up in logs and other jobs: no secret passes (error texts are the risk). */
function set(name: string, value: string): void {
  core.setOutput(name, redact(value));
}

export function setOutputs(result: CommandResult): void {
  set(OUTPUT_RESULT, JSON.stringify(result));
  set(OUTPUT_ARTIFACTS, JSON.stringify(result.artifacts));
  // conda-forge's outputs map, for a validate/promote step or a webservices request.
  const outputs: Record<string, string> = {};
  for (const a of result.artifacts)
    if (a.sha256 && a.status !== 'failed' && a.status !== 'skipped')
      outputs[`${a.subdir}/${a.file}`] = a.sha256;
  set(OUTPUT_OUTPUTS, JSON.stringify(outputs));
  set(OUTPUT_FAILED, String(result.artifacts.filter((a) => a.status === 'failed').length));
}
