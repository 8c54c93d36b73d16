/** The gateway's pure parts: HTTP semantics, CEP 16 records, --listen, the cache and the semaphore. */
import { decode } from '@msgpack/msgpack';
import { describe, expect, test } from 'vitest';
import { zstdDecompress } from '../../src/compress.js';
import { parseListen } from '../../src/commands/serve.js';
import { LruCache, Semaphore } from '../../src/serve/cache.js';
import { chooseCoding, ifRangeMatches, noneMatch, parseRange } from '../../src/serve/http-semantics.js';
import { buildShards, shardRecord } from '../../src/serve/shards.js';

describe('parseRange', () => {
  test.each([
    [undefined, 100, { kind: 'none' }],
    ['bytes=0-9', 100, { kind: 'range', start: 0, end: 9 }],
    ['bytes=90-', 100, { kind: 'range', start: 90, end: 99 }],
    ['bytes=90-1000', 100, { kind: 'range', start: 90, end: 99 }],
    ['bytes=-10', 100, { kind: 'range', start: 90, end: 99 }],
    ['bytes=-1000', 100, { kind: 'range', start: 0, end: 99 }],
    ['BYTES = 5 - 6', 100, { kind: 'range', start: 5, end: 6 }],
    ['bytes=100-', 100, { kind: 'unsatisfiable' }],
    ['bytes=-0', 100, { kind: 'unsatisfiable' }],
    ['bytes=0-', 0, { kind: 'unsatisfiable' }],
    ['bytes=9-5', 100, { kind: 'none' }],
    ['bytes=0-1,5-6', 100, { kind: 'none' }],
    ['items=0-1', 100, { kind: 'none' }],
    ['bytes=-', 100, { kind: 'none' }],
    ['bytes=x-1', 100, { kind: 'none' }],
  ] as const)('%s of %i bytes', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });
});

describe('conditional requests', () => {
  const etag = '"sha256:abc"';
  test.each([
    [undefined, false],
    ['"sha256:abc"', true],
    ['W/"sha256:abc"', true],
    ['"x", "sha256:abc"', true],
    ['*', true],
    ['"sha256:abd"', false],
    ['sha256:abc', false],
  ] as const)('If-None-Match %s', (header, matches) => {
    expect(noneMatch(header, etag)).toBe(matches);
  });
  test('If-Range: absent or the same strong tag', () => {
    expect(ifRangeMatches(undefined, etag)).toBe(true);
    expect(ifRangeMatches(etag, etag)).toBe(true);
    expect(ifRangeMatches(`W/${etag}`, etag)).toBe(false);
    expect(ifRangeMatches('Tue, 01 Jan 2030 00:00:00 GMT', etag)).toBe(false);
  });
});

describe('chooseCoding', () => {
  const offered = ['zstd', 'gzip'];
  test.each([
    [undefined, 'identity'],
    ['', 'identity'],
    ['gzip, deflate', 'gzip'],
    ['gzip, deflate, br, zstd', 'zstd'],
    ['gzip;q=1, zstd;q=0.5', 'gzip'],
    ['zstd;q=0, gzip', 'gzip'],
    ['*', 'zstd'],
    ['identity', 'identity'],
    ['br', 'identity'],
  ] as const)('Accept-Encoding %s', (header, coding) => {
    expect(chooseCoding(header, offered)).toBe(coding);
  });
});

