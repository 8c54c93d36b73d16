/** `conda-oci <command> --help` explains every option, from the one definition of each command. */
import { describe, expect, test } from 'vitest';
import { cliOptions } from '../../src/cli/args.js';
import { commandHelp, overview } from '../../src/cli/help.js';
import { COMMANDS } from '../../src/core/commands.js';

describe.each(COMMANDS.map((c) => [c.name, c] as const))('%s --help', (_name, spec) => {
  const help = commandHelp(spec);

  test('names every option the CLI takes, with its meaning', () => {
    for (const option of cliOptions(spec)) {
      expect(help).toContain(option.positional ? option.placeholder : `--${option.name}`);
      // The first words of the meaning (the rest may wrap onto the next line).
      expect(help.replace(/\s+/g, ' ')).toContain(option.help.split(' ').slice(0, 4).join(' '));
      if (option.defaultText)
        expect(help.replace(/\s+/g, ' ')).toContain(
          `default: ${option.defaultText}`.split(' ').slice(0, 3).join(' '),
        );
    }
  });

  test('shows the usage line, the summary and an example, and nothing of another command', () => {
    expect(help).toMatch(new RegExp(`^Usage: conda-oci ${spec.name} `));
    expect(help).toContain(spec.summary.slice(1));
    expect(help).toContain('Examples:');
    for (const other of COMMANDS.filter((c) => c !== spec)) expect(help).not.toContain(`(${other.name})`);
  });
});

test('conda-oci --help lists every command', () => {
  for (const spec of COMMANDS) expect(overview()).toContain(`  ${spec.name.padEnd(10)} ${spec.summary}`);
});
