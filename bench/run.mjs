#!/usr/bin/env node
/**
 * `npm run bench`: conda-oci against the tools users would pick instead, side by side
 * on one machine and one kind of registry (CNCF distribution, Debian's `docker-registry`, on
 * loopback, a fresh instance with empty storage for every measured run).
 *
 *   node bench/run.mjs [--reps 3] [--big-mib 500[,954...]] [--small 200] [--only upload-big,small,promote,repodata]
 *                      [--repodata-artifacts 20000] [--skip-build] [--keep] [--out <name>] [--wait-idle 0.85]
 *
 * Every measured command is a child process under GNU time (wall time from here, peak RSS and
 * CPU from time): our CLI as users run it (the ncc bundle, `node dist/cli/index.js`-style,
 * startup included), curl, skopeo, sha256sum. Runs of ours and of the baseline alternate
 * (ABAB...: odd repetitions run the baseline first). Request and byte counts come from the
 * client side: the registry client's own counters (undici requests it sent, body bytes both
 * ways), reported in the result document's `summary` of each command.
 *
 * Writes bench/results/<YYYY-MM-DD>.json and prints a markdown table. See bench/README.md.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadAverage, log, median, round, startRegistry, timed, waitForIdle } from './lib.mjs';
import { writeConda } from './packages.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = join(root, 'bench', 'work', 'run');

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    'big-mib': { type: 'string', default: '500' },
    small: { type: 'string', default: '200' },
    only: { type: 'string' },
    'repodata-artifacts': { type: 'string', default: '20000' },
    'skip-build': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    out: { type: 'string' },
    // Before each pair of upload-big runs, wait for a second in which this share of the CPU is idle.
    'wait-idle': { type: 'string' },
  },
});
const REPS = Number(values.reps);
// One upload-big row per size; promote uses the first.
const BIG_SIZES = values['big-mib'].split(',').map((mib) => Number(mib) * 1024 * 1024);
const SMALL = Number(values.small);
const ONLY = values.only ? new Set(values.only.split(',')) : undefined;
const wanted = (name) => !ONLY || ONLY.has(name);
const MB = 1e6;

// ---------------------------------------------------------------------------------------------
// Build: the CLI bundle as `npm run package` makes it (tsc, then ncc), into bench/work.

const build = join(work, 'build');
const built = join(work, 'cli', 'index.js');
// BENCH_CLI: measure another bundle (e.g. one built from another commit) instead of building.
const bundle = process.env.BENCH_CLI ?? built;
if (!values['skip-build'] && !process.env.BENCH_CLI) {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  log('building the CLI bundle (tsc + ncc)');
  // Type errors still emit JavaScript; they are reported, not fatal (the tree may be mid-edit).
  const tsc = spawnSync(
    join(root, 'node_modules', '.bin', 'tsc'),
    ['-p', 'tsconfig.build.json', '--outDir', build],
    {
      cwd: root,
      stdio: 'inherit',
    },
  );
  if (tsc.status !== 0) log(`warning: tsc exited ${tsc.status}; measuring the JavaScript it emitted`);
  run(
    join(root, 'node_modules', '.bin', 'ncc'),
    ['build', join(build, 'cli.js'), '-o', dirname(built), '--target', 'es2022'],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
}
mkdirSync(work, { recursive: true });

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', ...options });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed with ${result.status}`);
  return result;
}

// No credentials from the machine's docker config; skopeo with a blob-info cache of its own per
// run (as root it would share /var/lib/containers/cache with every other skopeo on the machine,
// and remember blob locations across runs).
const dockerConfig = join(work, 'docker-config');
mkdirSync(dockerConfig, { recursive: true });
const baseEnv = Object.fromEntries(
  Object.entries(process.env).filter(
    ([k]) => !k.startsWith('CONDA_OCI_') && !k.startsWith('REGISTRY_') && !k.startsWith('INPUT_'),
  ),
);
baseEnv.DOCKER_CONFIG = dockerConfig;

let skopeoRuns = 0;
function skopeoEnv() {
  const dir = join(work, 'skopeo', String(++skopeoRuns));
  mkdirSync(join(dir, 'run'), { recursive: true });
  return {
    ...baseEnv,
    _CONTAINERS_ROOTLESS_UID: '1000',
    XDG_DATA_HOME: join(dir, 'data'),
    XDG_RUNTIME_DIR: join(dir, 'run'),
    HOME: dir,
  };
}

/** Our CLI, as users run it: a node child process of the bundle. Returns the measurement and the result document. */
async function cli(args, cliBundle = bundle) {
  const nodeArgs = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []; // e.g. --cpu-prof
  const measured = await timed(process.execPath, [...nodeArgs, cliBundle, ...args, '--json'], {
    env: baseEnv,
    workDir: work,
    cwd: work,
    allowFailure: true,
  });
  let result;
  try {
    result = JSON.parse(measured.stdout);
  } catch {
    throw new Error(
      `conda-oci ${args[0]} printed no result document (exit ${measured.code})\n${measured.stderr.slice(-4000)}`,
    );
  }
  if (measured.code !== 0) {
    const failed = result.artifacts.filter((a) => a.status === 'failed').map((a) => `${a.file}: ${a.error}`);
    throw new Error(`conda-oci ${args[0]} exited ${measured.code}: ${failed.slice(0, 3).join('; ')}`);
  }
  return { ...measured, result };
}

