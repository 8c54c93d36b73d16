/**
 * Layout both: every fixture uploaded, validated and promoted with its v0 name, v0
 * repodata published, and then read the way today's clients read a v0 channel:
 *
 * - rattler's OCI middleware: the manifest of `<subdir>/repodata.json:latest`, the layer whose
 *   media type is `application/vnd.conda.repodata.v1+json+zst`, then each package blob by the
 *   sha256 that repodata lists, from `<subdir>/<name>` (`zzz` before a leading `_`); without a
 *   known sha256 it reads the manifest `<subdir>/<name>:<version>-<build>` (`+` -> `__p__`,
 *   `!` -> `__e__`, `=` -> `__eq__`) and takes the layer of the package's media type.
 * - mamba's OCI mirror: the manifest of `<subdir>/<file>:latest` and its first layer.
 *
 * The client here is written from that description, against the registry's HTTP API directly.
 * Then the collision: `cmake 3.1 h0`'s v0 name would be `make 3.1 h0`'s v1 name: it is never written.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { zstdDecompress } from '../../src/compress.js';
import { silentReporter, type CommandResult, type Reporter } from '../../src/commands/report.js';
import { main } from '../../src/cli/main.js';
import { withoutArtifactType } from '../../src/conda/artifact.js';
import { NAMING_V1, NAMING_V1_V0, parseNaming } from '../../src/conda/naming-scheme.js';
import { execute } from '../../src/core/execute.js';
import { readInputs } from '../../src/action/inputs.js';
import type { CommandInput as CommandOptions } from '../../src/core/commands.js';
import { EXPECTED, fixturePath } from '../helpers/fixtures.js';
import { makePackage, type MadePackage } from '../helpers/packages.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { useRegistry } from '../helpers/registry.js';
import { testSecret } from '../helpers/secrets.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import { manifestBlobs, parseImageManifest } from '../../src/oci/manifest.js';

const registry = useRegistry({ auth: 'none' });
const KEY = testSecret('v0-record-key');
let proxy: TestProxy;
const NOW = new Date('2026-03-04T05:06:07Z');
const SHADOWED = 'demo-pkg-1.2.3-h1234567_0.tar.bz2';
const STORED = EXPECTED.filter((e) => e.filename !== SHADOWED);

beforeAll(async () => {
  proxy = await startProxy(registry.url);
});
afterAll(async () => {
  await proxy.close();
});

function collecting(): Reporter & { warnings: string[]; infos: string[] } {
  const warnings: string[] = [];
  const infos: string[] = [];
  return { info: (m) => infos.push(m), warn: (m) => warnings.push(m), warnings, infos };
}

function run(options: CommandOptions, reporter: Reporter = silentReporter): Promise<CommandResult> {
  return execute(options, { reporter, now: () => NOW });
}

const request = (p: { subdir: string; filename?: string; file?: string; sha256: string }) => ({
  subdir: p.subdir,
  file: p.filename ?? p.file!,
  sha256: p.sha256,
});

// ---------------------------------------------------------------------------------------------
// A v0 reader, as rattler and mamba read

const MANIFEST_ACCEPT = 'application/vnd.oci.image.manifest.v1+json';

interface Layer {
  mediaType: string;
  digest: string;
  size: number;
}

async function getManifest(repository: string, tag: string): Promise<{ layers: Layer[] }> {
  const response = await fetch(`${registry.url}/v2/${repository}/manifests/${tag}`, {
    headers: { accept: MANIFEST_ACCEPT },
  });
  expect(response.status, `${repository}:${tag}`).toBe(200);
  return (await response.json()) as { layers: Layer[] };
}

async function getBlob(repository: string, digest: string): Promise<Buffer> {
  const response = await fetch(`${registry.url}/v2/${repository}/blobs/${digest}`);
  expect(response.status, `${repository}@${digest}`).toBe(200);
  return Buffer.from(await response.arrayBuffer());
}

/**
 * The digest a v0 name holds for a v1 manifest: the same manifest without `artifactType`, the
 * pre-OCI-1.1 form that conda-oci-mirror's oras-py reads. Its layers are the v1 manifest's.
 */
async function v0FormDigest(repository: string, v1Digest: string): Promise<string> {
  const response = await fetch(`${registry.url}/v2/${repository}/manifests/${v1Digest}`, {
    headers: { accept: MANIFEST_ACCEPT },
  });
  expect(response.status, `${repository}@${v1Digest}`).toBe(200);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const v0 = withoutArtifactType({ mediaType: MANIFEST_ACCEPT, bytes });
  return `sha256:${createHash('sha256').update(v0.bytes).digest('hex')}`;
}

