#!/usr/bin/env node
// Makes sure the external tools the test suites use are installed: the CNCF distribution
// registry (Debian/Ubuntu package `docker-registry`), skopeo, cph (conda-package-handling) and
// zstd. Installs the missing ones with apt-get when running as root; otherwise prints the
// command and exits 2. Plain Node, no dependencies: `npm test` runs it before vitest.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Executable -> the apt package that provides it. */
const TOOLS = [
  ['docker-registry', 'docker-registry'],
  ['skopeo', 'skopeo'],
  ['cph', 'conda-package-handling'],
  ['zstd', 'zstd'],
];
const PACKAGES = TOOLS.map(([, pkg]) => pkg);
const INSTALL = `apt-get install -y ${PACKAGES.join(' ')}`;

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

function missingTools() {
  return TOOLS.filter(([bin]) => !onPath(bin));
}

function run(command, args) {
  process.stderr.write(`ensure-tools: $ ${[command, ...args].join(' ')}\n`);
  const result = spawnSync(command, args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

const missing = missingTools();
if (missing.length === 0) process.exit(0);

const names = missing.map(([bin, pkg]) => (bin === pkg ? bin : `${bin} (${pkg})`)).join(', ');
process.stderr.write(`ensure-tools: missing ${names}\n`);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (!isRoot || !onPath('apt-get')) {
  const how = onPath('apt-get')
    ? `sudo apt-get update && sudo ${INSTALL}`
    : `install ${PACKAGES.join(', ')} with your package manager (Debian/Ubuntu: apt-get update && ${INSTALL})`;
  process.stderr.write(
    `ensure-tools: not root${onPath('apt-get') ? '' : ' or no apt-get'}; run:\n  ${how}\n`,
  );
  process.exit(2);
}

if (run('apt-get', ['update']) !== 0) {
  process.stderr.write('ensure-tools: apt-get update failed\n');
  process.exit(1);
}
if (run('apt-get', ['install', '-y', ...PACKAGES]) !== 0) {
  process.stderr.write(`ensure-tools: "${INSTALL}" failed\n`);
  process.exit(1);
}
const still = missingTools();
if (still.length > 0) {
  process.stderr.write(
    `ensure-tools: still missing after install: ${still.map(([bin]) => bin).join(', ')}\n`,
  );
  process.exit(1);
}
process.stderr.write('ensure-tools: all tools installed\n');
