/**
 * How a command's options are declared, once: the CLI parser, the per-command `--help`, the
 * action's input reading and the check of action.yml all read these declarations.
 *
 * An option is one name (a CLI flag `--<name>` and an action input `<name>`), a kind, a parser
 * from text to its typed value, help text, and where its value may come from when it is not
 * given: the environment (both shells) or, in the action, the event that started the workflow.
 */
import { UsageError } from '../usage.js';

/** What a shell hands a parser: one string, several, or a switch. */
export type RawValue = string | string[] | boolean;

/** What defaults may read: the process environment and, in the action, the event payload. */
export interface Sources {
  env: NodeJS.ProcessEnv;
  /** repository_dispatch's client_payload or workflow_dispatch's inputs; undefined in the CLI. */
  payload?: Record<string, unknown>;
  shell: 'cli' | 'action';
}

export type OptionKind =
  /** One value: `--to URL`, input `to`. */
  | 'string'
  /** A switch: `--dry-run`, input `dry-run: true`. */
  | 'flag'
  /** Several values: a repeated `--subdirs S` (or commas), an input split on spaces, commas and lines. */
  | 'list';

/** `required`: must be given; `defaulted`: has a value when not given; `optional`: may be absent. */
export type Presence = 'required' | 'defaulted' | 'optional';

export interface Option<T, P extends Presence = Presence> {
  readonly kind: OptionKind;
  /** The flag and input name, kebab-case. */
  readonly name: string;
  /** Other CLI flags and action inputs for the same option (`--result`, `--subdir`). */
  readonly aliases: readonly string[];
  /** What it means, for `--help` and action.yml. */
  readonly help: string;
  /** The value's placeholder in usage lines, e.g. `<channel>`. */
  readonly placeholder: string;
  readonly example?: string;
  /** The default as people read it, for help and action.yml. */
  readonly defaultText?: string;
  /** `cli` or `action`: offered by one shell only. */
  readonly only?: 'cli' | 'action';
  /** The CLI takes it as positional arguments (upload's files). */
  readonly positional: boolean;
  readonly presence: P;
  /** Masked in every log from the moment it is read. */
  readonly secret: boolean;
  /** Environment variables read when it is not given, in order. */
  readonly env: readonly string[];
  /** The input's default in action.yml, where the workflow supplies one (`${{ github.token }}`). */
  readonly actionDefault?: string;
  /** Turns the shell's value into the typed one; errors name `where` (`--to`, `input to`). */
  parse(raw: RawValue, where: string): T;
  /** The value when nothing was given: read from the shell's surroundings (after `env`). */
  fallback?(sources: Sources): T | undefined;
  /** The value when nothing was given and nothing else supplies one. */
  readonly defaultValue?: T;
}

type ValueOf<O> = O extends Option<infer T, Presence> ? T : never;
type KeysWith<Table, P extends Presence> = {
  [K in keyof Table]: Table[K] extends Option<unknown, infer Q> ? (Q extends P ? K : never) : never;
}[keyof Table];

/** The options a command runs with: defaults applied, so only `optional` ones may be absent. */
export type OptionsOf<Table> = {
  -readonly [K in KeysWith<Table, 'required' | 'defaulted'>]: ValueOf<Table[K]>;
} & {
  -readonly [K in KeysWith<Table, 'optional'>]?: ValueOf<Table[K]>;
};

/** The options a program passes (tests, other code): only `required` ones must be there. */
export type GivenOptionsOf<Table> = { -readonly [K in KeysWith<Table, 'required'>]: ValueOf<Table[K]> } & {
  -readonly [K in KeysWith<Table, 'defaulted' | 'optional'>]?: ValueOf<Table[K]>;
};

export type OptionTable = Record<string, Option<unknown>>;

interface Settings {
  help: string;
  placeholder?: string;
  example?: string;
  aliases?: string[];
  only?: 'cli' | 'action';
  env?: string[];
  secret?: boolean;
  positional?: boolean;
  actionDefault?: string;
}

