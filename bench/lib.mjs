/**
 * Helpers of the benchmark runner: a throw-away registry, timed child processes with their peak
 * RSS, load averages, medians.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export function log(message) {
  process.stderr.write(`[bench] ${message}\n`);
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** The 1, 5 and 15 minute load averages. */
export function loadAverage() {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
}

function cpuTimes() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { idle: fields[3] + fields[4], total: fields.slice(0, 8).reduce((a, b) => a + b, 0) };
}

/** The share of the machine's CPU time that was idle over the next `ms` milliseconds. */
export async function idleShare(ms = 1000) {
  const before = cpuTimes();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = cpuTimes();
  return (after.idle - before.idle) / Math.max(1, after.total - before.total);
}

/**
 * Waits until a one-second sample finds at least `share` of the CPU idle (the machine is shared:
 * runs made while others compute say more about them than about us); gives up after `maxMs`.
 * Returns the idle share of the last sample.
 */
export async function waitForIdle(share, maxMs = 20 * 60_000) {
  const deadline = Date.now() + maxMs;
  for (;;) {
    const idle = await idleShare(1000);
    if (idle >= share || Date.now() > deadline) return idle;
  }
}

let registries = 0;

/**
 * Starts CNCF distribution (Debian's `docker-registry`) on a free loopback port with fresh storage
 * under `workDir`, no auth, no access log. `stop()` ends it and deletes the storage.
 */
export async function startRegistry(workDir, options = {}) {
  const port = await freePort();
  const dir = join(workDir, `registry-${process.pid}-${++registries}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'storage'), { recursive: true });
  const config = {
    version: 0.1,
    log: {
      level: options.accessLog ? 'info' : 'error',
      accesslog: { disabled: !options.accessLog },
      formatter: 'json',
    },
    storage: {
      filesystem: { rootdirectory: join(dir, 'storage') },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: `127.0.0.1:${port}`, secret: randomBytes(16).toString('hex') },
  };
  const configPath = join(dir, 'config.yml');
  writeFileSync(configPath, JSON.stringify(config));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
  const child = spawn('docker-registry', ['serve', configPath], {
    stdio: ['ignore', options.accessLog ? 'pipe' : 'ignore', 'pipe'],
    env,
  });
  let stderr = '';
  const accessLog = [];
  child.stderr.on('data', (c) => {
    stderr = (stderr + c).slice(-8000);
    if (options.accessLog) accessLog.push(c);
  });
  child.stdout?.on('data', (c) => options.accessLog && accessLog.push(c));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  for (let i = 0; ; i++) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/v2/`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || i > 200) throw new Error(`docker-registry did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    storage: join(dir, 'storage'),
    /** With `accessLog`: what the registry logged so far. */
    log: () => Buffer.concat(accessLog).toString('utf8'),
    /** CPU seconds (user + system) the registry process used so far. */
    cpuSeconds() {
      try {
        const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
        return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
      } catch {
        return NaN;
      }
    },
    async stop() {
      process.removeListener('exit', kill);
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs a command to completion under GNU time: wall seconds (measured here, process start to
 * exit), peak RSS of the largest process in the tree (MiB), user+system CPU seconds.
 */
export async function timed(command, args, options = {}) {
  const timeFile = join(options.workDir ?? '/tmp', `time-${process.pid}-${randomBytes(4).toString('hex')}`);
  const started = performance.now();
  const child = spawn(
    '/usr/bin/time',
    ['-f', process.env.TIMEFMT ?? '%M %U %S', '-o', timeFile, command, ...args],
    {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr = (stderr + c).slice(-200_000)));
  const code = await new Promise((resolve) => child.on('close', resolve));
  const seconds = (performance.now() - started) / 1000;
  let maxRssMiB;
  let cpuSeconds;
  try {
    const [kb, user, sys] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
    maxRssMiB = kb / 1024;
    cpuSeconds = user + sys;
  } finally {
    rmSync(timeFile, { force: true });
  }
  if (code !== 0 && !options.allowFailure) {
    throw new Error(`${command} ${args.join(' ')} exited ${code}\n${stderr.slice(-4000)}`);
  }
  return { code, seconds, maxRssMiB, cpuSeconds, stdout, stderr };
}

export function median(values) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function round(value, digits = 2) {
  if (!Number.isFinite(value)) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/**
 * What the package reader would report for a synthetic `.conda` whose package blob is `bytes`
 * (benchmarks write registry contents without building real archives).
 */
export function syntheticContents({ fileName, index, indexJson, infoTarGz, bytes }) {
  return {
    fileName,
    format: 'conda',
    sha256: createHash('sha256').update(bytes).digest('hex'),
    md5: createHash('md5').update(bytes).digest('hex'),
    size: bytes.length,
    indexJson,
    index,
    infoTarGz,
    timestamp: index.timestamp,
  };
}