/** The v0 repository component and tag of a file name, as the clients compute them. */
function v0Of(fileName: string): { component: string; tag: string; mediaType: string } {
  const ext = fileName.endsWith('.conda') ? '.conda' : '.tar.bz2';
  const [build, version, ...name] = fileName.slice(0, -ext.length).split('-').reverse();
  const packageName = name.reverse().join('-');
  return {
    component: packageName.startsWith('_') ? `zzz${packageName}` : packageName,
    tag: `${version}-${build}`.replaceAll('+', '__p__').replaceAll('!', '__e__').replaceAll('=', '__eq__'),
    mediaType: ext === '.conda' ? 'application/vnd.conda.package.v2' : 'application/vnd.conda.package.v1',
  };
}

interface Record_ {
  sha256: string;
  size: number;
}

/** rattler: repodata by manifest and media type, then every package by its sha256. */
async function readLikeRattler(channelPath: string, subdir: string): Promise<Map<string, Record_>> {
  const manifest = await getManifest(`${channelPath}/${subdir}/repodata.json`, 'latest');
  const zst = manifest.layers.find((l) => l.mediaType === 'application/vnd.conda.repodata.v1+json+zst');
  expect(zst, 'a zstd repodata layer').toBeDefined();
  const repodata = JSON.parse(
    Buffer.from(
      await zstdDecompress(await getBlob(`${channelPath}/${subdir}/repodata.json`, zst!.digest)),
    ).toString(),
  ) as {
    info: { subdir: string };
    packages: Record<string, Record_>;
    'packages.conda': Record<string, Record_>;
  };
  expect(repodata.info.subdir).toBe(subdir);
  const records = new Map<string, Record_>([
    ...Object.entries(repodata.packages),
    ...Object.entries(repodata['packages.conda']),
  ]);
  for (const [fileName, record] of records) {
    const { component, tag, mediaType } = v0Of(fileName);
    const repository = `${channelPath}/${subdir}/${component}`;
    // With the sha256 from repodata (what rattler sends as X-Expected-Sha256, and mamba uses).
    const bytes = await getBlob(repository, `sha256:${record.sha256}`);
    expect(createHash('sha256').update(bytes).digest('hex'), fileName).toBe(record.sha256);
    expect(bytes.length).toBe(record.size);
    // Without it: the manifest of the v0 tag, the layer of the package's media type.
    const byTag = await getManifest(repository, tag);
    expect(byTag.layers.find((l) => l.mediaType === mediaType)?.digest, fileName).toBe(
      `sha256:${record.sha256}`,
    );
  }
  return records;
}

// ---------------------------------------------------------------------------------------------

