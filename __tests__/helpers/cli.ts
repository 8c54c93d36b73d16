/**
 * The real CLI as a child process: compiled with `tsc -p tsconfig.build.json` into
 * `.test-build/<source hash>/` (inside the repository, so that node_modules resolves), then
 * spawned with `node .test-build/<source hash>/cli.js …`. One build per source state: test files
 * in parallel workers share it, and a build for changed sources (someone saving a file while the
 * suite runs) never replaces one that a running test is using. Everything a run prints is handed
 * to the secret scan.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { recordOutput } from './secrets.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
export const BUILD_ROOT = join(ROOT, '.test-build');
const LOCK = `${BUILD_ROOT}.lock`;
/** Builds older than this are removed when a new one is made. */
const KEEP_MS = 6 * 3600_000;

/** The CLI of the latest buildCli() in this process. */
let cli: string | undefined;

function sourceStamp(): string {
  const hash = createHash('sha256');
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else hash.update(`${path}\0`).update(readFileSync(path));
    }
  };
  walk(join(ROOT, 'src'));
  hash
    .update(readFileSync(join(ROOT, 'tsconfig.json')))
    .update(readFileSync(join(ROOT, 'tsconfig.build.json')));
  return hash.digest('hex').slice(0, 16);
}

const exists = (path: string): boolean => statSync(path, { throwIfNoEntry: false }) !== undefined;

/** Compiles the CLI for the current sources, unless built already; returns its path. */
export async function buildCli(): Promise<string> {
  const dir = join(BUILD_ROOT, sourceStamp());
  cli = join(dir, 'cli.js');
  if (exists(cli)) return cli;
  for (;;) {
    try {
      mkdirSync(BUILD_ROOT, { recursive: true });
      mkdirSync(LOCK);
      break;
    } catch {
      const age = Date.now() - (statSync(LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 180_000) rmSync(LOCK, { recursive: true, force: true });
      await sleep(200);
    }
  }
  try {
    if (exists(cli)) return cli;
    const temporary = `${dir}.tmp-${process.pid}`;
    rmSync(temporary, { recursive: true, force: true });
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    try {
      await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', temporary], {
        cwd: ROOT,
      });
    } catch (err) {
      // Type errors still emit JavaScript; the typecheck is a step of its own in .ci/run.
      if (!exists(join(temporary, 'cli.js'))) throw err;
    }
    renameSync(temporary, dir);
    for (const old of readdirSync(BUILD_ROOT)) {
      const path = join(BUILD_ROOT, old);
      if (path !== dir && Date.now() - statSync(path).mtimeMs > KEEP_MS)
        rmSync(path, { recursive: true, force: true });
    }
    return cli;
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Variables on top of a clean environment (PATH, HOME; no CONDA_OCI_* of the caller). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill (SIGKILL) after this long; default 60 s. */
  timeoutMs?: number;
  /** Called with the child as soon as it runs (to kill it at a chosen moment). */
  onSpawn?: (child: ChildProcess) => void;
  /** Called with every piece of stderr as it arrives. */
  onStderr?: (text: string, child: ChildProcess) => void;
}

export function cliEnvironment(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'LANG', 'SYSTEMROOT'])
    if (process.env[key]) env[key] = process.env[key];
  return { ...env, ...extra };
}

/** Runs `node .test-build/cli.js …args` to its end (or its kill). */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliRun> {
  return new Promise((resolvePromise, reject) => {
    if (!cli) throw new Error('runCli: call buildCli() first (in beforeAll)');
    const child = spawn(process.execPath, [cli, ...args], {
      cwd: options.cwd ?? ROOT,
      env: cliEnvironment(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
      options.onStderr?.(text, child);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      recordOutput(`conda-oci ${args[0] ?? ''} (exit ${code ?? signal})`, `${stdout}\n${stderr}`);
      resolvePromise({ code, signal, stdout, stderr });
    });
    options.onSpawn?.(child);
  });
}
