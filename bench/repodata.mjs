#!/usr/bin/env node
/**
 * Scale benchmark of `conda-oci repodata`.
 *
 *   node bench/repodata.mjs [--artifacts 20000] [--names 2000] [--concurrency 32] [--keep] [--work DIR]
 *   npm run bench:repodata -- --artifacts 2000
 *
 * 1. Builds the CLI bundle the way `npm run package` does (tsc, then ncc), into bench/work.
 * 2. Starts a local registry (Debian's docker-registry, CNCF distribution) on loopback.
 * 3. Fills it with N small synthetic artifacts spread over the names, written in parallel through
 *    the project's own store API: real package manifests (SPEC §4) whose index.json is realistic,
 *    whose info layer holds index.json, about.json, paths.json and for some run_exports.json.
 * 4. Runs `repodata` from scratch (with a cache directory), adds 1% new artifacts, runs it again
 *    incrementally, then once more with nothing new. Each run is a child process of the bundled
 *    CLI; its peak RSS comes from process.resourceUsage() at exit, its requests from the result.
 *
 * Prints a table and writes result.json into its work directory (default bench/work/repodata).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, syntheticContents } from './lib.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const { values } = parseArgs({
  options: {
    artifacts: { type: 'string', default: '20000' },
    names: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '32' },
    keep: { type: 'boolean', default: false },
    // A directory of its own (emptied first) for each concurrent run; bench/run.mjs passes one.
    work: { type: 'string', default: join(root, 'bench', 'work', 'repodata') },
  },
});
const work = values.work;
const N = Number(values.artifacts);
const NAMES = Math.min(Number(values.names), N);
const FILL_CONCURRENCY = Number(values.concurrency);

function log(message) {
  process.stderr.write(`[bench] ${message}\n`);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', ...options });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed with ${result.status}`);
}

// ---------------------------------------------------------------------------------------------
// 1. Build

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const build = join(work, 'build');
const bundle = join(work, 'cli');
log('building the CLI bundle (tsc + ncc)');
run(join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json', '--outDir', build]);
run(
  join(root, 'node_modules', '.bin', 'ncc'),
  ['build', join(build, 'cli.js'), '-o', bundle, '--target', 'es2022'],
  {
    stdio: ['ignore', 'ignore', 'inherit'],
  },
);

const { RemoteStore } = await import(join(build, 'oci', 'remote', 'store.js'));
const { buildPackageArtifact } = await import(join(build, 'conda', 'artifact.js'));
const { buildInfoTarGz } = await import(join(build, 'conda', 'info-tarball.js'));
const { packageReference } = await import(join(build, 'conda', 'naming.js'));
const { pushArtifact } = await import(join(build, 'oci', 'push.js'));
const { mapLimit } = await import(join(build, 'util', 'map-limit.js'));

// ---------------------------------------------------------------------------------------------
// 2. Registry (started after the storage is filled)

const port = await freePort();
const storage = join(work, 'registry');
const host = `127.0.0.1:${port}`;
const channelPath = 'bench/conda-forge';
const channel = `oci://${host}/${channelPath}`;

// ---------------------------------------------------------------------------------------------
// 3. Synthetic artifacts

const COMMON_DEPS = [
  'libgcc >=13',
  'libstdcxx >=13',
  'libzlib >=1.3.1,<2.0a0',
  'python >=3.10,<3.11.0a0',
  '__glibc >=2.17,<3.0.a0',
  'openssl >=3.3.2,<4.0a0',
  'python_abi 3.10.* *_cp310',
];
const encoder = new TextEncoder();

function hex(bytes, length) {
  return createHash('sha256').update(bytes).digest('hex').slice(0, length);
}

/** The i-th artifact: name `pkg-<n>`, a version per artifact of that name. */
function artifactSpec(i, round = 0) {
  const nameIndex = i % NAMES;
  const name = `pkg-${String(nameIndex).padStart(5, '0')}`;
  const serial = Math.floor(i / NAMES);
  const version = `${1 + (serial % 7)}.${Math.floor(serial / 7)}.${round}`;
  const buildNumber = serial % 3;
  const build = `h${hex(`${name}-${version}-${i}`, 8)}_${buildNumber}`;
  const depends = [];
  for (let d = 0; d < 2 + (i % 5); d++) depends.push(COMMON_DEPS[(i + d) % COMMON_DEPS.length]);
  if (nameIndex > 0) depends.push(`pkg-${String((nameIndex * 7) % NAMES).padStart(5, '0')} >=1.0`);
  const index = {
    arch: 'x86_64',
    build,
    build_number: buildNumber,
    depends,
    license: 'BSD-3-Clause',
    license_family: 'BSD',
    name,
    platform: 'linux',
    subdir: 'linux-64',
    timestamp: 1_700_000_000_000 + i * 1000 + round,
    version,
  };
  if (i % 4 === 0) index.constrains = [`${name}-devel ${version}`];
  return index;
}