function sha256File(path) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })
      .on('data', (c) => hash.update(c))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** CEP v1 tag of a version and build (SPEC §3), for the baselines' destinations. */
function cepTag(version, build) {
  const encode = (s) => s.replaceAll('_', '__').replaceAll('+', '_P').replaceAll('!', '_N');
  return `${encode(version)}-${encode(build)}`;
}

/** Runs `body(kind)` for 'ours' and 'baseline' in alternating order: ABAB... */
/** Runs `body(kind)` for each kind, in an order turned by one each repetition: AB BA, ABC CAB BCA... */
async function alternate(rep, body, kinds = ['ours', 'baseline']) {
  const order =
    kinds.length === 2
      ? rep % 2 === 0
        ? kinds
        : [...kinds].reverse()
      : kinds.map((_, i) => kinds[(i + 2 * rep) % kinds.length]);
  for (const kind of order) await body(kind);
}

// BENCH_CLI_BEFORE: another bundle (e.g. built from the commit before a change) whose uploads run
// side by side with ours and curl's in upload-big, reported as `before`.
const bundleBefore = process.env.BENCH_CLI_BEFORE;

const loads = [];
function noteLoad(where) {
  const load = loadAverage();
  loads.push({ where, load });
  return load;
}

// ---------------------------------------------------------------------------------------------
// Packages

const pkgDir = join(work, 'pkgs');
const big = { name: 'big-pkg', version: '1.0.0', build: 'h60d1e4c_0' };
const bigFileOf = (bytes) =>
  join(pkgDir, `big-${bytes / 2 ** 20}`, 'linux-64', `${big.name}-${big.version}-${big.build}.conda`);
const bigFile = bigFileOf(BIG_SIZES[0]);
const smallDir = join(pkgDir, 'small', 'noarch');

