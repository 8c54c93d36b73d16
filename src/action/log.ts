/**
 * The workflow log. Text that reaches it may come from a feedstock (file names, layer titles) or a
 * registry (error messages): it is written so that no line of it becomes a workflow command
 * (util/workflow-text.ts).
 */
import * as core from '@actions/core';
import type { Reporter } from '../commands/report.js';
import { redact } from '../redact.js';
import { inertLines } from '../util/workflow-text.js';

/** Writes untrusted text to the log as text, never as a command. */
export function logText(text: string): void {
  for (const line of inertLines(redact(text))) core.info(line);
}

export function actionsReporter(): Reporter {
  const lastStep = new Map<string, number>();
  return {
    info: logText,
    // core.warning escapes newlines and `%` in its message: one annotation, never a command.
    warn: (m) => core.warning(redact(m)),
    progress(label, done, total) {
      const step = Math.floor((done / total) * 4);
      if (lastStep.get(label) === step && done !== total) return;
      lastStep.set(label, step);
      logText(`${label}: ${Math.round((done / total) * 100)}% of ${(total / 1048576).toFixed(1)} MiB`);
    },
  };
}
