/**
 * `repodata` end to end against the real registry (through a counting proxy) and an oci-layout
 * channel: the fixture packages are uploaded, repodata is built and read back, compared field by
 * field with expected.json, decompressed with the zstd and gzip tools, solved with rattler, and
 * re-run incrementally with request counts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LATEST_TAG } from '../../src/conda/naming.js';
import { silentReporter, type CommandResult, type Reporter } from '../../src/commands/report.js';
import { execute } from '../../src/core/execute.js';
import { githubApi } from '../../src/github/api.js';
import { ghcrExtras } from '../../src/github/packages.js';
import { parseImageManifest, type ImageManifest } from '../../src/oci/manifest.js';
import { LayoutStore } from '../../src/oci/layout/store.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import type { Store } from '../../src/oci/storage.js';
import { EXPECTED, expectedOf, fixturePath } from '../helpers/fixtures.js';
import { startGitHubStandIn } from '../helpers/github-api.js';
import { actions, startProxy, type TestProxy } from '../helpers/proxy.js';
import { useRegistry } from '../helpers/registry.js';

// rattler's JS bindings: CommonJS that loads its WebAssembly synchronously (the ESM entry is
// for bundlers and imports the .wasm as a module, which Node cannot).
const rattler = createRequire(import.meta.url)('@conda-org/rattler') as {
  simpleSolve(
    specs: string[],
    channels: string[],
    platforms: string[],
    locked: unknown[],
  ): Promise<{ packageName: string; version: string; build: string; sha256?: string; md5?: string }[]>;
  PackageRecord: new (json: Record<string, unknown>) => { toJson(): Record<string, unknown> };
};

const registry = useRegistry({ auth: 'none' });
let proxy: TestProxy;
let work: string;
const NOW = new Date('2026-03-04T05:06:07Z');
const TIMESTAMP_TAG = '20260304T050607Z';

/** Paths of the package repositories of the registry channel. */
const PACKAGE_REPOS = /^\/v2\/prod\/conda-forge\/(linux-64|noarch)\/(c[^/]*|h[0-9a-f]{64})\//;
const SHADOWED = 'demo-pkg-1.2.3-h1234567_0.tar.bz2';
const LATE = 'libzlib-1.3.1-hb9d3cd8_2.conda';
const STORED = EXPECTED.filter((e) => e.filename !== SHADOWED);

beforeAll(async () => {
  proxy = await startProxy(registry.url);
  work = mkdtempSync(join(tmpdir(), 'conda-oci-repodata-'));
});
afterAll(async () => {
  await proxy.close();
});

function collecting(): Reporter & { warnings: string[] } {
  const warnings: string[] = [];
  return { info() {}, warn: (m) => warnings.push(m), warnings };
}

async function upload(channel: string, files: string[]): Promise<void> {
  const result = await execute({ command: 'upload', files, to: channel }, { reporter: silentReporter });
  expect(result.artifacts.filter((a) => a.status === 'failed')).toEqual([]);
}

interface Metadata {
  manifest: ImageManifest;
  manifestDigest: string;
  json: Buffer;
  zst: Buffer;
  gz: Buffer;
  parsed: Record<string, any>;
}

async function readMetadata(store: Store, repositoryName: string, tag = LATEST_TAG): Promise<Metadata> {
  const repository = store.repository(repositoryName);
  const fetched = await repository.fetchManifest(tag);
  const manifest = parseImageManifest(fetched.bytes);
  const [json, zst, gz] = await Promise.all(
    manifest.layers.map(async (l) => Buffer.from(await repository.readBlob(l, 256 << 20))),
  );
  return {
    manifest,
    manifestDigest: fetched.descriptor.digest,
    json: json!,
    zst: zst!,
    gz: gz!,
    parsed: JSON.parse(json!.toString('utf8')),
  };
}

/** The record expected for a fixture: its index.json plus md5, sha256, size. */
function expectedRecord(fileName: string): Record<string, unknown> {
  const e = expectedOf(fileName);
  return { ...e.index, md5: e.md5, sha256: e.sha256, size: e.size };
}

