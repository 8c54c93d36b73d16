#!/usr/bin/env node
/**
 * Throughput of `conda-oci serve` next to a static file server, in one run, on loopback.
 *
 *   node bench/serve.mjs [--packages 2000] [--seconds 5] [--connections 16]
 *
 * 1. Compiles the sources (tsc) into bench/work/serve/build.
 * 2. Starts a local registry (Debian's docker-registry, CNCF distribution) and fills a channel
 *    through the project's store API: `--packages` synthetic linux-64 packages (most 10 KiB, one
 *    of 1 MiB), then runs `repodata` on it.
 * 3. Writes the same repodata.json, repodata.json.zst and package files into a directory.
 * 4. Starts, each in its own process, the gateway (the CLI's `serve`, default caches), the gateway
 *    streaming every package from the registry (`--package-cache-mb 0`), and a static server
 *    (`node:http` + `fs.createReadStream` over that directory, with Content-Length).
 * 5. For each case, a load loop with undici: `--connections` requests in flight for `--seconds`
 *    (after a 1 s warm-up), bodies read to the end, statuses checked. The "cold" case asks for
 *    each file once, with no warm-up: every request is the gateway's first for that file (a
 *    manifest and a blob from the registry); the registry's own blob GETs of the same kind of
 *    files are measured next to it.
 *
 * Prints a table and writes bench/work/serve/result.json. The registry, both servers and the
 * load loop share the machine's cores: compare the two columns, not the absolute numbers.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, syntheticContents } from './lib.mjs';
import { Agent, request } from 'undici';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = join(root, 'bench', 'work', 'serve');
const { values } = parseArgs({
  options: {
    packages: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '16' },
  },
});
const PACKAGES = Number(values.packages);
const SECONDS = Number(values.seconds);
const CONNECTIONS = Number(values.connections);
const log = (m) => process.stderr.write(`[bench] ${m}\n`);
const children = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const build = join(work, 'build');
log('compiling (tsc)');
const tsc = spawnSync(
  join(root, 'node_modules', '.bin', 'tsc'),
  ['-p', 'tsconfig.build.json', '--outDir', build],
  {
    cwd: root,
    stdio: 'inherit',
  },
);
if (tsc.status !== 0) throw new Error('tsc failed');
const { RemoteStore } = await import(join(build, 'oci', 'remote', 'store.js'));
const { buildPackageArtifact } = await import(join(build, 'conda', 'artifact.js'));
const { buildInfoTarGz } = await import(join(build, 'conda', 'info-tarball.js'));
const { packageReference } = await import(join(build, 'conda', 'naming.js'));
const { pushArtifact } = await import(join(build, 'oci', 'push.js'));
const { mapLimit } = await import(join(build, 'util', 'map-limit.js'));
const { execute } = await import(join(build, 'execute.js'));
const { silentReporter } = await import(join(build, 'commands', 'report.js'));

async function waitFor(url) {
  for (let i = 0; ; i++) {
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.status < 500) return;
    } catch {
      // not up yet
    }
    if (i > 300) throw new Error(`${url} did not come up`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---- registry and channel ------------------------------------------------------------------

const registryPort = await freePort();
const host = `127.0.0.1:${registryPort}`;
const config = {
  version: 0.1,
  log: { level: 'error', accesslog: { disabled: true } },
  storage: { filesystem: { rootdirectory: join(work, 'registry') }, delete: { enabled: true } },
  http: { addr: host, secret: randomBytes(16).toString('hex') },
};
writeFileSync(join(work, 'registry.yml'), JSON.stringify(config));
const registryEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')),
);
const registry = spawn('docker-registry', ['serve', join(work, 'registry.yml')], {
  stdio: 'ignore',
  env: registryEnv,
});
children.push(registry);
await waitFor(`http://${host}/v2/`);

const channelPath = 'bench/conda-forge';
const channel = `oci://${host}/${channelPath}`;
const encoder = new TextEncoder();
const files = new Map(); // file name -> bytes
const blobs = new Map(); // file name -> registry blob path

async function artifactFor(i) {
  const name = `pkg-${String(i % 400).padStart(4, '0')}`;
  const version = `1.${Math.floor(i / 400)}.${i % 7}`;
  const build = `h${createHash('sha256').update(String(i)).digest('hex').slice(0, 8)}_0`;
  const index = {
    arch: 'x86_64',
    build,
    build_number: 0,
    depends: ['libgcc >=13', `pkg-${String((i * 7) % 400).padStart(4, '0')} >=1.0`],
    license: 'BSD-3-Clause',
    name,
    platform: 'linux',
    subdir: 'linux-64',
    timestamp: 1_700_000_000_000 + i * 1000,
    version,
  };
  const indexJson = encoder.encode(JSON.stringify(index));
  const fileName = `${name}-${version}-${build}.conda`;
  const bytes = randomBytes(i === 0 ? 1024 * 1024 : 10 * 1024);
  files.set(fileName, bytes);
  const infoTarGz = await buildInfoTarGz([
    { path: 'info/index.json', type: 'file', mode: 0o644, data: indexJson },
  ]);
  const contents = syntheticContents({ fileName, index, indexJson, infoTarGz, bytes: bytes });
  return { artifact: buildPackageArtifact(contents, bytes), index, fileName };
}

log(`filling ${channel} with ${PACKAGES} packages`);
const filler = new RemoteStore({ host, plainHttp: true, connections: 32 });
const made = await mapLimit(
  Array.from({ length: PACKAGES }, (_, i) => i),
  32,
  async (i) => {
    const { artifact, index, fileName } = await artifactFor(i);
    const ref = packageReference('linux-64', index.name, index.version, index.build);
    await pushArtifact(filler.repository(`${channelPath}/${ref.repository}`), artifact, { tag: ref.tag });
    blobs.set(fileName, `/v2/${channelPath}/${ref.repository}/blobs/${artifact.blobs[1].descriptor.digest}`);
    return fileName;
  },
);
await filler.close();
const indexed = await execute({ command: 'repodata', channel }, { reporter: silentReporter });
if (indexed.exitCode !== 0) throw new Error('repodata failed');

// ---- the same files in a directory ---------------------------------------------------------

const staticRoot = join(work, 'static');
mkdirSync(join(staticRoot, 'linux-64'), { recursive: true });
const layersStore = new RemoteStore({ host, plainHttp: true });
const repo = layersStore.repository(`${channelPath}/linux-64/mrepodata.json`);
const manifest = JSON.parse(Buffer.from((await repo.fetchManifest('latest')).bytes).toString());
const layerBytes = async (suffix) => {
  const layer = manifest.layers.find(
    (l) => l.mediaType === `application/vnd.conda.repodata.v1+json${suffix}`,
  );
  return Buffer.from(await repo.readBlob(layer, 1 << 30));
};
const repodataJson = await layerBytes('');
const repodataZst = await layerBytes('+zst');
await layersStore.close();
writeFileSync(join(staticRoot, 'linux-64', 'repodata.json'), repodataJson);
writeFileSync(join(staticRoot, 'linux-64', 'repodata.json.zst'), repodataZst);
for (const [name, bytes] of files) writeFileSync(join(staticRoot, 'linux-64', name), bytes);
log(`repodata.json ${repodataJson.length} bytes, .zst ${repodataZst.length} bytes`);

// ---- the two servers, each in its own process ----------------------------------------------

const STATIC_SERVER = `
const { createServer } = require('node:http');
const { createReadStream, stat } = require('node:fs');
const { join, normalize } = require('node:path');
const root = process.argv[1];
createServer({ keepAlive: true }, (req, res) => {
  const path = normalize(join(root, decodeURIComponent(req.url.split('?')[0])));
  if (!path.startsWith(root)) { res.writeHead(404); return res.end(); }
  stat(path, (err, st) => {
    if (err || !st.isFile()) { res.writeHead(404); return res.end(); }
    res.writeHead(200, { 'content-length': st.size, 'content-type': 'application/octet-stream' });
    createReadStream(path).pipe(res);
  });
}).listen(Number(process.argv[2]), '127.0.0.1');
`;
const staticPort = await freePort();
children.push(
  spawn(process.execPath, ['-e', STATIC_SERVER, staticRoot, String(staticPort)], { stdio: 'inherit' }),
);
async function gateway(...flags) {
  const port = await freePort();
  children.push(
    spawn(
      process.execPath,
      [
        join(build, 'cli.js'),
        'serve',
        '--channel',
        channel,
        '--listen',
        `127.0.0.1:${port}`,
        '--concurrency',
        '32',
        ...flags,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, CONDA_OCI_PASSWORD: '' } },
    ),
  );
  return `http://127.0.0.1:${port}`;
}
const servers = {
  gateway: await gateway(),
  'gateway, streamed': await gateway('--package-cache-mb', '0'),
  static: `http://127.0.0.1:${staticPort}`,
  registry: `http://${host}`,
};
for (const name of ['gateway', 'gateway, streamed', 'static'])
  await waitFor(`${servers[name]}/linux-64/repodata.json.zst`);

// ---- load loop -----------------------------------------------------------------------------

/** With `once`, each path is asked for once and the loop ends when they run out. */
async function load(base, paths, seconds, headers = {}, once = false) {
  const dispatcher = new Agent({ connections: CONNECTIONS, keepAliveTimeout: 30_000 });
  let completed = 0;
  let bytes = 0;
  let failures = 0;
  const latencies = [];
  const began = performance.now();
  const deadline = began + seconds * 1000;
  let next = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < deadline && !(once && next >= paths.length)) {
        const path = paths[next++ % paths.length];
        const started = performance.now();
        try {
          const response = await request(`${base}${path}`, { dispatcher, headers });
          const body = Buffer.from(await response.body.arrayBuffer());
          if (response.statusCode !== 200 && response.statusCode !== 304) failures++;
          else {
            completed++;
            bytes += body.length;
            latencies.push(performance.now() - started);
          }
        } catch {
          failures++;
        }
      }
    }),
  );
  await dispatcher.close();
  seconds = (performance.now() - began) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => Number((latencies[Math.floor((latencies.length - 1) * p)] ?? NaN).toFixed(2));
  return {
    rps: Math.round(completed / seconds),
    MBps: Number((bytes / seconds / 1e6).toFixed(1)),
    p50ms: pct(0.5),
    p99ms: pct(0.99),
    failures,
  };
}