describe('layout both: upload, validate, promote and repodata with v0 names', () => {
  const staging = () => `oci://${proxy.host}/stage/conda-forge`;
  const production = () => `oci://${proxy.host}/prod/conda-forge`;
  let uploaded: CommandResult;
  let promoted: CommandResult;
  let promoteRecords: typeof proxy.records;

  beforeAll(async () => {
    uploaded = await run({
      command: 'upload',
      files: EXPECTED.map((e) => fixturePath(e.filename)),
      to: staging(),
      naming: NAMING_V1_V0,
    });
    const requests = STORED.map(request);
    const validated = await run({
      recordKey: KEY,
      command: 'validate',
      from: staging(),
      artifacts: requests,
      naming: NAMING_V1_V0,
    });
    expect(validated.artifacts.filter((a) => a.status !== 'passed')).toEqual([]);
    proxy.clearRecords();
    promoted = await run({
      recordKey: KEY,
      command: 'promote',
      from: staging(),
      to: production(),
      artifacts: requests,
      naming: NAMING_V1_V0,
    });
    promoteRecords = [...proxy.records];
  });

  test('upload: every artifact also under its v0 name, holding the same manifest', async () => {
    expect(uploaded.artifacts.filter((a) => a.status === 'failed')).toEqual([]);
    for (const e of STORED) {
      const result = uploaded.artifacts.find((a) => a.file === e.filename)!;
      const { component, tag } = v0Of(e.filename);
      expect(result.v0Reference).toBe(`${proxy.host}/stage/conda-forge/${e.subdir}/${component}:${tag}`);
      const head = await fetch(
        `${registry.url}/v2/stage/conda-forge/${e.subdir}/${component}/manifests/${tag}`,
        {
          method: 'HEAD',
          headers: { accept: MANIFEST_ACCEPT },
        },
      );
      expect(head.headers.get('docker-content-digest'), e.filename).toBe(
        await v0FormDigest(result.repository!, result.digest!),
      );
      const v0 = (await getManifest(`stage/conda-forge/${e.subdir}/${component}`, tag)) as {
        artifactType?: string;
        layers: Layer[];
      };
      expect(v0.artifactType).toBeUndefined();
      expect(v0.layers.map((l) => l.digest)).toContain(`sha256:${e.sha256}`);
    }
  });

  test('upload again: nothing sent, the v0 names are found in place', async () => {
    proxy.clearRecords();
    const again = await run({
      command: 'upload',
      files: STORED.map((e) => fixturePath(e.filename)),
      to: staging(),
      naming: NAMING_V1_V0,
    });
    expect(again.artifacts.map((a) => a.status)).toEqual(STORED.map(() => 'exists'));
    expect(
      proxy.count({ method: 'PUT' }) + proxy.count({ method: 'PATCH' }) + proxy.count({ method: 'POST' }),
    ).toBe(0);
  });

  test('validate checks the v0 name: a missing or moved one fails', async () => {
    const epoch = STORED.find((e) => e.filename.startsWith('epoch-pkg'))!;
    const other = STORED.find((e) => e.filename.startsWith('pure-py'))!;
    const { component, tag } = v0Of(epoch.filename);
    // Point the epoch package's v0 tag at another manifest.
    const otherV0 = v0Of(other.filename);
    const manifest = await fetch(
      `${registry.url}/v2/stage/conda-forge/${other.subdir}/${otherV0.component}/manifests/${otherV0.tag}`,
      { headers: { accept: MANIFEST_ACCEPT } },
    );
    const bytes = Buffer.from(await manifest.arrayBuffer());
    // Its blobs must be in the target repository first: mount them.
    const parsed = JSON.parse(bytes.toString()) as { config: Layer; layers: Layer[] };
    for (const blob of [parsed.config, ...parsed.layers]) {
      const mount = await fetch(
        `${registry.url}/v2/stage/conda-forge/${epoch.subdir}/${component}/blobs/uploads/?mount=${blob.digest}&from=stage/conda-forge/${other.subdir}/${otherV0.component}`,
        { method: 'POST' },
      );
      expect(mount.status).toBe(201);
    }
    const put = await fetch(
      `${registry.url}/v2/stage/conda-forge/${epoch.subdir}/${component}/manifests/${tag}`,
      {
        method: 'PUT',
        headers: { 'content-type': MANIFEST_ACCEPT },
        body: bytes,
      },
    );
    expect(put.status).toBe(201);
    const validated = await run({
      recordKey: KEY,
      command: 'validate',
      from: staging(),
      artifacts: [request(epoch)],
      naming: NAMING_V1_V0,
    });
    const check = validated.artifacts[0]!.checks!.find((c) => c.name === 'v0-name')!;
    expect(check.ok).toBe(false);
    expect(check.detail).toMatch(/already holds pure-py 0\.9\.0 pyhd8ed1ab_0/);
    expect(check.detail).toMatch(/epoch-pkg 1!2\.5 h0_0/);
    // Without layout both the v0 name is not looked at.
    const v1only = await run({
      recordKey: KEY,
      command: 'validate',
      from: staging(),
      artifacts: [request(epoch)],
    });
    expect(v1only.artifacts[0]!.status).toBe('passed');
    // Upload puts it back (staging: other bytes of another package are refused, so delete first).
    const digest = (
      await fetch(`${registry.url}/v2/stage/conda-forge/${epoch.subdir}/${component}/manifests/${tag}`, {
        method: 'HEAD',
        headers: { accept: MANIFEST_ACCEPT },
      })
    ).headers.get('docker-content-digest');
    const refused = await run({
      command: 'upload',
      files: [fixturePath(epoch.filename)],
      to: staging(),
      naming: NAMING_V1_V0,
    });
    expect(refused.artifacts[0]!.status).toBe('failed');
    expect(refused.artifacts[0]!.error).toMatch(/already holds pure-py/);
    await fetch(`${registry.url}/v2/stage/conda-forge/${epoch.subdir}/${component}/manifests/${digest}`, {
      method: 'DELETE',
    });
    const restored = await run({
      command: 'upload',
      files: [fixturePath(epoch.filename)],
      to: staging(),
      naming: NAMING_V1_V0,
    });
    expect(restored.artifacts[0]!.status).toBe('exists');
    const revalidated = await run({
      recordKey: KEY,
      command: 'validate',
      from: staging(),
      artifacts: [request(epoch)],
      naming: NAMING_V1_V0,
    });
    expect(revalidated.artifacts[0]!.status).toBe('passed');
  });

  test('promote: v0 names in production hold the same manifests, blobs mounted, none sent', () => {
    expect(promoted.artifacts.filter((a) => a.status !== 'promoted')).toEqual([]);
    for (const a of promoted.artifacts) {
      const { component, tag } = v0Of(a.file);
      expect(a.v0Reference).toBe(`${proxy.host}/prod/conda-forge/${a.subdir}/${component}:${tag}`);
    }
    const v0Repository = (path: string) => {
      const m = /^\/v2\/prod\/conda-forge\/[^/]+\/([^/]+)\//.exec(path);
      return m !== null && !m[1]!.startsWith('c') && !/^h[0-9a-f]{64}$/.test(m[1]!);
    };
    const v0Uploads = promoteRecords.filter(
      (r) => v0Repository(r.path) && r.path.includes('/blobs/uploads/'),
    );
    expect(v0Uploads.length).toBeGreaterThan(0);
    expect(v0Uploads.every((r) => r.method === 'POST' && r.path.includes('mount=') && r.status === 201)).toBe(
      true,
    );
    expect(v0Uploads.reduce((sum, r) => sum + r.requestBytes, 0)).toBe(0);
    // v0 before v1: the first PUT of a v0 manifest comes before the PUT of its v1 tag.
    for (const a of promoted.artifacts) {
      const { component, tag } = v0Of(a.file);
      const v0Put = promoteRecords.findIndex(
        (r) =>
          r.method === 'PUT' && r.path === `/v2/prod/conda-forge/${a.subdir}/${component}/manifests/${tag}`,
      );
      const v1Put = promoteRecords.findIndex(
        (r) => r.method === 'PUT' && r.path === `/v2/${a.repository}/manifests/${a.tag}`,
      );
      expect(v0Put, a.file).toBeGreaterThanOrEqual(0);
      expect(v0Put, a.file).toBeLessThan(v1Put);
    }
  });

  test('promote again: already published, nothing written', async () => {
    proxy.clearRecords();
    const again = await run({
      recordKey: KEY,
      command: 'promote',
      from: staging(),
      to: production(),
      artifacts: STORED.map(request),
      naming: NAMING_V1_V0,
    });
    expect(again.artifacts.map((a) => a.status)).toEqual(STORED.map(() => 'already-published'));
    expect(proxy.count({ method: 'PUT' }) + proxy.count({ method: 'POST' })).toBe(0);
  });

  test('repodata: v0 repodata.json:latest and a timestamp tag; a rattler-like client installs every fixture', async () => {
    const reporter = collecting();
    const first = await run({ command: 'repodata', channel: production(), naming: NAMING_V1_V0 }, reporter);
    expect(first.exitCode).toBe(0);
    expect(reporter.warnings).toEqual([]);
    const v0 = first.artifacts.filter(
      (a) => a.repository?.endsWith('/repodata.json') || a.repository?.endsWith('/repodata.json.zst'),
    );
    expect(v0.map((a) => `${a.subdir}/${a.file}:${a.status}`).sort()).toEqual([
      'linux-64/repodata.json.zst:uploaded',
      'linux-64/repodata.json:uploaded',
      'noarch/repodata.json.zst:uploaded',
      'noarch/repodata.json:uploaded',
    ]);
    // Same manifest as the v1 repodata.json, also under the run's timestamp tag.
    for (const subdir of ['linux-64', 'noarch']) {
      const v1 = first.artifacts.find(
        (a) => a.subdir === subdir && a.repository?.endsWith('/mrepodata.json'),
      )!;
      const v0Latest = first.artifacts.find(
        (a) => a.subdir === subdir && a.repository?.endsWith('/repodata.json'),
      )!;
      const v0Digest = await v0FormDigest(v1.repository!, v1.digest!);
      expect(v0Latest.digest).toBe(v0Digest);
      const stamped = await fetch(
        `${registry.url}/v2/prod/conda-forge/${subdir}/repodata.json/manifests/20260304T050607Z`,
        {
          method: 'HEAD',
          headers: { accept: MANIFEST_ACCEPT },
        },
      );
      expect(stamped.headers.get('docker-content-digest')).toBe(v0Digest);
    }

    const seen = new Map<string, Record_>();
    for (const subdir of ['linux-64', 'noarch']) {
      for (const [file, record] of await readLikeRattler('prod/conda-forge', subdir))
        seen.set(`${subdir}/${file}`, record);
    }
    expect([...seen.keys()].sort()).toEqual(STORED.map((e) => `${e.subdir}/${e.filename}`).sort());
    for (const e of STORED) expect(seen.get(`${e.subdir}/${e.filename}`)!.sha256).toBe(e.sha256);
    // The tricky names are among them.
    expect([...seen.keys()].some((k) => k.includes('/_libgcc_mutex-'))).toBe(true);
    expect([...seen.keys()].some((k) => k.includes('+cpu'))).toBe(true);
    expect([...seen.keys()].some((k) => k.includes('1!2.5'))).toBe(true);
  });

  test("repodata: mamba's reading (first layer of <subdir>/<file>:latest) gives the JSON and the zstd copy", async () => {
    for (const subdir of ['linux-64', 'noarch']) {
      const plain = await getManifest(`prod/conda-forge/${subdir}/repodata.json`, 'latest');
      const json = await getBlob(`prod/conda-forge/${subdir}/repodata.json`, plain.layers[0]!.digest);
      const zstManifest = await getManifest(`prod/conda-forge/${subdir}/repodata.json.zst`, 'latest');
      expect(zstManifest.layers[0]!.mediaType).toBe('application/vnd.conda.repodata.v1+json+zst');
      const zst = await getBlob(
        `prod/conda-forge/${subdir}/repodata.json.zst`,
        zstManifest.layers[0]!.digest,
      );
      expect(Buffer.from(await zstdDecompress(zst)).equals(json)).toBe(true);
      expect(JSON.parse(json.toString()).info.subdir).toBe(subdir);
    }
  });

  test('repodata again: unchanged, the v0 copies cost HEADs and nothing is pushed', async () => {
    proxy.clearRecords();
    const again = await run({ command: 'repodata', channel: production(), naming: NAMING_V1_V0 });
    expect(again.artifacts.every((a) => a.status === 'exists')).toBe(true);
    expect(
      proxy.count({ method: 'PUT' }) + proxy.count({ method: 'POST' }) + proxy.count({ method: 'PATCH' }),
    ).toBe(0);
  });
});