async function makeArtifact(index) {
  const indexJson = encoder.encode(JSON.stringify(index, null, 2));
  const fileName = `${index.name}-${index.version}-${index.build}.conda`;
  const entries = [
    { path: 'info/index.json', type: 'file', mode: 0o644, data: indexJson },
    {
      path: 'info/about.json',
      type: 'file',
      mode: 0o644,
      data: encoder.encode(
        JSON.stringify({
          home: `https://example.invalid/${index.name}`,
          summary: `The ${index.name} library`,
          license: 'BSD-3-Clause',
        }),
      ),
    },
    {
      path: 'info/paths.json',
      type: 'file',
      mode: 0o644,
      data: encoder.encode(
        JSON.stringify({
          paths: [{ _path: `lib/lib${index.name}.so`, path_type: 'hardlink', size_in_bytes: 1000 }],
          paths_version: 1,
        }),
      ),
    },
  ];
  if (index.build_number === 0)
    entries.push({
      path: 'info/run_exports.json',
      type: 'file',
      mode: 0o644,
      data: encoder.encode(
        JSON.stringify({ weak: [`${index.name} >=${index.version},<${index.version}.9999`] }),
      ),
    });
  const infoTarGz = await buildInfoTarGz(entries);
  const packageBytes = randomBytes(96);
  const contents = syntheticContents({ fileName, index, indexJson, infoTarGz, bytes: packageBytes });
  return { artifact: buildPackageArtifact(contents, packageBytes), index };
}

async function fill(store, specs) {
  const started = performance.now();
  let done = 0;
  await mapLimit(specs, FILL_CONCURRENCY, async (index) => {
    const { artifact } = await makeArtifact(index);
    const ref = packageReference('linux-64', index.name, index.version, index.build);
    await pushArtifact(store.repository(`${channelPath}/${ref.repository}`), artifact, {
      tag: ref.tag,
      concurrency: 4,
    });
    if (++done % 2000 === 0) log(`  ${done}/${specs.length} artifacts written`);
  });
  return (performance.now() - started) / 1000;
}

/**
 * Writes artifacts straight into the registry's storage, in the filesystem layout of CNCF
 * distribution 2.x (blobs by digest, per-repository links for layers, manifest revisions and
 * tags), before the registry starts: the same content as through the API, in seconds instead of
 * the ~40 artifacts/s a 2-core machine's registry accepts (11 requests each). The 1% added later
 * goes through the API.
 */
async function fillStorage(specs) {
  const started = performance.now();
  const v2 = join(storage, 'docker', 'registry', 'v2');
  const writeOnce = new Set();
  const put = async (path, data) => {
    if (writeOnce.has(path)) return;
    writeOnce.add(path);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, data);
  };
  const blob = (digest, bytes) =>
    put(join(v2, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7), 'data'), bytes);
  const link = (path, digest) => put(path, digest);
  await mapLimit(specs, 64, async (index) => {
    const { artifact } = await makeArtifact(index);
    const ref = packageReference('linux-64', index.name, index.version, index.build);
    const repo = join(v2, 'repositories', ...`${channelPath}/${ref.repository}`.split('/'));
    for (const { descriptor, content } of artifact.blobs) {
      await blob(descriptor.digest, content);
      await link(join(repo, '_layers', 'sha256', descriptor.digest.slice(7), 'link'), descriptor.digest);
    }
    const digest = artifact.descriptor.digest;
    await blob(digest, artifact.manifest.bytes);
    await link(join(repo, '_manifests', 'revisions', 'sha256', digest.slice(7), 'link'), digest);
    await link(join(repo, '_manifests', 'tags', ref.tag, 'current', 'link'), digest);
    await link(join(repo, '_manifests', 'tags', ref.tag, 'index', 'sha256', digest.slice(7), 'link'), digest);
  });
  return (performance.now() - started) / 1000;
}

const initial = Array.from({ length: N }, (_, i) => artifactSpec(i));
log(`writing ${N} artifacts over ${NAMES} names into the registry's storage`);
const fillSeconds = await fillStorage(initial);
log(`filled in ${fillSeconds.toFixed(1)} s (${(N / fillSeconds).toFixed(0)} artifacts/s)`);

