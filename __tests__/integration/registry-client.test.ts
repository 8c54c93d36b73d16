/**
 * The registry client (src/oci/remote/client.ts) against the real distribution 2.8 registry,
 * with the fault-injecting proxy in front of it where the registry alone would not misbehave.
 * Assertions are on outcomes: registry state, bytes read back, digests, request counts seen by
 * the proxy and the client's own counters.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import {
  DigestMismatchError,
  NotFoundError,
  ProtocolError,
  RegistryError,
  UnsupportedError,
} from '../../src/oci/errors.js';
import { EMPTY_CONFIG, type ImageIndex, type ImageManifest } from '../../src/oci/manifest.js';
import { canonicalJson } from '../../src/util/canonical-json.js';
import {
  EMPTY_JSON_BYTES,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
} from '../../src/oci/media-types.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/oci/remote/client.js';
import { fileSource, type BlobSource } from '../../src/oci/storage.js';
import { actions, startProxy, type ProxyRequest, type TestProxy } from '../helpers/proxy.js';
import { useRegistry } from '../helpers/registry.js';

const MiB = 1024 * 1024;
const registry = useRegistry({ auth: 'none' });
let proxy: TestProxy;
const clients: RegistryClient[] = [];

beforeAll(async () => {
  proxy = await startProxy(registry.url);
});
afterAll(async () => {
  await proxy.close();
});
beforeEach(() => {
  proxy.clearRules();
  proxy.clearRecords();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

/** A client through the proxy (or straight to the registry with `direct`). */
function client(options: Partial<RegistryClientOptions> & { direct?: boolean } = {}): RegistryClient {
  const { direct, ...rest } = options;
  const c = new RegistryClient({ host: direct ? registry.host : proxy.host, plainHttp: true, ...rest });
  clients.push(c);
  return c;
}

/** A client whose waits are recorded, not slept. */
function fastClient(options: Partial<RegistryClientOptions> = {}): { c: RegistryClient; waits: number[] } {
  const waits: number[] = [];
  const c = client({
    sleep: async (ms) => {
      waits.push(ms);
    },
    ...options,
  });
  return { c, waits };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function blob(size: number): { bytes: Buffer; descriptor: { digest: Digest; size: number } } {
  const bytes = randomBytes(size);
  return { bytes, descriptor: { digest: digestOf(bytes), size } };
}

/** Reads the blob straight from the registry (not through the proxy) and checks it. */
async function expectStored(repository: string, bytes: Buffer): Promise<void> {
  const reader = client({ direct: true });
  const descriptor = { digest: digestOf(bytes), size: bytes.length };
  expect(await reader.statBlob(repository, descriptor.digest)).toEqual({ size: bytes.length });
  const back = await readAll(reader.openBlob(repository, descriptor));
  expect(back.length).toBe(bytes.length);
  expect(digestOf(back)).toBe(descriptor.digest);
}

/** Records the Content-Range of every PATCH the proxy sees (a rule that never matches). */
function recordContentRanges(): string[] {
  const ranges: string[] = [];
  proxy.on(
    {
      method: 'PATCH',
      where: (r: ProxyRequest) => {
        ranges.push(String(r.headers['content-range']));
        return false;
      },
    },
    actions.forward(),
  );
  return ranges;
}

function imageWith(layers: { digest: Digest; size: number }[], extra: Partial<ImageManifest> = {}) {
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    config: EMPTY_CONFIG,
    layers: layers.map((l) => ({ mediaType: 'application/octet-stream', ...l })),
    ...extra,
  };
  return { mediaType: MEDIA_TYPE_OCI_MANIFEST, bytes: canonicalJson(manifest) };
}

/** A small image (config `{}` plus one layer) pushed to `repository`. */
async function pushSmallImage(c: RegistryClient, repository: string, tag: string, text = tag) {
  const layer = Buffer.from(`layer of ${text}`);
  const layerDescriptor = { digest: digestOf(layer), size: layer.length };
  await c.pushBlob(repository, EMPTY_CONFIG, EMPTY_JSON_BYTES);
  await c.pushBlob(repository, layerDescriptor, layer);
  const manifest = imageWith([layerDescriptor]);
  const pushed = await c.pushManifest(repository, manifest, tag);
  return { manifest, descriptor: pushed.descriptor, layer, layerDescriptor };
}

// ---- 1. chunked and monolithic uploads ------------------------------------------------------