interface ValueSettings<T> extends Settings {
  /** Applied when nothing is given; shown in help unless `defaultText` says otherwise. */
  default?: T;
  defaultText?: string;
  fallback?: (sources: Sources) => T | undefined;
}

function option<T, P extends Presence>(
  kind: OptionKind,
  name: string,
  settings: ValueSettings<T>,
  presence: P,
  parse: (raw: RawValue, where: string) => T,
): Option<T, P> {
  const { default: value, fallback } = settings;
  return {
    kind,
    name,
    aliases: settings.aliases ?? [],
    help: settings.help,
    placeholder: settings.placeholder ?? (kind === 'flag' ? '' : `<${name}>`),
    ...(settings.example !== undefined ? { example: settings.example } : {}),
    ...(settings.defaultText !== undefined
      ? { defaultText: settings.defaultText }
      : value !== undefined && kind !== 'flag'
        ? { defaultText: String(value) }
        : {}),
    ...(settings.only ? { only: settings.only } : {}),
    ...(settings.actionDefault !== undefined ? { actionDefault: settings.actionDefault } : {}),
    positional: settings.positional === true,
    presence,
    secret: settings.secret === true,
    env: settings.env ?? [],
    parse,
    ...(fallback ? { fallback } : {}),
    ...(value !== undefined ? { defaultValue: value } : {}),
  };
}

/** Parse errors become usage errors that name where the value came from. */
function parsing<T>(parse: (text: string) => T): (raw: RawValue, where: string) => T {
  return (raw, where) => {
    const text = Array.isArray(raw) ? raw[raw.length - 1]! : String(raw);
    try {
      return parse(text);
    } catch (err) {
      throw usageError(where, err);
    }
  };
}

export function usageError(where: string, err: unknown): UsageError {
  if (err instanceof UsageError) return err;
  const message = err instanceof Error ? err.message : String(err);
  // "--concurrency must be a whole number …" reads better than "--concurrency: must be …".
  return new UsageError(/^(must|is|needs) /.test(message) ? `${where} ${message}` : `${where}: ${message}`, {
    cause: err,
  });
}

/** A value: text, or what `parse` makes of it. Present in the options when given or defaulted. */
export function text<T = string>(
  name: string,
  settings: ValueSettings<T> & { parse?: (text: string) => T; required: true },
): Option<T, 'required'>;
export function text<T = string>(
  name: string,
  settings: ValueSettings<T> & { parse?: (text: string) => T; default: T },
): Option<T, 'defaulted'>;
export function text<T = string>(
  name: string,
  settings: ValueSettings<T> & { parse?: (text: string) => T },
): Option<T, 'optional'>;
export function text<T = string>(
  name: string,
  settings: ValueSettings<T> & { parse?: (text: string) => T; required?: boolean },
): Option<T> {
  const parse = settings.parse ?? ((t: string) => t as T);
  return option('string', name, settings, presenceOf(settings), parsing(parse));
}

function presenceOf(settings: { required?: boolean; default?: unknown }): Presence {
  return settings.required ? 'required' : settings.default !== undefined ? 'defaulted' : 'optional';
}

/** A switch; always present in the options (false unless given). */
export function flag(
  name: string,
  settings: Settings & { fallback?: (sources: Sources) => boolean | undefined },
): Option<boolean, 'defaulted'> {
  return option('flag', name, { ...settings, default: false }, 'defaulted', (raw, where) => {
    if (typeof raw === 'boolean') return raw;
    const value = (Array.isArray(raw) ? raw[raw.length - 1]! : raw).trim();
    if (value === '' || /^(false|no|0)$/i.test(value)) return false;
    if (/^(true|yes|1)$/i.test(value)) return true;
    throw new UsageError(`${where} must be true or false, not "${value}"`);
  });
}

/** Several values, each checked by `item`; `combine` turns them into the option's value. */
interface ListSettings<T> extends ValueSettings<T> {
  item?: (text: string) => unknown;
  combine?: (items: string[]) => T;
  /** Split an input (and each flag value) on commas too (default: spaces and lines only). */
  commas?: boolean;
  /** False: hand `combine` each value whole (documents that contain spaces). */
  split?: false;
}

