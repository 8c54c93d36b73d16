/**
 * Crash and rerun: the real CLI, killed with SIGKILL at seeded random points of
 * `upload`, `promote` and `repodata` (30 times each on a registry, 10 times each on an
 * `oci-layout:` channel), then run again with the same arguments. The rerun must complete, and nothing may be
 * partial: every tag of the touched repositories is on a complete manifest, every package is its
 * file byte for byte, `latest` repodata lists exactly what the channel holds, no lock of a killed
 * process blocks the rerun, and leftover temporary files are invisible to every command (the
 * next garbage collection removes them).
 *
 * Kill points: on the registry, the arrival of the N-th request at a counting proxy (N uniform
 * over the requests of an uninterrupted run, plus 0-3 ms, so bodies are cut mid-flight too); on
 * disk, a delay after the command announced its work, uniform over an uninterrupted run's time.
 *
 * The tests run concurrently (each with its own proxy and seeded schedule): the CLI processes are
 * the cost, and they use every core.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { packageReference } from '../../src/conda/naming.js';
import { silentReporter } from '../../src/commands/report.js';
import { execute } from '../../src/core/execute.js';
import { LayoutStore } from '../../src/oci/layout/store.js';
import { channelRepository, parseChannel, type Channel } from '../../src/conda/channel.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import type { Store } from '../../src/oci/storage.js';
import { buildCli, runCli, type CliRun } from '../helpers/cli.js';
import { makePackage, type MadePackage } from '../helpers/packages.js';
import { seededRandom, startProxy, type TestProxy } from '../helpers/proxy.js';
import { useRegistry } from '../helpers/registry.js';
import {
  checkComplete,
  checkPackages,
  checkRepositories,
  latestRepodataFiles,
  tagProblem,
} from '../helpers/verify.js';

const registry = useRegistry();
/** Kills per command: 30 on the registry; 10 on disk, where there is less protocol to cut. */
const KILLS = { registry: 30, 'oci-layout': 10 } as const;
const KEY = 'record-key-of-the-crash-suite';

let work: string;
let direct: RemoteStore;

interface Tally {
  kills: number;
  finishedBeforeKill: number;
  reruns: number;
  leftoverTempFiles: number;
}
const tallies = new Map<string, Tally>();
function tally(name: string): Tally {
  let t = tallies.get(name);
  if (!t) tallies.set(name, (t = { kills: 0, finishedBeforeKill: 0, reruns: 0, leftoverTempFiles: 0 }));
  return t;
}

beforeAll(async () => {
  await buildCli();
  work = mkdtempSync(join(tmpdir(), 'conda-oci-crash-'));
  direct = new RemoteStore({ host: registry.host, plainHttp: true });
}, 180_000);

afterAll(async () => {
  await direct?.close();
  if (work) rmSync(work, { recursive: true, force: true });
  const lines = [...tallies].map(
    ([name, t]) =>
      `  ${name}: ${t.kills} killed mid-run (${t.finishedBeforeKill} more finished before their kill point), ${t.reruns} reruns completed` +
      (t.leftoverTempFiles ? `, ${t.leftoverTempFiles} temporary files of killed runs left (harmless)` : ''),
  );
  if (lines.length) console.log(`crash and rerun:\n${lines.join('\n')}`);
});

let serial = 0;
const pkg = (over: { payloadBytes?: number; subdir?: string; ext?: 'conda' | 'tar.bz2' } = {}) => {
  const i = serial++;
  return makePackage(join(work, 'build'), {
    name: `crash-${i % 13}`,
    version: `1.${i}`,
    build: `h${(1000 + i).toString(16)}_0`,
    ...over,
  });
};

const artifactFlags = (packages: MadePackage[]) => packages.flatMap((p) => ['--artifact', p.artifact]);

/** Runs the CLI and kills it when the proxy sees its `killAt`-th request (plus `delayMs`). */
async function killAtRequest(
  proxy: TestProxy,
  args: string[],
  killAt: number,
  delayMs: number,
): Promise<CliRun> {
  let child: ChildProcess | undefined;
  let seen = 0;
  const rule = proxy.on(
    () => true,
    () => {
      if (++seen === killAt) setTimeout(() => child?.kill('SIGKILL'), delayMs);
      return undefined;
    },
  );
  try {
    return await runCli(args, { onSpawn: (c) => (child = c) });
  } finally {
    rule.remove();
  }
}

