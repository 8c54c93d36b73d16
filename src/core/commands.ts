/** Every command, in the order `conda-oci --help` lists them. */
import { cleanCommand } from '../commands/clean.js';
import { promoteCommand } from '../commands/promote.js';
import { repodataCommand } from '../commands/repodata-command.js';
import { serveCommand } from '../commands/serve.js';
import { uploadCommand } from '../commands/upload.js';
import { validateCommand } from '../commands/validate.js';
import { UsageError } from '../usage.js';
import type { AnyCommandSpec, GivenCommand } from './command.js';

export const COMMANDS = [
  uploadCommand,
  validateCommand,
  promoteCommand,
  cleanCommand,
  repodataCommand,
  serveCommand,
] as const;

/** The options a program passes to `execute`: one command's, with its name. */
export type CommandInput = GivenCommand<(typeof COMMANDS)[number]>;
export type CommandName = CommandInput['command'];

/** The commands the action runs (serve is a long-running server: CLI only). */
export const ACTION_COMMANDS: readonly AnyCommandSpec[] = COMMANDS.filter((c) => c.only !== 'cli');

export function findCommand(name: string): AnyCommandSpec | undefined {
  return (COMMANDS as readonly AnyCommandSpec[]).find((c) => c.name === name);
}

export function commandSpec(name: string): AnyCommandSpec {
  const spec = findCommand(name);
  if (!spec)
    throw new UsageError(`unknown command "${name}": expected ${COMMANDS.map((c) => c.name).join(', ')}`);
  return spec;
}
