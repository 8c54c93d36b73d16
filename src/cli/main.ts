/**
 * The CLI: `conda-oci <command> [options]`. Reads argv by the command's definition and runs it
 * through the same `execute` as the action. Progress goes to stderr; `--json` prints the result
 * document on stdout. Exit status: 0 all succeeded, 1 an artifact failed, 2 usage or
 * configuration error.
 */
import { summarySentence, type CommandResult } from '../commands/report.js';
import { findCommand } from '../core/commands.js';
import { execute, TOOL, type Environment } from '../core/execute.js';
import { InvalidReferenceError } from '../oci/errors.js';
import { redact } from '../redact.js';
import { UsageError } from '../usage.js';
import { describeError } from '../util/describe-error.js';
import { parseCommandLine } from './args.js';
import { commandHelp, overview } from './help.js';
import { stderrReporter, writeStderr } from './reporter.js';

export async function main(argv: string[], environment: Partial<Environment> = {}): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${overview()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${TOOL}\n`);
    return 0;
  }
  const spec = findCommand(name);
  if (!spec) {
    process.stderr.write(`conda-oci: unknown command "${name}"\n\n${overview()}\n`);
    return 2;
  }
  const reporter = environment.reporter ?? stderrReporter();
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(spec, rest, process.env);
  } catch (err) {
    writeStderr(`conda-oci ${name}: ${describeError(err)}`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(`${commandHelp(spec)}\n`);
    return 0;
  }
  try {
    const result = await execute(parsed.options, {
      ...environment,
      reporter,
      sources: { env: process.env, shell: 'cli' },
    });
    if ((parsed.options as { json?: boolean }).json)
      process.stdout.write(`${redact(JSON.stringify(result, null, 2))}\n`);
    printSummary(result);
    return result.exitCode;
  } catch (err) {
    const usage = err instanceof UsageError || err instanceof InvalidReferenceError;
    writeStderr(`conda-oci ${name}: ${describeError(err)}`);
    return usage ? 2 : 1;
  }
}

function printSummary(result: CommandResult): void {
  if (result.command === 'serve') return;
  writeStderr(summarySentence(result));
  const where = (a: { subdir: string; file: string }) => `${a.subdir ? `${a.subdir}/` : ''}${a.file}`;
  for (const a of result.artifacts.filter((x) => x.status === 'skipped'))
    writeStderr(`  skipped ${where(a)}: ${a.error ?? ''}`);
  for (const a of result.artifacts.filter((x) => x.status === 'failed')) {
    const failedChecks = a.checks?.filter((x) => !x.ok) ?? [];
    // Failed checks are the reasons; the error repeats the first one.
    // An error that starts with the file name says it once, after the label.
    const error = (a.error ?? '').startsWith(`${a.file}: `)
      ? a.error!.slice(a.file.length + 2)
      : (a.error ?? '');
    if (failedChecks.length === 0) writeStderr(`  FAILED ${where(a)}: ${error}`);
    else {
      writeStderr(`  FAILED ${where(a)}:`);
      for (const c of failedChecks) writeStderr(`    ${c.name}: ${c.detail}`);
    }
  }
}