function makePackages() {
  const started = performance.now();
  if (wanted('upload-big') || wanted('promote')) {
    for (const payloadBytes of wanted('upload-big') ? BIG_SIZES : BIG_SIZES.slice(0, 1)) {
      const file = bigFileOf(payloadBytes);
      mkdirSync(dirname(file), { recursive: true });
      writeConda(dirname(file), { ...big, subdir: 'linux-64', payloadBytes, seed: 'big' });
    }
  }
  if (wanted('small')) {
    mkdirSync(smallDir, { recursive: true });
    for (let i = 0; i < SMALL; i++) {
      // Payloads from 1 KiB to 256 KiB, log-uniform (noarch python packages are mostly 10-100 KB).
      const payloadBytes = Math.round(1024 * 2 ** (8 * ((i * 0.618034) % 1)));
      const hash = createHash('sha256').update(`small-${i}`).digest('hex').slice(0, 7);
      writeConda(smallDir, {
        name: `small-pkg-${String(i).padStart(3, '0')}`,
        version: `${1 + (i % 5)}.${i % 13}.0`,
        build: `pyh${hash}_0`,
        subdir: 'noarch',
        payloadBytes,
        seed: `small-${i}`,
        timestamp: 1_700_000_000_000 + i * 1000,
      });
    }
  }
  log(`packages written in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

// ---------------------------------------------------------------------------------------------
// Scenario: upload one big .conda vs curl -T (monolithic PUT of the same bytes)

async function scenarioUploadBig(bigFile) {
  const size = statSync(bigFile).size;
  const sha256 = await sha256File(bigFile);
  const runs = { ours: [], baseline: [], ...(bundleBefore ? { before: [] } : {}) };
  for (let rep = 0; rep < REPS; rep++) {
    const idle = values['wait-idle'] ? round(await waitForIdle(Number(values['wait-idle'])), 2) : undefined;
    await alternate(
      rep,
      async (kind) => {
        const registry = await startRegistry(work);
        try {
          const load = noteLoad(`upload-big ${kind} ${rep}`);
          const quiet = idle !== undefined ? { idleBefore: idle } : {};
          if (kind === 'ours' || kind === 'before') {
            const r = await onRegistry(registry, () =>
              cli(
                ['upload', bigFile, '--to', `oci://${registry.host}/bench/conda-forge`],
                kind === 'before' ? bundleBefore : bundle,
              ),
            );
            const a = r.result.artifacts[0];
            if (a.status !== 'uploaded') throw new Error(`upload: ${a.status} ${a.error ?? ''}`);
            runs[kind].push(
              measurement(r, load, {
                mibPerSecond: size / 2 ** 20 / r.seconds,
                requests: r.result.summary.requests,
                ...quiet,
              }),
            );
          } else {
            // The monolithic upload of the distribution spec: POST a session, PUT the bytes with their digest.
            const script =
              `set -e; loc=$(curl -sSf -o /dev/null -w '%header{location}' -X POST ${registry.url}/v2/bench/curl/blobs/uploads/); ` +
              `case "$loc" in http*) ;; *) loc="${registry.url}$loc";; esac; ` +
              `curl -sSf -o /dev/null -T '${bigFile}' -H 'content-type: application/octet-stream' "$loc&digest=sha256:${sha256}"`;
            const r = await onRegistry(registry, () =>
              timed('bash', ['-c', script], { env: baseEnv, workDir: work }),
            );
            runs.baseline.push(measurement(r, load, { mibPerSecond: size / 2 ** 20 / r.seconds, ...quiet }));
          }
        } finally {
          await registry.stop();
        }
      },
      Object.keys(runs),
    );
    log(
      `upload-big ${round(size / MB, 0)} MB rep ${rep + 1}: ours ${runs.ours.at(-1).seconds} s, curl ${runs.baseline.at(-1).seconds} s` +
        (runs.before ? `, before ${runs.before.at(-1).seconds} s` : ''),
    );
  }
  const ratios = pairs(runs, (o, b) => o.mibPerSecond / b.mibPerSecond);
  const beforeRatios = runs.before?.map((o, i) => round(o.mibPerSecond / runs.baseline[i].mibPerSecond, 3));
  const ours = median(runs.ours.map((r) => r.mibPerSecond));
  const rss = Math.max(...runs.ours.map((r) => r.peakRssMB));
  return {
    id: BIG_SIZES.length > 1 ? `upload-big-${round(size / MB, 0)}` : 'upload-big',
    scenario: `upload one ${round(size / MB, 0)} MB .conda`,
    ours: `${round(ours, 0)} MiB/s (${round(median(runs.ours.map((r) => r.seconds)), 2)} s)`,
    baseline: `curl -T: ${round(median(runs.baseline.map((r) => r.mibPerSecond)), 0)} MiB/s (${round(median(runs.baseline.map((r) => r.seconds)), 2)} s)`,
    ratio: median(ratios),
    ratioText: `${round(median(ratios), 2)}x curl's throughput`,
    target: 'throughput >= 0.9x curl; peak RSS <= 150 MB',
    peakRssMB: rss,
    met: median(ratios) >= 0.9 && rss <= 150,
    registryCpuSeconds: registryCpu(runs),
    ...(beforeRatios
      ? {
          before: {
            ratio: median(beforeRatios),
            ratios: beforeRatios,
            peakRssMB: Math.max(...runs.before.map((r) => r.peakRssMB)),
            cpuSeconds: median(runs.before.map((r) => r.cpuSeconds)),
          },
        }
      : {}),
    cpuSeconds: median(runs.ours.map((r) => r.cpuSeconds)),
    runs,
    ratios,
  };
}