/** Runs the CLI and kills it `delayMs` after its first line of progress. */
function killAfterStart(args: string[], delayMs: number): Promise<CliRun> {
  let armed = false;
  return runCli(args, {
    onStderr: (_text, child) => {
      if (armed) return;
      armed = true;
      setTimeout(() => child.kill('SIGKILL'), delayMs);
    },
  });
}

/** Requests an uninterrupted run makes, to spread kill points over. */
async function requestsOf(proxy: TestProxy, args: string[]): Promise<number> {
  const before = proxy.records.length;
  const run = await runCli(args);
  expect(run.code, run.stderr).toBe(0);
  return proxy.records.length - before;
}

async function rerun(args: string[], name: string): Promise<CliRun> {
  const run = await runCli([...args, '--json']);
  expect(run.code, `${name} rerun: ${run.stderr}`).toBe(0);
  const result = JSON.parse(run.stdout) as { artifacts: { status: string }[] };
  expect(result.artifacts.filter((a) => a.status === 'failed')).toEqual([]);
  tally(name).reruns++;
  return run;
}

function count(name: string, run: CliRun): void {
  if (run.signal === 'SIGKILL') tally(name).kills++;
  else {
    expect(run.code, run.stderr).toBe(0);
    tally(name).finishedBeforeKill++;
  }
}

function repositoriesOf(channel: Channel, packages: MadePackage[]): string[] {
  return [
    ...new Set(
      packages.map((p) =>
        channelRepository(channel, packageReference(p.subdir, p.name, p.version, p.build).repository),
      ),
    ),
  ];
}

async function incomplete(store: Store, names: string[]): Promise<string[]> {
  return (await checkRepositories(store, names)).problems;
}

/** Temporary files and lock directories below a layout channel (dot-names of the store). */
function leftovers(dir: string): { temps: string[]; locks: string[] } {
  const temps: string[] = [];
  const locks: string[] = [];
  const walk = (at: string): void => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.name === '.lock') locks.push(path);
      else if (entry.name.startsWith('.tmp-') || entry.name.endsWith('.tmp')) temps.push(path);
      else if (entry.isDirectory()) walk(path);
    }
  };
  walk(dir);
  return { temps, locks };
}

/** One test's own proxy (registry) and seeded schedule. */
interface Lane {
  proxy: TestProxy | undefined;
  random: () => number;
}

interface Target {
  kind: 'registry' | 'oci-layout';
  /** A channel URL for a channel path (on the registry: through the lane's proxy). */
  url(path: string, lane: Lane): string;
  /** The same channel read directly (no proxy), its store, and its repository prefix there. */
  channel(path: string): Channel;
  store(path: string): Store;
  prefix(path: string): string;
  kill(lane: Lane, args: string[], scale: number): Promise<CliRun>;
  /** What an uninterrupted run costs: requests, or milliseconds after its first line. */
  calibrate(lane: Lane, args: string[]): Promise<number>;
}

const layoutRoot = () => join(work, 'layout');

const TARGETS: Target[] = [
  {
    kind: 'registry',
    url: (path, lane) => `oci://${lane.proxy!.host}/${path}`,
    channel: (path) => parseChannel(`oci://${registry.host}/${path}`),
    store: () => direct,
    prefix: (path) => path,
    kill: (lane, args, requests) =>
      killAtRequest(
        lane.proxy!,
        args,
        1 + Math.floor(lane.random() * requests),
        Math.floor(lane.random() * 4),
      ),
    calibrate: (lane, args) => requestsOf(lane.proxy!, args),
  },
  {
    kind: 'oci-layout',
    url: (path) => `oci-layout:${join(layoutRoot(), path)}`,
    channel: (path) => parseChannel(`oci-layout:${join(layoutRoot(), path)}`),
    store: (path) => new LayoutStore(join(layoutRoot(), path)),
    prefix: () => '',
    kill: (lane, args, ms) => killAfterStart(args, Math.floor(lane.random() * ms)),
    async calibrate(_lane, args) {
      let started = 0;
      const run = await runCli(args, { onStderr: () => (started ||= Date.now()) });
      expect(run.code, run.stderr).toBe(0);
      return Math.max(5, Date.now() - started);
    },
  },
];

