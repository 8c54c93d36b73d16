/**
 * The workflow log. Text that reaches it may come from a feedstock (file names, layer titles) or a
 * registry (error messages): it is written so that no line of it becomes a workflow command
 * (util/workflow-text.ts).
 */
import * as core from '@actions/core';
import type { Reporter } from '../commands/report.js';
import { steppedProgress } from '../util/progress-text.js';
import { redact } from '../redact.js';
import { inertLines } from '../util/workflow-text.js';

/** Writes untrusted text to the log as text, never as a command. */
export function logText(text: string): void {
  for (const line of inertLines(redact(text))) core.info(line);
}

export function actionsReporter(): Reporter {
  return {
    info: logText,
    // core.warning escapes newlines and `%` in its message: one annotation, never a command.
    warn: (m) => core.warning(redact(m)),
    // A line per quarter of each piece of work, with its rate and the time left.
    progress: steppedProgress(4, logText),
  };
}