describe('uploads', () => {
  const content = blob(10 * MiB + 12_345);

  test('chunked (1 MiB PATCHes) and monolithic pushes of the same 10 MB store the same bytes', async () => {
    const chunked = client({ monolithicLimit: 0, chunkSize: MiB });
    const outcome = await chunked.pushBlob('upload/chunked', content.descriptor, content.bytes);
    expect(outcome).toEqual({ action: 'uploaded', bytesSent: content.bytes.length });
    expect(proxy.count({ method: 'PATCH' })).toBe(11);
    expect(proxy.count({ method: 'POST' })).toBe(1);
    expect(proxy.bytes({ method: 'PATCH' }).request).toBe(content.bytes.length);
    expect(proxy.bytes({ method: 'PUT' }).request).toBe(0);

    proxy.clearRecords();
    const monolithic = client();
    expect(await monolithic.pushBlob('upload/monolithic', content.descriptor, content.bytes)).toEqual({
      action: 'uploaded',
      bytesSent: content.bytes.length,
    });
    expect(proxy.count({ method: 'PATCH' })).toBe(0);
    expect(proxy.count({ method: 'PUT' })).toBe(1);
    expect(proxy.bytes({ method: 'PUT' }).request).toBe(content.bytes.length);

    await expectStored('upload/chunked', content.bytes);
    await expectStored('upload/monolithic', content.bytes);
    // Pushing again sends nothing: a client that does not know the blob is there asks (HEAD);
    // the one that stored it does not even ask.
    proxy.clearRecords();
    expect(await client().pushBlob('upload/chunked', content.descriptor, content.bytes)).toEqual({
      action: 'exists',
      bytesSent: 0,
    });
    expect(proxy.count()).toBe(1);
    proxy.clearRecords();
    expect(await chunked.pushBlob('upload/chunked', content.descriptor, content.bytes)).toEqual({
      action: 'exists',
      bytesSent: 0,
    });
    expect(proxy.count()).toBe(0);
  });

  test('a chunked upload cut between chunks resumes from the offset the registry reports', async () => {
    const data = blob(6 * MiB + 100);
    const ranges = recordContentRanges();
    // The fourth PATCH is cut before any of its body reaches the registry.
    proxy.on({ method: 'PATCH' }, actions.reset('request', 0), { skip: 3, times: 1 });
    const { c, waits } = fastClient({ monolithicLimit: 0, chunkSize: MiB });
    const outcome = await c.pushBlob('upload/resume', data.descriptor, data.bytes);
    expect(outcome.action).toBe('uploaded');
    expect(waits).toHaveLength(1);

    // One session; its status asked once (GET, 204); the resumed PATCH starts where the registry
    // said, at 3 MiB, not at 0.
    expect(proxy.count({ method: 'POST' })).toBe(1);
    expect(proxy.count({ method: 'GET', path: /\/blobs\/uploads\//, status: 204 })).toBe(1);
    expect(ranges.slice(0, 5)).toEqual([
      `0-${MiB - 1}`,
      `${MiB}-${2 * MiB - 1}`,
      `${2 * MiB}-${3 * MiB - 1}`,
      `${3 * MiB}-${4 * MiB - 1}`,
      `${3 * MiB}-${4 * MiB - 1}`,
    ]);
    const sent = proxy.bytes({ method: ['PATCH', 'PUT'] }).request;
    expect(sent).toBeLessThan(2 * data.bytes.length);
    expect(sent).toBe(data.bytes.length);
    await expectStored('upload/resume', data.bytes);
  });

  test('a chunked upload cut mid-PATCH ends in a correct blob (distribution drops such a session)', async () => {
    const data = blob(6 * MiB + 100);
    const ranges = recordContentRanges();
    // 300 KiB of the third PATCH reach the registry, then the connection is reset.
    // distribution keeps those bytes, so its session no longer matches any state we hold: the
    // status request answers 404 BLOB_UPLOAD_INVALID and the client starts a new session.
    proxy.on({ method: 'PATCH' }, actions.reset('request', 300 * 1024), { skip: 2, times: 1 });
    const { c, waits } = fastClient({ monolithicLimit: 0, chunkSize: MiB });
    expect((await c.pushBlob('upload/restart', data.descriptor, data.bytes)).action).toBe('uploaded');
    expect(waits).toHaveLength(1);
    const statusAnswers = proxy.records
      .filter((r) => r.method === 'GET' && r.path.includes('/blobs/uploads/'))
      .map((r) => r.status);
    expect(statusAnswers).toHaveLength(1);
    expect([204, 404]).toContain(statusAnswers[0]);
    // Either resumed (a registry that kept the session) or restarted once from 0.
    const resumedAt = Number(ranges[3]!.split('-')[0]);
    expect(resumedAt === 0 || resumedAt === 2 * MiB).toBe(true);
    expect(proxy.count({ method: 'POST' })).toBe(resumedAt === 0 ? 2 : 1);
    expect(proxy.bytes({ method: ['PATCH', 'PUT'] }).request).toBeLessThan(2 * data.bytes.length);
    await expectStored('upload/restart', data.bytes);
  });

  test('a monolithic PUT reset mid-body is retried and ends in a correct blob', async () => {
    const data = blob(5 * MiB + 7);
    proxy.on(
      { method: 'PUT', where: (r) => r.headers['content-length'] !== '0' },
      actions.reset('request', 2 * MiB),
      {
        times: 1,
      },
    );
    const { c, waits } = fastClient({ chunkSize: MiB });
    expect((await c.pushBlob('upload/put-reset', data.descriptor, data.bytes)).action).toBe('uploaded');
    expect(waits).toHaveLength(1);
    // The retry starts a new session and sends chunks, from byte 0.
    expect(proxy.count({ method: 'POST' })).toBe(2);
    expect(proxy.count({ method: 'PATCH' })).toBe(6);
    expect(proxy.bytes({ method: 'PATCH' }).request).toBe(data.bytes.length);
    await expectStored('upload/put-reset', data.bytes);
  });

  test('a closing PUT that succeeded but whose answer was lost is not uploaded again', async () => {
    const data = blob(2 * MiB + 1);
    // The registry gets the PUT and stores the blob; the client never hears back.
    proxy.on(
      { method: 'PUT' },
      {
        type: 'handle',
        handler: (req, res, { request: r, upstream }) => {
          req.resume();
          void request(`${upstream}${r.path}`, {
            method: 'PUT',
            headers: { 'content-length': '0' },
          }).then(async (answer) => {
            await answer.body.dump();
            res.socket?.destroy();
          });
        },
      },
      { times: 1 },
    );
    const { c, waits } = fastClient({ monolithicLimit: 0, chunkSize: MiB });
    expect(await c.pushBlob('upload/lost-answer', data.descriptor, data.bytes)).toEqual({
      action: 'uploaded',
      bytesSent: data.bytes.length,
    });
    expect(waits).toHaveLength(1);
    expect(proxy.count({ method: 'POST' })).toBe(1);
    expect(proxy.count({ method: 'PATCH' })).toBe(3);
    expect(proxy.count({ method: 'PUT' })).toBe(1);
    await expectStored('upload/lost-answer', data.bytes);
  });

  test('the source stream of a broken upload is closed, not left open', async () => {
    const data = blob(3 * MiB);
    const opened: Readable[] = [];
    const source: BlobSource = {
      size: data.bytes.length,
      open: (offset) => {
        const stream = Readable.from(
          (function* () {
            for (let at = offset; at < data.bytes.length; at += 256 * 1024)
              yield data.bytes.subarray(at, Math.min(at + 256 * 1024, data.bytes.length));
          })(),
        );
        opened.push(stream);
        return stream;
      },
    };
    proxy.on(
      { method: 'PUT', where: (r) => r.headers['content-length'] !== '0' },
      actions.reset('request', MiB),
      {
        times: 1,
      },
    );
    const { c } = fastClient({ chunkSize: MiB });
    expect((await c.pushBlob('upload/closed', data.descriptor, source)).action).toBe('uploaded');
    expect(opened.length).toBeGreaterThanOrEqual(2);
    for (const stream of opened) expect(stream.destroyed).toBe(true);
    await expectStored('upload/closed', data.bytes);
  });

  test('a source that fails mid-upload: its own error, and nothing stored', async () => {
    const data = blob(2 * MiB);
    const failure = new DigestMismatchError('source blob', data.descriptor.digest, digestOf('other'));
    const source: BlobSource = {
      size: data.bytes.length,
      open: () =>
        Readable.from(
          (async function* () {
            yield data.bytes.subarray(0, MiB);
            throw failure;
          })(),
        ),
    };
    const { c, waits } = fastClient();
    const err = await c.pushBlob('upload/failing-source', data.descriptor, source).catch((e: unknown) => e);
    expect(err).toBe(failure);
    expect(waits).toEqual([]);
    expect(
      await client({ direct: true }).statBlob('upload/failing-source', data.descriptor.digest),
    ).toBeUndefined();
  });

  test('content that does not match its digest is refused by the registry and not stored', async () => {
    const data = blob(4096);
    const lie = { digest: digestOf('something else'), size: data.bytes.length };
    const c = client();
    const err = await c.pushBlob('upload/lie', lie, data.bytes).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    const registryError = err as RegistryError;
    expect(registryError.status).toBe(400);
    expect(registryError.has('DIGEST_INVALID')).toBe(true);
    // The upload URL carried `_state` and `digest` in its query: neither is in the error.
    expect(registryError.url).not.toContain('?');
    expect(registryError.message).not.toContain('_state');
    expect(JSON.stringify(registryError)).not.toContain('_state');
    expect(await client({ direct: true }).statBlob('upload/lie', lie.digest)).toBeUndefined();
  });
});

// ---- 2. a 200 MB blob from a file ------------------------------------------------------------

describe('large blob from a file', () => {
  let dir: string;
  let path: string;
  let digest: Digest;
  const size = 200 * MiB;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'conda-oci-big-'));
    path = join(dir, 'big.bin');
    const hash = createHash('sha256');
    const out = createWriteStream(path);
    for (let written = 0; written < size; written += MiB) {
      const piece = randomBytes(MiB);
      hash.update(piece);
      if (!out.write(piece)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    }
    await new Promise<void>((resolve, reject) =>
      out.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
    digest = `sha256:${hash.digest('hex')}`;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function curlPut(repository: string): Promise<number> {
    const started = await request(`${registry.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    await started.body.dump();
    expect(started.statusCode).toBe(202);
    const location = new URL(String(started.headers.location), registry.url);
    location.searchParams.set('digest', digest);
    const t0 = performance.now();
    const status = await new Promise<string>((resolve, reject) => {
      const curl = spawn('curl', [
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '-X',
        'PUT',
        '-H',
        'Content-Type: application/octet-stream',
        '-H',
        'Expect:',
        '-T',
        path,
        location.href,
      ]);
      let output = '';
      curl.stdout.on('data', (d: Buffer) => (output += d.toString()));
      curl.on('error', reject);
      curl.on('close', () => resolve(output));
    });
    const seconds = (performance.now() - t0) / 1000;
    expect(status).toBe('201');
    return size / MiB / seconds;
  }

  /**
   * Our push, timed, with the growth of the process's memory sampled every 20 ms: RSS, and the
   * memory held in Buffers (`arrayBuffers`), which RSS alone can hide when freed pages are reused.
   */
  async function ourPut(
    repository: string,
  ): Promise<{ mbps: number; rssGrowth: number; buffersGrowth: number }> {
    const c = client({ direct: true });
    const start = process.memoryUsage();
    const peak = { rss: start.rss, arrayBuffers: start.arrayBuffers };
    const sample = (): void => {
      const now = process.memoryUsage();
      peak.rss = Math.max(peak.rss, now.rss);
      peak.arrayBuffers = Math.max(peak.arrayBuffers, now.arrayBuffers);
    };
    const sampler = setInterval(sample, 20);
    const t0 = performance.now();
    try {
      const outcome = await c.pushBlob(repository, { digest, size }, fileSource(path, size));
      expect(outcome).toEqual({ action: 'uploaded', bytesSent: size });
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - t0) / 1000;
    sample();
    return {
      mbps: size / MiB / seconds,
      rssGrowth: (peak.rss - start.rss) / MiB,
      buffersGrowth: (peak.arrayBuffers - start.arrayBuffers) / MiB,
    };
  }

  test('is pushed without buffering, reads back with its digest, and keeps pace with curl', async () => {
    const curlFirst = await curlPut('big/curl-1');
    const ours = await ourPut('big/ours-1');
    const curlSecond = await curlPut('big/curl-2');
    const oursSecond = await ourPut('big/ours-2');
    const memory = (m: { rssGrowth: number; buffersGrowth: number }): string =>
      `RSS +${m.rssGrowth.toFixed(0)} MiB, Buffers +${m.buffersGrowth.toFixed(0)} MiB`;
    console.log(
      `200 MiB monolithic PUT to distribution on loopback: ours ${ours.mbps.toFixed(0)} and ` +
        `${oursSecond.mbps.toFixed(0)} MiB/s (${memory(ours)}; ${memory(oursSecond)}), ` +
        `curl -T ${curlFirst.toFixed(0)} and ${curlSecond.toFixed(0)} MiB/s`,
    );
    for (const m of [ours, oursSecond]) {
      expect(m.rssGrowth).toBeLessThan(100);
      expect(m.buffersGrowth).toBeLessThan(100);
    }

    const c = client({ direct: true });
    const hash = createHash('sha256');
    let received = 0;
    for await (const chunk of c.openBlob('big/ours-1', { digest, size })) {
      hash.update(chunk as Buffer);
      received += (chunk as Buffer).length;
    }
    expect(received).toBe(size);
    expect(`sha256:${hash.digest('hex')}`).toBe(digest);
  });
});

// ---- 3. cross-repository mount -----------------------------------------------------------------

describe('cross-repository mount', () => {
  test('201: mounted, nothing sent', async () => {
    const data = blob(256 * 1024);
    const c = client();
    await c.pushBlob('mount/src', data.descriptor, data.bytes);
    proxy.clearRecords();
    const outcome = await c.pushBlob('mount/dst', data.descriptor, data.bytes, { mountFrom: 'mount/src' });
    expect(outcome).toEqual({ action: 'mounted', bytesSent: 0 });
    expect(proxy.count({ method: 'POST', status: 201 })).toBe(1);
    expect(proxy.count({ method: ['PATCH', 'PUT'] })).toBe(0);
    expect(proxy.bytes().request).toBe(0);
    await expectStored('mount/dst', data.bytes);
  });

  test('202: the upload goes into the session the registry opened (one POST)', async () => {
    const data = blob(300 * 1024);
    const c = client();
    await c.pushBlob('mount/src2', data.descriptor, data.bytes);
    proxy.clearRecords();
    proxy.on({ method: 'POST', path: /[?&]mount=/ }, actions.refuseMount());
    const outcome = await c.pushBlob('mount/dst2', data.descriptor, data.bytes, { mountFrom: 'mount/src2' });
    expect(outcome).toEqual({ action: 'uploaded', bytesSent: data.bytes.length });
    expect(proxy.count({ method: 'POST' })).toBe(1);
    expect(proxy.count({ method: 'POST', status: 202 })).toBe(1);
    expect(proxy.bytes({ method: 'PUT' }).request).toBe(data.bytes.length);
    await expectStored('mount/dst2', data.bytes);
  });

  test('a blob this client stored elsewhere on the registry is mounted from there, unasked', async () => {
    const data = blob(2000);
    const c = client();
    await c.pushBlob('known/a', data.descriptor, data.bytes);
    proxy.clearRecords();
    const outcome = await c.pushBlob('known/b', data.descriptor, data.bytes);
    expect(outcome).toEqual({ action: 'mounted', bytesSent: 0 });
    expect(proxy.count()).toBe(1);
    expect(proxy.count({ method: 'POST', path: /[?&]from=known%2Fa/, status: 201 })).toBe(1);
    await expectStored('known/b', data.bytes);
  });

  test('a declined mount of a blob already there: the session is cancelled, nothing sent', async () => {
    const data = blob(3000);
    const c = client();
    await c.pushBlob('declined/src', data.descriptor, data.bytes);
    await client().pushBlob('declined/dst', data.descriptor, data.bytes);
    proxy.clearRecords();
    proxy.on({ method: 'POST', path: /[?&]mount=/ }, actions.refuseMount());
    const outcome = await c.pushBlob('declined/dst', data.descriptor, data.bytes, {
      mountFrom: 'declined/src',
    });
    expect(outcome).toEqual({ action: 'exists', bytesSent: 0 });
    expect(proxy.count({ method: 'DELETE', path: /\/blobs\/uploads\// })).toBe(1);
    expect(proxy.bytes().request).toBe(0);
  });

  test('a blob the source does not hold: the registry answers 202 and it is uploaded', async () => {
    const data = blob(1000);
    const c = client();
    const outcome = await c.pushBlob('mount/dst3', data.descriptor, data.bytes, {
      mountFrom: 'mount/nowhere',
    });
    expect(outcome.action).toBe('uploaded');
    expect(proxy.count({ method: 'POST' })).toBe(1);
    await expectStored('mount/dst3', data.bytes);
  });
});

// ---- 4. pagination -----------------------------------------------------------------------------

describe('pagination', () => {
  const repository = 'pages/many-tags';
  const tags = Array.from({ length: 250 }, (_, i) => `v${String(i).padStart(3, '0')}`);

  beforeAll(async () => {
    const c = new RegistryClient({ host: registry.host, plainHttp: true });
    const { manifest } = await pushSmallImage(c, repository, tags[0]!);
    for (let i = 1; i < tags.length; i += 25) {
      await Promise.all(tags.slice(i, i + 25).map((tag) => c.pushManifest(repository, manifest, tag)));
    }
    await c.close();
  });

  /** The registry's real tag list, oldest (here: lowest) first. */
  async function realTags(): Promise<string[]> {
    const response = await request(`${registry.url}/v2/${repository}/tags/list`);
    const body = (await response.body.json()) as { tags: string[] };
    return body.tags.sort();
  }

  type Pager = (all: string[], query: URLSearchParams) => { tags: string[]; next?: string };

  /** Serves tags/list from the real list, paged by `pager`, GHCR style. */
  function servePages(pager: Pager): void {
    proxy.on(
      { method: 'GET', path: `/v2/${repository}/tags/list` },
      {
        type: 'handle',
        handler: (req, res, { request: r }) => {
          req.resume();
          void realTags().then((all) => {
            const page = pager(all, r.query);
            const body = JSON.stringify({ name: repository, tags: page.tags });
            res.writeHead(200, {
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(body),
              ...(page.next ? { link: `<${page.next}>; rel="next"` } : {}),
            });
            res.end(body);
          });
        },
      },
    );
  }

  const ghcrPager: Pager = (all, query) => {
    const last = query.get('last');
    const start = last === null ? 0 : all.indexOf(last) + 1;
    const page = all.slice(start, start + 100);
    const more = start + 100 < all.length;
    return {
      tags: page,
      ...(more ? { next: `/v2/${repository}/tags/list?last=${page.at(-1)}&n=100` } : {}),
    };
  };

  test('distribution itself answers with every tag on one page', async () => {
    const c = client();
    const listed: string[] = [];
    for await (const tag of c.listTags(repository)) listed.push(tag);
    expect(listed.sort()).toEqual(tags);
    expect(proxy.count({ path: `/v2/${repository}/tags/list` })).toBe(1);
  });

  test('GHCR-style pages of 100 with Link: every tag, in order, three page requests', async () => {
    servePages(ghcrPager);
    const c = client();
    const listed: string[] = [];
    for await (const tag of c.listTags(repository)) listed.push(tag);
    expect(listed).toEqual(tags);
    expect(proxy.count({ method: 'GET', path: `/v2/${repository}/tags/list` })).toBe(3);
  });

  test('a Link that loops back to an earlier page ends in a ProtocolError', async () => {
    servePages((all, query) => {
      const page = ghcrPager(all, query);
      // The second page points back at the first.
      return query.get('last') === null
        ? page
        : { tags: page.tags, next: `/v2/${repository}/tags/list?n=1000` };
    });
    const c = client();
    const listed: string[] = [];
    const err = await (async () => {
      for await (const tag of c.listTags(repository)) listed.push(tag);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toMatch(/loops back/);
    expect(listed).toEqual(tags.slice(0, 200));
    expect(proxy.count({ path: `/v2/${repository}/tags/list` })).toBe(2);
  });

  test('a page that does not advance ends in a ProtocolError', async () => {
    let served = 0;
    servePages((all) => {
      served++;
      // Always the first page, under an ever new URL.
      return {
        tags: all.slice(0, 100),
        next: `/v2/${repository}/tags/list?last=${all[99]}&n=100&page=${served}`,
      };
    });
    const c = client();
    const err = await (async () => {
      for await (const _ of c.listTags(repository)) void _;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toMatch(/does not advance/);
    expect(served).toBe(2);
  });

  test('catalog pages of two against the real registry', async () => {
    const c = client();
    for (const name of ['a', 'b', 'c', 'd', 'e']) await pushSmallImage(c, `catalog/${name}`, 'latest');
    proxy.clearRecords();
    const listed: string[] = [];
    for await (const name of c.catalog(2)) listed.push(name);
    expect(listed).toEqual(expect.arrayContaining(['a', 'b', 'c', 'd', 'e'].map((n) => `catalog/${n}`)));
    expect(new Set(listed).size).toBe(listed.length);
    const pages = proxy.count({ method: 'GET', path: '/v2/_catalog' });
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(listed.length / 2));
    expect(pages).toBeLessThanOrEqual(Math.ceil(listed.length / 2) + 1);
    for (const record of proxy.records) expect(record.path).toMatch(/[?&]n=2(&|$)/);
  });
});

// ---- 6. typed registry errors -------------------------------------------------------------------

describe('registry errors', () => {
  test('a manifest whose blob is missing: RegistryError MANIFEST_BLOB_UNKNOWN', async () => {
    const c = client();
    await c.pushBlob('errors/a', EMPTY_CONFIG, EMPTY_JSON_BYTES);
    const missing = { digest: digestOf('not pushed'), size: 10 };
    const err = await c.pushManifest('errors/a', imageWith([missing]), 'v1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    const e = err as RegistryError;
    expect(e.method).toBe('PUT');
    expect(e.status).toBe(400);
    expect(e.url).toBe(`${proxy.url}/v2/errors/a/manifests/v1`);
    expect(e.errors[0]!.code).toBe('MANIFEST_BLOB_UNKNOWN');
    expect(e.has('MANIFEST_BLOB_UNKNOWN')).toBe(true);
    expect(e.message).toContain('MANIFEST_BLOB_UNKNOWN');
    expect(await c.resolve('errors/a', 'v1')).toBeUndefined();
  });

  test('an index naming an unknown manifest: MANIFEST_BLOB_UNKNOWN too', async () => {
    const c = client();
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_INDEX,
      manifests: [{ mediaType: MEDIA_TYPE_OCI_MANIFEST, digest: digestOf('no manifest'), size: 11 }],
    };
    const err = await c
      .pushManifest('errors/b', { mediaType: MEDIA_TYPE_OCI_INDEX, bytes: canonicalJson(index) }, 'idx')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).has('MANIFEST_BLOB_UNKNOWN')).toBe(true);
  });

  test('an unknown manifest: NotFoundError caused by RegistryError MANIFEST_UNKNOWN', async () => {
    const c = client();
    await pushSmallImage(c, 'errors/c', 'exists');
    const err = await c.fetchManifest('errors/c', 'missing').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    const cause = (err as Error).cause as RegistryError;
    expect(cause).toBeInstanceOf(RegistryError);
    expect(cause.status).toBe(404);
    expect(cause.errors.map((e) => e.code)).toEqual(['MANIFEST_UNKNOWN']);
    // A blob the repository does not have: BLOB_UNKNOWN.
    const blobErr = await readAll(c.openBlob('errors/c', { digest: digestOf('nope'), size: 4 })).catch(
      (e: unknown) => e,
    );
    expect(blobErr).toBeInstanceOf(NotFoundError);
    expect(((blobErr as Error).cause as RegistryError).has('BLOB_UNKNOWN')).toBe(true);
  });

  test('NAME_INVALID (as GHCR sends it) becomes a typed RegistryError, not retried', async () => {
    proxy.on(
      { method: 'POST' },
      actions.status(400, {
        errors: [{ code: 'NAME_INVALID', message: 'invalid repository name', detail: { name: 'Bad' } }],
      }),
    );
    const { c, waits } = fastClient();
    const data = blob(10);
    const err = await c.pushBlob('errors/d', data.descriptor, data.bytes).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    const e = err as RegistryError;
    expect([e.method, e.status, e.url]).toEqual(['POST', 400, `${proxy.url}/v2/errors/d/blobs/uploads/`]);
    expect(e.errors).toEqual([
      { code: 'NAME_INVALID', message: 'invalid repository name', detail: { name: 'Bad' } },
    ]);
    expect(waits).toEqual([]);
  });

  test('distribution 2.8 answers a name over 255 characters with 500 UNKNOWN: retried, then typed', async () => {
    const { c, waits } = fastClient({ retry: { attempts: 2 } });
    const name = `errors/${'x'.repeat(260)}`;
    const err = await c.fetchManifest(name, 'v1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).status).toBe(500);
    expect((err as RegistryError).errors[0]!.code).toBe('UNKNOWN');
    expect(waits).toHaveLength(1);
  });

  test('a registry without manifest DELETE (405 UNSUPPORTED): UnsupportedError', async () => {
    proxy.on({ method: 'DELETE' }, actions.unsupported());
    const c = client();
    const err = await c.deleteManifest('errors/c', digestOf('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsupportedError);
    expect(((err as Error).cause as RegistryError).status).toBe(405);
  });
});

// ---- 5. redirects -----------------------------------------------------------------------------

describe('redirects of blob GETs', () => {
  test('a redirect to a non-http(s) scheme is refused', async () => {
    const c = client();
    const data = blob(100);
    await c.pushBlob('redirect/a', data.descriptor, data.bytes);
    for (const location of ['ftp://127.0.0.1/blob', 'file:///etc/passwd', 'data:,hello']) {
      proxy.clearRules();
      proxy.on({ method: 'GET', path: /\/blobs\/sha256:/ }, actions.redirect({ location }));
      const err = await readAll(c.openBlob('redirect/a', data.descriptor)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProtocolError);
      expect((err as Error).message).toMatch(/redirected to a (ftp|file|data): URL/);
    }
  });

  test('a redirect loop is refused after a bounded number of hops', async () => {
    const c = client({ maxRedirects: 5 });
    const data = blob(100);
    await c.pushBlob('redirect/b', data.descriptor, data.bytes);
    proxy.clearRecords();
    proxy.on(
      { method: 'GET', path: /\/blobs\/sha256:/ },
      actions.redirect({ location: `/v2/redirect/b/blobs/${data.descriptor.digest}` }),
    );
    const err = await readAll(c.openBlob('redirect/b', data.descriptor)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toMatch(/redirected more than 5 times/);
    expect(proxy.count({ method: 'GET' })).toBe(6);
  });
});

// ---- 7. retries -------------------------------------------------------------------------------

describe('retries', () => {
  test('503 once, then success', async () => {
    const c0 = client();
    const { descriptor } = await pushSmallImage(c0, 'retry/a', 'v1');
    proxy.clearRecords();
    proxy.on({ method: 'HEAD', path: /\/manifests\// }, actions.status(503), { times: 1 });
    const { c, waits } = fastClient();
    expect(await c.resolve('retry/a', 'v1')).toEqual({
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      digest: descriptor.digest,
      size: descriptor.size,
    });
    expect(waits).toHaveLength(1);
    expect(c.http.stats.retries).toBe(1);
    expect(proxy.count({ method: 'HEAD', status: 503 })).toBe(1);
    expect(proxy.count({ method: 'HEAD', status: 200 })).toBe(1);
  });

  test('429 with Retry-After: 1 waits one second', async () => {
    await pushSmallImage(client(), 'retry/b', 'v1');
    proxy.on({ method: 'GET', path: /\/manifests\// }, actions.tooManyRequests(1), { times: 1 });
    const { c, waits } = fastClient();
    expect((await c.fetchManifest('retry/b', 'v1')).bytes.length).toBeGreaterThan(0);
    expect(waits).toEqual([1000]);
  });

  test("GHCR's 429 with the wait only in the message (retry-after: 120ms)", async () => {
    const data = blob(2000);
    proxy.on({ method: 'POST', path: /\/blobs\/uploads\/$/ }, actions.ghcrTooManyRequests(120), { times: 2 });
    const reported: number[] = [];
    const { c, waits } = fastClient({ onRetry: (_what, _err, ms) => reported.push(ms) });
    expect((await c.pushBlob('retry/c', data.descriptor, data.bytes)).action).toBe('uploaded');
    expect(waits).toEqual([120, 120]);
    expect(reported).toEqual([120, 120]);
    expect(proxy.count({ method: 'POST', status: 429 })).toBe(2);
    expect(proxy.count({ method: 'POST', status: 202 })).toBe(1);
    await expectStored('retry/c', data.bytes);
  });

  test('502 under concurrency: every request gets through', async () => {
    const c0 = client();
    const blobs = Array.from({ length: 8 }, (_, i) => blob(1000 + i));
    await Promise.all(blobs.map((b) => c0.pushBlob('retry/d', b.descriptor, b.bytes)));
    proxy.clearRecords();
    proxy.on({ method: 'HEAD', path: /\/blobs\// }, actions.status(502), { times: 5 });
    const { c, waits } = fastClient();
    const stats = await Promise.all(blobs.map((b) => c.statBlob('retry/d', b.descriptor.digest)));
    expect(stats).toEqual(blobs.map((b) => ({ size: b.bytes.length })));
    expect(waits).toHaveLength(5);
    expect(c.http.stats.retries).toBe(5);
    expect(proxy.count({ method: 'HEAD', status: 502 })).toBe(5);
    expect(proxy.count({ method: 'HEAD', status: 200 })).toBe(8);
  });

  test('a Retry-After of an hour is refused at once, not slept', async () => {
    proxy.on({ method: 'HEAD' }, actions.tooManyRequests(3600));
    const { c, waits } = fastClient();
    const t0 = performance.now();
    const err = await c.statBlob('retry/e', digestOf('x')).catch((e: unknown) => e);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(waits).toEqual([]);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toMatch(/asked to wait 3600 s/);
    expect((err as Error).cause).toBeInstanceOf(RegistryError);
    expect(proxy.count({ method: 'HEAD' })).toBe(1);
  });

  test('503 forever: fails after `attempts` tries', async () => {
    proxy.on({ method: 'GET', path: /\/manifests\// }, actions.status(503));
    const { c, waits } = fastClient({ retry: { attempts: 3 } });
    const err = await c.fetchManifest('retry/f', 'v1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).status).toBe(503);
    expect(proxy.count({ method: 'GET' })).toBe(3);
    expect(waits).toHaveLength(2);
  });

  test('an upload session that keeps failing gives up after `attempts` tries', async () => {
    const data = blob(3 * MiB);
    proxy.on({ method: 'PATCH' }, actions.status(500));
    const { c } = fastClient({ retry: { attempts: 3 }, monolithicLimit: 0, chunkSize: MiB });
    const err = await c.pushBlob('retry/g', data.descriptor, data.bytes).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).status).toBe(500);
    expect(proxy.count({ method: 'PATCH' })).toBe(3);
  });

  test('a truncated blob GET resumes with a Range request and verifies', async () => {
    const data = blob(3 * MiB + 5);
    await client().pushBlob('retry/h', data.descriptor, data.bytes);
    const ranges: (string | undefined)[] = [];
    proxy.on(
      {
        method: 'GET',
        path: /\/blobs\/sha256:/,
        where: (r) => {
          ranges.push(r.headers.range);
          return false;
        },
      },
      actions.forward(),
    );
    proxy.on({ method: 'GET', path: /\/blobs\/sha256:/ }, actions.truncate(MiB + 3), { times: 1 });
    const reported: string[] = [];
    const { c, waits } = fastClient({ onRetry: (what) => reported.push(what) });
    const back = await readAll(c.openBlob('retry/h', data.descriptor));
    expect(back.equals(data.bytes)).toBe(true);
    expect(waits).toHaveLength(1);
    expect(reported).toEqual([`GET blob ${data.descriptor.digest} of ${c.host}/retry/h`]);
    expect(ranges).toHaveLength(2);
    expect(ranges[0]).toBeUndefined();
    expect(ranges[1]).toMatch(/^bytes=\d+-$/);
    // Resumed from the byte after the last one received; only the missing part came again.
    expect(ranges[1]).toBe(`bytes=${MiB + 3}-`);
    expect(proxy.bytes({ method: 'GET' }).response).toBe(data.bytes.length);
  });

  test('a stalled blob GET times out, resumes with a Range request and verifies', async () => {
    const data = blob(2 * MiB);
    await client().pushBlob('retry/i', data.descriptor, data.bytes);
    proxy.on({ method: 'GET', path: /\/blobs\/sha256:/ }, actions.stall('response', 512 * 1024), {
      times: 1,
    });
    const { c, waits } = fastClient({ bodyTimeoutMs: 500 });
    const back = await readAll(c.openBlob('retry/i', data.descriptor));
    expect(back.equals(data.bytes)).toBe(true);
    expect(waits).toHaveLength(1);
    expect(proxy.count({ method: 'GET', path: /\/blobs\/sha256:/ })).toBe(2);
  });

  test('a reader that stops early ends the download at once', async () => {
    const data = blob(8 * MiB);
    await client().pushBlob('retry/k', data.descriptor, data.bytes);
    proxy.clearRecords();
    const c = client();
    const stream = c.openBlob('retry/k', data.descriptor);
    for await (const _ of stream) break; // the first chunk is enough; break destroys the stream
    const record = () => proxy.records.find((r) => r.method === 'GET')!;
    for (let i = 0; i < 100 && !record().error && !record().finished; i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(record().error).toBe('client connection closed');
    expect(record().responseBytes).toBeLessThan(data.bytes.length);
  });

  test('a corrupted blob fails verification instead of being retried', async () => {
    const data = blob(64 * 1024);
    await client().pushBlob('retry/j', data.descriptor, data.bytes);
    proxy.on({ method: 'GET', path: /\/blobs\/sha256:/ }, actions.corrupt(1000));
    const { c, waits } = fastClient();
    const err = await readAll(c.openBlob('retry/j', data.descriptor)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(waits).toEqual([]);
  });
});

// ---- 8. anonymous access to a registry without auth ---------------------------------------------

test('anonymous access to a registry without auth asks for no token and meets no 401', async () => {
  const c = client();
  await pushSmallImage(c, 'anon/a', 'v1');
  expect((await c.fetchManifest('anon/a', 'v1')).bytes.length).toBeGreaterThan(0);
  expect(c.auth.tokenRequests).toBe(0);
  expect(proxy.count({ status: 401 })).toBe(0);
  expect(proxy.records.length).toBeGreaterThan(0);
});