describe('CEP 16 shards', () => {
  test('hex digests become bytes; other fields and malformed digests stay as they are', () => {
    const record = shardRecord({
      name: 'x',
      sha256: 'ab'.repeat(32),
      md5: 'CD'.repeat(16),
      legacy_bz2_md5: 'ef'.repeat(16),
      size: 3,
      depends: ['a'],
      timestamp: 1,
    });
    expect(record.sha256).toEqual(new Uint8Array(32).fill(0xab));
    expect(record.md5).toEqual(new Uint8Array(16).fill(0xcd));
    expect(record.legacy_bz2_md5).toEqual(new Uint8Array(16).fill(0xef));
    expect(record).toMatchObject({ name: 'x', size: 3, depends: ['a'], timestamp: 1 });
    expect(shardRecord({ sha256: 'not-hex' }).sha256).toBe('not-hex');
  });

  test('one shard per name, removed files by name, deterministic bytes, index of sha256 bytes', async () => {
    const record = (name: string, version: string) => ({
      name,
      version,
      build: '0',
      build_number: 0,
      depends: [],
      sha256: '11'.repeat(32),
      md5: '22'.repeat(16),
      size: 1,
      subdir: 'noarch',
    });
    const repodata = {
      info: { subdir: 'noarch' },
      packages: { 'a-1-0.tar.bz2': record('a', '1') },
      'packages.conda': { 'a-2-0.conda': record('a', '2'), 'b-c-1-0.conda': record('b-c', '1') },
      removed: ['a-0-0.conda', 'gone-1-0.tar.bz2'],
      repodata_version: 1,
    };
    const bytes = new TextEncoder().encode(JSON.stringify(repodata));
    const set = await buildShards(bytes, 'noarch');
    const again = await buildShards(bytes, 'noarch');
    expect(Buffer.from(again.index).equals(Buffer.from(set.index))).toBe(true);
    expect([...set.byName.keys()]).toEqual(['a', 'b-c', 'gone']);
    const index = decode(await zstdDecompress(set.index)) as Record<string, any>;
    expect(index.info).toEqual({ subdir: 'noarch', base_url: './', shards_base_url: './shards/' });
    expect(Buffer.from(index.shards.a).toString('hex')).toBe(set.byName.get('a'));
    const a = decode(await zstdDecompress(set.shards.get(set.byName.get('a')!)!)) as Record<string, any>;
    expect(Object.keys(a.packages)).toEqual(['a-1-0.tar.bz2']);
    expect(Object.keys(a['packages.conda'])).toEqual(['a-2-0.conda']);
    expect(a.removed).toEqual(['a-0-0.conda']);
    const gone = decode(await zstdDecompress(set.shards.get(set.byName.get('gone')!)!)) as Record<
      string,
      any
    >;
    expect(gone).toEqual({ packages: {}, 'packages.conda': {}, removed: ['gone-1-0.tar.bz2'] });
  });
});

describe('--listen', () => {
  test.each([
    ['127.0.0.1:8000', { host: '127.0.0.1', port: 8000 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
    ['[::1]:8080', { host: '::1', port: 8080 }],
    ['0.0.0.0:65535', { host: '0.0.0.0', port: 65535 }],
  ])('%s', (value, expected) => {
    expect(parseListen(value)).toEqual(expected);
  });
  test.each(['8000', '127.0.0.1', '127.0.0.1:65536', '::1:80', 'host:port', ''])('%s is refused', (value) => {
    expect(() => parseListen(value)).toThrow(/is not host:port/);
  });
});

describe('LruCache and Semaphore', () => {
  test('one load for concurrent gets; least recently used dropped past the budget; failures not kept', async () => {
    const cache = new LruCache<string>(10, (v) => v.length);
    let loads = 0;
    const load = (value: string) => async () => {
      loads++;
      return value;
    };
    const [x, y] = await Promise.all([cache.get('a', load('aaaa')), cache.get('a', load('zzzz'))]);
    expect([x, y, loads]).toEqual(['aaaa', 'aaaa', 1]);
    await cache.get('b', load('bbbb'));
    await cache.peek('a'); // a is now the most recent
    await cache.get('c', load('cccc'));
    expect(cache.peek('b')).toBeUndefined();
    expect(await cache.peek('a')).toBe('aaaa');
    await expect(cache.get('d', () => Promise.reject(new Error('no')))).rejects.toThrow('no');
    await Promise.resolve();
    expect(await cache.get('d', load('dd'))).toBe('dd');
  });

  test('at most `limit` at once, in order', async () => {
    const semaphore = new Semaphore(2);
    let active = 0;
    let peak = 0;
    const order: number[] = [];
    await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        semaphore.run(async () => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((r) => setTimeout(r, 5));
          order.push(i);
          active--;
        }),
      ),
    );
    expect(peak).toBe(2);
    expect(order.sort()).toEqual([0, 1, 2, 3, 4]);
  });
});
