import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  artifactFileName,
  CHANNELDATA_COMPONENT,
  channeldataReference,
  classifyComponent,
  decodePackageReference,
  decodeVersionOrBuild,
  encodePackageName,
  encodeV0Tag,
  encodeVersionOrBuild,
  isPackageTag,
  METADATA_COMPONENTS,
  metadataReference,
  packageReference,
  parseArtifactFileName,
  v0PackageReference,
  v0RepodataReference,
  type ArtifactExtension,
} from '../../src/conda/naming.js';
import { v0Location } from '../../src/conda/naming-scheme.js';
import { InvalidReferenceError } from '../../src/oci/errors.js';
import { isPathComponent, isRepositoryName, isTag } from '../../src/oci/reference.js';

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const HEX64 = 'a'.repeat(64);

function thrown(fn: () => unknown): InvalidReferenceError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidReferenceError);
    return err as InvalidReferenceError;
  }
  throw new Error('expected an InvalidReferenceError');
}

const FIXTURES = new URL('../../__fixtures__/packages/', import.meta.url);
const LONG_NAME = 'a-package-name-that-is-deliberately-longer-than-sixty-four-characters-x';

describe('parseArtifactFileName', () => {
  test.each([
    ['numpy-1.26.4-py312h8753938_0.conda', 'numpy', '1.26.4', 'py312h8753938_0', 'conda'],
    ['_libgcc_mutex-0.1-conda_forge.tar.bz2', '_libgcc_mutex', '0.1', 'conda_forge', 'tar.bz2'],
    ['local-plus-2.0.1+cpu-py312_h0a1b2c3_0.conda', 'local-plus', '2.0.1+cpu', 'py312_h0a1b2c3_0', 'conda'],
    ['epoch-pkg-1!2.5-h0_0.conda', 'epoch-pkg', '1!2.5', 'h0_0', 'conda'],
    ['ruamel.yaml-0.18.6-py312h66e93f0_1.conda', 'ruamel.yaml', '0.18.6', 'py312h66e93f0_1', 'conda'],
    ['_r-mutex-1.0.1-anacondar_1.tar.bz2', '_r-mutex', '1.0.1', 'anacondar_1', 'tar.bz2'],
    ['a-b-c-d-1.0rc1-0.conda', 'a-b-c-d', '1.0rc1', '0', 'conda'],
    ['x-1.0.DEV-Py_1.conda', 'x', '1.0.DEV', 'Py_1', 'conda'],
  ])('%s', (fileName, name, version, build, ext) => {
    expect(parseArtifactFileName(fileName)).toEqual({ name, version, build, ext, fileName });
    expect(artifactFileName(name, version, build, ext as ArtifactExtension)).toBe(fileName);
  });

  test.each([
    ['numpy-1.26.4-py312_0.whl', 'extension'],
    ['numpy-1.26.4-py312_0.tar.gz', 'extension'],
    ['numpy-1.26.4-py312_0.CONDA', 'extension'],
    ['numpy-1.26.4-py312_0', 'extension'],
    ['numpy-1.26.4-py312_0.conda.part', 'extension'],
    ['.conda', '<name>-<version>-<build>'],
    ['numpy-1.26.4.conda', '<name>-<version>-<build>'],
    ['numpy.conda', '<name>-<version>-<build>'],
    ['-0.conda', '<name>-<version>-<build>'],
    ['linux-64/numpy-1.0-0.conda', 'without a directory'],
    ['..\\numpy-1.0-0.conda', 'without a directory'],
    ['-1.0-0.conda', 'name is empty'],
    ['numpy--0.conda', 'version is empty'],
    ['numpy-1.0-.conda', 'build string is empty'],
    ['NumPy-1.0-0.conda', '"N"'],
    ['num py-1.0-0.conda', 'U+0020'],
    ['nümpy-1.0-0.conda', 'U+00FC'],
    ['.numpy-1.0-0.conda', 'must start with'],
    ['-numpy-1.0-0.conda', 'must start with'],
    ['numpy-1.0~rc1-0.conda', '"~"'],
    ['numpy-1=0-0.conda', '"="'],
    ['numpy-1!2!3-0.conda', 'more than one "!"'],
    ['numpy-.1-0.conda', 'starts with "."'],
    ['numpy-1.0-py!0.conda', '"!"'],
    ['numpy-1.0-py*0.conda', '"*"'],
  ])('refuses %s', (fileName, problem) => {
    const err = thrown(() => parseArtifactFileName(fileName));
    expect(err.message).toContain(`"${fileName}"`);
    expect(err.message).toContain(problem);
  });

  test.each([
    ['', '1.0', '0', 'conda', 'name is empty'],
    ['numpy', '1-0', '0', 'conda', '"-"'],
    ['numpy', '1.0', 'py-0', 'conda', '"-"'],
    ['numpy', '1.0', '0', 'zip', 'extension "zip"'],
  ])('artifactFileName refuses %j %j %j %j', (name, version, build, ext, problem) => {
    const err = thrown(() => artifactFileName(name, version, build, ext as ArtifactExtension));
    expect(err.message).toContain(problem);
  });
});

