#!/usr/bin/env node
// The whole flow on the fixture packages, with no server: upload to a staging channel on disk,
// validate, promote to a production channel on disk, clean staging. Uses the bundled CLI
// (dist/cli/index.js), exactly as users run it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'cli', 'index.js');
const fixtures = join(root, '__fixtures__', 'packages');
const demo = join(root, '.demo');
rmSync(demo, { recursive: true, force: true });
mkdirSync(demo, { recursive: true });
const staging = `oci-layout:${join(demo, 'staging')}`;
const production = `oci-layout:${join(demo, 'production')}`;
const packages = readdirSync(fixtures)
  .filter((f) => f.endsWith('.conda') || f.endsWith('.tar.bz2'))
  .map((f) => join(fixtures, f));
// A demo key; in real use this is a secret that only the validating side holds.
const key = 'demo-record-key';
writeFileSync(join(demo, 'owners.json'), JSON.stringify({ allow_new_names: true, packages: {} }, null, 2));

function step(title, args) {
  process.stdout.write(
    `\n$ conda-oci ${args.map((a) => (a.includes(root) ? relative(root, a.replace(/^oci-layout:/, '')) : a)).join(' ')}\n`,
  );
  const run = spawnSync(process.execPath, [cli, ...args], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (run.status !== 0) {
    process.stderr.write(`${title} exited with ${run.status}\n`);
    process.exit(run.status ?? 1);
  }
}

step('upload', ['upload', ...packages, '--to', staging, '--result', join(demo, 'upload.json')]);
step('validate', [
  'validate',
  '--from',
  staging,
  '--artifacts',
  join(demo, 'upload.json'),
  '--production',
  production,
  '--owners',
  join(demo, 'owners.json'),
  '--feedstock',
  'demo',
  '--record-key',
  key,
  '--result',
  join(demo, 'validate.json'),
]);
step('promote', [
  'promote',
  '--from',
  staging,
  '--to',
  production,
  '--artifacts',
  join(demo, 'upload.json'),
  '--record-key',
  key,
  '--delete-staged',
  '--result',
  join(demo, 'promote.json'),
]);
step('promote again (a no-op)', [
  'promote',
  '--from',
  staging,
  '--to',
  production,
  '--artifacts',
  join(demo, 'upload.json'),
  '--record-key',
  key,
]);
step('clean', ['clean', '--channel', staging, '--older-than', '2h']);

process.stdout.write(`\nProduction channel ${relative(root, join(demo, 'production'))}/ now holds:\n`);
function walk(dir, depth = 0) {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    if (!entry.isDirectory() || entry.name === 'blobs' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    const isRepo = readdirSync(path).includes('oci-layout');
    process.stdout.write(`${'  '.repeat(depth + 1)}${entry.name}${isRepo ? '  (OCI image layout)' : '/'}\n`);
    if (!isRepo) walk(path, depth + 1);
  }
}
walk(join(demo, 'production'));
process.stdout.write(`\nResult documents: ${relative(root, demo)}/{upload,validate,promote}.json\n`);
