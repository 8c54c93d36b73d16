#!/usr/bin/env node
// The whole flow on the fixture packages, offline: upload to a staging channel on disk, validate
// (the requester proven by a conda-forge feedstock token), promote to a production channel on
// disk, clean staging, build repodata, serve the channel over HTTP, and solve and download from it
// with rattler's solver. Uses the bundled CLI (dist/cli/index.js), exactly as users run it.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes, scryptSync } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
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
// A feedstock-tokens registry as conda-smithy registers tokens: tokens/<feedstock>.json holding
// scrypt(token, salt). The token itself is what the feedstock's CI would hold as a secret.
const feedstock = 'demo-feedstock';
const feedstockToken = randomBytes(24).toString('hex');
const salt = randomBytes(64);
mkdirSync(join(demo, 'feedstock-tokens', 'tokens'), { recursive: true });
writeFileSync(
  join(demo, 'feedstock-tokens', 'tokens', `${feedstock}.json`),
  JSON.stringify({
    tokens: [
      {
        salt: salt.toString('hex'),
        hashed_token: scryptSync(feedstockToken, salt, 256, { N: 16384, r: 8, p: 1 }).toString('hex'),
      },
    ],
  }),
);

function step(title, args) {
  process.stdout.write(
    `\n$ conda-oci ${args.map((a) => (a.includes(root) ? relative(root, a.replace(/^oci-layout:/, '')) : a)).join(' ')}\n`,
  );
  const run = spawnSync(process.execPath, [cli, ...args], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, CONDA_OCI_FEEDSTOCK_TOKEN: feedstockToken },
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
  '--feedstock-tokens',
  join(demo, 'feedstock-tokens'),
  '--feedstock',
  feedstock,
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
step('repodata', ['repodata', '--channel', production, '--cache-dir', join(demo, 'repodata-cache')]);
await serveAndSolve();

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

/** `conda-oci serve` over production; rattler's solver solves from it; the packages download. */
async function serveAndSolve() {
  process.stdout.write(
    `\n$ conda-oci serve --channel ${relative(root, join(demo, 'production'))} --listen 127.0.0.1:0\n`,
  );
  const server = spawn(process.execPath, [cli, 'serve', '--channel', production, '--listen', '127.0.0.1:0'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    const url = await new Promise((resolve, reject) => {
      let seen = '';
      const look = (chunk) => {
        seen += chunk;
        const found = /at (http:\/\/127\.0\.0\.1:\d+\S*)/.exec(seen);
        if (found) resolve(found[1].replace(/\/$/, ''));
      };
      server.stdout.on('data', look);
      server.stderr.on('data', look);
      server.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${seen}`)));
    });
    process.stdout.write(`serving at ${url}\n`);
    const rattler = createRequire(import.meta.url)('@conda-org/rattler');
    const solved = await rattler.simpleSolve(['demo-pkg >=1.2.4'], [url], ['linux-64', 'noarch'], []);
    process.stdout.write(`\nrattler solved demo-pkg >=1.2.4 from ${url}:\n`);
    for (const record of solved) {
      const response = await fetch(record.url);
      const bytes = Buffer.from(await response.arrayBuffer());
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const ok = response.ok && (!record.sha256 || record.sha256 === sha256);
      process.stdout.write(
        `  ${record.packageName} ${record.version} ${record.build}: ${bytes.length} bytes, sha256 ${ok ? 'matches repodata' : 'DOES NOT MATCH'}\n`,
      );
      if (!ok) process.exitCode = 1;
    }
  } finally {
    server.kill('SIGTERM');
  }
}
