/**
 * `conda-oci serve`: the gateway in front of a real registry that needs credentials.
 * rattler's solver (JS bindings) solves through it, first from CEP 16 shards, then from plain
 * repodata; every package URL it returns downloads with the sha256 repodata lists. HTTP details:
 * ETag/304, HEAD, Range/416/If-Range, content codings, labels, 404/405, errors that never carry
 * credentials, redirects only for an anonymous registry, bounded concurrency, the CLI entry.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { decode } from '@msgpack/msgpack';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { zstdDecompress } from '../../src/compress.js';
import { silentReporter, type Reporter } from '../../src/commands/report.js';
import { serve, type RunningServer } from '../../src/commands/serve.js';
import { execute } from '../../src/core/execute.js';
import { parseImageManifest } from '../../src/oci/manifest.js';
import { openStore } from '../../src/oci/open-store.js';
import { parseChannel } from '../../src/conda/channel.js';
import type { Store } from '../../src/oci/storage.js';
import type { GatewayOptions } from '../../src/serve/gateway.js';
import { main } from '../../src/cli/main.js';
import { EXPECTED, fixturePath } from '../helpers/fixtures.js';
import { actions, startProxy } from '../helpers/proxy.js';
import { useRegistry } from '../helpers/registry.js';

const rattler = createRequire(import.meta.url)('@conda-org/rattler') as {
  simpleSolve(
    specs: string[],
    channels: string[],
    platforms: string[],
    locked: unknown[],
  ): Promise<{ packageName: string; version: string; build: string; sha256?: string; url: string }[]>;
};

const USER = 'puller';
const PASSWORD = 'serve-test-password-4f1c9a';
const registry = useRegistry({ auth: 'htpasswd', users: [{ username: USER, password: PASSWORD }] });
const open = useRegistry({ auth: 'none' });
const SHADOWED = 'demo-pkg-1.2.3-h1234567_0.tar.bz2';
const STORED = EXPECTED.filter((e) => e.filename !== SHADOWED);
const creds = { username: USER, password: PASSWORD };

const channelUrl = () => `oci://${registry.host}/prod/conda-forge`;
let store: Store;
const running: RunningServer[] = [];

async function publish(
  channel: string,
  files: string[],
  extra: { username?: string; password?: string; label?: string } = {},
): Promise<void> {
  const up = await execute({ command: 'upload', files, to: channel, ...extra }, { reporter: silentReporter });
  expect(up.artifacts.filter((a) => a.status === 'failed')).toEqual([]);
  const index = await execute({ command: 'repodata', channel, ...extra }, { reporter: silentReporter });
  expect(index.exitCode).toBe(0);
}

interface Gateway {
  url: string;
  requests: string[];
  server: RunningServer;
}

async function startGateway(
  options: Partial<GatewayOptions> = {},
  context: { store?: Store; anonymous?: boolean; reporter?: Reporter } = {},
): Promise<Gateway> {
  const server = await serve(
    { channel: parseChannel(channelUrl()), listen: '127.0.0.1:0', ...options },
    {
      store: context.store ?? store,
      reporter: context.reporter ?? silentReporter,
      anonymous: context.anonymous ?? false,
    },
  );
  running.push(server);
  const requests: string[] = [];
  server.server.on('request', (req) => requests.push(`${req.method} ${req.url}`));
  return { url: server.url, requests, server };
}

async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') {
  const response = await request(url, { method, headers });
  const body = Buffer.from(await response.body.arrayBuffer());
  return { status: response.statusCode, headers: response.headers as Record<string, string>, body };
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

async function metadataLayers(repository: string): Promise<Map<string, { digest: string; bytes: Buffer }>> {
  const repo = store.repository(repository);
  const manifest = parseImageManifest((await repo.fetchManifest('latest')).bytes);
  const layers = new Map<string, { digest: string; bytes: Buffer }>();
  for (const l of manifest.layers)
    layers.set(l.mediaType, { digest: l.digest, bytes: Buffer.from(await repo.readBlob(l, 1 << 30)) });
  return layers;
}

beforeAll(async () => {
  await publish(
    channelUrl(),
    EXPECTED.map((e) => fixturePath(e.filename)),
    creds,
  );
  await publish(channelUrl(), [fixturePath('pure-py-0.9.0-pyhd8ed1ab_0.conda')], { ...creds, label: 'rc' });
  store = openStore(parseChannel(channelUrl()), creds);
});

afterAll(async () => {
  await Promise.all(running.map((s) => s.close()));
  await store?.close();
});

describe('rattler through the gateway', () => {
  const SPECS = [
    'demo-pkg 1.2.3',
    'epoch-pkg',
    'a-package-name-that-is-deliberately-longer-than-sixty-four-characters-x',
  ];
  const SOLVED = [
    '_libgcc_mutex=0.1=conda_forge',
    'a-package-name-that-is-deliberately-longer-than-sixty-four-characters-x=1.0=h0_0',
    'demo-pkg=1.2.3=h1234567_0',
    'epoch-pkg=1!2.5=h0_0',
    'libgcc=14.2.0=h77fa898_1',
    'libzlib=1.3.1=hb9d3cd8_2',
  ];

  async function solveAndDownload(gateway: Gateway): Promise<void> {
    const solved = await rattler.simpleSolve(SPECS, [gateway.url], ['linux-64', 'noarch'], []);
    expect(solved.map((p) => `${p.packageName}=${p.version}=${p.build}`).sort()).toEqual(SOLVED);
    for (const p of solved) {
      const e = STORED.find(
        (x) => x.name === p.packageName && x.version === p.version && x.build === p.build,
      )!;
      expect(p.sha256).toBe(e.sha256);
      expect(p.url.startsWith(gateway.url)).toBe(true);
      const download = await get(p.url);
      expect(download.status, p.url).toBe(200);
      expect(sha256(download.body), p.url).toBe(e.sha256);
      expect(download.body.equals(readFileSync(fixturePath(e.filename)))).toBe(true);
    }
  }

  test('solves from CEP 16 shards (asked for first), and every package URL downloads with its sha256', async () => {
    const gateway = await startGateway();
    await solveAndDownload(gateway);
    expect(gateway.requests).toContain('GET /linux-64/repodata_shards.msgpack.zst');
    expect(gateway.requests).toContain('GET /noarch/repodata_shards.msgpack.zst');
    expect(
      gateway.requests.filter((r) => /^GET \/linux-64\/shards\/[0-9a-f]{64}\.msgpack\.zst$/.test(r)).length,
    ).toBeGreaterThanOrEqual(5);
    expect(gateway.requests.filter((r) => r.includes('repodata.json'))).toEqual([]);
  });

  test('solves from plain repodata where there are no shards', async () => {
    const gateway = await startGateway({ maxShardSource: 0 });
    await solveAndDownload(gateway);
    expect(gateway.requests.some((r) => /^GET \/linux-64\/repodata\.json(\.zst)?$/.test(r))).toBe(true);
    expect(gateway.requests.some((r) => r.includes('/shards/'))).toBe(false);
  });
});

describe('what the gateway serves', () => {
  let gateway: Gateway;
  beforeAll(async () => {
    gateway = await startGateway();
  });

  test('repodata.json, .zst and .gz are the layers of mrepodata.json:latest, ETag = digest, short Cache-Control', async () => {
    const layers = await metadataLayers('prod/conda-forge/linux-64/mrepodata.json');
    const json = layers.get('application/vnd.conda.repodata.v1+json')!;
    for (const [path, mediaType] of [
      ['repodata.json', 'application/vnd.conda.repodata.v1+json'],
      ['repodata.json.zst', 'application/vnd.conda.repodata.v1+json+zst'],
      ['repodata.json.gz', 'application/vnd.conda.repodata.v1+json+gzip'],
    ] as const) {
      const r = await get(`${gateway.url}linux-64/${path}`);
      expect(r.status, path).toBe(200);
      expect(r.body.equals(layers.get(mediaType)!.bytes), path).toBe(true);
      expect(r.headers.etag).toBe(`"${layers.get(mediaType)!.digest}"`);
      expect(r.headers['cache-control']).toBe('public, max-age=60');
      expect(r.headers['content-encoding']).toBeUndefined();
    }
    expect(JSON.parse(json.bytes.toString()).info.subdir).toBe('linux-64');
    expect((await get(`${gateway.url}linux-64/repodata.json.bz2`)).status).toBe(404);
    const current = await get(`${gateway.url}linux-64/current_repodata.json`);
    expect(current.status).toBe(200);
    const channeldata = await get(`${gateway.url}channeldata.json`);
    expect(channeldata.status).toBe(200);
    expect(JSON.parse(channeldata.body.toString()).subdirs).toEqual(['linux-64', 'noarch']);
  });

  test('repodata.json with Accept-Encoding: the stored zstd or gzip copy as Content-Encoding', async () => {
    const layers = await metadataLayers('prod/conda-forge/noarch/mrepodata.json');
    const json = layers.get('application/vnd.conda.repodata.v1+json')!.bytes;
    const gz = await get(`${gateway.url}noarch/repodata.json`, { 'accept-encoding': 'gzip, deflate' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gz.headers.vary).toBe('Accept-Encoding');
    expect(gunzipSync(gz.body).equals(json)).toBe(true);
    const zst = await get(`${gateway.url}noarch/repodata.json`, { 'accept-encoding': 'gzip;q=0.5, zstd' });
    expect(zst.headers['content-encoding']).toBe('zstd');
    expect(Buffer.from(await zstdDecompress(zst.body)).equals(json)).toBe(true);
    expect(zst.headers.etag).not.toBe(gz.headers.etag);
    const identity = await get(`${gateway.url}noarch/repodata.json`, { 'accept-encoding': 'identity' });
    expect(identity.headers['content-encoding']).toBeUndefined();
    expect(identity.body.equals(json)).toBe(true);
  });

  test('If-None-Match gives 304, HEAD gives the headers without a body', async () => {
    const first = await get(`${gateway.url}linux-64/repodata.json.zst`);
    const again = await get(`${gateway.url}linux-64/repodata.json.zst`, {
      'if-none-match': first.headers.etag!,
    });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    expect(again.headers.etag).toBe(first.headers.etag);
    expect(
      (await get(`${gateway.url}linux-64/repodata.json.zst`, { 'if-none-match': '"sha256:0"' })).status,
    ).toBe(200);
    const head = await get(`${gateway.url}linux-64/repodata.json.zst`, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(Number(head.headers['content-length'])).toBe(first.body.length);

    const pkg = STORED.find((e) => e.filename.startsWith('libgcc-'))!;
    const url = `${gateway.url}${pkg.subdir}/${pkg.filename}`;
    const headPkg = await get(url, {}, 'HEAD');
    expect(headPkg.status).toBe(200);
    expect(headPkg.headers.etag).toBe(`"sha256:${pkg.sha256}"`);
    expect(Number(headPkg.headers['content-length'])).toBe(pkg.size);
    expect(headPkg.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(headPkg.body.length).toBe(0);
    const cached = await get(url, { 'if-none-match': `W/"sha256:${pkg.sha256}", "x"` });
    expect(cached.status).toBe(304);
  });

  test.each([
    ['from memory', {}],
    ['streamed', { packageCacheBytes: 0 }],
  ] as const)(
    'Range (%s): a slice, an open end, a suffix, 416 past the end, If-Range that does not match',
    async (_, options) => {
      const gateway = await startGateway(options);
      const pkg = STORED.find((e) => e.filename.startsWith('libgcc-'))!;
      const bytes = readFileSync(fixturePath(pkg.filename));
      const url = `${gateway.url}${pkg.subdir}/${pkg.filename}`;
      const part = await get(url, { range: 'bytes=100-1099' });
      expect(part.status).toBe(206);
      expect(part.headers['content-range']).toBe(`bytes 100-1099/${pkg.size}`);
      expect(part.body.equals(bytes.subarray(100, 1100))).toBe(true);
      const tail = await get(url, { range: `bytes=${pkg.size - 10}-` });
      expect(tail.status).toBe(206);
      expect(tail.body.equals(bytes.subarray(pkg.size - 10))).toBe(true);
      const suffix = await get(url, { range: 'bytes=-7' });
      expect(suffix.body.equals(bytes.subarray(pkg.size - 7))).toBe(true);
      const past = await get(url, { range: `bytes=${pkg.size}-` });
      expect(past.status).toBe(416);
      expect(past.headers['content-range']).toBe(`bytes */${pkg.size}`);
      const stale = await get(url, { range: 'bytes=0-9', 'if-range': '"sha256:other"' });
      expect(stale.status).toBe(200);
      expect(stale.body.equals(bytes)).toBe(true);
      const fresh = await get(url, { range: 'bytes=0-9', 'if-range': `"sha256:${pkg.sha256}"` });
      expect(fresh.status).toBe(206);
      // Ranges of metadata too.
      const meta = await get(`${gateway.url}noarch/repodata.json.zst`);
      const metaPart = await get(`${gateway.url}noarch/repodata.json.zst`, { range: 'bytes=4-20' });
      expect(metaPart.body.equals(meta.body.subarray(4, 21))).toBe(true);
    },
  );

  test('every fixture downloads by its file name, however the name is escaped', async () => {
    for (const e of STORED) {
      for (const name of [e.filename, encodeURIComponent(e.filename)]) {
        const r = await get(`${gateway.url}${e.subdir}/${name}`);
        expect(r.status, name).toBe(200);
        expect(sha256(r.body), name).toBe(e.sha256);
      }
    }
  });

  test('CEP 16: the index maps each name to the sha256 of its shard; shards hold the records with binary hashes', async () => {
    const index = await get(`${gateway.url}linux-64/repodata_shards.msgpack.zst`);
    expect(index.status).toBe(200);
    expect(index.headers['cache-control']).toBe('public, max-age=60');
    const doc = decode(await zstdDecompress(index.body)) as {
      version: number;
      info: { subdir: string; base_url: string; shards_base_url: string };
      shards: Record<string, Uint8Array>;
    };
    expect(doc.version).toBe(1);
    expect(doc.info).toEqual({ subdir: 'linux-64', base_url: './', shards_base_url: './shards/' });
    const linux = STORED.filter((e) => e.subdir === 'linux-64');
    expect(Object.keys(doc.shards).sort()).toEqual([...new Set(linux.map((e) => e.name))].sort());
    for (const [name, hash] of Object.entries(doc.shards)) {
      expect(hash).toBeInstanceOf(Uint8Array);
      expect(hash.length).toBe(32);
      const hex = Buffer.from(hash).toString('hex');
      const shard = await get(`${gateway.url}linux-64/shards/${hex}.msgpack.zst`);
      expect(shard.status).toBe(200);
      expect(shard.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(sha256(shard.body)).toBe(hex);
      const content = decode(await zstdDecompress(shard.body)) as Record<
        string,
        Record<string, Record<string, unknown>>
      >;
      expect(Object.keys(content).sort()).toEqual(['packages', 'packages.conda', 'removed']);
      for (const e of linux.filter((x) => x.name === name)) {
        const record = content[e.filename.endsWith('.conda') ? 'packages.conda' : 'packages']![e.filename]!;
        expect(Buffer.from(record.sha256 as Uint8Array).toString('hex')).toBe(e.sha256);
        expect(Buffer.from(record.md5 as Uint8Array).toString('hex')).toBe(e.md5);
        expect(record.size).toBe(e.size);
        expect(record.depends).toEqual(e.index.depends);
      }
    }
    expect((await get(`${gateway.url}linux-64/shards/${'0'.repeat(64)}.msgpack.zst`)).status).toBe(404);
  });

  test('labels under /label/<label>/; unknown paths 404; writes 405', async () => {
    const rc = await get(`${gateway.url}label/rc/noarch/repodata.json`);
    expect(rc.status).toBe(200);
    expect(Object.keys(JSON.parse(rc.body.toString())['packages.conda'])).toEqual([
      'pure-py-0.9.0-pyhd8ed1ab_0.conda',
    ]);
    const pure = STORED.find((e) => e.filename.startsWith('pure-py'))!;
    expect(sha256((await get(`${gateway.url}label/rc/noarch/${pure.filename}`)).body)).toBe(pure.sha256);
    expect((await get(`${gateway.url}label/rc/linux-64/${STORED[0]!.filename}`)).status).toBe(404);
    expect((await get(`${gateway.url}label/main/noarch/repodata.json`)).status).toBe(200);
    for (const path of [
      `linux-64/${SHADOWED}`, // the .conda of that package is stored, not this file
      'linux-64/nothing-1.0-0.conda',
      'linux-64/not-a-file-name.conda',
      'Linux-64/repodata.json',
      'win-64/repodata.json',
      'linux-64/repodata.json.xz',
      'linux-64/shards/abc.msgpack.zst',
      'a/b/c/d',
      '',
    ]) {
      const r = await get(`${gateway.url}${path}`);
      expect(r.status, path).toBe(404);
      expect(r.body.toString()).toMatch(/not found/);
    }
    for (const method of ['PUT', 'POST', 'DELETE'] as const) {
      const r = await request(`${gateway.url}linux-64/repodata.json`, { method, body: 'x' });
      await r.body.dump();
      expect(r.statusCode).toBe(405);
      expect(r.headers.allow).toBe('GET, HEAD');
    }
  });

  test('concurrent downloads over a bounded number of registry streams all complete', async () => {
    const small = await startGateway({ concurrency: 2, packageCacheBytes: 0 });
    const all = await Promise.all(
      [...STORED, ...STORED, ...STORED].map(
        async (e) => sha256((await get(`${small.url}${e.subdir}/${e.filename}`)).body) === e.sha256,
      ),
    );
    expect(all.every(Boolean)).toBe(true);
  });
});

test('a new repodata is served once the TTL has passed (the old one meanwhile), old shards stay available', async () => {
  const channel = `oci://${registry.host}/prod/ttl-test`;
  const first = STORED.filter(
    (e) =>
      e.filename.startsWith('libgcc-') ||
      e.filename.startsWith('_libgcc') ||
      e.filename === 'demo-pkg-1.2.3-h1234567_0.conda',
  );
  await publish(
    channel,
    first.map((e) => fixturePath(e.filename)),
    creds,
  );
  let clock = 1_000_000;
  const server = await serve(
    { channel: parseChannel(channel), listen: '127.0.0.1:0', metadataTtlMs: 30_000 },
    { store, reporter: silentReporter, anonymous: false, now: () => clock },
  );
  running.push(server);
  const before = await get(`${server.url}linux-64/repodata.json`);
  const index = decode(
    await zstdDecompress((await get(`${server.url}linux-64/repodata_shards.msgpack.zst`)).body),
  ) as {
    shards: Record<string, Uint8Array>;
  };
  const oldShard = Buffer.from(index.shards['demo-pkg']!).toString('hex');

  const newer = STORED.find((e) => e.filename === 'demo-pkg-1.2.4-h7654321_1.conda')!;
  await publish(channel, [fixturePath(newer.filename)], creds);
  const within = await get(`${server.url}linux-64/repodata.json`);
  expect(within.headers.etag).toBe(before.headers.etag);
  clock += 31_000;
  // The expired entry is refreshed in the background; the answer does not wait for it.
  await get(`${server.url}linux-64/repodata.json`);
  await expect
    .poll(async () => (await get(`${server.url}linux-64/repodata.json`)).headers.etag, { timeout: 10_000 })
    .not.toBe(before.headers.etag);
  const after = JSON.parse((await get(`${server.url}linux-64/repodata.json`)).body.toString());
  expect(Object.keys(after['packages.conda'])).toContain(newer.filename);
  const newIndex = decode(
    await zstdDecompress((await get(`${server.url}linux-64/repodata_shards.msgpack.zst`)).body),
  ) as {
    shards: Record<string, Uint8Array>;
  };
  expect(Buffer.from(newIndex.shards['demo-pkg']!).toString('hex')).not.toBe(oldShard);
  // A client still holding the old index gets the shards it names.
  expect((await get(`${server.url}linux-64/shards/${oldShard}.msgpack.zst`)).status).toBe(200);
});