describe('encodings (CEP v1)', () => {
  test.each([
    ['_libgcc_mutex', 'c_libgcc_mutex'],
    ['numpy', 'cnumpy'],
    ['c_libgcc_mutex', 'cc_libgcc_mutex'],
    ['ruamel.yaml', 'cruamel.yaml'],
  ])('encodePackageName(%s) = %s', (name, encoded) => {
    expect(encodePackageName(name)).toBe(encoded);
  });

  test.each([
    ['1.0', '1.0'],
    ['2.0.1+cpu', '2.0.1_Pcpu'],
    ['py312_h0a1b2c3_0', 'py312__h0a1b2c3__0'],
    ['1!2.5', '1_N2.5'],
    ['1!2.0+local_1', '1_N2.0_Plocal__1'],
    ['conda_forge', 'conda__forge'],
    ['_', '__'],
    ['__', '____'],
    ['_+', '___P'],
    ['+_', '_P__'],
    ['!+_', '_N_P__'],
    // An original "_P" / "_N" after doubling: a string-wide `_P`->`+` replacement would misread these.
    ['a_P', 'a__P'],
    ['a_N', 'a__N'],
    ['a__P_N', 'a____P__N'],
    ['', ''],
  ])('encodeVersionOrBuild(%j) = %j and back', (original, encoded) => {
    expect(encodeVersionOrBuild(original)).toBe(encoded);
    expect(decodeVersionOrBuild(encoded)).toBe(original);
  });

  test.each([
    ['a_', 'position 1'],
    ['a_X', 'position 1'],
    ['a_p', 'position 1'],
    ['___', 'position 2'],
    ['a+b', 'may only contain'],
    ['a!b', 'may only contain'],
    ['a-b', 'may only contain'],
  ])('decodeVersionOrBuild refuses %j', (encoded, problem) => {
    const err = thrown(() => decodeVersionOrBuild(encoded));
    expect(err.message).toContain(`"${encoded}"`);
    expect(err.message).toContain(problem);
  });
});