function measurement(r, load, extra = {}) {
  return {
    seconds: round(r.seconds, 3),
    cpuSeconds: round(r.cpuSeconds, 2),
    ...(r.registryCpuSeconds !== undefined ? { registryCpuSeconds: round(r.registryCpuSeconds, 2) } : {}),
    peakRssMB: round((r.maxRssMiB * 1024 * 1024) / MB, 1),
    load,
    ...extra,
  };
}

/** Median CPU seconds of the registry during our runs and during the baseline's. */
function registryCpu(runs) {
  return {
    ours: median(runs.ours.map((r) => r.registryCpuSeconds)),
    baseline: median(runs.baseline.map((r) => r.registryCpuSeconds)),
  };
}

/** Runs `f` and adds the CPU seconds the registry used meanwhile to its measurement. */
async function onRegistry(registry, f) {
  const before = registry.cpuSeconds();
  const r = await f();
  return { ...r, registryCpuSeconds: registry.cpuSeconds() - before };
}

/** Per-repetition ratios of the runs made side by side. */
function pairs(runs, f) {
  return runs.ours.map((o, i) => round(f(o, runs.baseline[i]), 3));
}

// ---------------------------------------------------------------------------------------------
// Scenario: 200 small packages vs skopeo copy of each from an oci: layout; then a re-upload

/** An OCI layout per repository holding exactly our artifacts, for skopeo's `oci:` transport. */
async function smallLayout() {
  const layout = join(work, 'layout');
  rmSync(layout, { recursive: true, force: true });
  await cli(['upload', join(smallDir, '*.conda'), '--to', `oci-layout:${layout}`]);
  // skopeo 1.9's oci: transport refuses the `__` of CEP v1 tags: name each package manifest
  // `bench` as well (same descriptor, a second ref.name).
  const copies = [];
  for (const repoName of readdirSync(join(layout, 'noarch'))) {
    const dir = join(layout, 'noarch', repoName);
    const indexPath = join(dir, 'index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8'));
    const tagged = index.manifests.filter((m) =>
      /^\d/.test(m.annotations?.['org.opencontainers.image.ref.name'] ?? ''),
    );
    if (tagged.length !== 1) throw new Error(`${dir}: expected one package manifest, found ${tagged.length}`);
    const tag = tagged[0].annotations['org.opencontainers.image.ref.name'];
    index.manifests.push({
      ...tagged[0],
      annotations: { ...tagged[0].annotations, 'org.opencontainers.image.ref.name': 'bench' },
    });
    writeFileSync(indexPath, JSON.stringify(index));
    copies.push({ dir, repository: `noarch/${repoName}`, tag });
  }
  if (copies.length !== SMALL) throw new Error(`the layout holds ${copies.length} packages, not ${SMALL}`);
  return copies;
}

