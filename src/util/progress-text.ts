/**
 * Progress in words, the same in every shell: how much of how much, the rate, and the time left,
 * measured from the first report of each piece of work.
 */
import type { ProgressUnit } from '../commands/report.js';
import { formatBytes } from './format-bytes.js';

export interface ProgressState {
  label: string;
  done: number;
  total: number;
  unit: ProgressUnit;
  startedAt: number;
}

function amount(n: number, unit: ProgressUnit): string {
  return unit === 'bytes' ? formatBytes(n) : n.toLocaleString('en-US');
}

function duration(seconds: number): string {
  if (seconds < 60) return `${Math.max(0, Math.round(seconds))} s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60
    ? `${minutes} min ${Math.round(seconds % 60)} s`
    : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** `numpy.conda: 120 MiB of 300 MiB (40%), 95 MiB/s, 2 s left`. */
export function progressLine(state: ProgressState, now = Date.now()): string {
  const { label, done, total, unit } = state;
  const percent = total > 0 ? Math.floor((done / total) * 100) : 100;
  const elapsed = (now - state.startedAt) / 1000;
  const parts = [`${label}: ${amount(done, unit)} of ${amount(total, unit)} (${percent}%)`];
  if (elapsed >= 0.5 && done > 0) {
    const rate = done / elapsed;
    parts.push(unit === 'bytes' ? `${formatBytes(rate)}/s` : `${Math.round(rate).toLocaleString('en-US')}/s`);
    if (done < total) parts.push(`${duration((total - done) / rate)} left`);
    else parts.push(`in ${duration(elapsed)}`);
  }
  return parts.join(', ');
}

/**
 * A `progress` for logs: writes each piece of work's line at every `1/steps` of it (and at its
 * end), never more often.
 */
export function steppedProgress(
  steps: number,
  write: (line: string) => void,
): (label: string, done: number, total: number, unit?: ProgressUnit) => void {
  const states = new Map<string, ProgressState & { step: number }>();
  return (label, done, total, unit = 'bytes') => {
    let state = states.get(label);
    if (!state) states.set(label, (state = { label, done, total, unit, startedAt: Date.now(), step: -1 }));
    const step = total > 0 ? Math.floor((done / total) * steps) : steps;
    if (step === state.step && done !== total) return;
    Object.assign(state, { done, total, step });
    write(progressLine(state));
    if (done >= total) states.delete(label);
  };
}