describe('packageReference', () => {
  test.each([
    ['linux-64', 'numpy', '1.26.4', 'py312h8753938_0', 'linux-64/cnumpy', '1.26.4-py312h8753938__0'],
    ['linux-64', '_libgcc_mutex', '0.1', 'conda_forge', 'linux-64/c_libgcc_mutex', '0.1-conda__forge'],
    [
      'linux-64',
      'local-plus',
      '2.0.1+cpu',
      'py312_h0a1b2c3_0',
      'linux-64/clocal-plus',
      '2.0.1_Pcpu-py312__h0a1b2c3__0',
    ],
    ['osx-arm64', 'epoch-pkg', '1!2.5', 'h0_0', 'osx-arm64/cepoch-pkg', '1_N2.5-h0__0'],
    ['noarch', 'ruamel.yaml', '0.18.6', 'pyh_1', 'noarch/cruamel.yaml', '0.18.6-pyh__1'],
    ['noarch', 'foo__bar', '1', '0', 'noarch/cfoo__bar', '1-0'],
    ['noarch', 'foo--bar', '1', '0', 'noarch/cfoo--bar', '1-0'],
    ['noarch', '__foo', '1', '0', 'noarch/c__foo', '1-0'],
    ['noarch', 'foo_bar', '1.0RC1', 'Py_0', 'noarch/cfoo_bar', '1.0RC1-Py__0'],
    ['win-64', 'x', '_1', '+', 'win-64/cx', '__1-_P'],
  ])('%s %s %s %s', (subdir, name, version, build, repository, tag) => {
    expect(packageReference(subdir, name, version, build)).toEqual({ repository, tag, hashed: false });
    expect(decodePackageReference(repository.split('/')[1]!, tag)).toEqual({
      hashed: false,
      name,
      version,
      build,
    });
  });

  const n63 = 'n'.repeat(63);
  const n64 = 'n'.repeat(64);
  test.each([
    // name: `c` + name hashed past 64 characters
    ['encoded name of 64 characters', n63, '1.0', '0', `c${n63}`, '1.0-0', false],
    ['encoded name of 65 characters', n64, '1.0', '0', `h${sha256(`c${n64}`)}`, `h${sha256('1.0-0')}`, true],
    // tag: hashed past 128 characters
    [
      'tag of 128 characters',
      'x',
      '1'.repeat(63),
      'b'.repeat(64),
      'cx',
      `${'1'.repeat(63)}-${'b'.repeat(64)}`,
      false,
    ],
    [
      'tag of 129 characters',
      'x',
      '1'.repeat(63),
      'b'.repeat(65),
      `h${sha256('cx')}`,
      `h${sha256(`${'1'.repeat(63)}-${'b'.repeat(65)}`)}`,
      true,
    ],
    // the length that counts is the encoded one: 97 raw characters, 128 encoded
    [
      'encoded tag of 128 characters',
      'x',
      '1_'.repeat(32),
      'a'.repeat(31),
      'cx',
      `${'1__'.repeat(32)}-${'a'.repeat(31)}`,
      false,
    ],
    [
      'encoded tag of 129 characters',
      'x',
      '1_'.repeat(32),
      'a'.repeat(32),
      `h${sha256('cx')}`,
      `h${sha256(`${'1__'.repeat(32)}-${'a'.repeat(32)}`)}`,
      true,
    ],
    // one hashed means both hashed
    [
      'long name, short tag',
      LONG_NAME,
      '1.0',
      'h0_0',
      `h${sha256(`c${LONG_NAME}`)}`,
      `h${sha256('1.0-h0__0')}`,
      true,
    ],
    [
      'short name, long tag',
      'numpy',
      '1.0',
      'b'.repeat(200),
      `h${sha256('cnumpy')}`,
      `h${sha256(`1.0-${'b'.repeat(200)}`)}`,
      true,
    ],
  ])('%s', (_what, name, version, build, component, tag, hashed) => {
    const ref = packageReference('linux-64', name, version, build);
    expect(ref).toEqual({ repository: `linux-64/${component}`, tag, hashed });
    expect(isPathComponent(component)).toBe(true);
    expect(isTag(tag)).toBe(true);
    expect(isPackageTag(tag)).toBe(true);
    if (hashed) {
      expect(decodePackageReference(component, tag)).toEqual({ hashed: true });
    } else {
      expect(decodePackageReference(component, tag)).toEqual({ hashed: false, name, version, build });
    }
  });

  test.each(['linux_64', 'Linux-64', 'linux-64-extra', 'linux', '', 'noarch/', '../noarch', ' noarch'])(
    'refuses subdir %j',
    (subdir) => {
      const err = thrown(() => packageReference(subdir, 'numpy', '1.0', '0'));
      expect(err.message).toContain(`"${subdir}"`);
    },
  );

  test.each([
    ['foo._bar', 'OCI'],
    ['foo-_bar', 'OCI'],
    ['foo___bar', 'OCI'],
    ['foo..bar', 'OCI'],
    ['foo-', 'OCI'],
    ['foo.', 'OCI'],
    ['_', 'OCI'],
    ['___foo', 'OCI'],
    [`${LONG_NAME}._x`, 'OCI'], // refused even though it would be hashed
    ['Numpy', '"N"'],
    ['.numpy', 'must start with'],
    ['', 'name is empty'],
  ])('refuses package name %j', (name, problem) => {
    const err = thrown(() => packageReference('noarch', name, '1.0', '0'));
    expect(err.message).toContain(`"${name}"`);
    expect(err.message).toContain(problem);
  });

  test.each([
    ['1-0', 'x', '"-"'],
    ['.1', 'x', 'starts with "."'],
    ['1!2!3', 'x', 'more than one "!"'],
    ['', 'x', 'version is empty'],
    ['1', 'x!', '"!"'],
    ['1', 'x-1', '"-"'],
    ['1', '', 'build string is empty'],
  ])('refuses version %j build %j', (version, build, problem) => {
    const err = thrown(() => packageReference('noarch', 'numpy', version, build));
    expect(err.message).toContain(problem);
  });
});

