/** Progress and notices on stderr, with secrets cut out; transfers throttled to a line per 10%. */
import type { Reporter } from '../commands/report.js';
import { redact } from '../redact.js';
import { formatBytes } from '../util/format-bytes.js';
import { inertLines } from '../util/workflow-text.js';

/** One message on stderr, secrets cut out; in a workflow step (where stderr is the log too) never a command. */
export function writeStderr(line: string): void {
  const text = redact(line);
  process.stderr.write(`${(process.env.GITHUB_ACTIONS === 'true' ? inertLines(text) : [text]).join('\n')}\n`);
}

export function stderrReporter(): Reporter {
  const last = new Map<string, number>();
  const write = writeStderr;
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
