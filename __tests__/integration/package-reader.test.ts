import { execFileSync, execSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  createReadStream,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  DEFAULT_LIMITS,
  PackageError,
  readPackage,
  readPackageFile,
  type PackageContents,
  type PackageLimits,
} from '../../src/conda/package-reader.js';
import { readInfoLayer } from '../../src/conda/info-layer.js';
import { SizeLimitError } from '../../src/oci/errors.js';
import { formatBytes } from '../../src/util/format-bytes.js';
import {
  bzip2,
  bzip2ZeroBomb,
  chunked,
  conda,
  condaMembers,
  infoMembers,
  patchCentral,
  patchEnd,
  patchLocal,
  readCentral,
  replaceBytes,
  tar,
  tarBz2,
  tarHeader,
  zip,
  zipOffsets,
  zstd,
  zstdOfZeros,
  zstdZeroBomb,
  type TarMember,
} from '../helpers/archives.js';
import { EXPECTED, FIXTURES } from '../helpers/fixtures.js';
import { concat, END, file, header, layerAround, pax } from '../helpers/tar-craft.js';

const MIB = 1024 * 1024;

const work = mkdtempSync(join(tmpdir(), 'package-reader-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let scratch = 0;
function tempDir(): string {
  const dir = join(work, `d${scratch++}`);
  mkdirSync(dir);
  return dir;
}

/** The files and symlinks below `dir`, by relative path: contents or link targets. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (sub: string): void => {
    for (const name of readdirSync(join(dir, sub))) {
      const rel = sub ? `${sub}/${name}` : name;
      const stat = lstatSync(join(dir, rel));
      if (stat.isSymbolicLink()) out[rel] = `symlink -> ${readlinkSync(join(dir, rel))}`;
      else if (stat.isDirectory()) walk(rel);
      else
        out[rel] = `file ${createHash('sha256')
          .update(readFileSync(join(dir, rel)))
          .digest('hex')}`;
    }
  };
  walk('');
  return out;
}

/** Where `cph x --info` extracted the package (its info/ is below). */
function cphExtract(packagePath: string): string {
  const dest = tempDir();
  execFileSync('cph', ['x', '--info', packagePath, '--dest', dest], { stdio: 'pipe' });
  return dest;
}

/** What `cph x --info` extracts of info/. */
function cphInfo(packagePath: string): Record<string, string> {
  return tree(join(cphExtract(packagePath), 'info'));
}

/** The info layer untarred by GNU tar. */
function layerInfo(infoTarGz: Uint8Array): Record<string, string> {
  const dir = tempDir();
  const file = join(dir, 'info.tar.gz');
  writeFileSync(file, infoTarGz);
  const dest = join(dir, 'x');
  mkdirSync(dest);
  execFileSync('tar', ['-xzf', file, '-C', dest]);
  return tree(join(dest, 'info'));
}

interface LayerEntry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
  linkname: string | null;
}

/** The headers of the info layer, read by tar-stream. */
async function layerHeaders(infoTarGz: Uint8Array): Promise<LayerEntry[]> {
  const headers: LayerEntry[] = [];
  const reader = extract();
  Readable.from([gunzipSync(infoTarGz)]).pipe(reader);
  for await (const entry of reader) {
    const h = entry.header;
    headers.push({
      name: h.name,
      type: h.type ?? '',
      mode: h.mode ?? -1,
      uid: h.uid ?? -1,
      gid: h.gid ?? -1,
      uname: h.uname ?? '',
      gname: h.gname ?? '',
      mtime: h.mtime?.getTime() ?? -1,
      linkname: h.linkname ?? null,
    });
    entry.resume();
  }
  return headers;
}

const gc = ((): (() => void) => {
  setFlagsFromString('--expose_gc');
  return runInNewContext('gc') as () => void;
})();

const rss = (): number => process.memoryUsage.rss();

interface Measured<T> {
  result?: T;
  error?: unknown;
  ms: number;
  /** CPU time of the whole process (the thread pool's zlib work included). */
  cpuMs: number;
  rssGrowthMb: number;
}

/** Runs `fn` and reports its time and how far the resident set grew (sampled, and at the end). */
async function measure<T>(fn: () => Promise<T>): Promise<Measured<T>> {
  gc();
  const before = rss();
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, rss());
  }, 2);
  const started = performance.now();
  const cpu = process.cpuUsage();
  const out: Measured<T> = { ms: 0, cpuMs: 0, rssGrowthMb: 0 };
  try {
    out.result = await fn();
  } catch (err) {
    out.error = err;
  }
  out.ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  out.cpuMs = (used.user + used.system) / 1000;
  clearInterval(timer);
  peak = Math.max(peak, rss());
  out.rssGrowthMb = (peak - before) / MIB;
  return out;
}

/**
 * Feeds the file at `path` to `read` in 1 MiB chunks and returns the most memory (heap and
 * buffers, in MiB) that was still reachable above the starting point at any chunk boundary.
 */
async function peakLiveMemory(
  path: string,
  read: (chunks: AsyncIterable<Uint8Array>) => Promise<unknown>,
): Promise<number> {
  const live = (): number => {
    gc();
    const usage = process.memoryUsage();
    return usage.heapUsed + usage.arrayBuffers;
  };
  const before = live();
  let peak = 0;
  async function* sampled(): AsyncGenerator<Uint8Array> {
    for await (const chunk of createReadStream(path, { highWaterMark: MIB })) {
      yield chunk as Buffer;
      peak = Math.max(peak, live() - before);
    }
  }
  await read(sampled());
  return peak / MIB;
}

/** Reads `bytes` as a network stream would deliver them, in 64 KiB chunks. */
function readBytes(bytes: Uint8Array, fileName: string, limits?: PackageLimits): Promise<PackageContents> {
  return readPackage(chunked(bytes, [64 * 1024]), fileName, limits);
}

