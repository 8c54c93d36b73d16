/**
 * action.yml's inputs, written from the command definitions: one input per option name across the
 * action's commands (what it means per command), plus `command`. The unit test compares this with
 * the committed file; `UPDATE_ACTION_YML=1 npx vitest run action-yml` rewrites the file's inputs.
 */
import { actionOptions } from '../../src/action/inputs.js';
import { ACTION_COMMANDS } from '../../src/core/commands.js';
import type { Option } from '../../src/core/options.js';

/** YAML scalars quoted the way prettier writes them: single quotes, double when that avoids escapes. */
function quote(text: string): string {
  if (text.includes("'") && !text.includes('"') && !text.includes('\\')) return `"${text}"`;
  return `'${text.replace(/'/g, "''")}'`;
}

export function inputsYaml(): string {
  // Per input: the commands that take it, and what it means (and defaults to) for each of them.
  const byName = new Map<
    string,
    { option: Option<unknown>; commands: string[]; meanings: Map<string, string[]> }
  >();
  for (const spec of ACTION_COMMANDS) {
    for (const option of Object.values(actionOptions(spec))) {
      const entry = byName.get(option.name) ?? {
        option,
        commands: [],
        meanings: new Map<string, string[]>(),
      };
      const defaults = option.defaultText && option.kind !== 'flag' ? ` Default: ${option.defaultText}.` : '';
      const meaning = `${option.help}${defaults}`;
      entry.commands.push(spec.name);
      entry.meanings.set(meaning, [...(entry.meanings.get(meaning) ?? []), spec.name]);
      byName.set(option.name, entry);
    }
  }
  const all = ACTION_COMMANDS.map((c) => c.name);
  const lines = [
    'inputs:',
    '  command:',
    `    description: ${quote(`What to do: ${all.slice(0, -1).join(', ')} or ${all.at(-1)}.`)}`,
    '    required: true',
  ];
  for (const [name, { option, commands, meanings }] of byName) {
    const scope = (where: string[]) => (where.length === all.length ? '' : `${where.join('/')}: `);
    const meaning =
      meanings.size === 1
        ? `${scope(commands)}${[...meanings.keys()][0]!}`
        : [...meanings].map(([text, where]) => `${scope(where)}${text}`).join(' ');
    const aliases = option.aliases.length ? ` Also accepted as ${option.aliases.join(', ')}.` : '';
    lines.push(`  ${name}:`, `    description: ${quote(`${meaning}${aliases}`)}`, '    required: false');
    const value = option.actionDefault ?? (option.kind === 'flag' ? 'false' : undefined);
    if (value !== undefined) lines.push(`    default: ${value.startsWith('$') ? value : quote(value)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The `inputs:` block of an action.yml text (up to the next top-level key). */
export function inputsBlock(actionYml: string): { start: number; end: number; text: string } {
  const start = actionYml.indexOf('\ninputs:\n') + 1;
  const next = actionYml.slice(start + 1).search(/\n[a-z]/);
  const end = next === -1 ? actionYml.length : start + 1 + next + 1;
  return { start, end, text: actionYml.slice(start, end) };
}
