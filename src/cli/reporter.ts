/**
 * Progress and notices on stderr, with secrets cut out. On a terminal, long work shows live
 * lines redrawn in place (log-update); in a log (CI, a file) a line per tenth of each piece.
 */
import { createLogUpdate } from 'log-update';
import type { ProgressUnit, Reporter } from '../commands/report.js';
import { redact } from '../redact.js';
import { progressLine, steppedProgress, type ProgressState } from '../util/progress-text.js';
import { inertLines } from '../util/workflow-text.js';

/** One message on stderr, secrets cut out; in a workflow step (where stderr is the log too) never a command. */
export function writeStderr(line: string): void {
  const text = redact(line);
  process.stderr.write(`${(process.env.GITHUB_ACTIONS === 'true' ? inertLines(text) : [text]).join('\n')}\n`);
}

export function stderrReporter(): Reporter {
  return process.stderr.isTTY && !process.env.CI ? liveReporter() : logReporter();
}

/** Plain lines: every message, and each piece of work at every tenth. */
function logReporter(): Reporter {
  return {
    info: writeStderr,
    warn: (m) => writeStderr(`warning: ${m}`),
    progress: steppedProgress(10, writeStderr),
  };
}

/** Live lines at the bottom of the terminal, redrawn at most ten times a second; messages above them. */
function liveReporter(): Reporter {
  const live = createLogUpdate(process.stderr, { showCursor: true });
  const states = new Map<string, ProgressState>();
  let drawn = 0;
  const draw = (force = false) => {
    const now = Date.now();
    if (!force && now - drawn < 100) return;
    drawn = now;
    live(redact([...states.values()].map((s) => progressLine(s, now)).join('\n')));
  };
  const say = (line: string) => {
    live.clear();
    writeStderr(line);
    draw(true);
  };
  return {
    info: say,
    warn: (m) => say(`warning: ${m}`),
    progress(label, done, total, unit: ProgressUnit = 'bytes') {
      const state = states.get(label) ?? { label, done, total, unit, startedAt: Date.now() };
      Object.assign(state, { done, total });
      states.set(label, state);
      if (done >= total) {
        states.delete(label);
        say(progressLine(state));
      } else draw();
    },
  };
}
