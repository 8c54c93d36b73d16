/**
 * The CLI: `conda-oci <command> [options]`. Parses argv into the same typed options the action
 * builds from its inputs and runs them through `execute`. Progress goes to stderr; `--json`
 * prints the result document on stdout. Exit status: 0 all succeeded, 1 an artifact failed,
 * 2 usage or configuration error.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { mergeRequests, parseArtifactDocument, parseArtifactFlag } from './commands/artifact-list.js';
import { parseDuration } from './commands/clean.js';
import { parseOwners } from './commands/owners.js';
import { type CommandResult, type Reporter } from './commands/report.js';
import { formatBytes } from './util/format-bytes.js';
import { execute, TOOL } from './execute.js';
import { InvalidReferenceError } from './oci/errors.js';
import { describeError } from './util/describe-error.js';
import type { CommandOptions, CommonOptions } from './options.js';
import { redact } from './redact.js';
import { parseLayout, type Layout } from './commands/v0-compat.js';
import { SERVE_SUMMARY, serveMain } from './serve/cli.js';
import { UsageError } from './usage.js';

type Flags = NonNullable<ParseArgsConfig['options']>;

const COMMON: Flags = {
  username: { type: 'string' },
  password: { type: 'string' },
  'plain-http': { type: 'boolean' },
  concurrency: { type: 'string' },
  result: { type: 'string' },
  json: { type: 'boolean' },
  label: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

/** `--layout v1|both`, for the commands that write or check package names. */
const LAYOUT: Flags = { layout: { type: 'string' } };

const SELECTION: Flags = {
  artifact: { type: 'string', multiple: true },
  artifacts: { type: 'string' },
  'record-key': { type: 'string' },
};

interface CommandSpec {
  usage: string;
  summary: string;
  flags: Flags;
  build(values: Record<string, unknown>, positionals: string[]): CommandOptions;
}