describe('the v0/v1 name collision: cmake (v0 <subdir>/cmake) and make (v1 <subdir>/cmake)', () => {
  let cmake: MadePackage;
  let make: MadePackage;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'conda-oci-v0-'));
    // Build strings without "_": the v0 tag 3.1-h0 is then also a valid v1 tag.
    cmake = await makePackage(dir, { name: 'cmake', version: '3.1', build: 'h0' });
    make = await makePackage(dir, { name: 'make', version: '3.1', build: 'h0' });
  });

  const requestOf = (p: MadePackage) => ({ subdir: p.subdir, file: p.file, sha256: p.sha256 });
  const stage = async (staging: string, pkgs: MadePackage[], layout: 'v1' | 'both') => {
    const naming = parseNaming(layout);
    const up = await run({
      command: 'upload',
      files: pkgs.map((p) => p.path),
      to: `oci://${proxy.host}/${staging}`,
      naming,
    });
    expect(up.artifacts.filter((a) => a.status === 'failed')).toEqual([]);
    const validated = await run({
      command: 'validate',
      from: `oci://${proxy.host}/${staging}`,
      artifacts: pkgs.map(requestOf),
      naming,
      recordKey: KEY,
    });
    expect(validated.artifacts.filter((a) => a.status !== 'passed')).toEqual([]);
  };
  const promoteFrom = (
    staging: string,
    production: string,
    pkgs: MadePackage[],
    layout: 'v1' | 'both',
    naming = parseNaming(layout),
  ) =>
    run({
      command: 'promote',
      from: `oci://${proxy.host}/${staging}`,
      to: `oci://${proxy.host}/${production}`,
      artifacts: pkgs.map(requestOf),
      naming,
      recordKey: KEY,
    });

  const tagDigest = async (repository: string, tag: string) =>
    (
      await fetch(`${registry.url}/v2/${repository}/manifests/${tag}`, {
        method: 'HEAD',
        headers: { accept: MANIFEST_ACCEPT },
      })
    ).headers.get('docker-content-digest');

  /** Writes cmake's staged manifest at its v0 name by hand, as a writer without the rule did. */
  const copyToV0ByHand = async (channel: string, digest: string) => {
    const store = new RemoteStore({ host: proxy.host, plainHttp: true });
    try {
      const from = store.repository(`${channel}/linux-64/ccmake`);
      const fetched = await from.fetchManifest(digest);
      const to = store.repository(`${channel}/linux-64/cmake`);
      for (const blob of manifestBlobs(parseImageManifest(fetched.bytes)))
        await to.pushBlob(blob, await from.readBlob(blob, 1 << 20));
      await to.pushManifest({ mediaType: fetched.descriptor.mediaType, bytes: fetched.bytes }, '3.1-h0');
    } finally {
      await store.close();
    }
  };

  test('cmake 3.1 h0, whose v0 name could be make 3.1 h0: layout both refuses it at upload and validate, before anything is staged; make is published unhindered', async () => {
    // Upload refuses cmake whole: neither its v1 nor its v0 name is staged.
    const up = await run({
      command: 'upload',
      files: [cmake.path],
      to: `oci://${proxy.host}/sa/c`,
      naming: NAMING_V1_V0,
    });
    expect(up.artifacts[0]!.status).toBe('failed');
    expect(up.artifacts[0]!.error).toMatch(
      /v0 name linux-64\/cmake:3\.1-h0 of cmake 3\.1 h0 could be the v1 name of another package/,
    );
    expect(await tagDigest('sa/c/linux-64/ccmake', '3.1-h0')).toBeNull();
    expect(await tagDigest('sa/c/linux-64/cmake', '3.1-h0')).toBeNull();

    // Staged in v1 only, validate with layout both refuses it too, naming the rule.
    await stage('sa/c', [cmake], 'v1');
    const validated = await run({
      recordKey: KEY,
      command: 'validate',
      from: `oci://${proxy.host}/sa/c`,
      artifacts: [requestOf(cmake)],
      naming: NAMING_V1_V0,
    });
    expect(validated.artifacts[0]!.status).toBe('failed');
    expect(validated.artifacts[0]!.error).toMatch(/^names: .*could be the v1 name of another package/);

    // make takes its v1 name, cmake:3.1-h0, in staging and in production.
    await stage('sa2/c', [make], 'both');
    const promoted = await promoteFrom('sa2/c', 'prod-a/c', [make], 'both');
    expect(promoted.artifacts[0]!.status, promoted.artifacts[0]!.error).toBe('promoted');
    expect(await tagDigest('prod-a/c/linux-64/cmake', '3.1-h0')).toBe(promoted.artifacts[0]!.digest);
  });

  test('a version so long that its v0 tag passes 128 characters: a short deterministic v0 tag, staged, validated and promoted whole, its blob found by sha256', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'conda-oci-v0-long-'));
    const long = await makePackage(dir, { name: 'longver', version: `1.${'2'.repeat(130)}`, build: 'h0_0' });
    const full = v0Of(long.file).tag;
    expect(full.length).toBeGreaterThan(128);
    // The first 110 characters, then `-h` and 16 hex digits of the full tag's sha256: 128 in all.
    const short = `${full.slice(0, 110)}-h${createHash('sha256').update(full).digest('hex').slice(0, 16)}`;
    await stage('sl/c', [long], 'both');
    const staged = await tagDigest('sl/c/linux-64/longver', short);
    expect(staged).not.toBeNull();
    const promoted = await promoteFrom('sl/c', 'prod-l/c', [long], 'both');
    expect(promoted.artifacts[0]!.status, promoted.artifacts[0]!.error).toBe('promoted');
    expect(await tagDigest('prod-l/c/linux-64/longver', short)).toBe(staged);
    const blob = await getBlob('prod-l/c/linux-64/longver', `sha256:${long.sha256}`);
    expect(createHash('sha256').update(blob).digest('hex')).toBe(long.sha256);
  });

  test('a channel that already holds cmake at its v0 name (an older writer): make is refused, production tags never move, and repodata lists cmake once', async () => {
    await stage('sb1/c', [cmake], 'v1');
    const first = await promoteFrom('sb1/c', 'prod-b/c', [cmake], 'v1');
    expect(first.artifacts[0]!.status).toBe('promoted');
    await copyToV0ByHand('prod-b/c', first.artifacts[0]!.digest!);
    const cmakeDigest = await tagDigest('prod-b/c/linux-64/cmake', '3.1-h0');
    expect(cmakeDigest).toBe(first.artifacts[0]!.digest);

    await stage('sb2/c', [make], 'v1');
    const second = await promoteFrom('sb2/c', 'prod-b/c', [make], 'v1');
    const refused = second.artifacts[0]!;
    expect(refused.status).toBe('failed');
    expect(refused.error).toMatch(/already holds cmake 3\.1 h0 .*not make-3\.1-h0\.conda/);
    expect(await tagDigest('prod-b/c/linux-64/cmake', '3.1-h0')).toBe(cmakeDigest);

    // repodata takes <subdir>/cmake:3.1-h0 for a v1 name of "make", reads it and finds cmake's v0 name.
    const reporter = collecting();
    const indexed = await run(
      { command: 'repodata', channel: `oci://${proxy.host}/prod-b/c`, naming: NAMING_V1_V0 },
      reporter,
    );
    expect(indexed.exitCode).toBe(0);
    expect(reporter.warnings).toEqual([]);
    expect(reporter.infos.some((m) => /1 v0 name\(s\) passed over/.test(m))).toBe(true);
    expect(indexed.summary.records).toBe(1);
    const records = await readLikeRattler('prod-b/c', 'linux-64');
    expect([...records.keys()]).toEqual([cmake.file]);
  });

  test("clean passes over a v0 name on its own, and takes an artifact's v0 name (even one an older writer left) with the artifact", async () => {
    await stage('sc/c', [cmake], 'v1');
    await copyToV0ByHand('sc/c', (await tagDigest('sc/c/linux-64/ccmake', '3.1-h0'))!);
    const cleaned = await run({
      command: 'clean',
      channel: `oci://${proxy.host}/sc/c`,
      olderThanMs: 0,
      naming: NAMING_V1_V0,
    });
    expect(cleaned.artifacts.map((a) => `${a.file}:${a.status}`)).toEqual([`${cmake.file}:deleted`]);
    expect(await tagDigest('sc/c/linux-64/ccmake', '3.1-h0')).toBeNull();
    expect(await tagDigest('sc/c/linux-64/cmake', '3.1-h0')).toBeNull();
  });
});

