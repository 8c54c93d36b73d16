/**
 * Hostile input. Builds on package-reader.test.ts, whose crafted archives
 * (traversal, absolute paths, symlink/hardlink escapes, devices, duplicate members, non-UTF-8
 * names, zip/zstd/bzip2 bombs, lying zip headers, index.json of wrong types) are not repeated
 * here. Added:
 *
 * - property tests: random mutations of every fixture (flipped bytes, truncations, inserted and
 *   duplicated regions, wrong sizes in zip headers), read from randomly chunked streams; and
 *   arbitrary strings through every name mapping and channel parser;
 * - crafted cases the reader's suite lacks: zstd blocks whose matches are far longer than the
 *   block (a pure-JS decoder that does not check spent minutes of CPU on 20 KB), symlink
 *   loops, members that collide after normalisation, duplicates in a .tar.bz2, non-UTF-8 link
 *   targets, zip member names with paths, central directories claiming 65535 members;
 * - "never a write outside the channel": hostile packages, labels and subdirs against an
 *   `oci-layout:` channel, with the whole parent directory compared before and after.
 */
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { afterAll, describe, expect, test } from 'vitest';
import { parseArtifactDocument, parseArtifactFlag } from '../../src/commands/artifact-list.js';
import { silentReporter } from '../../src/commands/report.js';
import { packageReference, parseArtifactFileName } from '../../src/conda/naming.js';
import { PackageError, readPackage, type PackageLimits } from '../../src/conda/package-reader.js';
import { execute } from '../../src/core/execute.js';
import { InvalidReferenceError } from '../../src/oci/errors.js';
import { isRepositoryName, isTag } from '../../src/oci/reference.js';
import { channelRepository, checkSubdir, parseChannel } from '../../src/conda/channel.js';
import {
  bzip2,
  conda,
  condaMembers,
  infoMembers,
  patchCentral,
  patchEnd,
  patchLocal,
  tar,
  tarBz2,
  zip,
  zstd,
  type TarMember,
  type ZipField,
} from '../helpers/archives.js';
import { EXPECTED, fixturePath } from '../helpers/fixtures.js';
import { TAR_RULE_CASES } from '../helpers/tar-rule-cases.js';