const COMMANDS: Record<string, CommandSpec> = {
  upload: {
    usage:
      'upload <file|glob>... --to <channel> [--label L] [--source URL] [--revision SHA] [--layout v1|both] [--result FILE] [--json]',
    summary: 'push built .conda/.tar.bz2 artifacts to a (staging) channel',
    flags: {
      to: { type: 'string' },
      source: { type: 'string' },
      revision: { type: 'string' },
      run: { type: 'string' },
      ...LAYOUT,
    },
    build: (v, files) => {
      if (files.length === 0) throw new UsageError('upload needs at least one file or glob');
      return {
        command: 'upload',
        files,
        to: required(v, 'to'),
        ...optional(v, ['source', 'revision', 'run']),
        ...layout(v),
        ...common(v),
      };
    },
  },
  validate: {
    usage:
      'validate --from <channel> (--artifact <subdir>/<file>=<sha256>)... | --artifacts FILE\n' +
      '         [--owners FILE --feedstock NAME] [--production <channel>] [--delete-failed] [--record-key KEY] [--layout v1|both]\n' +
      '         [--result FILE] [--json]',
    summary: 'prove staged artifacts are exactly what the feedstock built and may publish',
    flags: {
      from: { type: 'string' },
      owners: { type: 'string' },
      feedstock: { type: 'string' },
      production: { type: 'string' },
      'delete-failed': { type: 'boolean' },
      ...SELECTION,
      ...LAYOUT,
    },
    build: (v) => {
      if ((v.owners === undefined) !== (v.feedstock === undefined))
        throw new UsageError('--owners and --feedstock go together');
      return {
        command: 'validate',
        from: required(v, 'from'),
        artifacts: selection(v),
        ...(v.owners
          ? {
              owners: parseOwners(readJson(String(v.owners)), String(v.owners)),
              feedstock: String(v.feedstock),
            }
          : {}),
        ...optional(v, ['production']),
        deleteFailed: v['delete-failed'] === true,
        ...recordKey(v),
        ...layout(v),
        ...common(v),
      };
    },
  },
  promote: {
    usage:
      'promote --from <channel> --to <channel> (--artifact <subdir>/<file>=<sha256>)... | --artifacts FILE\n' +
      '        [--delete-staged] [--record-key KEY] [--layout v1|both] [--result FILE] [--json]',
    summary: 'copy validated artifacts from staging to production',
    flags: {
      from: { type: 'string' },
      to: { type: 'string' },
      'delete-staged': { type: 'boolean' },
      ...SELECTION,
      ...LAYOUT,
    },
    build: (v) => ({
      command: 'promote',
      from: required(v, 'from'),
      to: required(v, 'to'),
      artifacts: selection(v),
      deleteStaged: v['delete-staged'] === true,
      ...recordKey(v),
      ...layout(v),
      ...common(v),
    }),
  },
  clean: {
    usage:
      'clean --channel <channel> --older-than <duration, e.g. 2h> [--dry-run] [--layout v1|both] [--json]',
    summary: 'delete staged artifacts older than a given age',
    flags: {
      channel: { type: 'string' },
      'older-than': { type: 'string' },
      'dry-run': { type: 'boolean' },
      ...LAYOUT,
    },
    build: (v) => ({
      command: 'clean',
      channel: required(v, 'channel'),
      olderThanMs: parseDuration(required(v, 'older-than')),
      dryRun: v['dry-run'] === true,
      ...layout(v),
      ...common(v),
    }),
  },
  repodata: {
    usage:
      'repodata --channel <channel> [--subdir S]... [--patch-instructions FILE] [--cache-dir DIR] [--verify]\n' +
      '         [--layout v1|both] [--result FILE] [--json]',
    summary: 'regenerate repodata.json, current_repodata.json, run_exports.json and channeldata.json',
    flags: {
      channel: { type: 'string' },
      subdir: { type: 'string', multiple: true },
      'patch-instructions': { type: 'string' },
      'cache-dir': { type: 'string' },
      verify: { type: 'boolean' },
      ...LAYOUT,
    },
    build: (v) => {
      const subdirs = ((v.subdir as string[] | undefined) ?? [])
        .flatMap((s) => s.split(/[\s,]+/))
        .filter(Boolean);
      return {
        command: 'repodata',
        channel: required(v, 'channel'),
        ...(subdirs.length ? { subdirs } : {}),
        ...(typeof v['patch-instructions'] === 'string'
          ? { patchInstructions: v['patch-instructions'] }
          : {}),
        ...(typeof v['cache-dir'] === 'string' ? { cacheDir: v['cache-dir'] } : {}),
        ...(v.verify ? { verify: true } : {}),
        ...layout(v),
        ...common(v),
      };
    },
  },
};

function required(values: Record<string, unknown>, flag: string): string {
  const value = values[flag];
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${flag} is required`);
  return value;
}

function optional(values: Record<string, unknown>, flags: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const flag of flags) if (typeof values[flag] === 'string') out[flag] = values[flag];
  return out;
}

function common(values: Record<string, unknown>): CommonOptions & { label?: string } {
  const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64)) {
    throw new UsageError('--concurrency must be a whole number from 1 to 64');
  }
  const env = process.env;
  return {
    ...(typeof values.username === 'string'
      ? { username: values.username }
      : env.CONDA_OCI_USERNAME
        ? { username: env.CONDA_OCI_USERNAME }
        : {}),
    ...(typeof values.password === 'string'
      ? { password: values.password }
      : env.CONDA_OCI_PASSWORD
        ? { password: env.CONDA_OCI_PASSWORD }
        : {}),
    ...(values['plain-http'] ? { plainHttp: true } : {}),
    ...(concurrency ? { concurrency } : {}),
    ...(typeof values.result === 'string' ? { resultFile: values.result } : {}),
    ...(values.json ? { json: true } : {}),
    ...(typeof values.label === 'string' ? { label: values.label } : {}),
  };
}

function layout(values: Record<string, unknown>): { layout?: Layout } {
  if (values.layout === undefined) return {};
  try {
    return { layout: parseLayout(String(values.layout), '--layout') };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function recordKey(values: Record<string, unknown>): { recordKey?: string } {
  const key =
    typeof values['record-key'] === 'string' ? values['record-key'] : process.env.CONDA_OCI_RECORD_KEY;
  return key ? { recordKey: key } : {};
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`${path} is not JSON`);
  }
}

function selection(values: Record<string, unknown>) {
  const flags = ((values.artifact as string[] | undefined) ?? []).map(parseArtifactFlag);
  const file =
    typeof values.artifacts === 'string'
      ? parseArtifactDocument(readJson(values.artifacts), values.artifacts)
      : [];
  const all = mergeRequests([flags, file]);
  if (all.length === 0)
    throw new UsageError('name the artifacts with --artifact <subdir>/<file>=<sha256> or --artifacts FILE');
  return all;
}

function help(): string {
  const lines = [
    'Usage: conda-oci <command> [options]',
    '',
    'Publish conda packages to OCI registries.',
    '',
    'Commands:',
  ];
  for (const [name, spec] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${spec.summary}`);
  lines.push(`  ${'serve'.padEnd(10)} ${SERVE_SUMMARY}`);
  lines.push(
    '',
    'Channels: oci://<host>[:<port>]/<path>[/label/<label>] or oci-layout:<dir>',
    'Credentials: --username/--password, CONDA_OCI_USERNAME/CONDA_OCI_PASSWORD, or the docker config auths.',
    'Exit status: 0 all artifacts succeeded, 1 an artifact failed, 2 usage or configuration error.',
    '',
    "Run 'conda-oci <command> --help' for a command's options.",
  );
  return lines.join('\n');
}

