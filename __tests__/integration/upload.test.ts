/**
 * `upload` end to end: the fixture packages into the real registry and into an oci-layout
 * channel, read back and compared with the package files and with what `cph x --info` extracts.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'fflate';
import { extract } from 'tar-stream';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  readPackageManifest,
  MEDIA_TYPE_CONDA_PACKAGE_V1,
  MEDIA_TYPE_CONDA_PACKAGE_V2,
} from '../../src/conda/artifact.js';
import { silentReporter, type CommandResult } from '../../src/commands/report.js';
import { execute } from '../../src/core/execute.js';
import { LayoutStore } from '../../src/oci/layout/store.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import type { Store } from '../../src/oci/storage.js';
import { cphInfo, EXPECTED, expectedOf, fixturePath, FIXTURES } from '../helpers/fixtures.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { useRegistry } from '../helpers/registry.js';

const registry = useRegistry({ auth: 'none' });
let proxy: TestProxy;
let work: string;

beforeAll(async () => {
  proxy = await startProxy(registry.url);
  work = mkdtempSync(join(tmpdir(), 'conda-oci-upload-'));
});
afterAll(async () => {
  await proxy.close();
});

async function untar(gz: Uint8Array): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const tar = extract();
  const done = new Promise<void>((resolve, reject) => {
    tar.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c) => chunks.push(c as Buffer));
      stream.on('end', () => {
        if (header.type === 'file') files.set(header.name, Buffer.concat(chunks));
        next();
      });
    });
    tar.on('finish', resolve);
    tar.on('error', reject);
  });
  Readable.from([Buffer.from(gunzipSync(gz))]).pipe(tar);
  await done;
  return files;
}

const ALL_FIXTURES = EXPECTED.map((e) => fixturePath(e.filename));

interface Target {
  kind: string;
  channel: () => string;
  store: () => Store;
}

const targets: Target[] = [
  {
    kind: 'registry',
    channel: () => `oci://${proxy.host}/staging/conda-forge`,
    store: () => new RemoteStore({ host: proxy.host, plainHttp: true }),
  },
  {
    kind: 'oci-layout',
    channel: () => `oci-layout:${join(work, 'layout')}`,
    store: () => new LayoutStore(join(work, 'layout')),
  },
];

describe.each(targets)('upload to $kind', ({ kind, channel, store: openStore }) => {
  let first: CommandResult;
  let store: Store;

  beforeAll(async () => {
    store = openStore();
    first = await execute(
      { command: 'upload', files: ALL_FIXTURES, to: channel() },
      { reporter: silentReporter },
    );
  });
  afterAll(async () => {
    await store.close();
  });

  test('every fixture is staged, except the .tar.bz2 that has a .conda twin', () => {
    expect(first.exitCode).toBe(0);
    const byFile = new Map(first.artifacts.map((a) => [a.file, a]));
    expect(byFile.get('demo-pkg-1.2.3-h1234567_0.tar.bz2')?.status).toBe('skipped');
    for (const e of EXPECTED.filter((x) => x.filename !== 'demo-pkg-1.2.3-h1234567_0.tar.bz2')) {
      const a = byFile.get(e.filename);
      expect(a, e.filename).toMatchObject({
        status: 'uploaded',
        subdir: e.subdir,
        name: e.name,
        version: e.version,
        build: e.build,
        sha256: e.sha256,
        md5: e.md5,
        size: e.size,
      });
    }
  });

  test('read back: package blob byte-identical, index.json and info layers equal the package', async () => {
    for (const a of first.artifacts.filter((x) => x.status === 'uploaded')) {
      const repository = store.repository(a.repository!);
      const fetched = await repository.fetchManifest(a.tag!);
      expect(fetched.descriptor.digest).toBe(a.digest);
      const info = readPackageManifest(fetched.bytes, a.reference!);
      expect(info.packageLayer.mediaType).toBe(
        a.file.endsWith('.conda') ? MEDIA_TYPE_CONDA_PACKAGE_V2 : MEDIA_TYPE_CONDA_PACKAGE_V1,
      );
      expect(info.md5).toBe(expectedOf(a.file).md5);
      const original = readFileSync(fixturePath(a.file));
      const blob = Buffer.from(await repository.readBlob(info.packageLayer, 64 << 20));
      expect(blob.equals(original), `${a.file} package layer`).toBe(true);
      const extracted = cphInfo(fixturePath(a.file));
      const indexLayer = Buffer.from(await repository.readBlob(info.indexLayer, 1 << 20));
      expect(indexLayer.equals(extracted.get('info/index.json')!), `${a.file} index layer`).toBe(true);
      const infoFiles = await untar(await repository.readBlob(info.infoLayer, 64 << 20));
      expect([...infoFiles.keys()].sort()).toEqual([...extracted.keys()].sort());
      for (const [path, bytes] of extracted)
        expect(infoFiles.get(path)?.equals(bytes), `${a.file} ${path}`).toBe(true);
    }
  });

  test('uploading the same files again sends no blob bytes and gives identical digests', async () => {
    proxy.clearRecords();
    const again = await execute(
      { command: 'upload', files: ALL_FIXTURES, to: channel() },
      { reporter: silentReporter },
    );
    expect(again.exitCode).toBe(0);
    for (const a of again.artifacts) {
      const before = first.artifacts.find((x) => x.file === a.file)!;
      expect(a.digest).toBe(before.digest);
      expect(a.status).toBe(before.status === 'skipped' ? 'skipped' : 'exists');
      expect(a.bytesSent ?? 0).toBe(0);
    }
    if (kind === 'registry') {
      // No blob bytes went over the wire: no PUT or PATCH with a body, no upload session at all.
      expect(proxy.count({ method: 'POST' })).toBe(0);
      expect(proxy.count({ method: 'PATCH' })).toBe(0);
      expect(proxy.count({ method: 'PUT' })).toBe(0);
      const perArtifact = proxy.count() / again.artifacts.filter((a) => a.status === 'exists').length;
      expect(perArtifact).toBeLessThanOrEqual(5);
    }
  });
});

describe('requests of a new artifact', () => {
  test('only the shared empty config is asked for; the small new blobs are sent at once', async () => {
    proxy.clearRecords();
    const file = fixturePath('libzlib-1.3.1-hb9d3cd8_2.conda');
    const result = await execute(
      { command: 'upload', files: [file], to: `oci://${proxy.host}/fresh/conda-forge` },
      { reporter: silentReporter },
    );
    expect(result.artifacts.map((a) => a.status)).toEqual(['uploaded']);
    // One HEAD for the tag, one for the empty config; the package, info, index.json and receipt
    // blobs (all under 64 KiB here) each go up as one POST and one PUT.
    expect(proxy.count({ method: 'HEAD', path: /\/manifests\// })).toBe(1);
    expect(proxy.count({ method: 'HEAD', path: /\/blobs\// })).toBe(1);
    expect(proxy.count({ method: 'POST' })).toBe(5);
    expect(proxy.count()).toBe(17);
    // Sent without asking, and stored all the same.
    const a = result.artifacts[0]!;
    const reader = new RemoteStore({ host: proxy.host, plainHttp: true });
    const repository = reader.repository(a.repository!);
    const info = readPackageManifest((await repository.fetchManifest(a.tag!)).bytes, a.reference!);
    for (const layer of [info.packageLayer, info.infoLayer, info.indexLayer])
      expect(await repository.statBlob(layer.digest)).toEqual({ size: layer.size });
    await reader.close();
  });
});

describe('upload refuses bad input and writes nothing for it', () => {
  const channelDir = () => join(work, 'refusals');

  function badFile(name: string, write: (path: string) => void): string {
    const dir = join(work, 'bad');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, name);
    write(path);
    return path;
  }

  test.each([
    ['not an archive', 'garbage-1.0-0.conda', (p: string) => writeFileSync(p, 'this is not a zip file')],
    ['an empty file', 'empty-1.0-0.tar.bz2', (p: string) => writeFileSync(p, '')],
    [
      'a file name that does not match index.json',
      'other-name-1.2.4-h7654321_1.conda',
      (p: string) => copyFileSync(fixturePath('demo-pkg-1.2.4-h7654321_1.conda'), p),
    ],
    [
      'a member escaping the archive',
      'evil-1.0-0.tar.bz2',
      (p: string) =>
        execFileSync('python3', [
          '-c',
          `import tarfile,io,json
t=tarfile.open(${JSON.stringify(p)},'w:bz2')
def add(n,b):
  i=tarfile.TarInfo(n);i.size=len(b);t.addfile(i,io.BytesIO(b))
add('info/index.json',json.dumps({'name':'evil','version':'1.0','build':'0','build_number':0,'subdir':'noarch','depends':[]}).encode())
add('../../etc/evil',b'x')
t.close()`,
        ]),
    ],
    [
      'a truncated package',
      'pure-py-0.9.0-pyhd8ed1ab_0.conda',
      (p: string) =>
        writeFileSync(p, readFileSync(fixturePath('pure-py-0.9.0-pyhd8ed1ab_0.conda')).subarray(0, 3000)),
    ],
  ])('%s', async (_what, name, write) => {
    const path = badFile(name, write);
    const result = await execute(
      { command: 'upload', files: [path], to: `oci-layout:${channelDir()}` },
      { reporter: silentReporter },
    );
    expect(result.exitCode).toBe(1);
    expect(result.artifacts[0]!.status).toBe('failed');
    expect(result.artifacts[0]!.error).toContain(name);
    const names: string[] = [];
    for await (const repo of new LayoutStore(channelDir()).listRepositories('')) names.push(repo);
    expect(names).toEqual([]);
  });

  test('one bad file does not stop the others', async () => {
    const bad = badFile('broken-1.0-0.conda', (p) => writeFileSync(p, 'nope'));
    const result = await execute(
      {
        command: 'upload',
        files: [bad, fixturePath('libzlib-1.3.1-hb9d3cd8_2.conda')],
        to: `oci-layout:${join(work, 'mixed')}`,
      },
      { reporter: silentReporter },
    );
    expect(result.exitCode).toBe(1);
    expect(result.artifacts.map((a) => a.status).sort()).toEqual(['failed', 'uploaded']);
  });

  test('a glob that matches nothing is a usage error', async () => {
    await expect(
      execute(
        { command: 'upload', files: [join(FIXTURES, 'nothing-*.conda')], to: `oci-layout:${channelDir()}` },
        { reporter: silentReporter },
      ),
    ).rejects.toThrow(/no file matches/);
  });
});