export function list<T = string[]>(
  name: string,
  settings: ListSettings<T> & { required: true },
): Option<T, 'required'>;
export function list<T = string[]>(
  name: string,
  settings: ListSettings<T> & { default: T },
): Option<T, 'defaulted'>;
export function list<T = string[]>(name: string, settings: ListSettings<T>): Option<T, 'optional'>;
export function list<T = string[]>(
  name: string,
  settings: ListSettings<T> & { required?: boolean },
): Option<T> {
  const split = settings.commas ? /[\s,]+/ : /\s+/;
  return option('list', name, settings, presenceOf(settings), (raw, where) => {
    const given = Array.isArray(raw) ? raw : [String(raw)];
    const values = (settings.split === false ? given : given.flatMap((v) => v.split(split))).filter(Boolean);
    try {
      for (const v of values) settings.item?.(v);
      return (settings.combine ? settings.combine(values) : values) as T;
    } catch (err) {
      throw usageError(where, err);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Parsers shared by several commands

/** A whole number in [min, max]; every concurrency-like option uses this one rule. */
export function integerIn(min: number, max: number): (text: string) => number {
  return (t) => {
    const value = Number(t.trim());
    if (!/^\d+$/.test(t.trim()) || value < min || value > max)
      throw new Error(`must be a whole number from ${min} to ${max}, not "${t}"`);
    return value;
  };
}

/** A number in [min, max], fractions allowed (seconds, megabytes). */
export function numberIn(min: number, max: number): (text: string) => number {
  return (t) => {
    const value = Number(t.trim());
    if (t.trim() === '' || !Number.isFinite(value) || value < min || value > max)
      throw new Error(`must be a number from ${min} to ${max}, not "${t}"`);
    return value;
  };
}

/** One of a fixed set of words. */
export function oneOf<W extends string>(words: readonly W[]): (text: string) => W {
  return (t) => {
    const word = t.trim().toLowerCase();
    if ((words as readonly string[]).includes(word)) return word as W;
    throw new Error(`must be ${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}, not "${t}"`);
  };
}

// ---------------------------------------------------------------------------------------------
// Reading a table of options from what a shell was given

/** Looks up what a shell was given for an option (under its name or an alias). */
export type Lookup = (option: Option<unknown>) => { raw: RawValue; where: string } | undefined;

/**
 * The typed options from a table: each option from the shell, else its environment variables,
 * else its fallback; a required option that is still missing is a usage error.
 */
export function readOptions<Table extends OptionTable>(
  table: Table,
  lookup: Lookup,
  sources: Sources,
  describe: (option: Option<unknown>) => string,
): OptionsOf<Table> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(table)) {
    if (spec.only && spec.only !== sources.shell) continue;
    const given = lookup(spec);
    let value: unknown;
    if (given) value = spec.parse(given.raw, given.where);
    else {
      const variable = spec.env.find((name) => sources.env[name]);
      if (variable) value = spec.parse(sources.env[variable]!, `$${variable}`);
      else value = spec.fallback?.(sources) ?? spec.defaultValue;
    }
    if (value === undefined) {
      if (spec.presence === 'required') throw new UsageError(`${describe(spec)} is required`);
      continue;
    }
    out[key] = value;
  }
  return out as OptionsOf<Table>;
}

/**
 * Options a program passed (not a shell): the static defaults fill what is missing. Nothing is
 * read from the environment here; that is the shells' business.
 */
export function withDefaults<Table extends OptionTable>(
  table: Table,
  given: GivenOptionsOf<Table>,
): OptionsOf<Table> {
  const out: Record<string, unknown> = { ...given };
  for (const [key, spec] of Object.entries(table))
    if (out[key] === undefined && spec.defaultValue !== undefined) out[key] = spec.defaultValue;
  return out as OptionsOf<Table>;
}