describe('credentials stay on the server', () => {
  test('a refused pull answers 502 with a short text; nothing in any answer names the credentials', async () => {
    const wrong = openStore(parseChannel(channelUrl()), { username: USER, password: 'not-the-password-91x' });
    const warnings: string[] = [];
    const gateway = await startGateway(
      {},
      { store: wrong, reporter: { info() {}, warn: (m) => warnings.push(m) } },
    );
    try {
      for (const path of ['linux-64/repodata.json', `linux-64/${STORED[0]!.filename}`]) {
        const r = await get(`${gateway.url}${path}`);
        expect(r.status, path).toBe(502);
        expect(r.body.toString()).toBe('the registry refused the gateway\n');
        expect(JSON.stringify(r.headers)).not.toMatch(/not-the-password|authorization|www-authenticate/i);
      }
      expect(warnings.length).toBeGreaterThan(0);
      expect(warnings.join('\n')).not.toContain('not-the-password-91x');
    } finally {
      await wrong.close();
    }
  });

  test('a gateway that holds credentials never redirects to the registry, even when asked to', async () => {
    const gateway = await startGateway({ redirect: true }, { anonymous: false });
    const e = STORED[0]!;
    const r = await get(`${gateway.url}${e.subdir}/${e.filename}`);
    expect(r.status).toBe(200);
    expect(r.headers.location).toBeUndefined();
    const everything = [r, await get(`${gateway.url}${e.subdir}/repodata.json`)]
      .map((x) => JSON.stringify(x.headers) + x.body.toString('latin1'))
      .join('');
    expect(everything).not.toContain(PASSWORD);
    expect(everything).not.toContain(Buffer.from(`${USER}:${PASSWORD}`).toString('base64'));
  });

  test('an anonymous registry: package downloads redirect to the registry blob URL (no credentials involved)', async () => {
    const channel = `oci://${open.host}/public/ch`;
    const pkg = STORED.find((e) => e.filename.startsWith('epoch-pkg'))!;
    await publish(channel, [fixturePath(pkg.filename)]);
    const anonymousStore = openStore(parseChannel(channel), { env: {} });
    try {
      const server = await serve(
        { channel: parseChannel(channel), listen: '127.0.0.1:0', redirect: true },
        { store: anonymousStore, reporter: silentReporter, anonymous: true },
      );
      running.push(server);
      const r = await request(`${server.url}${pkg.subdir}/${encodeURIComponent(pkg.filename)}`);
      await r.body.dump();
      expect(r.statusCode).toBe(307);
      expect(r.headers.location).toBe(
        `${open.url}/v2/public/ch/${pkg.subdir}/cepoch-pkg/blobs/sha256:${pkg.sha256}`,
      );
      const followed = await get(r.headers.location as string);
      expect(sha256(followed.body)).toBe(pkg.sha256);
      // Metadata is still served by the gateway itself.
      expect((await get(`${server.url}${pkg.subdir}/repodata.json`)).status).toBe(200);
    } finally {
      await anonymousStore.close();
    }
  });
});