/** Runs `body` with a lane of its own: a proxy on the registry, a schedule seeded by `seed`. */
async function withLane<T>(target: Target, seed: number, body: (lane: Lane) => Promise<T>): Promise<T> {
  const proxy = target.kind === 'registry' ? await startProxy(registry.url) : undefined;
  try {
    return await body({ proxy, random: seededRandom(seed) });
  } finally {
    await proxy?.close();
  }
}

/** After a layout rerun: no lock left, temporary files counted (they must be harmless). */
function checkLayoutLeftovers(target: Target, path: string, name: string): void {
  if (target.kind !== 'oci-layout') return;
  const { temps, locks } = leftovers(join(layoutRoot(), path));
  expect(locks, 'a lock directory outlived its run').toEqual([]);
  tally(name).leftoverTempFiles = temps.length;
}

// All six at once: the CLI processes are the cost, and they use every core.
/** One command, killed KILLS times on `target` and run again each time. */
type CrashTest = (target: Target, lane: Lane) => Promise<void>;

const uploadTest: CrashTest = async (target, lane) => {
  const name = `upload (${target.kind})`;
  const path = 'crash/up';
  const channel = target.channel(path);
  const fresh = async () => [await pkg({ payloadBytes: 100_000 }), await pkg({ ext: 'tar.bz2' })];
  const calibration = await fresh();
  const scale = await target.calibrate(lane, [
    'upload',
    ...calibration.map((p) => p.path),
    '--to',
    target.url(path, lane),
  ]);
  for (let i = 0; i < KILLS[target.kind]; i++) {
    const packages = await fresh();
    const args = ['upload', ...packages.map((p) => p.path), '--to', target.url(path, lane)];
    count(name, await target.kill(lane, args, scale));
    await rerun(args, name);
    const store = target.store(path);
    expect(await checkPackages(store, channel, packages)).toEqual([]);
    expect(await incomplete(store, repositoriesOf(channel, packages))).toEqual([]);
  }
  checkLayoutLeftovers(target, path, name);
};

const promoteTest: CrashTest = async (target, lane) => {
  const name = `promote (${target.kind})`;
  const staging = 'crash/staging';
  const production = 'crash/prod';
  const groups: MadePackage[][] = [];
  for (let i = 0; i <= KILLS[target.kind]; i++)
    groups.push([await pkg({ payloadBytes: 200_000 }), await pkg()]);
  const all = groups.flat();
  const stagingUrl =
    target.kind === 'registry' ? `oci://${registry.host}/${staging}` : target.url(staging, lane);
  await execute(
    { command: 'upload', files: all.map((p) => p.path), to: stagingUrl, concurrency: 8 },
    { reporter: silentReporter },
  );
  // Validated through the URL promote reads staging through: a record binds its channel.
  const validated = await execute(
    {
      command: 'validate',
      from: target.url(staging, lane),
      artifacts: all.map((p) => ({ subdir: p.subdir, file: p.file, sha256: p.sha256 })),
      recordKey: KEY,
      concurrency: 8,
    },
    { reporter: silentReporter },
  );
  expect(validated.exitCode).toBe(0);
  const promoteArgs = (packages: MadePackage[]) => [
    'promote',
    '--from',
    target.url(staging, lane),
    '--to',
    target.url(production, lane),
    ...artifactFlags(packages),
    '--record-key',
    KEY,
  ];
  const scale = await target.calibrate(lane, promoteArgs(groups[KILLS[target.kind]]!));
  const channel = target.channel(production);
  for (let i = 0; i < KILLS[target.kind]; i++) {
    const args = promoteArgs(groups[i]!);
    count(name, await target.kill(lane, args, scale));
    await rerun(args, name);
    const store = target.store(production);
    expect(await checkPackages(store, channel, groups[i]!)).toEqual([]);
    expect(await incomplete(store, repositoriesOf(channel, groups[i]!))).toEqual([]);
  }
  checkLayoutLeftovers(target, production, name);
};