describe('fixtures', () => {
  interface Expected {
    subdir: string;
    filename: string;
    name: string;
    version: string;
    build: string;
  }
  const expected = JSON.parse(readFileSync(new URL('expected.json', FIXTURES), 'utf8')) as Expected[];
  const longTag = `h${sha256('1.0-h0__0')}`;
  const table: [string, string, string, boolean][] = [
    ['demo-pkg-1.2.3-h1234567_0.conda', 'linux-64/cdemo-pkg', '1.2.3-h1234567__0', false],
    ['demo-pkg-1.2.3-h1234567_0.tar.bz2', 'linux-64/cdemo-pkg', '1.2.3-h1234567__0', false],
    ['demo-pkg-1.2.4-h7654321_1.conda', 'linux-64/cdemo-pkg', '1.2.4-h7654321__1', false],
    ['_libgcc_mutex-0.1-conda_forge.tar.bz2', 'linux-64/c_libgcc_mutex', '0.1-conda__forge', false],
    ['libgcc-14.2.0-h77fa898_1.conda', 'linux-64/clibgcc', '14.2.0-h77fa898__1', false],
    ['libzlib-1.3.1-hb9d3cd8_2.conda', 'linux-64/clibzlib', '1.3.1-hb9d3cd8__2', false],
    [
      'local-plus-2.0.1+cpu-py312_h0a1b2c3_0.conda',
      'linux-64/clocal-plus',
      '2.0.1_Pcpu-py312__h0a1b2c3__0',
      false,
    ],
    ['epoch-pkg-1!2.5-h0_0.conda', 'linux-64/cepoch-pkg', '1_N2.5-h0__0', false],
    ['pure-py-0.9.0-pyhd8ed1ab_0.conda', 'noarch/cpure-py', '0.9.0-pyhd8ed1ab__0', false],
    [`${LONG_NAME}-1.0-h0_0.conda`, `linux-64/h${sha256(`c${LONG_NAME}`)}`, longTag, true],
  ];

  test('the table covers every fixture package and expected.json', () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.conda') || f.endsWith('.tar.bz2'));
    expect(table.map(([f]) => f).sort()).toEqual(files.sort());
    expect(expected.map((e) => e.filename).sort()).toEqual(files.sort());
  });

  test.each(table)('%s -> %s:%s', (fileName, repository, tag, hashed) => {
    const entry = expected.find((e) => e.filename === fileName)!;
    const parsed = parseArtifactFileName(fileName);
    expect(parsed).toMatchObject({ name: entry.name, version: entry.version, build: entry.build });
    const ref = packageReference(entry.subdir, parsed.name, parsed.version, parsed.build);
    expect(ref).toEqual({ repository, tag, hashed });
    expect(isRepositoryName(`cf-staging/conda-forge/${ref.repository}`)).toBe(true);
    expect(isTag(ref.tag)).toBe(true);
  });

  test.each([
    ['_libgcc_mutex-0.1-conda_forge.tar.bz2', 'linux-64/zzz_libgcc_mutex', '0.1-conda_forge'],
    ['local-plus-2.0.1+cpu-py312_h0a1b2c3_0.conda', 'linux-64/local-plus', '2.0.1__p__cpu-py312_h0a1b2c3_0'],
    ['epoch-pkg-1!2.5-h0_0.conda', 'linux-64/epoch-pkg', '1__e__2.5-h0_0'],
    ['pure-py-0.9.0-pyhd8ed1ab_0.conda', 'noarch/pure-py', '0.9.0-pyhd8ed1ab_0'],
    [`${LONG_NAME}-1.0-h0_0.conda`, `linux-64/${LONG_NAME}`, '1.0-h0_0'],
  ])('v0: %s -> %s:%s', (fileName, repository, tag) => {
    const entry = expected.find((e) => e.filename === fileName)!;
    expect(v0PackageReference(entry.subdir, entry.name, entry.version, entry.build)).toEqual({
      repository,
      tag,
      hashed: false,
    });
  });
});

