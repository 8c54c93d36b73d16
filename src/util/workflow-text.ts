/**
 * Text for a GitHub Actions log, where a line that starts with `::` is a workflow command.
 * Untrusted text (file names, layer titles, registry messages) is written between
 * `::stop-commands::<token>` and `::<token>::` with a fresh random token, the way GitHub
 * documents for this ("Stopping and starting workflow commands"), so no part of it is obeyed.
 */
import { randomBytes } from 'node:crypto';

/** True when some line of `text` could be read as a workflow command. */
export function looksLikeCommand(text: string): boolean {
  return text.split(/\r?\n|\r/).some((line) => line.trimStart().startsWith('::'));
}

/** The lines to write for `text`: itself, or itself between stop-commands markers. */
export function inertLines(text: string): string[] {
  if (!looksLikeCommand(text)) return [text];
  const token = randomBytes(16).toString('hex');
  return [`::stop-commands::${token}`, text, `::${token}::`];
}
