/**
 * argv to a command's typed options, by its option declarations (core/options.ts): one flag per
 * option (`--<name>`, and its aliases), positional arguments for the option that takes them.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { AnyCommandSpec } from '../core/command.js';
import type { CommandInput } from '../core/commands.js';
import { readOptions, type Option, type RawValue, type Sources } from '../core/options.js';
import { UsageError } from '../usage.js';

/** The options of a command that the CLI offers. */
export function cliOptions(spec: AnyCommandSpec): Option<unknown>[] {
  return (Object.values(spec.options) as Option<unknown>[]).filter((o) => o.only !== 'action');
}

/** Parses argv for `spec`. `--help` is reported as `help: true`, with no options read. */
export function parseCommandLine(
  spec: AnyCommandSpec,
  argv: string[],
  env: NodeJS.ProcessEnv,
): { help: true } | { help: false; options: CommandInput } {
  const options = cliOptions(spec);
  const config: NonNullable<ParseArgsConfig['options']> = { help: { type: 'boolean', short: 'h' } };
  for (const option of options)
    for (const name of [option.name, ...option.aliases])
      config[name] = {
        type: option.kind === 'flag' ? 'boolean' : 'string',
        multiple: option.kind === 'list',
      };
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: argv,
      options: config,
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError(argvProblem(err, spec, options));
  }
  if (parsed.values.help === true) return { help: true };
  const positional = options.find((o) => o.positional);
  if (parsed.positionals.length > 0 && !positional)
    throw new UsageError(`${spec.name} takes no positional arguments (got "${parsed.positionals[0]}")`);
  const lookup = (option: Option<unknown>): { raw: RawValue; where: string } | undefined => {
    const given = [option.name, ...option.aliases].filter((n) => parsed.values[n] !== undefined);
    const values = given.flatMap((n) => parsed.values[n] as RawValue);
    if (option === positional && parsed.positionals.length > 0) values.push(...parsed.positionals);
    if (values.length === 0) return undefined;
    const where = given.length ? `--${given[0]}` : positional!.placeholder;
    if (option.kind === 'flag') return { raw: values[values.length - 1] as boolean, where };
    return {
      raw: option.kind === 'list' ? (values as string[]) : (values[values.length - 1] as string),
      where,
    };
  };
  const sources: Sources = { env, shell: 'cli' };
  const describe = (o: Option<unknown>) => (o.positional ? `${o.placeholder} (positional)` : `--${o.name}`);
  const read = readOptions(
    Object.fromEntries(options.map((o) => [keyOf(spec, o), o])),
    lookup,
    sources,
    describe,
  );
  return { help: false, options: { ...read, command: spec.name } as CommandInput };
}

function keyOf(spec: AnyCommandSpec, option: Option<unknown>): string {
  return Object.entries(spec.options as Record<string, Option<unknown>>).find(([, o]) => o === option)![0];
}

/** parseArgs' errors, said plainly, with the nearest flag for a typo. */
function argvProblem(err: unknown, spec: AnyCommandSpec, options: Option<unknown>[]): string {
  const code = (err as { code?: string }).code;
  const message = (err as Error).message;
  const flag = /'(-[^']*)'/.exec(message)?.[1]?.replace(/^-+/, '').split('=')[0];
  const names = options.flatMap((o) => [o.name, ...o.aliases]);
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag !== undefined) {
    const near = names
      .filter((n) => editDistance(n, flag) <= 2)
      .sort((a, b) => editDistance(a, flag) - editDistance(b, flag));
    return `${spec.name} has no option --${flag}${near.length ? ` (did you mean --${near[0]}?)` : ''}; see 'conda-oci ${spec.name} --help'`;
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && flag !== undefined) {
    const option = options.find((o) => o.name === flag || o.aliases.includes(flag));
    return option?.kind === 'flag'
      ? `--${flag} is a switch and takes no value`
      : `--${flag} needs a value: --${flag} ${option?.placeholder ?? '<value>'}`;
  }
  return message;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}