describe.each(EXPECTED)('fixture $filename', (fixture) => {
  const path = join(FIXTURES, fixture.filename);
  let contents: PackageContents;
  beforeAll(async () => {
    contents = await readPackageFile(path);
  });

  test('sha256, md5, size and index.json are those of expected.json', () => {
    expect(contents.fileName).toBe(fixture.filename);
    expect(contents.format).toBe(fixture.filename.endsWith('.conda') ? 'conda' : 'tar.bz2');
    expect(contents.sha256).toBe(fixture.sha256);
    expect(contents.md5).toBe(fixture.md5);
    expect(contents.size).toBe(fixture.size);
    expect(contents.index).toEqual(fixture.index);
    expect(contents.runExports).toEqual(fixture.run_exports ?? undefined);
    expect(contents.timestamp).toBe(fixture.index['timestamp']);
  });

  test('indexJson and the info layer hold what cph extracts, file by file', () => {
    const dest = cphExtract(path);
    const extracted = tree(join(dest, 'info'));
    const indexJson = readFileSync(join(dest, 'info', 'index.json'));
    expect(Buffer.from(contents.indexJson).equals(indexJson)).toBe(true);
    expect(layerInfo(contents.infoTarGz)).toEqual(extracted);
    expect(Object.keys(extracted)).toContain('index.json');
  });

  test('the info layer is deterministic: sorted, zero mtimes and owners, fixed gzip header', async () => {
    const again = await readPackageFile(path);
    expect(Buffer.from(again.infoTarGz).equals(contents.infoTarGz)).toBe(true);
    // gzip: deflate, no flags (no file name), mtime 0, XFL 2 (level 9), OS 3 (Unix).
    expect([...contents.infoTarGz.subarray(0, 10)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3]);
    const headers = await layerHeaders(contents.infoTarGz);
    const names = headers.map((h) => h.name);
    expect(names).toEqual([...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    for (const h of headers) {
      expect(h).toMatchObject({ uid: 0, gid: 0, uname: '', gname: '', mtime: 0 });
      expect(h.name.startsWith('info/')).toBe(true);
      expect([0o644, 0o755, 0o777]).toContain(h.mode);
    }
  });

  test('the same result from a stream chopped into 1..7-byte chunks', async () => {
    const bytes = readFileSync(path);
    for (const sizes of [[1], [2], [3], [4], [5], [6], [7], [1, 2, 3, 4, 5, 6, 7]]) {
      const chopped = await readPackage(chunked(bytes, sizes), fixture.filename);
      expect(chopped).toEqual(contents);
    }
  });
});

describe('info layer', () => {
  const longName = `info/test/${'a-rather-long-directory-name/'.repeat(4)}${'x'.repeat(120)}.txt`;
  const members: TarMember[] = [
    ...infoMembers({ name: 'layer', version: '2.0', build: 'h0_0' }),
    { name: 'info/recipe', type: 'dir' },
    { name: 'info/recipe/meta.yaml', text: 'package: {}\n', mode: 0o600 },
    { name: 'info/recipe/build.sh', text: '#!/bin/sh\n', mode: 0o700 },
    { name: 'info/recipe/café-ünïcode.txt', text: 'utf-8 name\n' },
    { name: longName, text: 'long name\n' },
    { name: 'info/link-to-files', type: 'symlink', linkname: 'files' },
    { name: 'info/recipe/up-link', type: 'symlink', linkname: '../about.json' },
    { name: 'info/hardlinked', type: 'hardlink', linkname: 'info/about.json' },
    { name: './info/./dot-slash', text: 'normalised\n' },
  ];

  test.each([
    ['conda', 'pax'],
    ['tar.bz2', 'pax'],
    ['tar.bz2', 'gnu'],
  ] as const)(
    'long and non-ASCII names, links and modes survive as cph extracts them (.%s, %s tar)',
    async (format, tarFormat) => {
      const file = join(tempDir(), `layer-2.0-h0_0.${format}`);
      const pkgMembers: TarMember[] = [{ name: 'lib/liblayer.so', text: 'binary' }];
      writeFileSync(
        file,
        format === 'conda'
          ? conda({ stem: 'layer-2.0-h0_0', info: members, pkg: pkgMembers })
          : tarBz2([...members, ...pkgMembers], tarFormat),
      );
      const contents = await readPackageFile(file);
      expect(layerInfo(contents.infoTarGz)).toEqual(cphInfo(file));
      const headers = await layerHeaders(contents.infoTarGz);
      const byName = Object.fromEntries(headers.map((h) => [h.name, h]));
      expect(byName['info/recipe/meta.yaml']?.mode).toBe(0o644);
      expect(byName['info/recipe/build.sh']?.mode).toBe(0o755);
      expect(byName['info/link-to-files']).toMatchObject({ type: 'symlink', linkname: 'files', mode: 0o777 });
      expect(byName['info/hardlinked']).toMatchObject({ type: 'file', mode: 0o644 });
      expect(byName[longName]).toBeDefined();
      expect(byName['info/dot-slash']).toBeDefined();
      expect(byName['info/recipe']).toBeUndefined(); // directories are left to tar readers
    },
  );

  test('the layer does not depend on member order, owners or mtimes in the package', async () => {
    const one = conda({ stem: 'layer-2.0-h0_0', info: members });
    const shuffled = [...members].reverse().filter((m) => m.type !== 'hardlink');
    shuffled.push(members.find((m) => m.type === 'hardlink') as TarMember);
    const two = conda({ stem: 'layer-2.0-h0_0', info: shuffled });
    const a = await readBytes(one, 'layer-2.0-h0_0.conda');
    const b = await readBytes(two, 'layer-2.0-h0_0.conda');
    expect(Buffer.from(a.infoTarGz).equals(b.infoTarGz)).toBe(true);
    expect(a.sha256).not.toBe(b.sha256);
  });
});

describe('index.json', () => {
  const read = (index: Record<string, unknown> | string): Promise<PackageContents> =>
    readBytes(conda({ stem: 'x-1.0-0', info: infoMembers(index as never) }), 'x-1.0-0.conda');

  test('old packages: seconds become milliseconds, a missing depends reads as []', async () => {
    const text = JSON.stringify({
      name: 'x',
      version: '1.0',
      build: '0',
      build_number: 0,
      timestamp: 1500000000.5,
    });
    const contents = await read(text);
    expect(contents.timestamp).toBe(1500000000500);
    expect(contents.index.depends).toEqual([]);
    expect(contents.index.subdir).toBeUndefined();
  });

  test('index.json may be a symlink inside info/', async () => {
    const info: TarMember[] = [
      {
        name: 'info/index.real',
        text: JSON.stringify({ name: 'x', version: '1.0', build: '0', build_number: 3 }),
      },
      { name: 'info/index.json', type: 'symlink', linkname: 'index.real' },
    ];
    const contents = await readBytes(conda({ stem: 'x-1.0-0', info }), 'x-1.0-0.conda');
    expect(contents.index.build_number).toBe(3);
  });
});

test('a .conda written with zip64 records everywhere reads the same', async () => {
  const spec = { stem: 'z-1.0-0', info: infoMembers({ name: 'z', version: '1.0', build: '0' }) };
  const members = condaMembers(spec);
  const plain = await readBytes(zip(members), 'z-1.0-0.conda');
  const zip64 = zip(members, { zip64: true });
  expect(zip64.includes(Buffer.from([0x50, 0x4b, 0x06, 0x06]))).toBe(true);
  const contents = await readBytes(zip64, 'z-1.0-0.conda');
  expect(contents.index).toEqual(plain.index);
  expect(Buffer.from(contents.infoTarGz).equals(plain.infoTarGz)).toBe(true);
});

interface BadCase {
  title: string;
  file: string;
  bytes: () => Uint8Array;
  error: RegExp;
  limits?: PackageLimits;
  /** Check that the heap stayed bounded. */
  bomb?: boolean;
  sizeLimit?: boolean;
}

const STEM = 'bad-1.0-0';
const CONDA = `${STEM}.conda`;
const TAR_BZ2 = `${STEM}.tar.bz2`;
const GOOD_INFO = infoMembers({ name: 'bad', version: '1.0', build: '0' });
const PAYLOAD: TarMember[] = [{ name: 'lib/libbad.so', text: 'binary' }];
const goodConda = (): Buffer => conda({ stem: STEM, info: GOOD_INFO });
const goodTarBz2 = (): Buffer => tarBz2([...GOOD_INFO, ...PAYLOAD]);
const infoConda = (extra: TarMember[], format?: 'gnu'): (() => Buffer) => {
  return () => conda({ stem: STEM, info: zstd(tar([...GOOD_INFO, ...extra], format)) });
};
const withTarBz2 = (extra: TarMember[], format?: 'gnu'): (() => Buffer) => {
  return () => bzip2(tar([...GOOD_INFO, ...PAYLOAD, ...extra], format));
};
const withIndex = (index: unknown): (() => Buffer) => {
  return () =>
    conda({ stem: STEM, info: infoMembers(typeof index === 'string' ? index : JSON.stringify(index)) });
};
const INDEX = { name: 'bad', version: '1.0', build: '0', build_number: 0, depends: [] };

/** Rebuilds a .conda from the members of a good one, changing them with `edit`. */
const editConda = (
  edit: (members: ReturnType<typeof condaMembers>) => ReturnType<typeof condaMembers>,
): (() => Buffer) => {
  return () => zip(edit(condaMembers({ stem: STEM, info: GOOD_INFO })));
};

const INFO_MEMBER = `info-${STEM}.tar.zst`;

const badCases: BadCase[] = [
  // paths
  {
    title: 'path traversal in info/ (.conda)',
    file: CONDA,
    bytes: infoConda([{ name: 'info/../../x', text: 'x' }]),
    error: /member "info\/\.\.\/\.\.\/x" escapes the archive/,
  },
  {
    title: 'path traversal in the payload (.tar.bz2)',
    file: TAR_BZ2,
    bytes: withTarBz2([{ name: 'lib/../../../etc/cron.d/x', text: 'x' }]),
    error: /member "lib\/\.\.\/\.\.\/\.\.\/etc\/cron\.d\/x" escapes the archive/,
  },
  {
    title: 'absolute path (.tar.bz2)',
    file: TAR_BZ2,
    bytes: withTarBz2([{ name: '/etc/passwd', text: 'root::0:0::/:/bin/sh\n' }]),
    error: /member "\/etc\/passwd" is an absolute path/,
  },
  {
    title: 'absolute path in info/ (.conda)',
    file: CONDA,
    bytes: infoConda([{ name: '/info/x', text: 'x' }]),
    error: /member "\/info\/x" is an absolute path/,
  },
  {
    title: 'backslash in a name',
    file: TAR_BZ2,
    bytes: withTarBz2([{ name: 'lib\\..\\..\\x', text: 'x' }]),
    error: /backslash/,
  },
  {
    title: 'symlink escaping the archive (.conda info)',
    file: CONDA,
    bytes: infoConda([{ name: 'info/evil', type: 'symlink', linkname: '../../../etc/passwd' }]),
    error: /symbolic link "info\/evil" -> "\.\.\/\.\.\/\.\.\/etc\/passwd" escapes the archive/,
  },
  {
    title: 'absolute symlink in the payload (.tar.bz2)',
    file: TAR_BZ2,
    bytes: withTarBz2([{ name: 'lib/evil', type: 'symlink', linkname: '/etc/passwd' }]),
    error: /symbolic link "lib\/evil" -> "\/etc\/passwd" escapes the archive/,
  },
  {
    title: 'symlink in info/ pointing into the payload',
    file: TAR_BZ2,
    bytes: withTarBz2([{ name: 'info/l', type: 'symlink', linkname: '../lib/libbad.so' }]),
    error: /symbolic link "info\/l" -> "\.\.\/lib\/libbad\.so" points outside info\//,
  },
  {
    title: 'member written through a symlink',
    file: TAR_BZ2,
    bytes: withTarBz2([
      { name: 'share', type: 'symlink', linkname: 'lib' },
      { name: 'share/x', text: 'x' },
    ]),
    error: /member "share\/x" would be written through the symbolic link "share"/,
  },
  {
    title: 'hard link escaping the archive',
    file: CONDA,
    bytes: infoConda([{ name: 'info/h', type: 'hardlink', linkname: '../../etc/passwd' }]),
    error: /hard link "info\/h" -> "\.\.\/\.\.\/etc\/passwd" escapes the archive/,
  },
  {
    title: 'hard link from info/ to the payload',
    file: TAR_BZ2,
    bytes: withTarBz2([{ name: 'info/h', type: 'hardlink', linkname: 'lib/libbad.so' }]),
    error: /hard link "info\/h" -> "lib\/libbad\.so" points outside info\//,
  },
  {
    title: 'hard link to a member that does not exist',
    file: CONDA,
    bytes: infoConda([{ name: 'info/h', type: 'hardlink', linkname: 'info/missing' }]),
    error: /hard link "info\/h" -> "info\/missing" does not point to an earlier file/,
  },
  {
    title: 'device file in info/',
    file: CONDA,
    bytes: infoConda([{ name: 'info/null', type: 'chardev' }]),
    error: /member "info\/null" is a device file/,
  },
  {
    title: 'FIFO in the payload',
    file: TAR_BZ2,
    bytes: withTarBz2([{ name: 'lib/pipe', type: 'fifo' }]),
    error: /member "lib\/pipe" is a named pipe/,
  },
  {
    title: 'info archive of a .conda holding a member outside info/',
    file: CONDA,
    bytes: infoConda([{ name: 'lib/sneaky.so', text: 'x' }]),
    error: /holds "lib\/sneaky\.so", which is outside info\//,
  },
  // names
  {
    title: 'non-UTF-8 member name (.tar.bz2)',
    file: TAR_BZ2,
    bytes: withTarBz2(
      [{ name: '', nameHex: Buffer.from('lib/caf\xe9.txt', 'latin1').toString('hex'), text: 'x' }],
      'gnu',
    ),
    error: /member name "lib\/caf\?\.txt" is not valid UTF-8/,
  },
  {
    title: 'non-UTF-8 member name (.conda info, pax)',
    file: CONDA,
    bytes: infoConda([
      { name: '', nameHex: Buffer.from('info/\xff\xfe', 'latin1').toString('hex'), text: 'x' },
    ]),
    error: /is not valid UTF-8/,
  },
  {
    title: 'non-UTF-8 zip member name',
    file: CONDA,
    bytes: () =>
      replaceBytes(goodConda(), Buffer.from('metadata.json'), Buffer.from('metadata.jso\xff', 'latin1')),
    error: /zip member name "metadata\.jso\?" is not valid UTF-8/,
  },
  // duplicates
  {
    title: 'duplicate zip member',
    file: CONDA,
    bytes: editConda((members) => [...members, members[0] as (typeof members)[0]]),
    error: /the zip holds member "metadata\.json" twice/,
  },
  {
    title: 'duplicate info/index.json (.conda)',
    file: CONDA,
    bytes: infoConda([{ name: 'info/index.json', text: JSON.stringify({ ...INDEX, name: 'other' }) }]),
    error: /member "info\/index\.json" appears twice/,
  },
  {
    title: 'duplicate payload member (.tar.bz2)',
    file: TAR_BZ2,
    bytes: withTarBz2([{ name: 'lib/libbad.so', text: 'evil twin' }]),
    error: /member "lib\/libbad\.so" appears twice/,
  },
  // index.json
  {
    title: 'index.json: name is a number',
    file: CONDA,
    bytes: withIndex({ ...INDEX, name: 42 }),
    error: /info\/index\.json: "name" must be a non-empty string, not the number 42/,
  },
  {
    title: 'index.json: depends is a string',
    file: CONDA,
    bytes: withIndex({ ...INDEX, depends: 'libfoo >=1' }),
    error: /info\/index\.json: "depends" must be a list of strings, not the string "libfoo >=1"/,
  },
  {
    title: 'index.json: build_number is negative',
    file: CONDA,
    bytes: withIndex({ ...INDEX, build_number: -1 }),
    error: /"build_number" must be a non-negative integer, not the number -1/,
  },
  {
    title: 'index.json: build_number is a string',
    file: CONDA,
    bytes: withIndex({ ...INDEX, build_number: '0' }),
    error: /"build_number" must be a non-negative integer, not the string "0"/,
  },
  {
    title: 'index.json: constrains holds a number',
    file: CONDA,
    bytes: withIndex({ ...INDEX, constrains: ['a', 1] }),
    error: /"constrains" must be a list of strings/,
  },
  {
    title: 'index.json: not an object',
    file: CONDA,
    bytes: withIndex('["bad", "1.0", "0"]'),
    error: /info\/index\.json is not a JSON object but a list/,
  },
  {
    title: 'index.json: not JSON',
    file: CONDA,
    bytes: withIndex('{"name": "bad",'),
    error: /info\/index\.json is not valid JSON/,
  },
  {
    title: 'index.json: not UTF-8',
    file: CONDA,
    bytes: () => conda({ stem: STEM, info: [{ name: 'info/index.json', hex: 'ff7b7d' }] }),
    error: /info\/index\.json is not valid UTF-8/,
  },
  {
    title: 'no index.json',
    file: CONDA,
    bytes: () => conda({ stem: STEM, info: [{ name: 'info/about.json', text: '{}' }] }),
    error: /the package has no info\/index\.json/,
  },
  {
    title: 'file name not matching index.json',
    file: 'other-2.0-1.conda',
    bytes: () => conda({ stem: 'other-2.0-1', info: GOOD_INFO }),
    error:
      /^other-2\.0-1\.conda: the file name does not match info\/index\.json, which gives name "bad", version "1\.0", build "0": expected "bad-1\.0-0\.conda"$/,
  },
  {
    title: 'a .tar.bz2 whose index.json gives another version',
    file: `${STEM}.tar.bz2`,
    bytes: () => tarBz2([...infoMembers({ name: 'bad', version: '1.1', build: '0' }), ...PAYLOAD]),
    error: /expected "bad-1\.1-0\.tar\.bz2"/,
  },
  // sizes and bombs
  {
    title: 'index.json over the limit',
    file: CONDA,
    bytes: withIndex(JSON.stringify({ ...INDEX, padding: 'x'.repeat(2 * MIB) })),
    error: /info\/index\.json is 2 MiB, more than the limit of 1 MiB/,
    sizeLimit: true,
  },
  {
    title: 'index.json over the limit through a symlink',
    file: CONDA,
    bytes: () =>
      conda({
        stem: STEM,
        info: [
          { name: 'info/big.json', text: JSON.stringify({ ...INDEX, padding: 'x'.repeat(2 * MIB) }) },
          { name: 'info/index.json', type: 'symlink', linkname: 'big.json' },
        ],
      }),
    error: /info\/index\.json is 2 MiB, more than the limit of 1 MiB/,
    sizeLimit: true,
  },
  {
    title: 'too many info/ members (limit 8)',
    file: TAR_BZ2,
    bytes: withTarBz2(Array.from({ length: 10 }, (_, i) => ({ name: `info/test/f${i}`, text: `${i}` }))),
    error: /info\/ has more than 8 members/,
    limits: { ...DEFAULT_LIMITS, infoMembers: 8 },
    sizeLimit: true,
  },
  {
    title: 'zstd bomb: 2 GiB of zeros in 64 KiB, window 64 MiB',
    file: CONDA,
    bytes: () => conda({ stem: STEM, info: zstdZeroBomb(tarHeader('info/index.json', 100), 2 * 1024 * MIB) }),
    error:
      /"info-bad-1\.0-0\.tar\.zst" decompresses to more than 16\.1 MiB, the expansion limit \(100 times its 1 KiB compressed, plus 16 MiB; a decompression bomb\?\)/,
    bomb: true,
    sizeLimit: true,
  },
  {
    title: 'zstd bomb: 2 GiB of zeros in 64 KiB, info/ limit 8 MiB below the expansion limit',
    file: CONDA,
    bytes: () => conda({ stem: STEM, info: zstdZeroBomb(tarHeader('info/index.json', 100), 2 * 1024 * MIB) }),
    error:
      /"info-bad-1\.0-0\.tar\.zst" decompresses to more than 8 MiB \(the limit for info\/; a decompression bomb\?\)/,
    limits: { ...DEFAULT_LIMITS, infoBytes: 8 * MIB },
    bomb: true,
    sizeLimit: true,
  },
  {
    title: 'zstd bomb: 64 GiB of zeros, window 64 MiB',
    file: CONDA,
    bytes: () =>
      conda({ stem: STEM, info: zstdZeroBomb(tarHeader('info/index.json', 100), 64 * 1024 * MIB) }),
    error:
      /decompresses to more than 16\.1 MiB, the expansion limit \(100 times its 1 KiB compressed, plus 16 MiB/,
    bomb: true,
    sizeLimit: true,
  },
  {
    title: 'zstd bomb: `head -c 1G /dev/zero | zstd`',
    file: CONDA,
    bytes: () => conda({ stem: STEM, info: zstdOfZeros(1024 * MIB) }),
    error: /decompresses to more than 16\.1 MiB, the expansion limit \(100 times its 549 bytes compressed/,
    bomb: true,
    sizeLimit: true,
  },
  {
    title: 'zstd frame declaring more than the limit',
    file: CONDA,
    bytes: () => {
      // A 1 MiB window and an 8-byte Frame_Content_Size of 1 TiB, then the tar as one raw block.
      const body = tar(GOOD_INFO);
      const header = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x50, 0, 0, 0, 0, 0, 1, 0, 0]);
      const block = Buffer.alloc(3);
      block.writeUIntLE((body.length << 3) | 1, 0, 3);
      return conda({ stem: STEM, info: Buffer.concat([header, block, body]) });
    },
    error: /decompresses to more than 17 MiB, the expansion limit \(100 times its 10 KiB compressed/,
    sizeLimit: true,
  },
  {
    title: 'zstd frame needing a 256 MiB window',
    file: CONDA,
    bytes: () => conda({ stem: STEM, info: zstdZeroBomb(tarHeader('info/index.json', 100), MIB, 28) }),
    error: /needs a zstd window of 256 MiB, more than the 128 MiB/,
  },
  {
    title: 'bzip2 bomb in info/: declared 2 GiB',
    file: TAR_BZ2,
    bytes: () => bzip2ZeroBomb(Buffer.concat([tarHeader('info/zeros', 2 * 1024 * MIB)]), 300 * MIB),
    error: /info\/ is larger than the limit of 256 MiB \(at "info\/zeros", 2 GiB; a decompression bomb\?\)/,
    bomb: true,
    sizeLimit: true,
  },
  {
    title: 'bzip2 bomb after the end of the tar (expansion allowance 64 MiB)',
    file: TAR_BZ2,
    bytes: () => bzip2ZeroBomb(tar([...GOOD_INFO, ...PAYLOAD]), 2 * 1024 * MIB),
    error:
      /the tar archive decompresses to more than 64 MiB, the expansion limit \(100 times its 435 bytes compressed, plus 64 MiB; a decompression bomb\?\)/,
    limits: { ...DEFAULT_LIMITS, expansionAllowance: 64 * MIB },
    bomb: true,
    sizeLimit: true,
  },
  {
    title: '.conda info member larger than the info limit (limit 1 MiB)',
    file: CONDA,
    bytes: () =>
      conda({
        stem: STEM,
        info: [...GOOD_INFO, { name: 'info/big', hex: randomBytes(2 * MIB).toString('hex') }],
      }),
    error: /"info-bad-1\.0-0\.tar\.zst" is 2 MiB, more than the limit of 1 MiB for info\//,
    limits: { ...DEFAULT_LIMITS, infoBytes: MIB },
    sizeLimit: true,
  },
  // the zip container
  {
    title: 'central directory: CRC-32 differs from the local header',
    file: CONDA,
    bytes: () => patchCentral(goodConda(), INFO_MEMBER, 'crc32', 0x12345678),
    error:
      /central directory disagrees with the local headers \(member "info-bad-1\.0-0\.tar\.zst": crc32 305419896 in the directory/,
  },
  {
    title: 'central directory: sizes differ from the local header',
    file: CONDA,
    bytes: () => {
      const bytes = goodConda();
      const size = readCentral(bytes, INFO_MEMBER, 'size');
      return patchCentral(
        patchCentral(bytes, INFO_MEMBER, 'size', size + 1000),
        INFO_MEMBER,
        'compressedSize',
        size + 1000,
      );
    },
    error:
      /central directory disagrees with the local headers \(member "info-bad-1\.0-0\.tar\.zst": compressedSize \d+ in the directory, \d+ in the local header; size/,
  },
  {
    title: 'central directory: offset points elsewhere',
    file: CONDA,
    bytes: () => patchCentral(goodConda(), INFO_MEMBER, 'offset', 0),
    error:
      /central directory disagrees with the local headers \(member "info-bad-1\.0-0\.tar\.zst": offset 0/,
  },
  {
    title: 'end record: wrong member count',
    file: CONDA,
    bytes: () => patchEnd(goodConda(), 'entries', 2),
    error: /the end record counts 2 members, the directory lists 3/,
  },
  {
    title: 'end record: wrong directory offset',
    file: CONDA,
    bytes: () => patchEnd(goodConda(), 'offset', 1234),
    error: /the directory is said to start at 1234/,
  },
  {
    title: 'end record: wrong directory size',
    file: CONDA,
    bytes: () => patchEnd(goodConda(), 'size', 10),
    error: /the directory is said to be 10 bytes long/,
  },
  {
    title: 'local header lies about the size (shorter)',
    file: CONDA,
    bytes: () => {
      const bytes = goodConda();
      const size = readCentral(bytes, `pkg-${STEM}.tar.zst`, 'size');
      const member = `pkg-${STEM}.tar.zst`;
      const shorter = Math.floor(size / 2);
      return patchLocal(patchLocal(bytes, member, 'size', shorter), member, 'compressedSize', shorter);
    },
    error: /CRC-32 does not match|unexpected bytes/,
  },
  {
    title: 'local header lies about the size (longer)',
    file: CONDA,
    bytes: () => {
      const bytes = goodConda();
      const member = 'metadata.json';
      const size = readCentral(bytes, member, 'size');
      return patchLocal(patchLocal(bytes, member, 'size', size + 40), member, 'compressedSize', size + 40);
    },
    error: /CRC-32 does not match/,
  },
  {
    title: 'data descriptor flag',
    file: CONDA,
    bytes: () =>
      patchCentral(patchLocal(goodConda(), 'metadata.json', 'flags', 8), 'metadata.json', 'flags', 8),
    error: /zip member "metadata\.json" has its sizes in a data descriptor/,
  },
  {
    title: 'DEFLATE member',
    file: CONDA,
    bytes: editConda((members) =>
      members.map((m) => (m.name === 'metadata.json' ? { ...m, deflate: true } : m)),
    ),
    error:
      /zip member "metadata\.json" is compressed with zip method 8; conda packages store their members uncompressed/,
  },
  {
    title: 'info member named for another package',
    file: CONDA,
    bytes: editConda((members) =>
      members.map((m) => (m.name === INFO_MEMBER ? { ...m, name: 'info-evil-1.0-0.tar.zst' } : m)),
    ),
    error:
      /member "info-evil-1\.0-0\.tar\.zst" does not match the file name \(expected "info-bad-1\.0-0\.tar\.zst"\)/,
  },
  {
    title: 'unexpected member',
    file: CONDA,
    bytes: editConda((members) => [...members, { name: 'extra.sh', data: Buffer.from('rm -rf /') }]),
    error: /unexpected member "extra\.sh"/,
  },
  {
    title: 'missing pkg member',
    file: CONDA,
    bytes: editConda((members) => members.filter((m) => !m.name.startsWith('pkg-'))),
    error: /the \.conda has no "pkg-bad-1\.0-0\.tar\.zst"/,
  },
  {
    title: 'metadata.json of another format version',
    file: CONDA,
    bytes: () => conda({ stem: STEM, info: GOOD_INFO, metadata: '{"conda_pkg_format_version": 1}' }),
    error: /metadata\.json does not say "conda_pkg_format_version": 2/,
  },
  {
    title: 'info member that is not zstd',
    file: CONDA,
    bytes: () => conda({ stem: STEM, info: tar(GOOD_INFO) }),
    error: /"info-bad-1\.0-0\.tar\.zst" is not zstd-compressed/,
  },
  {
    title: 'info member that is zstd but not tar',
    file: CONDA,
    bytes: () => conda({ stem: STEM, info: zstd(Buffer.from('{"not": "a tar"}'.repeat(100))) }),
    error: /the info archive "info-bad-1\.0-0\.tar\.zst" is not a tar archive/,
  },
  {
    title: 'corrupt bzip2 block',
    file: TAR_BZ2,
    bytes: () => {
      const bytes = Buffer.from(goodTarBz2());
      bytes[Math.floor(bytes.length / 2)]! ^= 0x55;
      return bytes;
    },
    error: /the bzip2 data is corrupt/,
  },
  // not a package at all
  {
    title: 'empty .conda',
    file: CONDA,
    bytes: () => Buffer.alloc(0),
    error: /^bad-1\.0-0\.conda: the file is empty$/,
  },
  {
    title: 'empty .tar.bz2',
    file: TAR_BZ2,
    bytes: () => Buffer.alloc(0),
    error: /^bad-1\.0-0\.tar\.bz2: the bzip2 data is empty$/,
  },
  {
    title: 'text named .conda',
    file: CONDA,
    bytes: () => Buffer.from('<html>404 Not Found</html>\n'),
    error: /the file is not a zip archive/,
  },
  {
    title: 'a .tar.bz2 named .conda',
    file: CONDA,
    bytes: goodTarBz2,
    error: /the file is not a zip archive/,
  },
  {
    title: 'a .conda named .tar.bz2',
    file: TAR_BZ2,
    bytes: goodConda,
    error: /the file is not bzip2-compressed/,
  },
  {
    title: 'a gzipped tar named .tar.bz2',
    file: TAR_BZ2,
    bytes: () => execFileSync('gzip', ['-c'], { input: tar(GOOD_INFO) }),
    error: /the file is not bzip2-compressed/,
  },
  {
    title: 'bzip2 of something that is not tar',
    file: TAR_BZ2,
    bytes: () => bzip2(Buffer.from('just text\n'.repeat(100))),
    error: /the tar archive is not a tar archive/,
  },
  {
    title: 'bzip2 with trailing garbage',
    file: TAR_BZ2,
    bytes: () => Buffer.concat([goodTarBz2(), Buffer.from('garbage')]),
    error: /there is unexpected data after the end of the bzip2 stream/,
  },
  {
    title: 'zip with trailing garbage',
    file: CONDA,
    bytes: () => Buffer.concat([goodConda(), Buffer.from('garbage')]),
    error: /there is unexpected data after the end of the zip/,
  },
  {
    title: 'not a package name',
    file: 'bad-1.0-0.zip',
    bytes: goodConda,
    error: /is not a conda package file name/,
  },
];

describe('refused packages', () => {
  test('(control) the memory measure sees a 150 MB allocation', async () => {
    const measured = await measure(async () => Buffer.alloc(150 * MIB, 1));
    expect(measured.rssGrowthMb).toBeGreaterThan(100);
  });

  test.each(badCases)('$title', async ({ file, bytes, error, limits, bomb, sizeLimit }) => {
    const data = bytes();
    const measured = await measure(() => readBytes(data, file, limits));
    expect(measured.error).toBeInstanceOf(PackageError);
    const err = measured.error as PackageError;
    expect(err.code).toBe('PACKAGE');
    expect(err.file).toBe(file);
    expect(err.message.startsWith(`${file}: `)).toBe(true);
    expect(err.message).toMatch(error);
    if (sizeLimit) expect(err.cause).toBeInstanceOf(SizeLimitError);
    expect(measured.ms).toBeLessThan(bomb ? 4000 : 1500);
    if (bomb) {
      console.log(
        `${file}: refused in ${measured.ms.toFixed(0)} ms, rss +${measured.rssGrowthMb.toFixed(1)} MiB`,
      );
      expect(measured.rssGrowthMb).toBeLessThan(100);
    }
  });

  test.each([
    ['.conda', CONDA, goodConda],
    ['.tar.bz2', TAR_BZ2, goodTarBz2],
  ] as const)('truncated %s files end in a PackageError at every cut', async (_, file, build) => {
    const bytes = build();
    await expect(readBytes(bytes, file)).resolves.toBeDefined();
    const cuts = new Set([1, 2, 3, 4, 10, 29, 30, 31, 100, 512, bytes.length >> 1]);
    for (let back = 1; back <= 120; back += back < 30 ? 1 : 7) cuts.add(bytes.length - back);
    if (file === CONDA) {
      const { local } = zipOffsets(bytes, INFO_MEMBER);
      for (const delta of [0, 10, 40, 80, 200]) cuts.add(local + delta);
    }
    for (const cut of [...cuts].filter((c) => c > 0 && c < bytes.length)) {
      const started = performance.now();
      const err = await readBytes(bytes.subarray(0, cut), file).then(
        () => new Error(`cut at ${cut} was accepted`),
        (e: unknown) => e,
      );
      expect(err, `cut at ${cut}`).toBeInstanceOf(PackageError);
      expect((err as Error).message.startsWith(`${file}: `)).toBe(true);
      expect(performance.now() - started).toBeLessThan(1000);
    }
  });

  test('the input stream is closed on the first problem', async () => {
    let pulled = 0;
    let closed = false;
    async function* endless(): AsyncGenerator<Uint8Array> {
      try {
        yield Buffer.from('not a zip at all');
        for (;;) {
          pulled++;
          yield Buffer.alloc(65536);
        }
      } finally {
        closed = true;
      }
    }
    await expect(readPackage(endless(), CONDA)).rejects.toThrow(PackageError);
    expect(closed).toBe(true);
    expect(pulled).toBe(0);
  });

  test('errors of the input stream itself pass through unchanged', async () => {
    const failure = new Error('connection reset');
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield goodConda().subarray(0, 100);
      throw failure;
    }
    await expect(readPackage(failing(), CONDA)).rejects.toBe(failure);
  });

  test('a missing file is a PackageError', async () => {
    await expect(readPackageFile(join(work, 'missing-1.0-0.conda'))).rejects.toThrow(
      /^missing-1\.0-0\.conda: cannot be read \(ENOENT/,
    );
  });
});

describe('a 30 MB package built by cph', () => {
  const PAYLOAD_MB = 30;
  let dir: string;
  beforeAll(() => {
    dir = tempDir();
    const prefix = join(dir, 'prefix');
    mkdirSync(join(prefix, 'info'), { recursive: true });
    mkdirSync(join(prefix, 'lib'), { recursive: true });
    writeFileSync(
      join(prefix, 'info', 'index.json'),
      JSON.stringify({
        name: 'big-pkg',
        version: '1.0',
        build: 'h0_0',
        build_number: 0,
        depends: [],
        subdir: 'linux-64',
      }),
    );
    writeFileSync(join(prefix, 'info', 'files'), 'lib/blob-0.bin\nlib/blob-1.bin\nlib/blob-2.bin\n');
    for (let i = 0; i < 3; i++)
      writeFileSync(join(prefix, 'lib', `blob-${i}.bin`), randomBytes((PAYLOAD_MB / 3) * MIB));
    for (const ext of ['conda', 'tar.bz2']) {
      execFileSync('cph', ['create', prefix, `big-pkg-1.0-h0_0.${ext}`, '--out-folder', dir], {
        stdio: 'pipe',
      });
    }
  }, 120_000);

  test.each(['conda', 'tar.bz2'])(
    '.%s reads holding a small fraction of the payload in memory',
    async (ext) => {
      const path = join(dir, `big-pkg-1.0-h0_0.${ext}`);
      const bytes = readFileSync(path);
      const started = performance.now();
      const contents = await readPackageFile(path);
      const ms = performance.now() - started;
      expect(contents.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(contents.md5).toBe(createHash('md5').update(bytes).digest('hex'));
      expect(contents.size).toBe(bytes.length);
      expect(layerInfo(contents.infoTarGz)).toEqual(cphInfo(path));
      // Resident set size mostly counts garbage not yet collected; live memory, sampled after a full
      // collection at every 1 MiB chunk, is what the reader actually holds.
      const live = await peakLiveMemory(path, (chunks) => readPackage(chunks, basename(path)));
      console.log(
        `readPackageFile .${ext}: ${(bytes.length / MIB).toFixed(1)} MiB in ${ms.toFixed(0)} ms = ${(bytes.length / MIB / (ms / 1000)).toFixed(1)} MiB/s, live memory at most +${live.toFixed(1)} MiB`,
      );
      // Measured: .conda ~3 MiB (1 MiB chunks in flight); .tar.bz2 ~11 MiB (bzip2's 900k block tables).
      expect(live).toBeLessThan(PAYLOAD_MB / 2);
    },
  );
});

describe('the cost of a refusal: bombs stop at the expansion limit, within milliseconds', () => {
  /**
   * A tar of `count` tiny members after info/index.json (what a layer holds): one byte each, or
   * 16 random hex digits (which gzip cannot squeeze past the expansion limit: then the member
   * count is what stops it).
   */
  const tinyMembers = (count: number, random = false): Uint8Array => {
    const parts: Uint8Array[][] = [file('info/index.json', '{}')];
    for (let i = 0; i < count; i++) {
      const text = random ? randomBytes(8).toString('hex') : 'a';
      parts.push(file(`info/t/${String(i).padStart(6, '0')}`, text));
    }
    return concat([...parts, END]);
  };
  /** `(header; head -c <zeros> /dev/zero) | gzip -9`: a gzip bomb in the shape of an info layer. */
  const gzipBomb = (zeros: number): Buffer =>
    execSync(`cat - <(head -c ${zeros} /dev/zero) | gzip -9 -c`, {
      input: tarHeader('info/zeros', zeros),
      shell: '/bin/bash',
      maxBuffer: 1 << 26,
    });
  const hugePax = (count: number): Uint8Array => {
    const parts: Uint8Array[][] = [file('info/index.json', '{}')];
    for (let i = 0; i < count; i++)
      parts.push(pax([['comment', 'x'.repeat(65_000)]]), file(`info/p${i}`, 'p'));
    return concat([...parts, END]);
  };
  const EXPANSION = (what: string) =>
    new RegExp(
      `${what} decompresses to more than [\\d.]+ MiB, the expansion limit \\(100 times its [\\d.]+ (bytes|KiB|MiB) compressed, plus 16 MiB; a decompression bomb\\?\\)`,
    );

  interface Cost {
    title: string;
    /** Builds the input (not measured). */
    input: () => Uint8Array;
    read: (input: Uint8Array) => Promise<unknown>;
    error: RegExp;
    /** Compressed size at most, to show what the attacker sends. */
    maxInput: number;
  }
  const costs: Cost[] = [
    {
      title: '1 KB bzip2 bomb (.tar.bz2, 704 MiB of zeros)',
      input: () => bzip2ZeroBomb(tarHeader('lib/zeros', 8 * 1024 * MIB), 704 * MIB),
      read: (bytes) => readBytes(bytes, TAR_BZ2),
      error: EXPANSION('the tar archive'),
      maxInput: 1100,
    },
    {
      title: 'zstd bomb (.conda info archive, `head -c 1G /dev/zero | zstd`, 33 KB)',
      input: () => conda({ stem: STEM, info: zstdOfZeros(1024 * MIB) }),
      read: (bytes) => readBytes(bytes, CONDA),
      error: EXPANSION('"info-bad-1\\.0-0\\.tar\\.zst"'),
      maxInput: 40_000,
    },
    {
      title: 'zstd bomb declaring a 128 MiB window (.conda, 4 GiB of RLE blocks)',
      input: () =>
        conda({ stem: STEM, info: zstdZeroBomb(tarHeader('info/index.json', 100), 4 * 1024 * MIB, 27) }),
      read: (bytes) => readBytes(bytes, CONDA),
      error: EXPANSION('"info-bad-1\\.0-0\\.tar\\.zst"'),
      maxInput: 140_000,
    },
    {
      title: 'gzip bomb in an info layer, read whole (500 MiB of zeros in 496 KiB)',
      input: () => gzipBomb(500 * MIB),
      read: (bytes) => readInfoLayer(bytes),
      error: EXPANSION('the info layer'),
      maxInput: 500 * 1024,
    },
    {
      title: 'gzip bomb in an info layer, streamed in 64 KiB chunks',
      input: () => gzipBomb(500 * MIB),
      read: (bytes) => readInfoLayer(chunked(bytes, [64 * 1024])),
      error: EXPANSION('the info layer'),
      maxInput: 500 * 1024,
    },
    {
      title: 'an info layer of 150,000 one-byte members (1.2 MiB, 147 MiB of tar)',
      input: () => layerAround(tinyMembers(150_000)),
      read: (bytes) => readInfoLayer(chunked(bytes, [64 * 1024])),
      error: EXPANSION('the info layer'),
      maxInput: 1300 * 1024,
    },
    {
      title: 'an info layer of 150,000 members of 16 random hex digits',
      input: () => layerAround(tinyMembers(150_000, true)),
      read: (bytes) => readInfoLayer(chunked(bytes, [64 * 1024])),
      error: /the info layer: it has more than 100000 members \(tar rule "member-count"\)/,
      maxInput: 8 * MIB,
    },
    {
      title: 'an info layer with a pax header declaring 1 GiB',
      input: () => layerAround(concat([header({ name: 'PaxHeader/x', type: 'x', size: 1024 * MIB }), END])),
      read: (bytes) => readInfoLayer(bytes),
      error: /an extended header of 1 GiB at byte 0 \(more than 64 KiB\) \(tar rule "extended-header"\)/,
      maxInput: 1024,
    },
    {
      title: 'an info layer of 2,000 pax headers of 64 KiB each',
      input: () => layerAround(hugePax(2000)),
      read: (bytes) => readInfoLayer(bytes),
      error: EXPANSION('the info layer'),
      maxInput: 400 * 1024,
    },
  ];

  test.each(costs)('$title', async ({ title, input, read, error, maxInput }) => {
    const bytes = input();
    expect(bytes.length).toBeLessThanOrEqual(maxInput);
    const measured = await measure(() => read(bytes));
    expect(measured.error, 'accepted').toBeInstanceOf(Error);
    expect((measured.error as Error).message).toMatch(error);
    console.log(
      `${title}: ${formatBytes(bytes.length)} refused in ${measured.cpuMs.toFixed(0)} ms of CPU (${measured.ms.toFixed(0)} ms wall), RSS +${measured.rssGrowthMb.toFixed(1)} MiB`,
    );
    // Measured on 2 shared cores: 10-200 ms of CPU and under 40 MiB; the bounds leave room for load.
    expect(measured.cpuMs).toBeLessThan(1500);
    expect(measured.rssGrowthMb).toBeLessThan(100);
  });

  test('an info layer of 50,000 one-byte members (411 KiB) is read, at bounded cost', async () => {
    const bytes = layerAround(tinyMembers(50_000));
    const measured = await measure(() => readInfoLayer(bytes));
    expect(measured.error).toBeUndefined();
    console.log(
      `50,000 one-byte members (${formatBytes(bytes.length)}): read in ${measured.cpuMs.toFixed(0)} ms of CPU (${measured.ms.toFixed(0)} ms wall), RSS +${measured.rssGrowthMb.toFixed(1)} MiB`,
    );
    expect(measured.cpuMs).toBeLessThan(3000);
    expect(measured.rssGrowthMb).toBeLessThan(150);
  });
});