interface Target {
  kind: 'registry' | 'oci-layout';
  channel: () => string;
  prefix: string;
  store: () => Store;
}

const targets: Target[] = [
  {
    kind: 'registry',
    channel: () => `oci://${proxy.host}/prod/conda-forge`,
    prefix: 'prod/conda-forge/',
    store: () => new RemoteStore({ host: registry.host, plainHttp: true }),
  },
  {
    kind: 'oci-layout',
    channel: () => `oci-layout:${join(work, 'layout')}`,
    prefix: '',
    store: () => new LayoutStore(join(work, 'layout')),
  },
];

describe.each(targets)('repodata of a $kind channel', ({ kind, channel, prefix, store: openStore }) => {
  let store: Store;
  let cacheDir: string;
  let first: CommandResult;
  let firstRequests = { total: 0, manifests: 0, blobs: 0, heads: 0, tagLists: 0 };
  const run = async (extra: Record<string, unknown> = {}): Promise<CommandResult> => {
    proxy.clearRecords();
    return execute(
      { command: 'repodata', channel: channel(), cacheDir, ...extra },
      { reporter: silentReporter, now: () => NOW },
    );
  };

  beforeAll(async () => {
    store = openStore();
    cacheDir = mkdtempSync(join(tmpdir(), `conda-oci-repodata-cache-${kind}-`));
    await upload(
      channel(),
      EXPECTED.filter((e) => e.filename !== LATE).map((e) => fixturePath(e.filename)),
    );
    first = await run();
    const reads = (method: string, path: RegExp) =>
      proxy.count({ method, where: (r) => PACKAGE_REPOS.test(r.pathname) && path.test(r.pathname) });
    firstRequests = {
      total: proxy.count(),
      manifests: reads('GET', /\/manifests\//),
      blobs: reads('GET', /\/blobs\//),
      heads: reads('HEAD', /./),
      tagLists: reads('GET', /\/tags\/list$/),
    };
  });
  afterAll(async () => {
    await store.close();
  });

  test('from scratch: every subdir and channeldata pushed, with request counts in the summary', () => {
    expect(first.exitCode).toBe(0);
    const pushed = first.artifacts.map((a) => `${a.subdir}/${a.file}:${a.status}`).sort();
    expect(pushed).toEqual([
      '/channeldata.json:uploaded',
      'linux-64/current_repodata.json:uploaded',
      'linux-64/repodata.json:uploaded',
      'linux-64/repodata_from_packages.json:uploaded',
      'linux-64/run_exports.json:uploaded',
      'noarch/current_repodata.json:uploaded',
      'noarch/repodata.json:uploaded',
      'noarch/repodata_from_packages.json:uploaded',
      'noarch/run_exports.json:uploaded',
    ]);
    expect(first.summary.records).toBe(STORED.length - 1);
    expect(first.summary.fetched).toBe(STORED.length - 1);
    if (kind === 'registry') {
      expect(first.summary.requests).toBe(firstRequests.total);
      expect(first.summary.bytesReceived).toBeGreaterThan(0);
      // per artifact: the manifest by tag (no HEAD) and the info layer; plus one tag list per name
      const artifacts = STORED.length - 1;
      expect(firstRequests.manifests).toBe(artifacts);
      expect(firstRequests.blobs).toBe(artifacts);
      expect(firstRequests.heads).toBe(0);
      expect(firstRequests.tagLists).toBe(artifacts - 1); // demo-pkg has two tags
      expect((firstRequests.manifests + firstRequests.blobs) / artifacts).toBeLessThanOrEqual(2.2);
    }
  });

  test('records equal expected.json field by field, .conda and .tar.bz2 under their keys', async () => {
    const linux = (await readMetadata(store, `${prefix}linux-64/mrepodata.json`)).parsed;
    const noarch = (await readMetadata(store, `${prefix}noarch/mrepodata.json`)).parsed;
    expect(Object.keys(linux).sort()).toEqual([
      'info',
      'packages',
      'packages.conda',
      'removed',
      'repodata_version',
    ]);
    expect(linux.info).toEqual({ subdir: 'linux-64' });
    expect(linux.repodata_version).toBe(1);
    expect(linux.removed).toEqual([]);
    expect(noarch.info).toEqual({ subdir: 'noarch' });
    const present = STORED.filter((e) => e.filename !== LATE);
    for (const e of present) {
      const doc = e.subdir === 'noarch' ? noarch : linux;
      const key = e.filename.endsWith('.conda') ? 'packages.conda' : 'packages';
      const other = key === 'packages' ? 'packages.conda' : 'packages';
      expect(doc[other][e.filename], `${e.filename} only under ${key}`).toBeUndefined();
      const record = doc[key][e.filename];
      const expected = expectedRecord(e.filename);
      expect(Object.keys(record).sort(), e.filename).toEqual(Object.keys(expected).sort());
      for (const [field, value] of Object.entries(expected))
        expect(record[field], `${e.filename} ${field}`).toEqual(value);
    }
    const count = (d: any) => Object.keys(d.packages).length + Object.keys(d['packages.conda']).length;
    expect(count(linux) + count(noarch)).toBe(present.length);
    expect(Object.keys(linux.packages)).toEqual(['_libgcc_mutex-0.1-conda_forge.tar.bz2']);
  });

  test('the JSON is canonical: sorted keys, no whitespace, records in file-name order', async () => {
    const { json, parsed } = await readMetadata(store, `${prefix}linux-64/mrepodata.json`);
    const sortDeep = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(sortDeep)
        : v && typeof v === 'object'
          ? Object.fromEntries(
              Object.keys(v)
                .sort()
                .map((k) => [k, sortDeep((v as Record<string, unknown>)[k])]),
            )
          : v;
    expect(json.toString('utf8')).toBe(JSON.stringify(sortDeep(parsed)));
  });

  test('manifests: JSON, zstd and gzip layers that decompress (zstd, gzip tools) to the JSON', async () => {
    for (const component of [
      'linux-64/mrepodata.json',
      'linux-64/mrepodata_from_packages.json',
      'linux-64/mcurrent_repodata.json',
      'linux-64/mrun_exports.json',
      'noarch/mrepodata.json',
      'channeldata.json',
    ]) {
      const m = await readMetadata(store, `${prefix}${component}`);
      const base = component.includes('run_exports')
        ? 'application/vnd.conda.run_exports.v1+json'
        : component === 'channeldata.json'
          ? 'application/vnd.conda.channeldata.v1+json'
          : 'application/vnd.conda.repodata.v1+json';
      expect(m.manifest.layers.map((l) => l.mediaType)).toEqual([base, `${base}+zst`, `${base}+gzip`]);
      expect(m.manifest.annotations?.['org.conda.oci.schema']).toBe('1');
      expect(execFileSync('zstd', ['-dc'], { input: m.zst }).equals(m.json), `${component} zst`).toBe(true);
      expect(execFileSync('gzip', ['-dc'], { input: m.gz }).equals(m.json), `${component} gz`).toBe(true);
      // a timestamp tag points at the same manifest
      const tagged = await store.repository(`${prefix}${component}`).resolve(TIMESTAMP_TAG);
      expect(tagged?.digest, component).toBe(m.manifestDigest);
    }
  });

  test('current_repodata, run_exports and channeldata', async () => {
    const current = (await readMetadata(store, `${prefix}linux-64/mcurrent_repodata.json`)).parsed;
    const kept = [...Object.keys(current.packages), ...Object.keys(current['packages.conda'])].sort();
    // demo-pkg 1.2.3 is superseded by 1.2.4; everything else is the only version of its name
    expect(kept).toEqual(
      STORED.filter(
        (e) => e.subdir === 'linux-64' && e.filename !== LATE && !e.filename.startsWith('demo-pkg-1.2.3'),
      )
        .map((e) => e.filename)
        .sort(),
    );
    const runExports = (await readMetadata(store, `${prefix}linux-64/mrun_exports.json`)).parsed;
    expect(runExports.info).toEqual({ subdir: 'linux-64', version: 1 });
    expect(runExports['packages.conda']['demo-pkg-1.2.3-h1234567_0.conda']).toEqual({
      run_exports: expectedOf('demo-pkg-1.2.3-h1234567_0.conda').run_exports,
    });
    expect(runExports['packages.conda']['demo-pkg-1.2.4-h7654321_1.conda']).toEqual({ run_exports: {} });
    expect(runExports.packages['_libgcc_mutex-0.1-conda_forge.tar.bz2']).toEqual({ run_exports: {} });

    const channeldata = (await readMetadata(store, `${prefix}channeldata.json`)).parsed;
    expect(channeldata.channeldata_version).toBe(1);
    expect(channeldata.subdirs).toEqual(['linux-64', 'noarch']);
    const demo = channeldata.packages['demo-pkg'];
    expect(demo).toMatchObject({
      version: '1.2.4',
      license: 'BSD-3-Clause',
      subdirs: ['linux-64'],
      run_exports: { '1.2.3': expectedOf('demo-pkg-1.2.3-h1234567_0.conda').run_exports },
      binary_prefix: false,
      post_link: false,
    });
    expect(demo.timestamp).toBe(
      Math.trunc(Number(expectedOf('demo-pkg-1.2.4-h7654321_1.conda').index.timestamp) / 1000),
    );
    expect(channeldata.packages['pure-py'].subdirs).toEqual(['noarch']);
  });

  test('a new artifact costs one manifest and one blob request; the rest comes from the cache', async () => {
    await upload(channel(), [fixturePath(LATE)]);
    const second = await run();
    expect(second.exitCode).toBe(0);
    expect(second.summary).toMatchObject({ records: STORED.length, fetched: 1, cached: STORED.length - 1 });
    const linux = (await readMetadata(store, `${prefix}linux-64/mrepodata.json`)).parsed;
    expect(linux['packages.conda'][LATE]).toEqual(expectedRecord(LATE));
    const statuses = Object.fromEntries(second.artifacts.map((a) => [`${a.subdir}/${a.file}`, a.status]));
    expect(statuses['linux-64/repodata.json']).toBe('uploaded');
    expect(statuses['noarch/repodata.json']).toBe('exists');
    if (kind === 'registry') {
      const reads = (path: RegExp) =>
        proxy.count({ method: 'GET', where: (r) => PACKAGE_REPOS.test(r.pathname) && path.test(r.pathname) });
      expect(reads(/\/manifests\//)).toBe(1);
      expect(reads(/\/blobs\//)).toBe(1);
      expect(reads(/\/tags\/list$/)).toBe(STORED.length - 1); // one per package repository
      expect(proxy.count({ method: 'HEAD', where: (r) => PACKAGE_REPOS.test(r.pathname) })).toBe(0);
    }
  });

  test('an unchanged channel pushes nothing, with or without the cache (deterministic bytes)', async () => {
    for (const extra of [{}, { cacheDir: undefined }]) {
      const again = await run(extra);
      expect(again.exitCode).toBe(0);
      expect(again.artifacts.every((a) => a.status === 'exists')).toBe(true);
      if (kind === 'registry') {
        expect(proxy.count({ method: ['PUT', 'POST', 'PATCH', 'DELETE'] })).toBe(0);
        expect(proxy.count({ method: 'HEAD', path: /\/blobs\// })).toBe(0);
      }
    }
  });

  test('--verify re-resolves every cached tag (HEAD) and reads nothing else', async () => {
    const verified = await run({ verify: true });
    expect(verified.exitCode).toBe(0);
    expect(verified.summary).toMatchObject({ fetched: 0, cached: STORED.length });
    if (kind === 'registry') {
      expect(proxy.count({ method: 'HEAD', path: /\/manifests\// })).toBe(STORED.length);
      expect(
        proxy.count({
          method: 'GET',
          where: (r) => PACKAGE_REPOS.test(r.pathname) && /\/manifests\//.test(r.pathname),
        }),
      ).toBe(0);
    }
  });

  test('a deleted package tag disappears from the next repodata', async () => {
    const gone = 'demo-pkg-1.2.3-h1234567_0.conda';
    const repository = store.repository(`${prefix}linux-64/cdemo-pkg`);
    const descriptor = await repository.resolve('1.2.3-h1234567__0');
    await repository.deleteManifest(descriptor!.digest);
    const after = await run();
    expect(after.exitCode).toBe(0);
    const linux = (await readMetadata(store, `${prefix}linux-64/mrepodata.json`)).parsed;
    expect(linux['packages.conda'][gone]).toBeUndefined();
    expect(linux['packages.conda']['demo-pkg-1.2.4-h7654321_1.conda']).toBeDefined();
    const runExports = (await readMetadata(store, `${prefix}linux-64/mrun_exports.json`)).parsed;
    expect(runExports['packages.conda'][gone]).toBeUndefined();
    await upload(channel(), [fixturePath(gone)]);
  });
});

describe('patch instructions, subdir runs and a real solver (registry)', () => {
  const channel = () => `oci://${proxy.host}/patched/conda-forge`;
  let store: Store;
  let patchFile: string;
  let result: CommandResult;
  const instructions = {
    patch_instructions_version: 1,
    packages: {
      '_libgcc_mutex-0.1-conda_forge.tar.bz2': { license: null, summary: 'patched' },
      // a .tar.bz2 name also patches the .conda of the same package
      'demo-pkg-1.2.4-h7654321_1.tar.bz2': { constrains: ['libzlib <2'] },
      'not-in-the-channel-1.0-0.tar.bz2': { license: 'MIT' },
    },
    'packages.conda': { 'libgcc-14.2.0-h77fa898_1.conda': { license_family: 'GPL' } },
    revoke: ['libzlib-1.3.1-hb9d3cd8_2.tar.bz2'],
    remove: ['epoch-pkg-1!2.5-h0_0.conda'],
  };

  beforeAll(async () => {
    store = new RemoteStore({ host: registry.host, plainHttp: true });
    await upload(
      channel(),
      STORED.map((e) => fixturePath(e.filename)),
    );
    patchFile = join(work, 'patch_instructions.json');
    writeFileSync(patchFile, JSON.stringify(instructions));
    result = await execute(
      { command: 'repodata', channel: channel(), patchInstructions: patchFile },
      { reporter: silentReporter, now: () => NOW },
    );
  });
  afterAll(async () => {
    await store.close();
  });

  test('instructions are applied as conda-index applies them', async () => {
    expect(result.exitCode).toBe(0);
    const patched = (await readMetadata(store, 'patched/conda-forge/linux-64/mrepodata.json')).parsed;
    const unpatched = (await readMetadata(store, 'patched/conda-forge/linux-64/mrepodata_from_packages.json'))
      .parsed;
    const mutex = patched.packages['_libgcc_mutex-0.1-conda_forge.tar.bz2'];
    expect(mutex.license).toBeUndefined();
    expect('license' in mutex).toBe(false);
    expect(mutex.summary).toBe('patched');
    expect(mutex.depends).toEqual([]);
    expect(patched['packages.conda']['demo-pkg-1.2.4-h7654321_1.conda'].constrains).toEqual(['libzlib <2']);
    expect(patched['packages.conda']['libgcc-14.2.0-h77fa898_1.conda'].license_family).toBe('GPL');
    const zlib = patched['packages.conda'][LATE];
    expect(zlib.revoked).toBe(true);
    expect(zlib.depends).toEqual(['libgcc >=13', 'package_has_been_revoked']);
    expect(patched['packages.conda']['epoch-pkg-1!2.5-h0_0.conda']).toBeUndefined();
    expect(patched.removed).toEqual(['epoch-pkg-1!2.5-h0_0.conda']);
    // repodata_from_packages.json is the unpatched truth
    expect(unpatched.removed).toEqual([]);
    for (const e of STORED.filter((x) => x.subdir === 'linux-64')) {
      const key = e.filename.endsWith('.conda') ? 'packages.conda' : 'packages';
      expect(unpatched[key][e.filename]).toEqual(expectedRecord(e.filename));
    }
    const stored = (await readMetadata(store, 'patched/conda-forge/linux-64/mpatch_instructions.json'))
      .parsed;
    expect(stored).toEqual(instructions);
    expect(
      (await readMetadata(store, 'patched/conda-forge/linux-64/mpatch_instructions.json')).manifest.layers[0]!
        .mediaType,
    ).toBe('application/vnd.conda.patch_instructions.v1+json');
  });

  test('every record loads as a rattler PackageRecord', async () => {
    for (const subdir of ['linux-64', 'noarch']) {
      for (const component of ['mrepodata.json', 'mcurrent_repodata.json']) {
        const doc = (await readMetadata(store, `patched/conda-forge/${subdir}/${component}`)).parsed;
        for (const key of ['packages', 'packages.conda']) {
          for (const [fileName, record] of Object.entries(doc[key] as Record<string, any>)) {
            const loaded = new rattler.PackageRecord(record).toJson();
            expect(loaded.sha256, fileName).toBe(record.sha256);
            expect(loaded.md5, fileName).toBe(record.md5);
            expect(loaded.name, fileName).toBe(record.name);
          }
        }
      }
    }
  });

  test('rattler solves environments from the served repodata.json (and from repodata.json.zst)', async () => {
    const files = new Map<string, Buffer>();
    for (const subdir of ['linux-64', 'noarch']) {
      const m = await readMetadata(store, `patched/conda-forge/${subdir}/mrepodata.json`);
      files.set(`/plain/${subdir}/repodata.json`, m.json);
      files.set(`/zst/${subdir}/repodata.json.zst`, m.zst);
    }
    const served: string[] = [];
    const server: Server = createServer((req, res) => {
      served.push(req.url ?? '');
      const body = files.get(req.url ?? '');
      res.statusCode = body ? 200 : 404;
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      for (const flavour of ['plain', 'zst']) {
        const solved = await rattler.simpleSolve(
          ['demo-pkg'],
          [`${base}/${flavour}`],
          ['linux-64', 'noarch'],
          [],
        );
        const names = solved.map((p) => `${p.packageName}=${p.version}=${p.build}`).sort();
        expect(names, flavour).toEqual([
          '_libgcc_mutex=0.1=conda_forge',
          'demo-pkg=1.2.4=h7654321_1',
          'libgcc=14.2.0=h77fa898_1',
        ]);
        for (const p of solved) {
          const e = EXPECTED.find(
            (x) => x.name === p.packageName && x.version === p.version && x.build === p.build,
          )!;
          expect(p.sha256).toBe(e.sha256);
          expect(p.md5).toBe(e.md5);
        }
        // the revoked libzlib cannot be installed; the older demo-pkg needs it
        await expect(
          rattler.simpleSolve(['demo-pkg 1.2.3'], [`${base}/${flavour}`], ['linux-64', 'noarch'], []),
        ).rejects.toThrow();
        // the removed package is gone
        await expect(
          rattler.simpleSolve(['epoch-pkg'], [`${base}/${flavour}`], ['linux-64', 'noarch'], []),
        ).rejects.toThrow();
      }
      expect(served).toContain('/plain/linux-64/repodata.json');
      expect(served).toContain('/zst/linux-64/repodata.json.zst');
    } finally {
      server.close();
    }
  });

  test('a one-subdir run replaces only that subdir in channeldata; noarch always gets a repodata', async () => {
    const before = (await readMetadata(store, 'patched/conda-forge/channeldata.json')).parsed;
    expect(before.subdirs).toEqual(['linux-64', 'noarch']);
    // a fresh channel with linux-64 packages only: noarch still gets an (empty) repodata
    const empty = `oci://${proxy.host}/linux-only/conda-forge`;
    await upload(empty, [fixturePath('_libgcc_mutex-0.1-conda_forge.tar.bz2')]);
    const full = await execute(
      { command: 'repodata', channel: empty },
      { reporter: silentReporter, now: () => NOW },
    );
    expect(full.exitCode).toBe(0);
    const noarch = (await readMetadata(store, 'linux-only/conda-forge/noarch/mrepodata.json')).parsed;
    expect(noarch).toEqual({
      info: { subdir: 'noarch' },
      packages: {},
      'packages.conda': {},
      removed: [],
      repodata_version: 1,
    });
    // now only noarch of the patched channel, after its noarch package is gone
    const pure = store.repository('patched/conda-forge/noarch/cpure-py');
    await pure.deleteManifest((await pure.resolve('0.9.0-pyhd8ed1ab__0'))!.digest);
    const reporter = collecting();
    const partial = await execute(
      { command: 'repodata', channel: channel(), subdirs: ['noarch'] },
      { reporter, now: () => NOW },
    );
    expect(partial.exitCode).toBe(0);
    expect(partial.artifacts.map((a) => a.subdir).filter((s) => s !== '')).toEqual(Array(4).fill('noarch'));
    const after = (await readMetadata(store, 'patched/conda-forge/channeldata.json')).parsed;
    expect(after.packages['pure-py']).toBeUndefined();
    expect(after.packages['demo-pkg']).toEqual(before.packages['demo-pkg']);
    expect(after.subdirs).toEqual(['linux-64', 'noarch']);
  });

  test('bad patch instructions are a usage error before any request', async () => {
    const bad = join(work, 'bad-instructions.json');
    writeFileSync(bad, JSON.stringify({ patch_instructions_version: 2, packages: {} }));
    proxy.clearRecords();
    await expect(
      execute(
        { command: 'repodata', channel: channel(), patchInstructions: bad },
        { reporter: silentReporter },
      ),
    ).rejects.toThrow(/patch_instructions_version 2/);
    expect(proxy.count()).toBe(0);
  });
});

describe('repodata where the registry has no catalog (GHCR: GitHub Packages API)', () => {
  const TOKEN = 'ghs_repodataStandInToken0123456789';
  test('package repositories come from the Packages API; the records are the same', async () => {
    const ghcrProxy = await startProxy(registry.url);
    const github = await startGitHubStandIn({
      token: TOKEN,
      registry: { url: registry.url, storageDir: registry.storageDir },
    });
    const store = new RemoteStore({ host: registry.host, plainHttp: true });
    try {
      ghcrProxy.on({ path: '/v2/_catalog' }, actions.notFound());
      const channel = `oci://${ghcrProxy.host}/ghcr-org/conda-forge`;
      const files = ['demo-pkg-1.2.4-h7654321_1.conda', 'pure-py-0.9.0-pyhd8ed1ab_0.conda'];
      await upload(channel, files.map(fixturePath));
      const extras = ghcrExtras(githubApi(TOKEN, github.url));
      const result = await execute(
        { command: 'repodata', channel },
        {
          reporter: silentReporter,
          now: () => NOW,
          storeOptions: { registryExtras: (host) => (host === ghcrProxy.host ? extras : undefined) },
        },
      );
      expect(result.exitCode).toBe(0);
      expect(ghcrProxy.count({ path: '/v2/_catalog', status: 404 })).toBeGreaterThan(0);
      expect(github.count('GET', /^\/orgs\/ghcr-org\/packages$/)).toBeGreaterThan(0);
      for (const file of files) {
        const e = expectedOf(file);
        const doc = (await readMetadata(store, `ghcr-org/conda-forge/${e.subdir}/mrepodata.json`)).parsed;
        expect(doc['packages.conda'][file]).toEqual(expectedRecord(file));
      }
    } finally {
      await store.close();
      await github.close();
      await ghcrProxy.close();
    }
  });
});
