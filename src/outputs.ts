/** The step's outputs, for later steps: the result document and handy views of it. */
import * as core from '@actions/core';
import type { CommandResult } from './commands/report.js';

export const OUTPUT_RESULT = 'result';
export const OUTPUT_ARTIFACTS = 'artifacts';
export const OUTPUT_OUTPUTS = 'outputs';
export const OUTPUT_FAILED = 'failed';

export function setOutputs(result: CommandResult): void {
  core.setOutput(OUTPUT_RESULT, JSON.stringify(result));
  core.setOutput(OUTPUT_ARTIFACTS, JSON.stringify(result.artifacts));
  // conda-forge's outputs map, for a validate/promote step or a webservices request.
  const outputs: Record<string, string> = {};
  for (const a of result.artifacts)
    if (a.sha256 && a.status !== 'failed' && a.status !== 'skipped')
      outputs[`${a.subdir}/${a.file}`] = a.sha256;
  core.setOutput(OUTPUT_OUTPUTS, JSON.stringify(outputs));
  core.setOutput(OUTPUT_FAILED, String(result.artifacts.filter((a) => a.status === 'failed').length));
}