const MIB = 1024 * 1024;
const work = mkdtempSync(join(tmpdir(), 'conda-oci-hostile-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Counts for the report at the end. */
const tried = { mutations: 0, names: 0, crafted: 0, hostileUploads: 0 };
afterAll(() =>
  console.log(
    `hostile input: ${tried.mutations} mutated packages, ${tried.names} hostile names, ${tried.crafted} crafted archives, ${tried.hostileUploads} hostile uploads and options against oci-layout: all refused clearly or read correctly, nothing written outside the channel`,
  ),
);

/** The bytes as a stream of chunks of the given sizes (cycled). */
async function* chunks(bytes: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let turn = 0;
  for (let at = 0; at < bytes.length;) {
    const size = Math.max(1, sizes[turn++ % sizes.length]!);
    yield bytes.slice(at, at + size);
    at += size;
  }
}

/** Reads; returns the outcome, the time taken and the memory that grew while reading. */
async function attempt(
  bytes: Uint8Array,
  file: string,
  sizes: number[] = [65536],
  limits?: Partial<PackageLimits>,
): Promise<{ ok: boolean; error?: unknown; ms: number; sha256?: string; grewMb: number }> {
  const before = process.memoryUsage();
  const started = performance.now();
  try {
    const contents = await readPackage(chunks(bytes, sizes), file, limits as PackageLimits);
    const ms = performance.now() - started;
    return { ok: true, ms, sha256: contents.sha256, grewMb: grown(before) };
  } catch (error) {
    return { ok: false, error, ms: performance.now() - started, grewMb: grown(before) };
  }
}

function grown(before: NodeJS.MemoryUsage): number {
  const after = process.memoryUsage();
  return (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / MIB;
}

// ---------------------------------------------------------------------------------------------

describe('fuzzing the package reader with mutations of the fixtures', () => {
  const fixtures = EXPECTED.map((e) => ({ file: e.filename, bytes: readFileSync(fixturePath(e.filename)) }));
  const condaFixtures = fixtures.filter((f) => f.file.endsWith('.conda'));
  const stem = (file: string) => file.replace(/\.conda$/, '');

  type Mutation =
    | { kind: 'flip'; at: number[]; xor: number }
    | { kind: 'truncate'; at: number }
    | { kind: 'insert'; at: number; bytes: Uint8Array }
    | { kind: 'duplicate'; from: number; length: number; to: number }
    | {
        kind: 'zip-field';
        member: number;
        field: Exclude<ZipField, 'offset'>;
        central: boolean;
        value: number;
      };

  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({
      kind: fc.constant('flip' as const),
      at: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
      xor: fc.integer({ min: 1, max: 255 }),
    }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }),
    }),
    fc.record({
      kind: fc.constant('duplicate' as const),
      from: fc.nat(),
      length: fc.integer({ min: 1, max: 600 }),
      to: fc.nat(),
    }),
    fc.record({
      kind: fc.constant('zip-field' as const),
      member: fc.nat({ max: 2 }),
      field: fc.constantFrom<Exclude<ZipField, 'offset'>>(
        'compressedSize',
        'size',
        'crc32',
        'flags',
        'method',
      ),
      central: fc.boolean(),
      value: fc.oneof(
        fc.constantFrom(0, 1, 0xffff, 0xffffffff, 0x7fffffff),
        fc.integer({ min: 0, max: 0xffffffff }),
      ),
    }),
  );

  function apply(file: string, bytes: Buffer, m: Mutation): Buffer {
    const n = bytes.length;
    switch (m.kind) {
      case 'flip': {
        const out = Buffer.from(bytes);
        for (const at of m.at) out[at % n]! ^= m.xor;
        return out;
      }
      case 'truncate':
        return bytes.subarray(0, m.at % n);
      case 'insert': {
        const at = m.at % (n + 1);
        return Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
      }
      case 'duplicate': {
        const from = m.from % n;
        const region = bytes.subarray(from, Math.min(n, from + m.length));
        const to = m.to % (n + 1);
        return Buffer.concat([bytes.subarray(0, to), region, bytes.subarray(to)]);
      }
      case 'zip-field': {
        if (!file.endsWith('.conda')) return bytes;
        const names = ['metadata.json', `pkg-${stem(file)}.tar.zst`, `info-${stem(file)}.tar.zst`];
        const member = names[m.member]!;
        const value = m.field === 'flags' || m.field === 'method' ? m.value & 0xffff : m.value >>> 0;
        try {
          return m.central
            ? patchCentral(bytes, member, m.field, value)
            : patchLocal(bytes, member, m.field, value);
        } catch {
          return bytes; // an earlier mutation moved the headers out of reach
        }
      }
    }
  }

  test('every mutation ends in a PackageError or a correct read, quickly and in bounded memory', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: fixtures.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 4 }),
        async (which, mutations, sizes) => {
          const fixture = fixtures[which]!;
          let bytes: Buffer = fixture.bytes;
          for (const m of mutations) bytes = apply(fixture.file, bytes, m);
          tried.mutations++;
          const result = await attempt(bytes, fixture.file, sizes);
          expect(result.ms, `${fixture.file} ${JSON.stringify(mutations)}`).toBeLessThan(5000);
          expect(result.grewMb).toBeLessThan(400);
          if (result.ok) {
            // Accepted: then it is exactly these bytes that were read (e.g. a flip in a zip field
            // nothing reads, or a mutation that restored the original).
            accepted++;
            expect(result.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
          } else {
            expect(
              result.error,
              `${fixture.file} ${JSON.stringify(mutations)}: ${String(result.error)}`,
            ).toBeInstanceOf(PackageError);
            expect((result.error as PackageError).message.startsWith(`${fixture.file}: `)).toBe(true);
          }
        },
      ),
      { numRuns: 1000, seed: 0x5eed7 },
    );
    expect(accepted).toBeLessThan(tried.mutations);
  }, 120_000);

  test('every wrong size in a zip header of the info member is refused', async () => {
    const fields = ['compressedSize', 'size'] as const;
    for (const fixture of condaFixtures) {
      const member = `info-${stem(fixture.file)}.tar.zst`;
      for (const field of fields) {
        for (const value of [0, 1, 100, 4096, 65535, 1 << 20, 0x7fffffff, 0xffffffff]) {
          for (const central of [true, false]) {
            const bytes = central
              ? patchCentral(fixture.bytes, member, field, value)
              : patchLocal(fixture.bytes, member, field, value);
            if (bytes.equals(fixture.bytes)) continue;
            tried.mutations++;
            const result = await attempt(Buffer.from(bytes), fixture.file);
            expect(result.ok, `${fixture.file} ${central ? 'central' : 'local'} ${field}=${value}`).toBe(
              false,
            );
            expect(result.error).toBeInstanceOf(PackageError);
            expect(result.ms).toBeLessThan(2000);
          }
        }
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('fuzzing the name mapping and the channel parsers', () => {
  /** Strings that look like names, paths and URLs, with every hostile piece in the alphabet. */
  const hostile = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc
      .array(
        fc.constantFrom(
          '..',
          '.',
          '/',
          '\\',
          '\0',
          '%2e',
          '%2f',
          'label',
          'linux-64',
          'noarch',
          'a',
          'Z',
          '-',
          '_',
          '__',
          ':',
          '@',
          '+',
          '!',
          '=',
          ' ',
          '\n',
          'é',
          '\u202e',
          '0',
          '.conda',
          '.tar.bz2',
          'oci://',
          'oci-layout:',
          '127.0.0.1:5000',
        ),
        { maxLength: 14 },
      )
      .map((parts) => parts.join('')),
  );

  /** A path component or name that may go into a file system path or a registry URL. */
  const safe = (name: string): boolean =>
    !name.split('/').some((part) => part === '..' || part === '.' || part === '') &&
    !/[\0\\\s%]/.test(name) &&
    !name.startsWith('/');

  function refusedOr<T>(fn: () => T, check: (value: T) => void): void {
    tried.names++;
    let value: T;
    try {
      value = fn();
    } catch (err) {
      expect(err, String(err)).toBeInstanceOf(InvalidReferenceError);
      return;
    }
    check(value);
  }

  test('file names, package references, artifact flags: refused or safe', () => {
    fc.assert(
      fc.property(hostile, hostile, hostile, hostile, (a, b, c, d) => {
        refusedOr(
          () => parseArtifactFileName(a),
          (parsed) => {
            expect(safe(parsed.name) && safe(parsed.version) && safe(parsed.build)).toBe(true);
          },
        );
        refusedOr(
          () => packageReference(a, b, c, d),
          (ref) => {
            expect(isRepositoryName(ref.repository)).toBe(true);
            expect(isTag(ref.tag)).toBe(true);
          },
        );
        refusedOr(
          () => parseArtifactFlag(`${a}/${b}=${'a'.repeat(64)}`),
          (request) => {
            expect(checkSubdir(request.subdir)).toBe(request.subdir);
            expect(safe(request.file)).toBe(true);
          },
        );
        refusedOr(
          () => parseArtifactDocument({ [`${a}/${b}`]: 'b'.repeat(64) }, 'outputs'),
          (requests) => {
            for (const r of requests) expect(checkSubdir(r.subdir) && safe(r.file)).toBeTruthy();
          },
        );
      }),
      { numRuns: 1500, seed: 42 },
    );
  });

  test('channel URLs and labels: refused, or every repository below them is a grammatical name', () => {
    fc.assert(
      fc.property(hostile, hostile, fc.boolean(), (path, label, layout) => {
        const url = layout ? `oci-layout:${join(work, 'never', path)}` : `oci://127.0.0.1:5000/${path}`;
        refusedOr(
          () => parseChannel(url, label === '' ? {} : { label }),
          (channel) => {
            refusedOr(
              () => channelRepository(channel, 'linux-64/cdemo'),
              (name) => {
                expect(isRepositoryName(name)).toBe(true);
                expect(safe(name)).toBe(true);
              },
            );
          },
        );
      }),
      { numRuns: 1500, seed: 43 },
    );
  });
});

// ---------------------------------------------------------------------------------------------

const STEM = 'evil-1.0-0';
const CONDA = `${STEM}.conda`;
const TAR_BZ2 = `${STEM}.tar.bz2`;
const INFO = infoMembers({ name: 'evil', version: '1.0', build: '0' });
const PAYLOAD: TarMember[] = [{ name: 'lib/libevil.so', text: 'binary' }];

/**
 * A zstd frame of one compressed block with `sequences` sequences, each a match of 131,074 bytes
 * (match length code 52, all extra bits set) at repeat offset 1, with RLE tables and no literals:
 * a valid-looking block of ~2 bytes per sequence that asks for gigabytes of copying in a 128 KiB
 * block. libzstd refuses it at once.
 */
function longMatchFrame(sequences: number, blocks = 1): Buffer {
  const block = (last: boolean): number[] => {
    const body: number[] = [0x00]; // raw literals, none
    if (sequences < 128) body.push(sequences);
    else if (sequences < 0x7f00) body.push((sequences >> 8) + 128, sequences & 0xff);
    else body.push(255, (sequences - 0x7f00) & 0xff, (sequences - 0x7f00) >> 8);
    body.push(0x54, 0, 0, 52); // literal lengths, offsets, match lengths: RLE of 0, 0, 52
    for (let i = 0; i < 2 * sequences; i++) body.push(0xff);
    body.push(0x01); // the end-of-stream marker bit
    const header = (body.length << 3) | (2 << 1) | (last ? 1 : 0);
    return [header & 0xff, (header >> 8) & 0xff, (header >> 16) & 0xff, ...body];
  };
  const bytes = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]; // window 128 KiB, no checksum
  for (let i = 0; i < blocks; i++) bytes.push(...block(i === blocks - 1));
  return Buffer.from(bytes);
}

interface Crafted {
  title: string;
  file: string;
  bytes: () => Buffer;
  error: RegExp;
  limits?: Partial<PackageLimits>;
  /** The bound on time. */
  ms?: number;
}

const crafted: Crafted[] = [
  {
    title: 'zstd: long matches in compressed blocks (CPU, not size), refused by libzstd',
    file: CONDA,
    bytes: () => conda({ stem: STEM, info: longMatchFrame(20_000, 4) }),
    error: /"info-evil-1\.0-0\.tar\.zst" is not valid zstd data \(Data corruption detected\)/,
    ms: 2000,
  },
  {
    // 8 blocks of 60,000 long matches: ~7 minutes of CPU for a decoder that follows them.
    title: 'zstd: long matches in 8 blocks, refused by libzstd',
    file: CONDA,
    bytes: () => conda({ stem: STEM, info: longMatchFrame(60_000, 8) }),
    error: /"info-evil-1\.0-0\.tar\.zst" is not valid zstd data \(Data corruption detected\)/,
    ms: 2000,
  },
  {
    title: 'symlink loop in info/ reached through index.json',
    file: CONDA,
    bytes: () =>
      conda({
        stem: STEM,
        info: [
          { name: 'info/a', type: 'symlink', linkname: 'b' },
          { name: 'info/b', type: 'symlink', linkname: 'a' },
          { name: 'info/index.json', type: 'symlink', linkname: 'a' },
        ],
      }),
    error: /./,
  },
  {
    title: 'a long chain of symlinks in info/',
    file: TAR_BZ2,
    bytes: () =>
      tarBz2([
        ...Array.from({ length: 200 }, (_, i): TarMember => ({
          name: `info/l${i}`,
          type: 'symlink',
          linkname: `l${i + 1}`,
        })),
        { name: 'info/index.json', type: 'symlink', linkname: 'l0' },
        { name: 'info/l200', type: 'symlink', linkname: 'l0' },
        ...PAYLOAD,
      ]),
    error: /./,
  },
  {
    title: 'members that collide after normalisation (info/index.json and ./info//index.json)',
    file: TAR_BZ2,
    bytes: () =>
      tarBz2([
        ...INFO,
        { name: './info//index.json', text: JSON.stringify({ name: 'evil', version: '2.0', build: '0' }) },
        ...PAYLOAD,
      ]),
    error: /appears twice/,
  },
  {
    title: 'duplicate info/index.json in a .tar.bz2',
    file: TAR_BZ2,
    bytes: () => tarBz2([...INFO, { name: 'info/index.json', text: '{}' }, ...PAYLOAD]),
    error: /appears twice/,
  },
  {
    title: 'a file and then a directory of the same name',
    file: CONDA,
    bytes: () => conda({ stem: STEM, info: [...INFO, { name: 'info/about.json/x', text: 'x' }] }),
    error: /not a directory|appears twice/,
  },
  {
    title: 'hard link to a symlink that leaves the archive',
    file: TAR_BZ2,
    bytes: () =>
      tarBz2([
        ...INFO,
        { name: 'lib/out', type: 'symlink', linkname: '../../../../etc/passwd' },
        { name: 'lib/hard', type: 'hardlink', linkname: 'lib/out' },
      ]),
    error: /escapes|outside|link/,
  },
  {
    title: 'symlink whose target is not UTF-8',
    file: TAR_BZ2,
    bytes: () =>
      Buffer.from(
        tarBz2([...INFO, { name: 'lib/x', type: 'symlink', linkname: 'ab\udcff' }, ...PAYLOAD], 'gnu'),
      ),
    error: /./,
  },
  {
    title: 'a ustar (not pax) info archive with a non-UTF-8 member name',
    file: CONDA,
    bytes: () =>
      conda({
        stem: STEM,
        info: zstd(
          tar(
            [...INFO, { name: '', nameHex: Buffer.from('info/\xff\xfe', 'latin1').toString('hex') }],
            'ustar',
          ),
        ),
      }),
    error: /UTF-8|name/,
  },
  {
    title: 'zip member named with a path (../metadata.json)',
    file: CONDA,
    bytes: () =>
      zip(
        condaMembers({ stem: STEM, info: INFO }).map((m) =>
          m.name === 'metadata.json' ? { ...m, name: '../metadata.json' } : m,
        ),
      ),
    error: /unexpected member|metadata/,
  },
  {
    title: 'zip member with an absolute name',
    file: CONDA,
    bytes: () =>
      zip([
        ...condaMembers({ stem: STEM, info: INFO }),
        { name: '/etc/cron.d/evil', data: Buffer.from('x') },
      ]),
    error: /unexpected member/,
  },
  {
    title: 'end of central directory claiming 65535 members',
    file: CONDA,
    bytes: () => patchEnd(conda({ stem: STEM, info: INFO }), 'entries', 0xffff),
    error: /./,
  },
  {
    title: 'index.json: subdir is a path',
    file: CONDA,
    bytes: () =>
      conda({ stem: STEM, info: infoMembers({ name: 'evil', version: '1.0', build: '0', subdir: 7 }) }),
    error: /subdir/,
  },
  {
    title: 'index.json: timestamp is a string',
    file: CONDA,
    bytes: () =>
      conda({
        stem: STEM,
        info: infoMembers({ name: 'evil', version: '1.0', build: '0', timestamp: '1700000000' }),
      }),
    error: /timestamp/,
  },
  {
    title: 'index.json: name holds a path',
    file: CONDA,
    bytes: () => conda({ stem: STEM, info: infoMembers({ name: '../evil', version: '1.0', build: '0' }) }),
    error: /does not match info\/index\.json/,
  },
  {
    // Found here: accepted by upload and validate, it then failed repodata of its whole subdir
    // (a stack overflow in canonical JSON). Now refused by the reader.
    title: 'index.json nested 100,000 levels deep',
    file: CONDA,
    bytes: () =>
      conda({
        stem: STEM,
        info: infoMembers(
          `{"name":"evil","version":"1.0","build":"0","build_number":0,"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
        ),
      }),
    error: /info\/index\.json nests arrays or objects more than 32 levels deep/,
  },
  {
    title: 'run_exports.json nested 100,000 levels deep',
    file: TAR_BZ2,
    bytes: () =>
      tarBz2([
        ...INFO,
        { name: 'info/run_exports.json', text: `{"weak":${'['.repeat(100_000)}${']'.repeat(100_000)}}` },
        ...PAYLOAD,
      ]),
    error: /info\/run_exports\.json nests arrays or objects more than 32 levels deep/,
  },
];

describe('crafted archives the reader suite does not have', () => {
  test.each(crafted)(
    '$title',
    async ({ file, bytes, error, limits, ms }) => {
      tried.crafted++;
      const result = await attempt(bytes(), file, [4096], limits);
      expect(result.ok, 'accepted').toBe(false);
      expect(result.error, String(result.error)).toBeInstanceOf(PackageError);
      expect((result.error as Error).message).toMatch(error);
      expect(result.ms).toBeLessThan(ms ?? 2000);
      expect(result.grewMb).toBeLessThan(300);
    },
    30_000,
  );
});

describe('every rule of the tar policy in a .tar.bz2, with the words of the .conda and the info layer', () => {
  // The other two places are in __tests__/unit/tar-policy.test.ts, from the same table.
  test.each(TAR_RULE_CASES)('$rule: $title', async ({ rule, tar, detail, maxMembers }) => {
    tried.crafted++;
    const limits = maxMembers === undefined ? undefined : { archiveMembers: maxMembers };
    const result = await attempt(bzip2(tar()), TAR_BZ2, [4096], limits);
    expect(result.error).toBeInstanceOf(PackageError);
    expect((result.error as Error).message).toBe(
      `${TAR_BZ2}: the tar archive: ${detail} (tar rule "${rule}")`,
    );
    expect(result.ms).toBeLessThan(2000);
  });
});

// ---------------------------------------------------------------------------------------------

/** Every file and directory below `dir` (relative), with sizes, for before/after comparison. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (at: string, rel: string): void => {
    for (const name of readdirSync(at).sort()) {
      const path = join(at, name);
      const info = lstatSync(path);
      out.push(`${rel}${name}${info.isDirectory() ? '/' : ` ${info.size}`}`);
      if (info.isDirectory()) walk(path, `${rel}${name}/`);
    }
  };
  walk(dir, '');
  return out;
}

describe('never a write outside the channel', () => {
  const parent = join(work, 'parent');
  const channelDir = join(parent, 'channel');
  const build = join(work, 'hostile-build');
  mkdirSync(join(parent, 'sibling'), { recursive: true });
  writeFileSync(join(parent, 'sibling', 'keep.txt'), 'keep');
  mkdirSync(build, { recursive: true });

  const evilIndex = (over: Record<string, unknown>) =>
    infoMembers({ name: 'evil', version: '1.0', build: '0', ...over });
  const hostilePackages: [string, () => Buffer][] = [
    [
      'traversal in info',
      () => conda({ stem: STEM, info: [...INFO, { name: 'info/../../../../x', text: 'x' }] }),
    ],
    ['absolute member', () => conda({ stem: STEM, info: [...INFO, { name: '/tmp/evil-x', text: 'x' }] })],
    [
      'symlink out of the archive',
      () =>
        conda({
          stem: STEM,
          info: [...INFO, { name: 'info/x', type: 'symlink', linkname: '../../../../..' }],
        }),
    ],
    ['subdir ../../escape', () => conda({ stem: STEM, info: evilIndex({ subdir: '../../escape' }) })],
    ['subdir linux-64/../../x', () => conda({ stem: STEM, info: evilIndex({ subdir: 'linux-64/../../x' }) })],
    ['subdir /abs', () => conda({ stem: STEM, info: evilIndex({ subdir: '/abs' }) })],
    ['subdir LINUX-64', () => conda({ stem: STEM, info: evilIndex({ subdir: 'LINUX-64' }) })],
    ['subdir with NUL', () => conda({ stem: STEM, info: evilIndex({ subdir: 'linux-64\u0000' }) })],
    ['subdir label/../../x', () => conda({ stem: STEM, info: evilIndex({ subdir: 'label/../../x' }) })],
    [
      'tar.bz2 hard link out',
      () => tarBz2([...INFO, { name: 'lib/h', type: 'hardlink', linkname: '../../../etc/passwd' }]),
    ],
  ];

  test('hostile packages uploaded to an oci-layout: channel are refused, and nothing appears anywhere', async () => {
    const before = snapshot(parent);
    for (const [title, bytes] of hostilePackages) {
      const dir = join(build, title.replace(/[^a-z0-9]+/gi, '_'));
      mkdirSync(dir, { recursive: true });
      const file = join(dir, title.startsWith('tar.bz2') ? TAR_BZ2 : CONDA);
      writeFileSync(file, bytes());
      tried.hostileUploads++;
      const result = await execute(
        { command: 'upload', files: [file], to: `oci-layout:${channelDir}` },
        { reporter: silentReporter },
      );
      expect(
        result.artifacts.map((a) => a.status),
        title,
      ).toEqual(['failed']);
      expect(result.artifacts[0]!.error, title).toMatch(/evil-1\.0-0/);
    }
    expect(snapshot(parent)).toEqual(before);
  });

  test('hostile labels, subdirs and artifact names are refused before any write', async () => {
    const good = join(build, 'good');
    mkdirSync(good, { recursive: true });
    const file = join(good, CONDA);
    writeFileSync(file, conda({ stem: STEM, info: INFO }));
    const sha = createHash('sha256').update(readFileSync(file)).digest('hex');
    const before = snapshot(parent);
    const labels = ['../x', '..', '/abs', 'label/../../x', 'UPPER', 'a\u0000b', 'a/b', '.hidden', 'x/../..'];
    const to = `oci-layout:${channelDir}`;
    const attempts: [string, Parameters<typeof execute>[0]][] = [
      ...labels.map((label): [string, Parameters<typeof execute>[0]] => [
        `upload --label ${JSON.stringify(label)}`,
        { command: 'upload', files: [file], to, label },
      ]),
      ...labels.map((label): [string, Parameters<typeof execute>[0]] => [
        `repodata --label ${JSON.stringify(label)}`,
        { command: 'repodata', channel: to, label },
      ]),
      ...['../x', 'linux-64/../..', 'LINUX-64', '/abs', 'noarch\u0000'].map(
        (subdir): [string, Parameters<typeof execute>[0]] => [
          `repodata --subdir ${JSON.stringify(subdir)}`,
          { command: 'repodata', channel: to, subdirs: [subdir] },
        ],
      ),
    ];
    for (const [what, options] of attempts) {
      tried.hostileUploads++;
      await expect(execute(options, { reporter: silentReporter }), what).rejects.toBeInstanceOf(
        InvalidReferenceError,
      );
    }
    for (const artifact of [
      '../x/evil-1.0-0.conda',
      'linux-64/../evil-1.0-0.conda',
      'linux-64/..%2fevil-1.0-0.conda',
      'label/../../x/evil-1.0-0.conda',
    ]) {
      tried.hostileUploads++;
      expect(() => parseArtifactFlag(`${artifact}=${sha}`), artifact).toThrow(InvalidReferenceError);
    }
    expect(snapshot(parent)).toEqual(before);
    // (control) the same file with a good label is written, and only inside the channel.
    const ok = await execute(
      { command: 'upload', files: [file], to, label: 'rc' },
      { reporter: silentReporter },
    );
    expect(ok.exitCode).toBe(0);
    const after = snapshot(parent);
    expect(after.filter((p) => !before.includes(p)).every((p) => p.startsWith('channel/'))).toBe(true);
  });
});
