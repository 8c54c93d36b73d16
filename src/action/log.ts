/**
 * The workflow log. Text that reaches it may come from a feedstock (file names, layer titles) or a
 * registry (error messages): a line of it that starts with `::` would be taken for a workflow
 * command. Such text is printed between `::stop-commands::` markers with a fresh token, which
 * GitHub documents for exactly this (workflow commands, "Stopping and starting workflow commands").
 */
import { randomBytes } from 'node:crypto';
import * as core from '@actions/core';
import type { Reporter } from '../commands/report.js';
import { redact } from '../redact.js';

/** True when some line of `text` could be read as a workflow command. */
function looksLikeCommand(text: string): boolean {
  return text.split(/\r?\n|\r/).some((line) => line.trimStart().startsWith('::'));
}

/** Writes untrusted text to the log as text, never as a command. */
export function logText(text: string): void {
  const safe = redact(text);
  if (!looksLikeCommand(safe)) {
    core.info(safe);
    return;
  }
  const token = randomBytes(16).toString('hex');
  core.info(`::stop-commands::${token}`);
  core.info(safe);
  core.info(`::${token}::`);
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
