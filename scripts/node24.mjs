#!/usr/bin/env node
// Runs a command under Node 24, the action's runtime (README "Development").
//
//   node scripts/node24.mjs <command> [args...]   run it with Node 24 first on PATH
//   node scripts/node24.mjs --bin                  print the directory of that Node 24's binary
//
// The machine's own node is used when it is 24 or newer. Otherwise Node 24 comes from the npm
// registry, where the package node-<platform>-<arch> is a plain tarball of the official binary
// (npm checks its integrity), unpacked once into .tools/node-v<version>/. Plain Node with no
// dependencies, so it runs on the older Node a fresh machine has (Debian's 18, or 20).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAJOR = 24;
/** Pinned so every machine runs the same binary; CONDA_OCI_NODE_VERSION overrides it. */
const VERSION = process.env.CONDA_OCI_NODE_VERSION ?? '24.22.3';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const target = join(root, '.tools', `node-v${VERSION}`);

function log(message) {
  process.stderr.write(`node24: ${message}\n`);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', ...options });
  if (result.error) throw result.error;
  return result.status ?? (result.signal ? 128 : 1);
}

/** The bin directory of a Node >= 24: this one, or the one under .tools/ (installed if missing). */
function nodeBin() {
  if (Number(process.versions.node.split('.')[0]) >= MAJOR) return dirname(process.execPath);
  const bin = join(target, 'bin');
  if (existsSync(join(bin, 'node'))) return bin;
  const platform = { linux: 'linux', darwin: 'darwin' }[process.platform];
  const arch = { x64: 'x64', arm64: 'arm64' }[process.arch];
  if (!platform || !arch) {
    log(`no Node ${MAJOR} package for ${process.platform}-${process.arch}: install Node ${MAJOR} yourself`);
    process.exit(2);
  }
  const pkg = `node-${platform}-${arch}@${VERSION}`;
  log(`this is Node ${process.versions.node}; fetching ${pkg} from the npm registry into ${target}`);
  const staging = `${target}.partial`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  if (
    run(npm, ['pack', pkg, '--silent', '--pack-destination', staging], {
      stdio: ['ignore', 'ignore', 'inherit'],
    }) !== 0
  ) {
    log(`npm pack ${pkg} failed`);
    process.exit(1);
  }
  const tarball = readdirSync(staging).find((f) => f.endsWith('.tgz'));
  if (!tarball || run('tar', ['-xzf', join(staging, tarball), '-C', staging, '--strip-components=1']) !== 0) {
    log(`could not unpack ${pkg}`);
    process.exit(1);
  }
  rmSync(join(staging, tarball));
  // Renamed into place only once whole, so an interrupted install is never taken for a good one.
  rmSync(target, { recursive: true, force: true });
  renameSync(staging, target);
  log(`installed ${join(bin, 'node')}`);
  return bin;
}

const [first, ...rest] = process.argv.slice(2);
if (!first) {
  log('usage: node scripts/node24.mjs <command> [args...] | --bin');
  process.exit(2);
}
const bin = nodeBin();
if (first === '--bin') {
  process.stdout.write(`${bin}\n`);
  process.exit(0);
}
const env = { ...process.env, PATH: [bin, process.env.PATH ?? ''].join(delimiter) };
const status = run(first, rest, { env, shell: process.platform === 'win32' });
process.exit(status);