describe('the layout option', () => {
  test('parseNaming: v1 and both, nothing else', () => {
    expect(parseNaming('v1')).toBe(NAMING_V1);
    expect(parseNaming(' Both ')).toBe(NAMING_V1_V0);
    expect(() => parseNaming('v0')).toThrow(/must be v1 or both, not "v0"/);
  });

  test('action input layout: both is passed to the command, v1 is the default, others are refused', () => {
    const inputs = { INPUT_COMMAND: 'repodata', INPUT_CHANNEL: 'oci-layout:/tmp/nowhere' };
    const read = (extra: Record<string, string>) => {
      Object.assign(process.env, inputs, extra);
      try {
        return readInputs();
      } finally {
        for (const key of [...Object.keys(inputs), ...Object.keys(extra)]) delete process.env[key];
      }
    };
    expect(read({ INPUT_LAYOUT: 'both' }).options).toMatchObject({
      command: 'repodata',
      naming: NAMING_V1_V0,
    });
    expect(read({ INPUT_LAYOUT: 'v1' }).options).toHaveProperty('naming', NAMING_V1);
    expect(read({}).options).toHaveProperty('naming', NAMING_V1);
    expect(() => read({ INPUT_LAYOUT: 'v2' })).toThrow(/input layout must be v1 or both/);
  });

  test('CLI: --layout other than v1 or both is a usage error (exit 2)', async () => {
    const stderr = process.stderr.write;
    let written = '';
    process.stderr.write = (chunk: string) => {
      written += chunk;
      return true;
    };
    try {
      expect(await main(['repodata', '--channel', 'oci-layout:/tmp/nowhere', '--layout', 'v0'])).toBe(2);
    } finally {
      process.stderr.write = stderr;
    }
    expect(written).toMatch(/--layout must be v1 or both, not "v0"/);
  });
});