const repodataTest: CrashTest = async (target, lane) => {
  const name = `repodata (${target.kind})`;
  const path = 'crash/index';
  const channel = target.channel(path);
  const uploadUrl = target.kind === 'registry' ? `oci://${registry.host}/${path}` : target.url(path, lane);
  const cacheDir = join(work, `cache-${target.kind}`);
  const published: MadePackage[] = [];
  const add = async (packages: MadePackage[]) => {
    const up = await execute(
      { command: 'upload', files: packages.map((p) => p.path), to: uploadUrl },
      { reporter: silentReporter },
    );
    expect(up.exitCode).toBe(0);
    published.push(...packages);
  };
  await add([await pkg(), await pkg({ subdir: 'noarch' }), await pkg({ ext: 'tar.bz2' })]);
  const args = ['repodata', '--channel', target.url(path, lane), '--cache-dir', cacheDir];
  await runCli(args); // from scratch, then calibrated on a run with one new package, as below
  await add([await pkg()]);
  const scale = await target.calibrate(lane, args);
  const documents = ['linux-64', 'noarch'].flatMap((s) =>
    ['mrepodata.json', 'mrepodata_from_packages.json', 'mcurrent_repodata.json', 'mrun_exports.json'].map(
      (m) => channelRepository(channel, `${s}/${m}`),
    ),
  );
  documents.push(channelRepository(channel, 'channeldata.json'));
  for (let i = 0; i < KILLS[target.kind]; i++) {
    // Something new each time, so that every run has documents to push.
    await add([await pkg({ subdir: i % 3 === 0 ? 'noarch' : 'linux-64' })]);
    // One tag list more every 13 runs or so: the calibration stays close.
    count(name, await target.kill(lane, args, scale + (target.kind === 'registry' ? i : 0)));
    await rerun(args, name);
    const store = target.store(path);
    for (const subdir of ['linux-64', 'noarch']) {
      const expected = published
        .filter((p) => p.subdir === subdir)
        .map((p) => p.file)
        .sort();
      expect(await latestRepodataFiles(store, channel, subdir), subdir).toEqual(expected);
    }
    // `latest` of every document is complete (older timestamp tags are checked once, below).
    const problems = await Promise.all(documents.map((d) => tagProblem(store, d, 'latest')));
    expect(problems.filter(Boolean)).toEqual([]);
  }
  checkLayoutLeftovers(target, path, name);
  expect((await checkComplete(target.store(path), target.prefix(path))).problems).toEqual([]);
};

// Per command, the registry and the oci-layout runs go at once (two CLI processes at a time):
// the processes are the cost, and two use both cores.
const COMMANDS: [string, CrashTest][] = [
  ['upload', uploadTest],
  ['promote', promoteTest],
  ['repodata', repodataTest],
];
describe.each(COMMANDS)(
  'SIGKILL during %s at random points (30 times on the registry, 10 on oci-layout), then the same command again',
  (command, body) => {
    const index = COMMANDS.findIndex(([c]) => c === command);
    test.concurrent.each(TARGETS)(
      'on $kind',
      (target) =>
        withLane(target, 20_260_101 + index * 10 + (target.kind === 'registry' ? 0 : 1), (lane) =>
          body(target, lane),
        ),
      600_000,
    );
  },
);

describe('locks of killed processes (oci-layout)', () => {
  test("a lock left by a killed holder blocks nobody (the lock file, and an earlier version's lock directory)", async () => {
    const channelDir = join(work, 'locks');
    const packages = [await pkg(), await pkg()];
    const channel = parseChannel(`oci-layout:${channelDir}`);
    // A process that held the lock and was killed: its pid is dead now.
    const deadPid = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
      child.on('spawn', () => {
        const pid = child.pid!;
        child.kill('SIGKILL');
        child.on('exit', () => resolve(pid));
      });
    });
    for (const [i, p] of packages.entries()) {
      const ref = packageReference(p.subdir, p.name, p.version, p.build);
      const dir = join(channelDir, ...channelRepository(channel, ref.repository).split('/'));
      mkdirSync(dir, { recursive: true });
      if (i === 0) writeFileSync(join(dir, '.lock'), String(deadPid));
      else {
        mkdirSync(join(dir, '.lock'));
        writeFileSync(join(dir, '.lock', 'owner'), String(deadPid));
      }
    }
    const started = Date.now();
    const run = await runCli(['upload', ...packages.map((p) => p.path), '--to', `oci-layout:${channelDir}`]);
    expect(run.code, run.stderr).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await checkPackages(new LayoutStore(channelDir), channel, packages)).toEqual([]);
    expect(leftovers(channelDir).locks).toEqual([]);
  });
});