async function scenarioSmall() {
  const copies = await smallLayout();
  const runs = { ours: [], baseline: [] };
  const reupload = [];
  for (let rep = 0; rep < REPS; rep++) {
    await alternate(rep, async (kind) => {
      const registry = await startRegistry(work);
      try {
        const load = noteLoad(`small ${kind} ${rep}`);
        const channel = `oci://${registry.host}/bench/conda-forge`;
        if (kind === 'ours') {
          const r = await onRegistry(registry, () =>
            cli(['upload', join(smallDir, '*.conda'), '--to', channel]),
          );
          const uploaded = r.result.artifacts.filter((a) => a.status === 'uploaded').length;
          if (uploaded !== SMALL) throw new Error(`upload: ${uploaded} of ${SMALL} uploaded`);
          runs.ours.push(measurement(r, load, { requests: r.result.summary.requests }));
          // Re-upload of what is there now: nothing to send.
          const again = await onRegistry(registry, () =>
            cli(['upload', join(smallDir, '*.conda'), '--to', channel]),
          );
          const s = again.result.summary;
          if (s.exists !== SMALL) throw new Error(`re-upload: ${s.exists} of ${SMALL} found existing`);
          reupload.push(
            measurement(again, noteLoad(`re-upload ${rep}`), {
              requests: s.requests,
              requestsPerArtifact: round(s.requests / SMALL, 3),
              blobBytesSent: s.bytesSent,
              httpBytesSent: s.httpBytesSent,
              byMethod: s.byMethod,
            }),
          );
        } else {
          const lines = copies.map(
            (c) =>
              `skopeo --insecure-policy copy -q --dest-tls-verify=false 'oci:${c.dir}:bench' 'docker://${registry.host}/bench/conda-forge/${c.repository}:${c.tag}'`,
          );
          const r = await onRegistry(registry, () =>
            timed('bash', ['-c', `set -e\n${lines.join('\n')}`], { env: skopeoEnv(), workDir: work }),
          );
          runs.baseline.push(measurement(r, load));
        }
      } finally {
        await registry.stop();
      }
    });
    log(
      `small rep ${rep + 1}: ours ${runs.ours.at(-1).seconds} s, skopeo ${runs.baseline.at(-1).seconds} s, re-upload ${reupload.at(-1).seconds} s`,
    );
  }
  const ratios = pairs(runs, (o, b) => b.seconds / o.seconds);
  const perArtifact = median(reupload.map((r) => r.requestsPerArtifact));
  const blobBytes = Math.max(...reupload.map((r) => r.blobBytesSent));
  const httpBytes = Math.max(...reupload.map((r) => r.httpBytesSent));
  return [
    {
      id: 'upload-small',
      scenario: `upload ${SMALL} small packages`,
      ours: `${round(median(runs.ours.map((r) => r.seconds)), 2)} s (${round(median(runs.ours.map((r) => r.requests)) / SMALL, 1)} requests/artifact)`,
      baseline: `skopeo copy oci: -> docker:// of each: ${round(median(runs.baseline.map((r) => r.seconds)), 2)} s`,
      ratio: median(ratios),
      ratioText: `${round(median(ratios), 1)}x faster`,
      target: '>= 5x faster',
      peakRssMB: Math.max(...runs.ours.map((r) => r.peakRssMB)),
      met: median(ratios) >= 5,
      registryCpuSeconds: registryCpu(runs),
      runs,
      ratios,
    },
    {
      id: 're-upload',
      scenario: `re-upload of the ${SMALL}, already there`,
      ours: `${round(median(reupload.map((r) => r.seconds)), 2)} s, ${perArtifact} requests/artifact, ${blobBytes} blob bytes (${httpBytes} request body bytes)`,
      baseline: '-',
      ratio: perArtifact,
      ratioText: '-',
      target: '0 blob bytes; <= 5 requests/artifact',
      peakRssMB: Math.max(...reupload.map((r) => r.peakRssMB)),
      met: blobBytes === 0 && httpBytes === 0 && perArtifact <= 5,
      runs: { ours: reupload },
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Scenario: promote a big artifact within one registry (validate + promote vs skopeo copy)

async function scenarioPromote() {
  const size = statSync(bigFile).size;
  const sha256 = await sha256File(bigFile);
  const file = `${big.name}-${big.version}-${big.build}.conda`;
  const tag = cepTag(big.version, big.build);
  const runs = { ours: [], baseline: [] };
  const validate = [];
  const sha256sum = [];
  for (let rep = 0; rep < REPS; rep++) {
    const registry = await startRegistry(work);
    try {
      const staging = `oci://${registry.host}/staging/conda-forge`;
      await cli(['upload', bigFile, '--to', staging]);
      const artifact = ['--artifact', `linux-64/${file}=${sha256}`];
      await alternate(rep, async (kind) => {
        const load = noteLoad(`promote ${kind} ${rep}`);
        if (kind === 'ours') {
          const v = await onRegistry(registry, () => cli(['validate', '--from', staging, ...artifact]));
          if (v.result.artifacts[0].status !== 'passed')
            throw new Error(`validate: ${v.result.artifacts[0].error}`);
          validate.push(measurement(v, load, { requests: v.result.summary.requests }));
          const s = await timed('sha256sum', [bigFile], { env: baseEnv, workDir: work });
          sha256sum.push(measurement(s, load));
          const p = await onRegistry(registry, () =>
            cli([
              'promote',
              '--from',
              staging,
              '--to',
              `oci://${registry.host}/prod/conda-forge`,
              ...artifact,
            ]),
          );
          if (p.result.artifacts[0].status !== 'promoted')
            throw new Error(`promote: ${p.result.artifacts[0].error}`);
          runs.ours.push(
            measurement(p, noteLoad(`promote ${kind} ${rep}`), {
              requests: p.result.summary.requests,
              httpBytesSent: p.result.summary.httpBytesSent,
            }),
          );
        } else {
          const r = await onRegistry(registry, () =>
            timed(
              'skopeo',
              [
                '--insecure-policy',
                'copy',
                '-q',
                '--src-tls-verify=false',
                '--dest-tls-verify=false',
                `docker://${registry.host}/staging/conda-forge/linux-64/c${big.name}:${tag}`,
                `docker://${registry.host}/prod-skopeo/conda-forge/linux-64/c${big.name}:${tag}`,
              ],
              { env: skopeoEnv(), workDir: work },
            ),
          );
          runs.baseline.push(measurement(r, load));
        }
      });
    } finally {
      await registry.stop();
    }
    log(
      `promote rep ${rep + 1}: validate ${validate.at(-1).seconds} s (sha256sum ${sha256sum.at(-1).seconds} s), promote ${runs.ours.at(-1).seconds} s, skopeo ${runs.baseline.at(-1).seconds} s`,
    );
  }
  const ratios = pairs(runs, (o, b) => b.seconds / o.seconds);
  const validateRatios = validate.map((v, i) => round(v.seconds / sha256sum[i].seconds, 3));
  return [
    {
      id: 'promote',
      scenario: `promote a ${round(size / MB, 0)} MB artifact within one registry`,
      ours: `promote ${round(median(runs.ours.map((r) => r.seconds)), 2)} s (mount, ${median(runs.ours.map((r) => r.requests))} requests)`,
      baseline: `skopeo copy docker:// -> docker://: ${round(median(runs.baseline.map((r) => r.seconds)), 2)} s`,
      ratio: median(ratios),
      ratioText: `${round(median(ratios), 1)}x faster`,
      target: 'promote >= 10x faster than skopeo',
      peakRssMB: Math.max(...runs.ours.map((r) => r.peakRssMB)),
      met: median(ratios) >= 10,
      registryCpuSeconds: registryCpu(runs),
      runs,
      ratios,
    },
    {
      id: 'validate',
      scenario: `validate the ${round(size / MB, 0)} MB artifact (download, hash, open)`,
      ours: `validate ${round(median(validate.map((r) => r.seconds)), 2)} s (${round(size / 2 ** 20 / median(validate.map((r) => r.seconds)), 0)} MiB/s)`,
      baseline: `sha256sum of the file: ${round(median(sha256sum.map((r) => r.seconds)), 2)} s`,
      ratio: median(validateRatios),
      ratioText: `${round(median(validateRatios), 2)}x sha256sum's time`,
      target: 'validate within 1.5x of sha256sum',
      peakRssMB: Math.max(...validate.map((r) => r.peakRssMB)),
      met: median(validateRatios) <= 1.5,
      runs: { ours: validate, baseline: sha256sum },
      ratios: validateRatios,
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Scenario: repodata at scale (the filler and runs of bench/repodata.mjs)

/**
 * Each repetition runs bench/repodata.mjs in a directory of its own: it builds the bundle, fills a
 * fresh registry with N artifacts over 2,000 names, runs `repodata` from scratch (with a cache
 * directory), adds 1% and runs it again, then once more unchanged; each run a child process whose
 * requests are the registry client's own count and whose peak RSS is its maxRSS at exit.
 */
async function scenarioRepodata() {
  const artifacts = Number(values['repodata-artifacts']);
  const reps = [];
  for (let rep = 0; rep < REPS; rep++) {
    const dir = join(work, `repodata-${rep}`);
    const load = noteLoad(`repodata ${rep}`);
    await timed(
      process.execPath,
      [join(root, 'bench', 'repodata.mjs'), '--artifacts', String(artifacts), '--work', dir],
      {
        env: baseEnv,
        workDir: work,
        cwd: root,
      },
    );
    const result = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8'));
    rmSync(dir, { recursive: true, force: true });
    reps.push({ ...result, load, loadAfter: noteLoad(`repodata ${rep} end`) });
    log(
      `repodata rep ${rep + 1}: scratch ${result.scratch.seconds} s (${result.requestsPerArtifactBeyondTagLists} requests/artifact beyond tag lists), incremental ${result.incremental.seconds} s (${Math.round(result.incrementalFractionOfScratch * 100)}%)`,
    );
  }
  const scratchSeconds = median(reps.map((r) => r.scratch.seconds));
  const perArtifact = median(reps.map((r) => r.requestsPerArtifactBeyondTagLists));
  const scratchRss = Math.max(...reps.map((r) => (r.scratch.peakRssMiB * 2 ** 20) / MB));
  const fractions = reps.map((r) => r.incrementalFractionOfScratch);
  const names = reps[0].names;
  return [
    {
      id: 'repodata-scratch',
      scenario: `repodata, ${artifacts.toLocaleString('en')} artifacts (${names.toLocaleString('en')} names) from scratch`,
      ours: `${round(scratchSeconds, 1)} s, ${round(artifacts / scratchSeconds, 0)} artifacts/s, ${perArtifact} requests/artifact + ${names} tag lists`,
      baseline: '-',
      ratio: perArtifact,
      ratioText: '-',
      target: '<= 2.2 requests/artifact + 1 tag list per name; peak RSS <= 512 MB',
      peakRssMB: scratchRss,
      met: perArtifact <= 2.2 && scratchRss <= 512,
      runs: { ours: reps.map((r) => ({ ...r.scratch, load: r.load })) },
    },
    {
      id: 'repodata-incremental',
      scenario: 'repodata, incremental after +1%',
      ours: `${round(median(reps.map((r) => r.incremental.seconds)), 1)} s (${median(reps.map((r) => r.incremental.fetched))} read, ${median(reps.map((r) => r.incremental.requests))} requests)`,
      baseline: `the from-scratch run: ${round(scratchSeconds, 1)} s`,
      ratio: median(fractions),
      ratioText: `${round(median(fractions) * 100, 1)}% of its time`,
      target: '<= 15% of the from-scratch time',
      peakRssMB: Math.max(...reps.map((r) => (r.incremental.peakRssMiB * 2 ** 20) / MB)),
      met: median(fractions) <= 0.15,
      runs: {
        ours: reps.map((r) => ({ ...r.incremental, load: r.load })),
        unchanged: reps.map((r) => r.unchanged),
      },
      ratios: fractions,
    },
  ];
}

// ---------------------------------------------------------------------------------------------

const started = new Date();
const rows = [];
try {
  makePackages();
  if (wanted('upload-big'))
    for (const bytes of BIG_SIZES) rows.push(await scenarioUploadBig(bigFileOf(bytes)));
  if (wanted('small')) rows.push(...(await scenarioSmall()));
  if (wanted('promote')) rows.push(...(await scenarioPromote()));
  if (wanted('repodata')) rows.push(...(await scenarioRepodata()));
} finally {
  if (!values.keep) rmSync(work, { recursive: true, force: true });
}

const fmtRss = (mb) => (Number.isFinite(mb) ? `${round(mb, 0)} MB` : '-');
const table = [
  '| scenario | ours | baseline | ratio | target | peak RSS (ours) | met? |',
  '|---|---|---|---|---|---|---|',
  ...rows.map((r) =>
    r.pending
      ? `| ${r.scenario} | pending | | | ${r.target} | | pending |`
      : `| ${r.scenario} | ${r.ours} | ${r.baseline} | ${r.ratioText} | ${r.target} | ${fmtRss(r.peakRssMB)} | ${r.met ? 'yes' : '**no**'} |`,
  ),
].join('\n');
const loadValues = loads.map((l) => l.load[0]);
const summary = {
  date: started.toISOString(),
  machine: {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    node: process.version,
  },
  tools: toolVersions(),
  repetitions: REPS,
  loadAverage1m: {
    min: Math.min(...loadValues),
    median: round(median(loadValues), 2),
    max: Math.max(...loadValues),
  },
  loads,
  rows,
  table,
};
const resultsDir = join(root, 'bench', 'results');
mkdirSync(resultsDir, { recursive: true });
const out = join(resultsDir, `${values.out ?? started.toISOString().slice(0, 10)}.json`);
writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`);
process.stdout.write(
  `\n${table}\n\n1-minute load average during the runs: median ${summary.loadAverage1m.median}, ${summary.loadAverage1m.min}-${summary.loadAverage1m.max} on ${summary.machine.cpus} CPUs\nwritten to ${out}\n`,
);

function toolVersions() {
  const first = (cmd, args) => spawnSync(cmd, args, { encoding: 'utf8' }).stdout?.split('\n')[0]?.trim();
  return {
    registry: first('docker-registry', ['--version']),
    skopeo: first('skopeo', ['--version']),
    curl: first('curl', ['--version']),
    sha256sum: first('sha256sum', ['--version']),
  };
}
