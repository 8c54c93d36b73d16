/**
 * The action's inputs, read by the command's definition into the same typed options the CLI
 * builds. `command` names the command; each option is the input of its name (or an alias);
 * defaults may come from the environment and from the event that started the run. Nothing is
 * read at module load.
 */
import * as core from '@actions/core';
import { context } from '@actions/github';
import type { AnyCommandSpec } from '../core/command.js';
import { ACTION_COMMANDS, type CommandInput } from '../core/commands.js';
import { readOptions, type Option, type OptionTable, type Sources } from '../core/options.js';
import { UsageError } from '../usage.js';

export interface ActionInputs {
  options: CommandInput;
  /** The environment and event the options were read from (default: this process's, no event). */
  sources?: Sources;
}

export function actionOptions(spec: AnyCommandSpec): OptionTable {
  return Object.fromEntries(Object.entries(spec.options).filter(([, o]) => o.only !== 'cli'));
}

function input(name: string): string | undefined {
  const value = core.getInput(name).trim();
  return value === '' ? undefined : value;
}

/** The payload of the event that started the run: repository_dispatch's client_payload, or workflow_dispatch's inputs. */
function eventPayload(): Record<string, unknown> {
  const payload = context.payload as Record<string, unknown>;
  const inner = (payload.client_payload ?? payload.inputs) as Record<string, unknown> | undefined;
  return inner && typeof inner === 'object' ? inner : {};
}

export function readInputs(env: NodeJS.ProcessEnv = process.env): ActionInputs {
  const name = input('command');
  const names = ACTION_COMMANDS.map((c) => c.name);
  if (!name) throw new UsageError(`input command is required: ${names.join(', ')}`);
  const spec = ACTION_COMMANDS.find((c) => c.name === name);
  if (!spec)
    throw new UsageError(
      `input command must be ${names.slice(0, -1).join(', ')} or ${names.at(-1)}, not "${name}"`,
    );
  const sources: Sources = { env, payload: eventPayload(), shell: 'action' };
  const lookup = (option: Option<unknown>) => {
    for (const n of [option.name, ...option.aliases]) {
      const value = input(n);
      if (value === undefined) continue;
      if (option.secret) core.setSecret(value);
      return { raw: value, where: `input ${n}` };
    }
    return undefined;
  };
  const options = readOptions(
    actionOptions(spec),
    lookup,
    sources,
    (o) => `input ${o.name} (command ${name})`,
  );
  return { options: { ...options, command: name } as CommandInput, sources };
}