const small = made.filter((f) => !f.startsWith('pkg-0000-1.0.0'));
const big = made.filter((f) => f.startsWith('pkg-0000-1.0.0'));
const url = (f) => `/linux-64/${encodeURIComponent(f)}`;
const warmSmall = small.slice(0, 100);
const coldSmall = small.slice(100);
const half = Math.floor(coldSmall.length / 3);
const cases = [
  {
    name: `repodata.json.zst (${repodataZst.length} B)`,
    paths: ['/linux-64/repodata.json.zst'],
    on: ['gateway', 'static'],
  },
  {
    name: `repodata.json (${repodataJson.length} B)`,
    paths: ['/linux-64/repodata.json'],
    on: ['gateway', 'static'],
  },
  {
    name: 'package 10 KiB, 100 files again and again',
    paths: warmSmall.map(url),
    on: ['gateway', 'gateway, streamed', 'static'],
  },
  {
    name: 'package 1 MiB, one file again and again',
    paths: big.map(url),
    on: ['gateway', 'gateway, streamed', 'static'],
  },
  // Each file once, each server its own third: first requests only.
  {
    name: 'package 10 KiB, each file once (cold)',
    paths: coldSmall.slice(0, half).map(url),
    on: ['gateway'],
    once: true,
  },
  {
    name: 'package 10 KiB, each file once (cold)',
    paths: coldSmall.slice(half, 2 * half).map(url),
    on: ['static'],
    once: true,
  },
  {
    name: 'package 10 KiB, each file once (cold)',
    paths: coldSmall.slice(2 * half).map((f) => blobs.get(f)),
    on: ['registry'],
    once: true,
  },
];
const rows = [];
for (const c of cases) {
  for (const server of c.on) {
    const base = servers[server];
    if (!c.once) await load(base, c.paths, 1); // warm-up: caches, connections, JIT
    const result = await load(base, c.paths, SECONDS, {}, c.once === true);
    rows.push({ case: c.name, server, ...result });
    log(`${c.name} via ${server}: ${JSON.stringify(result)}`);
  }
}
// Conditional requests: what a client with a fresh cache sends.
const etag = (await request(`${servers.gateway}/linux-64/repodata.json.zst`)).headers.etag;
const conditional = await load(servers.gateway, ['/linux-64/repodata.json.zst'], SECONDS, {
  'if-none-match': etag,
});
rows.push({ case: 'repodata.json.zst If-None-Match (304)', server: 'gateway', ...conditional });

const result = {
  machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
  packages: PACKAGES,
  seconds: SECONDS,
  connections: CONNECTIONS,
  rows,
};
writeFileSync(join(work, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(
  `\n${CONNECTIONS} requests in flight, ${SECONDS} s per case, ${cpus().length} CPUs shared by registry, servers and load loop`,
);
console.log('| case | server | req/s | MB/s | p50 ms | p99 ms | failures |');
console.log('|---|---|---:|---:|---:|---:|---:|');
for (const r of rows)
  console.log(`| ${r.case} | ${r.server} | ${r.rps} | ${r.MBps} | ${r.p50ms} | ${r.p99ms} | ${r.failures} |`);
process.exit(0);
