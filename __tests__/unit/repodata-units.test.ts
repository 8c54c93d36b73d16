/**
 * The pure parts of `repodata`: conda's version order and specs (with rattler as a second
 * opinion), match specs, the repodata, patch, current_repodata, run_exports and channeldata
 * builders, the info-layer reader, the record cache, the compressors and the Actions cache glue.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { readInfoLayer } from '../../src/conda/info-layer.js';
import { buildInfoTarGz } from '../../src/conda/info-tarball.js';
import { parseMatchSpec, splitVersionAndBuild } from '../../src/conda/match-spec.js';
import {
  applyPatchInstructions,
  checkPatchInstructions,
  currentRepodataSelection,
  emptyChanneldata,
  encodeChanneldata,
  encodeCurrentRepodata,
  encodeRepodata,
  encodeRunExports,
  mergeChanneldata,
  postInstallFromPaths,
  repodataEntry,
  updateChanneldata,
  withoutSubdirs,
  type ChanneldataInput,
  type Json,
  type JsonObject,
  type RepodataEntry,
} from '../../src/conda/repodata.js';
import { canonicalStringify } from '../../src/util/canonical-json.js';
import { parseVersion, parseVersionSpec } from '../../src/conda/version.js';
import { cacheFile, loadCache, saveCache, type CachedArtifact } from '../../src/commands/repodata-cache.js';
import { timestampTag } from '../../src/commands/repodata.js';
import { repodataCacheKeyPrefix, restoreRepodataCache, saveRepodataCache } from '../../src/github/cache.js';

const rattler = createRequire(import.meta.url)('@conda-org/rattler') as {
  Version: new (v: string) => { compare(o: unknown): number };
  VersionSpec: new (s: string) => { matches(v: unknown): boolean };
};

// ---------------------------------------------------------------------------------------------
describe('conda version order', () => {
  // conda's documented order (conda.models.version), `=` marking equal neighbours
  const ORDER = [
    '0.4',
    '=0.4.0',
    '0.4.1.rc',
    '=0.4.1.RC',
    '0.4.1',
    '0.5a1',
    '0.5b3',
    '0.5C1',
    '0.5',
    '0.9.6',
    '0.960923',
    '1.0',
    '1.1dev1',
    '1.1a1',
    '1.1.0dev1',
    '=1.1.dev1',
    '1.1.a1',
    '1.1.0rc1',
    '1.1.0',
    '=1.1',
    '1.1.0post1',
    '=1.1.post1',
    '1.1post1',
    '1996.07.12',
    '1!0.4.1',
    '1!3.1.1.6',
    '2!0.4.1',
  ];

  test('follows the documented order, and rattler agrees', () => {
    for (let i = 1; i < ORDER.length; i++) {
      const equal = ORDER[i]!.startsWith('=');
      const a = ORDER[i - 1]!.replace(/^=/, '');
      const b = ORDER[i]!.replace(/^=/, '');
      expect(Math.sign(parseVersion(a).compare(parseVersion(b))), `${a} vs ${b}`).toBe(equal ? 0 : -1);
      expect(Math.sign(new rattler.Version(a).compare(new rattler.Version(b))), `rattler ${a} vs ${b}`).toBe(
        equal ? 0 : -1,
      );
    }
  });

  test.each([
    ['1.2.3', '1.2', true],
    ['1.20', '1.2', false],
    ['1.2', '1.2.0', true],
    ['1.2.3a', '1.2.3', true],
    ['1.2.3', '1.2.3a', false],
    ['1.2.3rc1', '1.2.3rc', true],
    ['2.0.1+cpu', '2.0.1+cpu', true],
    ['2.0.1+cpu.2', '2.0.1+cpu', true],
    ['2.0.2+cpu', '2.0.1+cpu', false],
    ['1!2.5', '1!2', true],
    ['2.5', '1!2', false],
  ])('%s starts with %s: %s', (version, prefix, expected) => {
    expect(parseVersion(version).startsWith(parseVersion(prefix))).toBe(expected);
  });

  test.each(['', '1..2', '1!2!3', 'a!1', '1+2+3', '1$', '.1', '1_'])('refuses %j', (bad) => {
    expect(() => parseVersion(bad)).toThrow();
  });

  const component = fc.oneof(
    fc.integer({ min: 0, max: 20 }).map(String),
    fc.constantFrom('a', 'b', 'rc', 'dev', 'post', 'alpha', '1a', '2b3', '0', '007'),
  );
  const version = fc
    .tuple(
      fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
      fc.array(component, { minLength: 1, maxLength: 4 }),
      fc.option(fc.array(component, { minLength: 1, maxLength: 2 }), { nil: undefined }),
    )
    .map(
      ([epoch, parts, local]) =>
        `${epoch !== undefined ? `${epoch}!` : ''}${parts.join('.')}${local ? `+${local.join('.')}` : ''}`,
    );

  test('ordering agrees with rattler on random versions, and is a total order', () => {
    fc.assert(
      fc.property(version, version, version, (a, b, c) => {
        const ab = Math.sign(parseVersion(a).compare(parseVersion(b)));
        expect(ab, `${a} vs ${b}`).toBe(Math.sign(new rattler.Version(a).compare(new rattler.Version(b))));
        expect(Math.sign(parseVersion(b).compare(parseVersion(a))) + 0).toBe(0 - ab);
        if (ab <= 0 && parseVersion(b).compare(parseVersion(c)) <= 0)
          expect(parseVersion(a).compare(parseVersion(c))).toBeLessThanOrEqual(0);
      }),
      { numRuns: 2000 },
    );
  });

  const SPECS = [
    '>=1.2',
    '<2.0a0',
    '>=1.2,<2.0a0',
    '==1.2',
    '!=1.2',
    '1.2',
    '1.2|1.3',
    '>1.0,<2|==3',
    '~=1.2',
  ];
  test('version specs agree with rattler on random versions', () => {
    fc.assert(
      fc.property(version, fc.constantFrom(...SPECS), (v, spec) => {
        expect(parseVersionSpec(spec)(v), `${v} ~ ${spec}`).toBe(
          new rattler.VersionSpec(spec).matches(new rattler.Version(v)),
        );
      }),
      { numRuns: 2000 },
    );
  });

  test.each([
    ['1.2.*', '1.2.7', true],
    ['1.2.*', '1.20', false],
    ['1.2*', '1.2.7', true],
    ['=1.2', '1.2.7', true],
    ['!=1.2.*', '1.2.7', false],
    ['!=1.2.*', '1.3', true],
    ['~=1.4.5', '1.4.9', true],
    ['~=1.4.5', '1.5', false],
    ['~=1.4.5', '1.4.4', false],
    ['(>=1,<2)|>3', '3.5', true],
    ['(>=1,<2)|>3', '2.5', false],
    ['>=1.0,<2.0|==3.0', '3.0', true],
    ['^1\\.2\\..*$', '1.2.9', true],
    ['^1\\.2\\..*$', '1.3', false],
    ['1.*.3', '1.7.3', true],
    ['1.*.3', '1.7.4', false],
    ['*', 'anything', true],
    ['1.2', '1.2.0', true],
    ['1.2', '1.2.1', false],
    ['>=1.0.*', '1.1', true],
    ['1!2.5', '1!2.5', true],
    ['2.0.1+cpu', '2.0.1+cpu', true],
  ])('%s matches %s: %s', (spec, v, expected) => {
    expect(parseVersionSpec(spec)(v)).toBe(expected);
  });

  test.each(['>= 1.2', '>=', '(1.2', '1.2)', '~=1.2.*', '=<1.2', '^1.2'])('refuses the spec %j', (bad) => {
    expect(() => parseVersionSpec(bad)).toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
describe('match specs', () => {
  test.each([
    // conda's own examples of `_parse_version_plus_build`
    ['=1.2.3 0', '=1.2.3', '0'],
    ['1.2.3=0', '1.2.3', '0'],
    ['>=1.0 , < 2.0 py34_0', '>=1.0,<2.0', 'py34_0'],
    ['>=1.0 , < 2.0 =py34_0', '>=1.0,<2.0', 'py34_0'],
    ['=1.2.3 ', '=1.2.3', undefined],
    ['>1.8,<2|==1.7', '>1.8,<2|==1.7', undefined],
    ['* openblas_0', '*', 'openblas_0'],
    ['* *', '*', '*'],
    ['3.12.* *_cpython', '3.12.*', '*_cpython'],
  ])('splits %j into version %j and build %j', (text, version, build) => {
    expect(splitVersionAndBuild(text)).toEqual(build === undefined ? { version } : { version, build });
  });

  const record = (name: string, version: string, build = 'h0_0', build_number = 0) => ({
    name,
    version,
    build,
    build_number,
  });

  test.each([
    ['python >=3.8', record('python', '3.12.1'), true],
    ['python >=3.8', record('python', '3.7'), false],
    ['libzlib >=1.3.1,<2.0a0', record('libzlib', '1.3.1'), true],
    ['libzlib >=1.3.1,<2.0a0', record('libzlib', '2.0'), false],
    ['libzlib >=1.3.1,<2.0a0', record('libzlib-dev', '1.3.1'), false],
    ['python 3.12.* *_cpython', record('python', '3.12.4', 'h123_0_cpython'), true],
    ['python 3.12.* *_cpython', record('python', '3.12.4', 'h123_0_pypy'), false],
    ['blas * openblas', record('blas', '2.106', 'openblas'), true],
    ['blas * openblas', record('blas', '2.106', 'mkl'), false],
    ['numpy=1.26', record('numpy', '1.26.4'), true],
    ['numpy==1.26', record('numpy', '1.26.4'), false],
    ['numpy 1.26', record('numpy', '1.26.0'), true],
    ['foo=1.0=py27_0', record('foo', '1.0', 'py27_0'), true],
    ['foo=1.0=py27_0', record('foo', '1.0.1', 'py27_0'), false],
    ['_libgcc_mutex 0.1 conda_forge', record('_libgcc_mutex', '0.1', 'conda_forge'), true],
    ['conda-forge::numpy >=1', record('numpy', '1.2'), true],
    ['pkg[version=">=1",build=py*]', record('pkg', '1.5', 'py312_0'), true],
    ['pkg[version=">=1",build=py*]', record('pkg', '1.5', 'h0'), false],
    ['pkg[build_number=">=2"]', record('pkg', '1', 'h', 3), true],
    ['pkg[build_number=">=2"]', record('pkg', '1', 'h', 1), false],
    ['foo 1.0|1.1', record('foo', '1.1'), true],
    ['zlib 1.3.1 *_2', record('zlib', '1.3.1', 'hb9d3cd8_2'), true],
    ['pkg # a comment', record('pkg', '9'), true],
  ])('%s matches %o: %s', (spec, rec, expected) => {
    expect(parseMatchSpec(spec).matches(rec)).toBe(expected);
  });

  test.each(['', '>=1.0', 'mkl@', 'https://example.invalid/x-1-0.conda', 'pkg >=1.0,,'])(
    'refuses %j',
    (bad) => {
      expect(() => parseMatchSpec(bad)).toThrow();
    },
  );
});

// ---------------------------------------------------------------------------------------------
const entry = (fileName: string, record: JsonObject): RepodataEntry => repodataEntry(fileName, record);
const pkg = (name: string, version: string, build: string, extra: JsonObject = {}): JsonObject => ({
  name,
  version,
  build,
  build_number: 0,
  depends: [],
  subdir: 'linux-64',
  ...extra,
});
const fn = (r: JsonObject, ext = 'conda') =>
  `${String(r.name)}-${String(r.version)}-${String(r.build)}.${ext}`;
const entryOf = (r: JsonObject, ext = 'conda') => entry(fn(r, ext), r);
const decode = (bytes: Uint8Array) => JSON.parse(Buffer.from(bytes).toString('utf8'));

describe('repodata documents', () => {
  const jsonValue = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.string(),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(tie('value'), { maxLength: 3 }),
      fc.dictionary(
        fc.oneof(fc.string(), fc.constantFrom('2', '10', '1.0', 'a', '__proto__x')),
        tie('value'),
        {
          maxKeys: 4,
        },
      ),
    ),
  })).value;

  test('canonical JSON: parses back to the value, keys sorted at every level (integer-like keys too)', () => {
    expect(canonicalStringify({ '10': 1, '2': 2, b: { z: 1, a: [{ y: 1, x: 2 }] } })).toBe(
      '{"10":1,"2":2,"b":{"a":[{"x":2,"y":1}],"z":1}}',
    );
    fc.assert(
      fc.property(jsonValue, (value) => {
        const text = canonicalStringify(value);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)));
        expect(canonicalStringify(JSON.parse(text))).toBe(text);
      }),
    );
  });

  test('repodata bytes do not depend on the order of the records', () => {
    const records = [
      pkg('b', '1', 'h0'),
      pkg('a', '2', 'h1', { depends: ['b >=1'], license: 'MIT' }),
      pkg('c', '1', 'h0'),
    ];
    const entries = [entryOf(records[0]!, 'tar.bz2'), entryOf(records[1]!), entryOf(records[2]!)];
    fc.assert(
      fc.property(fc.shuffledSubarray(entries, { minLength: 3, maxLength: 3 }), (shuffled) => {
        expect(
          Buffer.from(encodeRepodata('linux-64', shuffled)).equals(
            Buffer.from(encodeRepodata('linux-64', entries)),
          ),
        ).toBe(true);
      }),
    );
    const doc = decode(encodeRepodata('linux-64', entries, ['x-1-0.conda']));
    expect(Object.keys(doc)).toEqual(['info', 'packages', 'packages.conda', 'removed', 'repodata_version']);
    expect(Object.keys(doc.packages)).toEqual(['b-1-h0.tar.bz2']);
    expect(Object.keys(doc['packages.conda'])).toEqual(['a-2-h1.conda', 'c-1-h0.conda']);
    expect(doc.removed).toEqual(['x-1-0.conda']);
    expect(canonicalStringify(doc)).toBe(
      Buffer.from(encodeRepodata('linux-64', entries, ['x-1-0.conda'])).toString(),
    );
  });

  test('run_exports.json lists every package, {} where it exports nothing', () => {
    const doc = decode(
      encodeRunExports('noarch', [
        { fileName: 'a-1-0.conda', runExports: { weak: ['a >=1'] } },
        { fileName: 'b-1-0.tar.bz2', runExports: undefined },
      ]),
    );
    expect(doc).toEqual({
      info: { subdir: 'noarch', version: 1 },
      packages: { 'b-1-0.tar.bz2': { run_exports: {} } },
      'packages.conda': { 'a-1-0.conda': { run_exports: { weak: ['a >=1'] } } },
    });
    expect(decode(encodeRunExports('noarch', []))).toEqual({
      info: { subdir: 'noarch', version: 1 },
      packages: {},
      'packages.conda': {},
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe('patch instructions (as conda-index applies them)', () => {
  const base = [
    entryOf(pkg('a', '1', 'h0', { license: 'MIT', depends: ['x'], nested: { keep: 1, drop: 2 } }), 'tar.bz2'),
    entryOf(pkg('a', '1', 'h0', { license: 'MIT', depends: ['x'] })),
    entryOf(pkg('b', '2', 'h0')),
    entryOf(pkg('c', '3', 'h0'), 'tar.bz2'),
  ];
  const apply = (instructions: object) => {
    const { entries, removed } = applyPatchInstructions(base, checkPatchInstructions(instructions, 'test'));
    return {
      records: Object.fromEntries(entries.map((e) => [e.fileName, JSON.parse(e.json) as JsonObject])),
      removed,
    };
  };

  test('packages: .tar.bz2 names patch .tar.bz2 records and the .conda of the same name', () => {
    const { records } = apply({ packages: { 'a-1-h0.tar.bz2': { license: 'BSD', depends: ['y'] } } });
    expect(records['a-1-h0.tar.bz2']).toMatchObject({ license: 'BSD', depends: ['y'] });
    expect(records['a-1-h0.conda']).toMatchObject({ license: 'BSD', depends: ['y'] });
  });

  test('packages.conda patches .conda records only; unknown file names are ignored', () => {
    const { records } = apply({
      'packages.conda': { 'a-1-h0.conda': { license: 'GPL' }, 'zzz-1-0.conda': { license: 'X' } },
    });
    expect(records['a-1-h0.conda']!.license).toBe('GPL');
    expect(records['a-1-h0.tar.bz2']!.license).toBe('MIT');
    expect(Object.keys(records)).toHaveLength(4);
  });

  test('null deletes a key; null for a missing key sets it to null; objects merge; lists replace', () => {
    const { records } = apply({
      packages: {
        'a-1-h0.tar.bz2': { license: null, absent: null, nested: { drop: null, add: 3 }, depends: [] },
      },
    });
    const a = records['a-1-h0.tar.bz2']!;
    expect('license' in a).toBe(false);
    expect(a.absent).toBeNull();
    expect(a.nested).toEqual({ keep: 1, add: 3 });
    expect(a.depends).toEqual([]);
  });

  test('revoke marks records (a .tar.bz2 name revokes the .conda too); remove lists what it dropped', () => {
    const { records, removed } = apply({
      revoke: ['a-1-h0.tar.bz2'],
      remove: ['c-3-h0.tar.bz2', 'b-2-h0.conda', 'not-there-1-0.conda'],
    });
    for (const name of ['a-1-h0.tar.bz2', 'a-1-h0.conda']) {
      expect(records[name]!.revoked).toBe(true);
      expect(records[name]!.depends).toEqual(['x', 'package_has_been_revoked']);
    }
    expect(Object.keys(records).sort()).toEqual(['a-1-h0.conda', 'a-1-h0.tar.bz2']);
    expect(removed).toEqual(['b-2-h0.conda', 'c-3-h0.tar.bz2']);
  });

  test('untouched records keep their bytes; the input is not modified', () => {
    const before = base.map((e) => e.json);
    const { entries } = applyPatchInstructions(base, { packages: { 'c-3-h0.tar.bz2': { license: 'X' } } });
    expect(entries.find((e) => e.fileName === 'b-2-h0.conda')).toBe(base[2]);
    expect(base.map((e) => e.json)).toEqual(before);
  });

  test.each([
    [[], /JSON object/],
    [{ patch_instructions_version: 2 }, /newer than/],
    [{ packages: [] }, /must map/],
    [{ packages: { 'a-1-0.conda': 'x' } }, /must be an object/],
    [{ remove: 'a-1-0.conda' }, /list of file names/],
    [{ revoke: [1] }, /list of file names/],
  ])('refuses %j', (doc, message) => {
    expect(() => checkPatchInstructions(doc, 'file')).toThrow(message);
  });
});

// ---------------------------------------------------------------------------------------------
describe('current_repodata selection (conda-index)', () => {
  const select = (records: [JsonObject, string?][]) =>
    [...currentRepodataSelection(records.map(([r, ext]) => entryOf(r, ext)))].sort();

  test('every build of the newest version of each name', () => {
    expect(
      select([
        [pkg('a', '1.0', 'h0')],
        [pkg('a', '2.0', 'h0')],
        [pkg('a', '2.0', 'h1', { build_number: 1 })],
        [pkg('a', '2.0a1', 'h0')],
        [pkg('b', '1!0.1', 'h0')],
        [pkg('b', '9.9', 'h0')],
      ]),
      // conda's `a=2.0` also matches 2.0a1 (the last component compares as a prefix)
    ).toEqual(['a-2.0-h0.conda', 'a-2.0-h1.conda', 'a-2.0a1-h0.conda', 'b-1!0.1-h0.conda']);
  });

  test('dependencies the newest builds cannot meet are backfilled with the newest version that does, one level', () => {
    expect(
      select([
        [
          pkg('app', '2.0', 'h0', {
            depends: ['lib >=1,<2', 'python >=3.8', '__glibc >=2.17', 'bad spec ,,'],
          }),
        ],
        [pkg('app', '1.0', 'h0', { depends: ['lib <1'] })],
        [pkg('lib', '2.0', 'h0')],
        [pkg('lib', '1.5', 'h0', { depends: ['zlib <1'] })],
        [pkg('lib', '1.5', 'h1', { build_number: 1 })],
        [pkg('lib', '1.4', 'h0')],
        [pkg('lib', '0.5', 'h0')],
        [pkg('zlib', '1.3', 'h0')],
        [pkg('zlib', '0.9', 'h0')],
      ]),
    ).toEqual([
      'app-2.0-h0.conda',
      'lib-1.5-h0.conda',
      'lib-1.5-h1.conda',
      'lib-2.0-h0.conda',
      'zlib-1.3-h0.conda',
    ]);
  });

  test('a name whose chosen builds have features keeps the newest build without', () => {
    expect(
      select([
        [pkg('blas', '2.0', 'mkl', { track_features: 'blas_mkl' })],
        [pkg('blas', '1.9', 'openblas')],
        [pkg('blas', '1.8', 'openblas')],
      ]),
    ).toEqual(['blas-1.9-openblas.conda', 'blas-2.0-mkl.conda']);
  });

  test('a kept .conda with a .tar.bz2 twin gets its md5 as legacy_bz2_md5', () => {
    const doc = decode(
      encodeCurrentRepodata('linux-64', [
        entryOf(pkg('a', '1', 'h0', { md5: 'c'.repeat(32) })),
        entryOf(pkg('a', '1', 'h0', { md5: 't'.repeat(32) }), 'tar.bz2'),
        entryOf(pkg('b', '1', 'h0', { md5: 'b'.repeat(32) })),
      ]),
    );
    expect(doc['packages.conda']['a-1-h0.conda'].legacy_bz2_md5).toBe('t'.repeat(32));
    expect('legacy_bz2_md5' in doc['packages.conda']['b-1-h0.conda']).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
describe('channeldata', () => {
  const input = (
    record: JsonObject,
    details: { runExports?: Json; about?: JsonObject; postInstall?: JsonObject } = {},
    ext = 'conda',
  ): ChanneldataInput => ({
    fileName: fn(record, ext),
    record: canonicalStringify(record),
    ...(details.runExports ? { runExports: canonicalStringify(details.runExports) } : {}),
    ...(details.about ? { about: canonicalStringify(details.about) } : {}),
    ...(details.postInstall ? { postInstall: canonicalStringify(details.postInstall) } : {}),
  });

  test('newest version wins the descriptive fields; flags and subdirs accumulate; run_exports per version', () => {
    const linux = updateChanneldata(emptyChanneldata(), 'linux-64', [
      input(pkg('a', '1.0', 'h0', { timestamp: 1_700_000_000_000, license: 'MIT' }), {
        about: { summary: 'old\nsummary', home: 'https://a.example' },
        runExports: { weak: ['a >=1.0'] },
        postInstall: { post_link: true },
      }),
      input(pkg('a', '2.0', 'h0', { timestamp: 1_700_000_100_000, license: 'BSD' }), {
        about: { summary: ' new summary ', description: ['multi', '\nline'] },
        runExports: { weak: ['a >=2.0'] },
      }),
      input(pkg('a', '2.0', 'h0', { timestamp: 1_700_000_100_000, license: 'tarball' }), {}, 'tar.bz2'),
    ]);
    const both = updateChanneldata(linux, 'noarch', [input(pkg('a', '0.5', 'h0', { timestamp: 1 }))]);
    const a = JSON.parse(Buffer.from(encodeChanneldata(both)).toString()).packages.a;
    expect(a).toEqual({
      version: '2.0',
      license: 'BSD',
      summary: 'new summary',
      description: 'multi line',
      home: 'https://a.example',
      subdirs: ['linux-64', 'noarch'],
      run_exports: { '1.0': { weak: ['a >=1.0'] }, '2.0': { weak: ['a >=2.0'] } },
      timestamp: 1_700_000_100,
      binary_prefix: false,
      text_prefix: false,
      'activate.d': false,
      'deactivate.d': false,
      pre_link: false,
      post_link: true,
      pre_unlink: false,
    });
    expect(both.subdirs).toEqual(['linux-64', 'noarch']);
  });

  test('a subdir run replaces its own part and keeps the others', () => {
    const linux = updateChanneldata(emptyChanneldata(), 'linux-64', [input(pkg('a', '1', 'h0'))]);
    const all = updateChanneldata(
      updateChanneldata(linux, 'noarch', [input(pkg('b', '1', 'h0'))]),
      'linux-64',
      [input(pkg('c', '1', 'h0'))],
    );
    const rerun = updateChanneldata(emptyChanneldata(), 'noarch', [input(pkg('d', '1', 'h0'))]);
    const merged = mergeChanneldata(withoutSubdirs(all, ['noarch']), rerun);
    expect(Object.keys(merged.packages).sort()).toEqual(['a', 'c', 'd']);
    expect(merged.subdirs).toEqual(['linux-64', 'noarch']);
    expect(merged.packages.a).toEqual(all.packages.a);
  });

  test.each([
    [{ _path: 'lib/libx.so', prefix_placeholder: '/opt/p', file_mode: 'binary' }, 'binary_prefix'],
    [{ _path: 'bin/x-config', prefix_placeholder: '/opt/p', file_mode: 'text' }, 'text_prefix'],
    [{ _path: 'etc/conda/activate.d/x.sh' }, 'activate.d'],
    [{ _path: 'etc/conda/deactivate.d/x.sh' }, 'deactivate.d'],
    [{ _path: 'bin/.x-pre-link.sh' }, 'pre_link'],
    [{ _path: 'Scripts/.x-post-link.bat' }, 'post_link'],
    [{ _path: 'bin/.x-pre-unlink.sh' }, 'pre_unlink'],
  ])('paths.json %o sets %s', (path, flag) => {
    const flags = postInstallFromPaths({ paths: [path, { _path: 'lib/plain.so' }] });
    expect(
      Object.entries(flags)
        .filter(([, v]) => v)
        .map(([k]) => k),
    ).toEqual([flag]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('info layer reader', () => {
  const file = (path: string, text: string) => ({
    path,
    type: 'file' as const,
    mode: 0o644,
    data: new TextEncoder().encode(text),
  });

  test('reads index.json bytes, run_exports, about fields and post-install flags', async () => {
    const index = '{"name":"x","version":"1","build":"0"}';
    const layer = await buildInfoTarGz([
      file('info/index.json', index),
      file('info/run_exports.json', '{"weak":["x >=1"]}'),
      file('info/about.json', '{"home":"https://x.example","summary":"X","channels":["c"],"extra":{}}'),
      file('info/paths.json', '{"paths":[{"_path":"bin/.x-post-link.sh"}],"paths_version":1}'),
      file('info/recipe/meta.yaml', 'package: {name: x}'),
    ]);
    const read = await readInfoLayer(Readable.from([Buffer.from(layer)]));
    expect(await readInfoLayer(layer)).toEqual(read);
    expect(Buffer.from(read.indexJson!).toString()).toBe(index);
    expect(read.runExports).toEqual({ weak: ['x >=1'] });
    expect(read.about).toEqual({ home: 'https://x.example', summary: 'X' });
    expect(read.postInstall.post_link).toBe(true);
    expect(read.problems).toEqual([]);
  });

  test('a broken run_exports.json is a problem, not a failure; size limits hold', async () => {
    const layer = await buildInfoTarGz([
      file('info/index.json', '{}'),
      file('info/run_exports.json', '{nope'),
      file('info/test/big.txt', 'x'.repeat(5000)),
    ]);
    const read = await readInfoLayer(Readable.from([Buffer.from(layer)]));
    expect(read.runExports).toBeUndefined();
    expect(read.problems).toEqual(['info/run_exports.json is not valid JSON']);
    await expect(
      readInfoLayer(Readable.from([Buffer.from(layer)]), { totalBytes: 1000, memberBytes: 1000 }),
    ).rejects.toThrow(/limit/i);
    await expect(readInfoLayer(layer, { totalBytes: 1000, memberBytes: 1000 })).rejects.toThrow(/limit/i);
    await expect(readInfoLayer(Readable.from([Buffer.from('not gzip')]))).rejects.toThrow();
    await expect(readInfoLayer(Buffer.from('not gzip'))).rejects.toThrow();
    await expect(readInfoLayer(layer.subarray(0, layer.length - 30))).rejects.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
describe('record cache', () => {
  const artifact = (i: number): CachedArtifact => ({
    component: `cpkg${i}`,
    tag: `1.${i}-h0__0`,
    digest: `sha256:${String(i).padStart(64, '0')}`,
    fileName: `pkg${i}-1.${i}-h0_0.conda`,
    record: `{"name":"pkg${i}"}`,
    ...(i % 2 ? { runExports: '{"weak":["x"]}' } : {}),
  });

  test('round trip; another channel or subdir does not see it; bad lines are skipped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'conda-oci-cache-'));
    const items = Array.from({ length: 2500 }, (_, i) => artifact(i));
    await saveCache(dir, 'oci://h/c', 'linux-64', items);
    const loaded = await loadCache(dir, 'oci://h/c', 'linux-64');
    expect(loaded.ignored).toBeUndefined();
    expect([...loaded.entries.values()]).toEqual(items);
    expect((await loadCache(dir, 'oci://h/c', 'noarch')).entries.size).toBe(0);
    expect((await loadCache(dir, 'oci://h/other', 'linux-64')).entries.size).toBe(0);
    const path = cacheFile(dir, 'oci://h/c', 'linux-64');
    writeFileSync(path, `${readFileSync(path, 'utf8')}{broken\n{"component":1}\n`);
    const damaged = await loadCache(dir, 'oci://h/c', 'linux-64');
    expect(damaged.entries.size).toBe(2500);
    expect(damaged.ignored).toMatch(/2 unreadable/);
    writeFileSync(
      cacheFile(dir, 'oci://h/c', 'osx-64'),
      '{"format":99,"channel":"oci://h/c","subdir":"osx-64"}\n',
    );
    expect((await loadCache(dir, 'oci://h/c', 'osx-64')).ignored).toMatch(/another/);
  });
});

// ---------------------------------------------------------------------------------------------
describe('compression and small helpers', () => {
  test('timestamp tags', () => {
    expect(timestampTag(new Date('2026-03-04T05:06:07.890Z'))).toBe('20260304T050607Z');
  });

  test('Actions cache: keyed by channel and subdirs; every failure is a warning', async () => {
    const messages: string[] = [];
    const log = {
      info: (m: string) => messages.push(`info: ${m}`),
      warning: (m: string) => messages.push(`warning: ${m}`),
    };
    const env = { GITHUB_RUN_ID: '7', GITHUB_RUN_ATTEMPT: '2' };
    const key = { channel: 'oci://ghcr.io/x/conda-forge', subdirs: ['noarch', 'linux-64'] };
    const prefix = repodataCacheKeyPrefix(key);
    expect(prefix).toMatch(/^conda-oci-repodata-v1-[0-9a-f]{16}-linux-64\+noarch-$/);
    expect(repodataCacheKeyPrefix({ channel: key.channel })).toMatch(/-all-$/);
    const calls: unknown[][] = [];
    const service = {
      isFeatureAvailable: () => true,
      restoreCache: async (...args: unknown[]) => {
        calls.push(['restore', ...args]);
        return `${prefix}6-1`;
      },
      saveCache: async (...args: unknown[]) => {
        calls.push(['save', ...args]);
        return 1;
      },
    };
    expect(await restoreRepodataCache('/tmp/c', key, service, log, env)).toBe(true);
    await saveRepodataCache('/tmp/c', key, service, log, env);
    expect(calls).toEqual([
      ['restore', ['/tmp/c'], `${prefix}7-2`, [prefix]],
      ['save', ['/tmp/c'], `${prefix}7-2`],
    ]);
    const failing = {
      isFeatureAvailable: () => true,
      restoreCache: async () => {
        throw new Error('service down');
      },
      saveCache: async () => {
        throw new Error('quota');
      },
    };
    expect(await restoreRepodataCache('/tmp/c', key, failing, log, env)).toBe(false);
    await saveRepodataCache('/tmp/c', key, failing, log, env);
    expect(
      await restoreRepodataCache('/tmp/c', key, { ...failing, isFeatureAvailable: () => false }, log, env),
    ).toBe(false);
    expect(messages.filter((m) => m.startsWith('warning'))).toEqual([
      'warning: Could not restore the repodata cache: service down',
      'warning: Could not save the repodata cache: quota',
      'warning: The Actions cache service is not available here; repodata reads every artifact',
    ]);
  });
});