describe('decodePackageReference', () => {
  const h = `h${HEX64}`;
  test.each([
    ['numpy', '1.0-0', 'not "c<conda name>"'],
    ['mrepodata.json', 'latest', 'not "c<conda name>"'],
    ['linux-64/cnumpy', '1.0-0', 'not "c<conda name>"'],
    ['c', '1.0-0', 'not "c<conda name>"'],
    ['cnumpy', 'latest', '<encoded version>-<encoded build>'],
    ['cnumpy', '1.0-0-1', '<encoded version>-<encoded build>'],
    ['cnumpy', h, 'a hashed tag needs a hashed name'],
    [h, '1.0-0', 'a hashed name needs a hashed tag'],
    ['cnumpy', '1_X-0', 'is not a package reference'],
    ['cnumpy', '-0', 'is not a package reference'],
    ['cnumpy', '.1-0', 'is not a package reference'],
    [`c${'n'.repeat(64)}`, '1.0-0', `h${sha256(`c${'n'.repeat(64)}`)}`],
  ])('refuses %s:%s', (component, tag, problem) => {
    const err = thrown(() => decodePackageReference(component, tag));
    expect(err.message).toContain(`${component}:${tag}`);
    expect(err.message).toContain(problem);
  });
});

describe('components and tags', () => {
  test.each([
    ['cnumpy', 'package'],
    ['c_libgcc_mutex', 'package'],
    ['cruamel.yaml', 'package'],
    [`h${HEX64}`, 'hashed-package'],
    ...METADATA_COMPONENTS.map((c) => [c, 'metadata']),
    ['mrepodata', 'reserved'],
    ['mfuture.json', 'reserved'],
    ['numpy', 'reserved'],
    ['zzz_libgcc_mutex', 'reserved'],
    ['repodata.json', 'reserved'],
    // Under a subdir this would be the package "hanneldata.json"; channeldata lives one level up.
    [CHANNELDATA_COMPONENT, 'package'],
    ['c', 'reserved'],
    ['hdf5', 'reserved'],
    [`h${'A'.repeat(64)}`, 'reserved'],
    ['cfoo._bar', 'reserved'],
  ])('classifyComponent(%s) = %s', (component, kind) => {
    expect(classifyComponent(component)).toBe(kind);
  });

  test.each([...METADATA_COMPONENTS, CHANNELDATA_COMPONENT])('%s is a valid path component', (component) => {
    expect(isPathComponent(component)).toBe(true);
  });

  test('metadata references', () => {
    expect(metadataReference('linux-64', 'mrepodata.json')).toEqual({
      repository: 'linux-64/mrepodata.json',
      tag: 'latest',
    });
    expect(channeldataReference()).toEqual({ repository: 'channeldata.json', tag: 'latest' });
    expect(v0RepodataReference('noarch')).toEqual({ repository: 'noarch/repodata.json', tag: 'latest' });
    thrown(() => v0RepodataReference('noarch/x'));
  });

  test.each([
    ['1.26.4-py312h8753938__0', true],
    ['2.0.1_Pcpu-py312__h0a1b2c3__0', true],
    ['1_N2.5-h0__0', true],
    [`h${HEX64}`, true],
    [`h${sha256('x')}`, true],
    ['latest', false],
    ['20261123T101500Z', false],
    [`sha256-${HEX64}`, false],
    [`sha256-${HEX64}.sig`, false],
    [`sha256-${HEX64}.att`, false],
    ['1.0-0-1', false],
    ['1_X-0', false],
    ['1.0_-0', false],
    ['-0', false],
    ['1.0-', false],
    ['.1-0', false],
    [`h${HEX64.slice(1)}`, false],
    [`h${'A'.repeat(64)}`, false],
    ['', false],
    [`${'1'.repeat(100)}-${'b'.repeat(30)}`, false],
  ])('isPackageTag(%j) = %s', (tag, expectedResult) => {
    expect(isPackageTag(tag)).toBe(expectedResult);
  });
});

