/** Progress and notices on stderr, with secrets cut out; transfers throttled to a line per 10%. */
import type { Reporter } from '../commands/report.js';
import { redact } from '../redact.js';
import { formatBytes } from '../util/format-bytes.js';

export function stderrReporter(): Reporter {
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