const config = {
  version: 0.1,
  log: { level: 'error', accesslog: { disabled: true } },
  storage: {
    filesystem: { rootdirectory: storage },
    delete: { enabled: true },
    maintenance: { uploadpurging: { enabled: false } },
  },
  http: { addr: `127.0.0.1:${port}`, secret: randomBytes(16).toString('hex') },
};
writeFileSync(join(work, 'registry.yml'), JSON.stringify(config));
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
const registry = spawn('docker-registry', ['serve', join(work, 'registry.yml')], { stdio: 'ignore', env });
process.on('exit', () => registry.kill('SIGKILL'));
for (let i = 0; ; i++) {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/v2/`);
    if (response.ok) break;
  } catch {
    // not up yet
  }
  if (i > 200) throw new Error('docker-registry did not start');
  await new Promise((r) => setTimeout(r, 100));
}
log(`registry on ${host}`);
const filler = new RemoteStore({ host, plainHttp: true, connections: FILL_CONCURRENCY });

// ---------------------------------------------------------------------------------------------
// 4. repodata runs

const cacheDir = join(work, 'cache');
const RSS_HOOK = `data:text/javascript,process.on('exit',()=>{const u=process.resourceUsage();process.stderr.write('MAXRSS_KB '+u.maxRSS+' CPU_US '+(u.userCPUTime+u.systemCPUTime)+'\\n')})`;

async function repodata(label) {
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      '--import',
      RSS_HOOK,
      join(bundle, 'index.js'),
      'repodata',
      '--channel',
      channel,
      '--cache-dir',
      cacheDir,
      '--json',
    ],
    { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const code = await new Promise((resolve) => child.on('close', resolve));
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`repodata (${label}) exited ${code}\n${stderr.slice(-4000)}`);
  const result = JSON.parse(stdout);
  const maxRssKb = Number(/MAXRSS_KB (\d+)/.exec(stderr)?.[1] ?? NaN);
  const cpuSeconds = Number(/CPU_US (\d+)/.exec(stderr)?.[1] ?? NaN) / 1e6;
  const s = result.summary;
  const row = {
    run: label,
    seconds: Number(seconds.toFixed(2)),
    cpuSeconds: Number(cpuSeconds.toFixed(2)),
    records: s.records,
    fetched: s.fetched,
    cached: s.cached,
    requests: s.requests,
    requestsPerFetchedArtifact: s.fetched ? Number((s.requests / s.fetched).toFixed(3)) : null,
    artifactsPerSecond: Number((s.records / seconds).toFixed(0)),
    peakRssMiB: Number((maxRssKb / 1024).toFixed(0)),
    pushed: result.artifacts.filter((a) => a.status === 'uploaded').map((a) => `${a.subdir}/${a.file}`),
  };
  log(`${label}: ${JSON.stringify(row)}`);
  return row;
}

const scratch = await repodata('from scratch');

const added = Math.max(1, Math.round(N / 100));
const extra = Array.from({ length: added }, (_, k) => artifactSpec((k * 97) % N, 1));
log(`adding ${added} artifacts (1%)`);
await fill(filler, extra);
const incremental = await repodata('incremental (+1%)');
const unchanged = await repodata('unchanged');
await filler.close();

const tagLists = NAMES;
const summary = {
  artifacts: N,
  names: NAMES,
  node: process.version,
  fillSeconds: Number(fillSeconds.toFixed(1)),
  scratch,
  incremental,
  unchanged,
  // requests of the from-scratch run beyond one tag list per package name, per artifact
  requestsPerArtifactBeyondTagLists: Number(((scratch.requests - tagLists) / N).toFixed(3)),
  incrementalFractionOfScratch: Number((incremental.seconds / scratch.seconds).toFixed(3)),
  unchangedFractionOfScratch: Number((unchanged.seconds / scratch.seconds).toFixed(3)),
};
writeFileSync(join(work, 'result.json'), `${JSON.stringify(summary, null, 2)}\n`);

const table = [
  [
    'run',
    'seconds',
    'records',
    'read',
    'cached',
    'requests',
    'req/read artifact',
    'artifacts/s',
    'peak RSS MiB',
  ],
  ...[scratch, incremental, unchanged].map((r) => [
    r.run,
    r.seconds,
    r.records,
    r.fetched,
    r.cached,
    r.requests,
    r.requestsPerFetchedArtifact ?? '-',
    r.artifactsPerSecond,
    r.peakRssMiB,
  ]),
];
process.stdout.write(`\n${table.map((row) => `| ${row.join(' | ')} |`).join('\n')}\n\n`);
process.stdout.write(
  `from scratch: ${summary.requestsPerArtifactBeyondTagLists} requests per artifact beyond one tag list per name; ` +
    `incremental run: ${(summary.incrementalFractionOfScratch * 100).toFixed(1)}% of the from-scratch time ` +
    `(unchanged: ${(summary.unchangedFractionOfScratch * 100).toFixed(1)}%)\n`,
);
registry.kill('SIGTERM');
if (!values.keep) rmSync(storage, { recursive: true, force: true });
process.exit(0);