describe('v0 layout', () => {
  test.each([
    ['zlib', '1.2', '0', 'linux-64/zlib', '1.2-0'],
    ['_lib', '1!2.0+local', 'build', 'linux-64/zzz_lib', '1__e__2.0__p__local-build'],
    ['_openmp_mutex', '4.5', '2_gnu', 'linux-64/zzz_openmp_mutex', '4.5-2_gnu'],
    ['x', '1.0_5', '1', 'linux-64/x', '1.0_5-1'],
  ])('%s %s %s', (name, version, build, repository, tag) => {
    expect(v0PackageReference('linux-64', name, version, build)).toEqual({ repository, tag, hashed: false });
  });

  test('= is spelled __eq__', () => {
    expect(encodeV0Tag('1!2.0+local-build=1')).toBe('1__e__2.0__p__local-build__eq__1');
  });

  test.each([
    ['linux_64', 'numpy', '1.0', '0', '"linux_64"'],
    ['noarch', 'foo._bar', '1.0', '0', '"foo._bar"'],
  ])('refuses %s %s %s %s', (subdir, name, version, build, problem) => {
    const err = thrown(() => v0PackageReference(subdir, name, version, build));
    expect(err.message).toContain(problem);
  });

  test.each([
    ['1'.repeat(100), 'b'.repeat(30)],
    ['1+'.repeat(22), '0'], // 46 characters, 134 once spelled
  ])('a tag over 128 characters (%s-%s) gets a deterministic short v0 tag', (version, build) => {
    const full = encodeV0Tag(`${version}-${build}`);
    expect(v0PackageReference('noarch', 'x', version, build).tag).toBe(full);
    const located = v0Location('noarch', { name: 'x', version, build });
    expect(located.tag).toHaveLength(128);
    expect(isTag(located.tag)).toBe(true);
    expect(located.tag).toBe(
      `${full.slice(0, 110)}-h${createHash('sha256').update(full).digest('hex').slice(0, 16)}`,
    );
  });
});

