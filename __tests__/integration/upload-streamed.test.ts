/**
 * Large packages are read once and sent while they are read (upload.ts readWhileUploading): one
 * PATCH with the whole file, closed by a PUT with the digest the package reader computed. The
 * result must be exactly what the ordinary path stores; a registry that refuses the stream gets
 * the ordinary upload; a bad package leaves nothing behind.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readPackageManifest } from '../../src/conda/artifact.js';
import { silentReporter } from '../../src/commands/report.js';
import { STREAMED_UPLOAD_MIN } from '../../src/commands/upload.js';
import { execute } from '../../src/core/execute.js';
import { HttpClient } from '../../src/oci/remote/http.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import { makePackage, type MadePackage } from '../helpers/packages.js';
import { actions, startProxy, type TestProxy } from '../helpers/proxy.js';
import { useRegistry } from '../helpers/registry.js';

const registry = useRegistry({ auth: 'none' });
let proxy: TestProxy;
let work: string;
let big: MadePackage;

beforeAll(async () => {
  proxy = await startProxy(registry.url);
  work = mkdtempSync(join(tmpdir(), 'conda-oci-streamed-'));
  big = await makePackage(join(work, 'pkgs'), {
    name: 'big-streamed',
    version: '1.0',
    build: 'h1234567_0',
    subdir: 'linux-64',
    payloadBytes: STREAMED_UPLOAD_MIN + 3 * 1024 * 1024,
  });
}, 60_000);
afterAll(async () => {
  await proxy.close();
});

function upload(files: string[], channel: string) {
  return execute(
    { command: 'upload', files, to: `oci://${proxy.host}/${channel}` },
    { reporter: silentReporter },
  );
}

async function blobPresent(repository: string, sha256: string): Promise<boolean> {
  const store = new RemoteStore({ host: registry.host, plainHttp: true });
  try {
    return (await store.repository(repository).statBlob(`sha256:${sha256}`)) !== undefined;
  } finally {
    await store.close();
  }
}

describe('upload of a large package', () => {
  test('streams it in one PATCH and stores what the ordinary path stores', async () => {
    proxy.clearRecords();
    const streamed = await upload([big.path], 'streamed/conda-forge');
    expect(streamed.exitCode).toBe(0);
    const a = streamed.artifacts[0]!;
    expect(a).toMatchObject({ status: 'uploaded', sha256: big.sha256, md5: big.md5, size: big.size });
    // The package went up once, in one PATCH; the closing PUT carried no body.
    const patches = proxy.records.filter((r) => r.method === 'PATCH');
    expect(patches).toHaveLength(1);
    expect(patches[0]!.requestBytes).toBe(big.size);
    expect(proxy.bytes({ method: 'PUT', path: /\/blobs\/uploads\// }).request).toBeLessThan(64 * 1024);
    expect(a.bytesSent).toBeGreaterThanOrEqual(big.size);

    // The same file from a directory that names no subdir takes the ordinary path.
    const elsewhere = join(work, 'elsewhere');
    mkdirSync(elsewhere, { recursive: true });
    copyFileSync(big.path, join(elsewhere, big.file));
    proxy.clearRecords();
    const ordinary = await upload([join(elsewhere, big.file)], 'ordinary/conda-forge');
    expect(ordinary.exitCode).toBe(0);
    expect(proxy.count({ method: 'PATCH' })).toBe(0);
    expect(ordinary.artifacts[0]!.digest).toBe(a.digest);

    const store = new RemoteStore({ host: registry.host, plainHttp: true });
    try {
      const fetched = await store.repository(a.repository!).fetchManifest(a.tag!);
      const info = readPackageManifest(fetched.bytes, a.reference!);
      const blob = Buffer.from(await store.repository(a.repository!).readBlob(info.packageLayer, 64 << 20));
      expect(blob.equals(readFileSync(big.path))).toBe(true);
    } finally {
      await store.close();
    }
  });

  test('a registry that takes the body slowly gets the same bytes (the read buffers wait for it)', async () => {
    // The PATCH body stops for a while after 2 MiB: the reader, eight 1 MiB buffers ahead at most,
    // must wait for the upload instead of reading over pieces it has not sent yet.
    proxy.clearRecords();
    const rule = proxy.on({ method: 'PATCH' }, actions.stall('request', 2 * 1024 * 1024, 800), { times: 1 });
    const result = await upload([big.path], 'slow/conda-forge').finally(() => rule.remove());
    expect(result.exitCode).toBe(0);
    const a = result.artifacts[0]!;
    expect(a).toMatchObject({ status: 'uploaded', sha256: big.sha256, md5: big.md5 });
    expect(proxy.count({ method: 'PATCH' })).toBe(1);
    // The stream was taken: no PUT carried the package again.
    expect(proxy.bytes({ method: 'PUT', path: /\/blobs\/uploads\// }).request).toBeLessThan(64 * 1024);
    // Stored as the file is: the registry checked the digest, and the bytes read back match.
    const store = new RemoteStore({ host: registry.host, plainHttp: true });
    try {
      const fetched = await store.repository(a.repository!).fetchManifest(a.tag!);
      const info = readPackageManifest(fetched.bytes, a.reference!);
      const blob = Buffer.from(await store.repository(a.repository!).readBlob(info.packageLayer, 64 << 20));
      expect(blob.equals(readFileSync(big.path))).toBe(true);
    } finally {
      await store.close();
    }
  });

  test('a registry that refuses the stream gets the ordinary upload', async () => {
    proxy.clearRecords();
    const rule = proxy.on({ method: 'PATCH' }, actions.status(416), { times: 1 });
    try {
      const result = await upload([big.path], 'refused/conda-forge');
      expect(result.exitCode).toBe(0);
      expect(result.artifacts[0]).toMatchObject({ status: 'uploaded', sha256: big.sha256 });
      expect(proxy.count({ method: 'PATCH' })).toBe(1);
      expect(proxy.bytes({ method: 'PUT', path: /\/blobs\/uploads\// }).request).toBeGreaterThanOrEqual(
        big.size,
      );
    } finally {
      rule.remove();
    }
  });

  test('a bad package is refused and leaves no blob, tag or open session', async () => {
    // Valid up to its last bytes: the central directory at the end is cut off.
    const dir = join(work, 'bad', 'linux-64');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, big.file);
    const bytes = readFileSync(big.path);
    writeFileSync(path, bytes.subarray(0, bytes.length - 10));
    proxy.clearRecords();
    // The registry takes the last MB late: the reader is done (and refuses the package) while
    // part of the body is still on its way, and the upload must end rather than wait for it.
    const rule = proxy.on({ method: 'PATCH' }, actions.stall('request', bytes.length - 10 - 1_000_000, 1500));
    const result = await upload([path], 'bad/conda-forge').finally(() => rule.remove());
    expect(result.exitCode).toBe(1);
    expect(result.artifacts[0]!.status).toBe('failed');
    expect(result.artifacts[0]!.error).toContain(big.file);
    expect(proxy.count({ method: 'PUT' })).toBe(0);
    expect(proxy.count({ method: 'DELETE', path: /\/blobs\/uploads\// })).toBe(1);
    const repository = `bad/conda-forge/linux-64/c${big.name}`;
    const truncated = createHash('sha256')
      .update(bytes.subarray(0, bytes.length - 10))
      .digest('hex');
    expect(await blobPresent(repository, truncated)).toBe(false);
  });

  test('a package in a directory of another subdir is refused, nothing stored there', async () => {
    const dir = join(work, 'wrong', 'noarch');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, big.file);
    copyFileSync(big.path, path);
    const result = await upload([path], 'wrong/conda-forge');
    expect(result.exitCode).toBe(1);
    expect(result.artifacts[0]!.error).toMatch(/noarch.*linux-64|linux-64.*noarch/);
    expect(await blobPresent(`wrong/conda-forge/noarch/c${big.name}`, big.sha256)).toBe(false);
  });
});

describe('a streamed request body', () => {
  test('destroyed before its end fails the request instead of leaving it waiting', async () => {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('done'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const http = new HttpClient({ headersTimeoutMs: 20_000, bodyTimeoutMs: 20_000 });
    try {
      const body = new PassThrough();
      body.write(Buffer.alloc(50));
      const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/upload`);
      const sent = http.send({
        method: 'PUT',
        url,
        headers: { 'content-length': '100' },
        body: () => body,
      });
      setTimeout(() => body.destroy(), 200);
      const started = Date.now();
      await expect(sent).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await http.close();
      server.close();
    }
  });
});