test.each([
  ['read whole into memory: 502', {}, ['status 502']],
  ['streamed: the transfer breaks', { packageCacheBytes: 0 }, ['broken', 'status 502']],
] as const)('a blob the registry alters in transit, %s, never a clean 200', async (_, options, outcomes) => {
  const proxy = await startProxy(open.url);
  try {
    const channel = `oci://${proxy.host}/faulty/ch`;
    const pkg = STORED.find((e) => e.filename.startsWith('libgcc-'))!;
    await publish(channel, [fixturePath(pkg.filename)]);
    const faultyStore = openStore(parseChannel(channel), { env: {} });
    const warnings: string[] = [];
    try {
      const server = await serve(
        { channel: parseChannel(channel), listen: '127.0.0.1:0', ...options },
        { store: faultyStore, reporter: { info() {}, warn: (m) => warnings.push(m) }, anonymous: true },
      );
      running.push(server);
      proxy.on({ method: 'GET', path: new RegExp(`/blobs/sha256:${pkg.sha256}`) }, actions.corrupt(1000));
      const outcome = await request(`${server.url}${pkg.subdir}/${pkg.filename}`).then(
        async (r) => {
          if (r.statusCode !== 200) {
            await r.body.dump();
            return `status ${r.statusCode}`;
          }
          return r.body.arrayBuffer().then(
            () => 'complete',
            () => 'broken',
          );
        },
        () => 'broken',
      );
      expect(outcomes).toContain(outcome);
      expect(warnings.join('\n')).toMatch(/sha256|digest/i);
    } finally {
      await faultyStore.close();
    }
  } finally {
    await proxy.close();
  }
});