describe('properties', () => {
  const RUNS = { numRuns: 500 };
  const ALNUM = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'];
  // Weighted towards the characters the encoding is about, and the letters of its escapes.
  const versionUnit = fc.oneof(
    { arbitrary: fc.constantFrom('_', '+', 'P', 'N', '.'), weight: 3 },
    { arbitrary: fc.constantFrom(...ALNUM), weight: 2 },
  );
  const versionPart = fc.string({ unit: versionUnit, maxLength: 40 });
  const version = fc
    .tuple(versionPart, fc.option(versionPart, { nil: undefined }))
    .map(([a, b]) => (b === undefined ? a : `${a}!${b}`))
    .filter((v) => v !== '' && !v.startsWith('.'));
  const build = fc.string({ unit: versionUnit, minLength: 1, maxLength: 70 });
  const anyEncodable = fc.string({ unit: fc.oneof(versionUnit, fc.constant('!')), maxLength: 60 });

  const segment = fc.string({
    unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'),
    minLength: 1,
    maxLength: 12,
  });
  const separator = fc.constantFrom('.', '_', '__', '-', '--');
  /** Names whose `c` form is an OCI path component: separators only between letters and digits. */
  const storableName = fc
    .tuple(fc.boolean(), segment, fc.array(fc.tuple(separator, segment), { maxLength: 8 }))
    .map(
      ([underscore, first, rest]) =>
        `${underscore ? '_' : ''}${first}${rest.map(([s, t]) => s + t).join('')}`,
    );
  /** Anything conda's rules allow, including names the OCI grammar cannot hold. */
  const condaName = fc
    .tuple(
      fc.constantFrom(...'abcxyz019_'),
      fc.string({ unit: fc.constantFrom(...'abz09_.-'), maxLength: 80 }),
    )
    .map(([a, b]) => a + b);
  const subdir = fc.constantFrom('noarch', 'linux-64', 'osx-arm64', 'win-64', 'linux-aarch64');
  const ext = fc.constantFrom<ArtifactExtension>('conda', 'tar.bz2');

  test('decode(encode(x)) === x', () => {
    fc.assert(
      fc.property(anyEncodable, (s) => decodeVersionOrBuild(encodeVersionOrBuild(s)) === s),
      RUNS,
    );
    fc.assert(
      fc.property(version, build, (v, b) => {
        expect(decodeVersionOrBuild(encodeVersionOrBuild(v))).toBe(v);
        expect(decodeVersionOrBuild(encodeVersionOrBuild(b))).toBe(b);
      }),
      RUNS,
    );
  });

  test('the encoding is injective', () => {
    fc.assert(
      fc.property(
        anyEncodable,
        anyEncodable,
        (a, b) => a === b || encodeVersionOrBuild(a) !== encodeVersionOrBuild(b),
      ),
      RUNS,
    );
  });

  test('every encoded name and tag matches the OCI grammar, and decodes back', () => {
    fc.assert(
      fc.property(subdir, storableName, version, build, (sd, name, v, b) => {
        const ref = packageReference(sd, name, v, b);
        const component = ref.repository.slice(sd.length + 1);
        expect(ref.repository.startsWith(`${sd}/`)).toBe(true);
        expect(isPathComponent(component)).toBe(true);
        expect(isRepositoryName(`prod/conda-forge/label/rc/${ref.repository}`)).toBe(true);
        expect(isTag(ref.tag)).toBe(true);
        expect(isPackageTag(ref.tag)).toBe(true);
        const longName = name.length + 1 > 64;
        const longTag = encodeVersionOrBuild(v).length + 1 + encodeVersionOrBuild(b).length > 128;
        expect(ref.hashed).toBe(longName || longTag);
        expect(component.startsWith(ref.hashed ? 'h' : 'c')).toBe(true);
        expect(ref.tag.startsWith('h') && ref.tag.length === 65 && !ref.tag.includes('-')).toBe(ref.hashed);
        expect(classifyComponent(component)).toBe(ref.hashed ? 'hashed-package' : 'package');
        const decoded = decodePackageReference(component, ref.tag);
        expect(decoded).toEqual(
          ref.hashed ? { hashed: true } : { hashed: false, name, version: v, build: b },
        );
      }),
      RUNS,
    );
  });

  test('any conda name is either stored under a valid name or refused', () => {
    fc.assert(
      fc.property(condaName, (name) => {
        let ref;
        try {
          ref = packageReference('noarch', name, '1.0', '0');
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidReferenceError);
          expect(isPathComponent(`c${name}`)).toBe(false);
          return;
        }
        expect(isRepositoryName(ref.repository)).toBe(true);
        expect(isTag(ref.tag)).toBe(true);
      }),
      RUNS,
    );
  });

  test('parseArtifactFileName(artifactFileName(...)) is the identity', () => {
    fc.assert(
      fc.property(condaName, version, build, ext, (name, v, b, e) => {
        const fileName = artifactFileName(name, v, b, e);
        expect(parseArtifactFileName(fileName)).toEqual({ name, version: v, build: b, ext: e, fileName });
      }),
      RUNS,
    );
  });

  test('v0 references match the OCI grammar', () => {
    fc.assert(
      fc.property(subdir, storableName, version, build, (sd, name, v, b) => {
        const tag = encodeV0Tag(`${v}-${b}`);
        const ref = v0PackageReference(sd, name, v, b);
        expect(isRepositoryName(ref.repository)).toBe(true);
        expect(ref.tag).toBe(tag);
        expect(isTag(v0Location(sd, { name, version: v, build: b }, true).tag)).toBe(true);
      }),
      RUNS,
    );
  });
});
