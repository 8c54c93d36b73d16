/** `conda-oci --help` and `conda-oci <command> --help`, written from the command definitions. */
import type { AnyCommandSpec } from '../core/command.js';
import { COMMANDS } from '../core/commands.js';
import type { Option } from '../core/options.js';
import { cliOptions } from './args.js';

const WIDTH = 100;

export function overview(): string {
  const lines = [
    'Usage: conda-oci <command> [options]',
    '',
    'Publish conda packages to OCI registries: upload to staging, validate, promote to production,',
    'regenerate repodata, serve a channel to any conda client.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`),
    '',
    'Channels: oci://<host>[:<port>]/<path>[/label/<label>] or oci-layout:<dir>',
    'Credentials: --username/--password, CONDA_OCI_USERNAME/CONDA_OCI_PASSWORD, or the docker config auths.',
    'Exit status: 0 all artifacts succeeded, 1 an artifact failed, 2 usage or configuration error.',
    '',
    "Run 'conda-oci <command> --help' for a command's options.",
  ];
  return lines.join('\n');
}

export function usageLine(spec: AnyCommandSpec): string {
  const options = cliOptions(spec);
  const positional = options.find((o) => o.positional);
  const required = options.filter((o) => o.presence === 'required' && !o.positional);
  return [
    `conda-oci ${spec.name}`,
    ...(positional ? [positional.placeholder] : []),
    ...required.map((o) => `--${o.name} ${o.placeholder}`),
    '[options]',
  ].join(' ');
}

export function commandHelp(spec: AnyCommandSpec): string {
  const options = cliOptions(spec);
  const lines = [`Usage: ${usageLine(spec)}`, '', `${capitalise(spec.summary)}.`];
  if (spec.description) lines.push('', ...wrap(spec.description, WIDTH));
  lines.push('', 'Options:');
  for (const option of options) lines.push(...describeOption(option));
  lines.push(`  ${'-h, --help'.padEnd(30)} this text`);
  if (spec.examples?.length) lines.push('', 'Examples:', ...spec.examples.map((e) => `  ${e}`));
  return lines.join('\n');
}

function describeOption(option: Option<unknown>): string[] {
  const names = [option.name, ...option.aliases].map((n) => `--${n}`).join(', ');
  const head = option.positional
    ? `${option.placeholder}`
    : `${names}${option.placeholder ? ` ${option.placeholder}` : ''}`;
  const notes: string[] = [];
  if (option.presence === 'required') notes.push('required');
  if (option.kind === 'list' && !option.positional) notes.push('repeatable');
  if (option.defaultText) notes.push(`default: ${option.defaultText}`);
  if (option.env.length) notes.push(`env: ${option.env.map((v) => `$${v}`).join(', ')}`);
  if (option.example) notes.push(`e.g. ${option.example}`);
  const text = `${option.help}${notes.length ? ` (${notes.join('; ')})` : ''}`;
  const body = wrap(text, WIDTH - 33);
  if (head.length > 30) return [`  ${head}`, ...body.map((l) => `${' '.repeat(33)}${l}`)];
  return [`  ${head.padEnd(30)} ${body[0] ?? ''}`, ...body.slice(1).map((l) => `${' '.repeat(33)}${l}`)];
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}