function commandHelp(name: string, spec: CommandSpec): string {
  return [
    `Usage: conda-oci ${spec.usage}`,
    '',
    spec.summary,
    '',
    'Common options: --username U --password P (or CONDA_OCI_USERNAME/CONDA_OCI_PASSWORD) --plain-http --concurrency N --label L',
    `(${name})`,
  ].join('\n');
}

/** Progress on stderr, throttled for transfers, with secrets cut out. */
function stderrReporter(): Reporter {
  const last = new Map<string, number>();
  const write = (line: string) => process.stderr.write(`${redact(line)}\n`);
  return {
    info: write,
    warn: (m) => write(`warning: ${m}`),
    progress(label, done, total) {
      const step = Math.floor((done / total) * 10);
      if (last.get(label) === step && done !== total) return;
      last.set(label, step);
      write(`${label}: ${formatBytes(done)} of ${formatBytes(total)} (${Math.round((done / total) * 100)}%)`);
    },
  };
}

function printSummary(result: CommandResult): void {
  const counts = Object.entries(result.summary)
    .filter(([k]) => k !== 'total')
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
  process.stderr.write(
    `${result.command}: ${result.summary.total} artifact(s): ${counts || 'nothing to do'}\n`,
  );
  for (const a of result.artifacts.filter((x) => x.status === 'failed')) {
    process.stderr.write(redact(`  FAILED ${a.subdir}/${a.file}: ${a.error ?? ''}\n`));
    for (const c of a.checks?.filter((x) => !x.ok) ?? [])
      process.stderr.write(redact(`    ${c.name}: ${c.detail}\n`));
  }
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${help()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${TOOL}\n`);
    return 0;
  }
  // A long-running server, not a command with a result document (and not an action command).
  if (name === 'serve') return serveMain(rest);
  const spec = COMMANDS[name];
  if (!spec) {
    process.stderr.write(`conda-oci: unknown command "${name}"\n\n${help()}\n`);
    return 2;
  }
  let options: CommandOptions;
  try {
    const parsed = parseArgs({
      args: rest,
      options: { ...COMMON, ...spec.flags },
      allowPositionals: true,
      strict: true,
    });
    if (parsed.values.help) {
      process.stdout.write(`${commandHelp(name, spec)}\n`);
      return 0;
    }
    options = spec.build(parsed.values, parsed.positionals);
  } catch (err) {
    process.stderr.write(redact(`conda-oci ${name}: ${(err as Error).message}\n`));
    return 2;
  }
  try {
    const result = await execute(options, { reporter: stderrReporter() });
    const document = redact(JSON.stringify(result, null, 2));
    if (options.resultFile) writeFileSync(options.resultFile, `${document}\n`);
    if (options.json) process.stdout.write(`${document}\n`);
    printSummary(result);
    return result.exitCode;
  } catch (err) {
    const usage = err instanceof UsageError || err instanceof InvalidReferenceError;
    process.stderr.write(redact(`conda-oci ${name}: ${describeError(err)}\n`));
    return usage ? 2 : 1;
  }
}
