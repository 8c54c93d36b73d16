/**
 * `npm run demo` as a new user runs it: the bundled CLI through the whole flow, ending in a solve
 * and download through `serve`. Asserts what it leaves on disk, not what it prints.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { EXPECTED } from '../helpers/fixtures.js';

const root = join(import.meta.dirname, '..', '..');

test('the demo runs to its end: every fixture promoted, repodata built, the solve downloads what repodata lists', () => {
  const run = spawnSync(process.execPath, [join(root, 'scripts', 'demo.mjs')], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect(run.status, run.stderr).toBe(0);
  const promoted = JSON.parse(readFileSync(join(root, '.demo', 'promote.json'), 'utf8')) as {
    artifacts: { file: string; status: string }[];
  };
  const files = new Set(EXPECTED.map((e) => e.filename));
  expect(promoted.artifacts.length).toBeGreaterThan(0);
  for (const a of promoted.artifacts) {
    expect(files.has(a.file)).toBe(true);
    expect(['promoted', 'skipped']).toContain(a.status);
  }
  for (const subdir of ['linux-64', 'noarch'])
    expect(existsSync(join(root, '.demo', 'production', subdir, 'mrepodata.json', 'index.json'))).toBe(true);
  // Three packages solved, each downloaded with the sha256 repodata lists.
  expect(run.stdout.match(/sha256 matches repodata/g)).toHaveLength(3);
}, 180_000);