test('the CLI entry: serve --channel … --listen 127.0.0.1:0 serves until stopped; bad flags exit 2', async () => {
  const stop = new AbortController();
  let url = '';
  const infos: string[] = [];
  const exit = main(
    [
      'serve',
      '--channel',
      channelUrl(),
      '--listen',
      '127.0.0.1:0',
      '--username',
      USER,
      '--password',
      PASSWORD,
      '--ttl',
      '1',
    ],
    {
      signal: stop.signal,
      onListening: (s: { url: string }) => {
        url = s.url;
      },
      reporter: { info: (m: string) => infos.push(m), warn: (m: string) => infos.push(m) },
    },
  );
  await expect.poll(() => url, { timeout: 10_000 }).not.toBe('');
  const r = await get(`${url}noarch/repodata.json`);
  expect(r.status).toBe(200);
  stop.abort();
  expect(await exit).toBe(0);
  expect(infos.join('\n')).toMatch(/serve: oci:\/\/.*prod\/conda-forge at http:\/\/127\.0\.0\.1:\d+\//);
  expect(infos.join('\n')).not.toContain(PASSWORD);
  expect(
    await main(['serve', '--channel', channelUrl(), '--listen', 'nowhere'], { reporter: silentReporter }),
  ).toBe(2);
  expect(await main(['serve', '--listen', '127.0.0.1:0'], { reporter: silentReporter })).toBe(2);
});
