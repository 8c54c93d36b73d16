/**
 * The one tar policy (src/conda/tar-reader.ts) seen from both places that read tar in Node alone:
 * the info archive of a .conda (readPackage) and the staged info layer (readInfoLayer, whole and
 * streamed). Each crafted archive is refused in every place with the same rule and the same
 * words; real constructs (long names of every kind, old typeflags, zero padding) read the same
 * everywhere. The .tar.bz2 place (it needs the bzip2 tool) is in
 * __tests__/integration/hostile-input.test.ts, from the same table.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, test } from 'vitest';
import { silentReporter } from '../../src/commands/report.js';
import { buildPackageArtifact } from '../../src/conda/artifact.js';
import { channelRepository, parseChannel } from '../../src/conda/channel.js';
import { METADATA_KINDS, metadataJsonLayer, type MetadataKind } from '../../src/conda/metadata-artifact.js';
import { LATEST_TAG, packageReference } from '../../src/conda/naming.js';
import { execute } from '../../src/core/execute.js';
import { LayoutStore } from '../../src/oci/layout/store.js';
import { pushArtifact } from '../../src/oci/push.js';
import { fixturePath } from '../helpers/fixtures.js';
import { ArchiveError } from '../../src/conda/archive-error.js';
import { readInfoLayer, type InfoLayerContents } from '../../src/conda/info-layer.js';
import { buildInfoTarGz } from '../../src/conda/info-tarball.js';
import {
  DEFAULT_LIMITS,
  PackageError,
  readPackage,
  readPackageFile,
  type PackageContents,
} from '../../src/conda/package-reader.js';
import { ALL_TAR_RULES, STEM, TAR_RULE_CASES } from '../helpers/tar-rule-cases.js';
import {
  concat,
  condaAround,
  END,
  file,
  gnuLong,
  header,
  indexJson,
  layerAround,
  pax,
  ZERO_BLOCK,
  zstd,
} from '../helpers/tar-craft.js';

const CONDA = `${STEM}.conda`;
const INFO_ARCHIVE = `the info archive "info-${STEM}.tar.zst"`;

async function* chunks(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.slice(at, at + size);
}

async function refusal(read: () => Promise<unknown>): Promise<Error> {
  try {
    await read();
  } catch (err) {
    return err as Error;
  }
  throw new Error('accepted');
}

/** The three readings of one tar: in a .conda, and as an info layer read whole and streamed. */
async function refusals(tar: Uint8Array, maxMembers?: number): Promise<[Error, Error, Error]> {
  const limits =
    maxMembers === undefined ? DEFAULT_LIMITS : { ...DEFAULT_LIMITS, archiveMembers: maxMembers };
  const layerLimits = { totalBytes: 512 << 20, memberBytes: 64 << 20, members: maxMembers ?? 100_000 };
  const layer = layerAround(tar);
  return [
    await refusal(() => readPackage(chunks(condaAround(STEM, zstd(tar)), 4096), CONDA, limits)),
    await refusal(() => readInfoLayer(layer, layerLimits)),
    await refusal(() => readInfoLayer(Readable.from(chunks(layer, 100)), layerLimits)),
  ];
}

describe('every rule of the tar policy, refused alike in the .conda info archive and the info layer', () => {
  test('the table has a case for every rule', () => {
    expect(new Set(TAR_RULE_CASES.map((c) => c.rule))).toEqual(new Set(ALL_TAR_RULES));
  });

  test.each(TAR_RULE_CASES)('$rule: $title', async ({ rule, tar, detail, maxMembers }) => {
    const [conda, whole, streamed] = await refusals(tar(), maxMembers);
    const said = `${detail} (tar rule "${rule}")`;
    expect(conda).toBeInstanceOf(PackageError);
    expect(conda.message).toBe(`${CONDA}: ${INFO_ARCHIVE}: ${said}`);
    expect(whole).toBeInstanceOf(ArchiveError);
    expect(whole.message).toBe(`the info layer: ${said}`);
    expect(streamed.message).toBe(whole.message);
  });
});

describe('what real writers produce reads the same in both places', () => {
  const INDEX = indexJson('evil');
  const long = `info/test/${'deep/'.repeat(30)}file.txt`;
  /** tarfile's pax path, GNU long names (tar crate, tarfile GNU_FORMAT), a ustar prefix, old typeflag. */
  const members = [
    file('info/index.json', INDEX),
    pax([['path', `${long}.pax`]]),
    file('info/ignored-name', 'pax'),
    gnuLong(`${long}.gnu`),
    file('././@LongLink', 'gnu', { format: 'gnu' }),
    file('about.json', '{"summary":"s"}', { prefix: 'info' }),
    file('info/run_exports.json', '{"weak":["evil >=1.0"]}', { type: '\0' }),
    header({ name: 'info/link.json', type: '2', linkname: 'run_exports.json' }),
    gnuLong('run_exports.json', 'K'),
    header({ name: 'info/long-link.json', type: '2', linkname: 'ignored' }),
  ];
  /** tarfile pads to its 10240-byte record with zeros. */
  const tar = concat([...members, END, new Uint8Array(10240 - ((concat(members).length + 1024) % 10240))]);

  test('a .conda and its info layer: same members, same contents', async () => {
    const pkg = await readPackage(chunks(condaAround(STEM, zstd(tar)), 777), CONDA);
    expect(pkg.runExports).toEqual({ weak: ['evil >=1.0'] });
    const layer: InfoLayerContents = await readInfoLayer(layerAround(tar));
    expect(Buffer.from(layer.indexJson!).toString()).toBe(INDEX);
    expect(layer.runExports).toEqual({ weak: ['evil >=1.0'] });
    expect(layer.about).toEqual({ summary: 's' });
    // What the package reader kept is what our own layer then holds, and it reads back the same.
    const rebuilt = await readInfoLayer(pkg.infoTarGz);
    expect(rebuilt).toEqual({ ...layer, problems: [] });
    expect(layer.problems).toEqual([]);
  });

  test('the layer of every name kind round-trips through buildInfoTarGz', async () => {
    const data = (text: string) => new TextEncoder().encode(text);
    const gz = await buildInfoTarGz([
      { path: 'info/index.json', type: 'file', mode: 0o644, data: data(INDEX) },
      { path: `${long}.pax`, type: 'file', mode: 0o755, data: data('x') },
      { path: 'info/café.json', type: 'file', mode: 0o644, data: data('é') },
      { path: 'info/l', type: 'symlink', mode: 0o777, data: new Uint8Array(0), linkName: 'index.json' },
    ]);
    const read = await readInfoLayer(gz);
    expect(Buffer.from(read.indexJson!).toString()).toBe(INDEX);
    expect(read.problems).toEqual([]);
  });
});

describe('the info layer holds what buildInfoTarGz writes, nothing else', () => {
  const I = file('info/index.json', indexJson('evil'));
  test.each([
    ['a directory', concat([I, header({ name: 'info/d', type: '5' }), END]), 'the directory "info/d"'],
    [
      'a hard link',
      concat([I, header({ name: 'info/h', type: '1', linkname: 'info/index.json' }), END]),
      'the hardlink "info/h"',
    ],
  ])('%s is refused', async (_, tar, what) => {
    await expect(readInfoLayer(layerAround(tar))).rejects.toThrow(
      `the info layer holds ${what}; info layers hold files and symbolic links only`,
    );
  });

  test('a member outside info/ is refused', async () => {
    await expect(readInfoLayer(layerAround(concat([I, file('lib/x', 'x'), END])))).rejects.toThrow(
      'the info layer holds "lib/x", which is not inside info/',
    );
  });

  test('a symbolic link out of info/ is refused', async () => {
    const tar = concat([I, header({ name: 'info/l', type: '2', linkname: '../lib/x' }), END]);
    await expect(readInfoLayer(layerAround(tar))).rejects.toThrow(
      'symbolic link "info/l" -> "../lib/x" points outside info/',
    );
  });

  test('a wanted file that is a symbolic link is a problem, not a silent gap', async () => {
    const tar = concat([
      I,
      file('info/real.json', '{"weak":["x"]}'),
      header({ name: 'info/run_exports.json', type: '2', linkname: 'real.json' }),
      END,
    ]);
    const read = await readInfoLayer(layerAround(tar));
    expect(read.runExports).toBeUndefined();
    expect(read.problems).toEqual(['info/run_exports.json is a symbolic link and was not followed']);
  });

  test('gzip problems are ArchiveErrors on both paths, alike', async () => {
    const good = layerAround(concat([I, END]));
    const corrupt = Buffer.from(good);
    corrupt[20]! ^= 0xff;
    for (const [bytes, message] of [
      [good.subarray(0, good.length - 10), 'the info layer is truncated (the gzip data ends early)'],
      [Buffer.from('not gzip at all'), 'the info layer is not valid gzip data (incorrect header check)'],
    ] as const) {
      await expect(readInfoLayer(bytes)).rejects.toThrow(message);
      await expect(readInfoLayer(Readable.from(chunks(bytes, 7)))).rejects.toThrow(message);
    }
    const whole = await refusal(() => readInfoLayer(corrupt));
    const streamed = await refusal(() => readInfoLayer(Readable.from(chunks(corrupt, 7))));
    expect(whole).toBeInstanceOf(ArchiveError);
    expect(streamed.message).toBe(whole.message);
  });
});

/** Bytes before the first block header of a zstd frame (RFC 8878 §3.1.1). */
function frameHeaderSize(frame: Uint8Array): number {
  const descriptor = frame[4]!;
  const singleSegment = (descriptor & 0x20) !== 0;
  const sizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][descriptor >> 6]!;
  return 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][descriptor & 3]! + sizeBytes;
}

describe('the zstd of a .conda info archive: one frame, as conda reads it', () => {
  const tar = concat([file('info/index.json', indexJson('evil')), END]);
  const what = `"info-${STEM}.tar.zst"`;
  const read = (info: Uint8Array) => readPackage(chunks(condaAround(STEM, info), 1000), CONDA);

  test('(control) one frame reads', async () => {
    await expect(read(zstd(tar))).resolves.toMatchObject({ index: { name: 'evil' } });
  });

  test.each([
    [
      'a second frame (libzstd decodes it, conda does not)',
      () => concat([zstd(tar.subarray(0, 1024)), zstd(tar.subarray(1024))]),
      `${what} has data after its zstd frame (conda reads only the first frame)`,
    ],
    [
      'zeros after the frame (libzstd ignores them)',
      () => concat([zstd(tar), new Uint8Array(16)]),
      `${what} has data after its zstd frame (conda reads only the first frame)`,
    ],
    [
      'a skippable frame first',
      () => concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]), zstd(tar)]),
      `${what} starts with a skippable zstd frame (conda would read nothing)`,
    ],
    [
      'a truncated frame',
      () => zstd(tar).subarray(0, 20),
      `${what} is truncated (the zstd data ends inside a frame)`,
    ],
    ['an empty member', () => new Uint8Array(0), `${what} is empty`],
    [
      'a frame that needs a dictionary',
      () => {
        const frame = Buffer.from(zstd(tar));
        // Set Dictionary_ID_flag (one byte of ID) and insert the ID where it goes (RFC 8878 §3.1.1.1).
        const at = 5 + (frame[4]! & 0x20 ? 0 : 1);
        return Buffer.concat([
          frame.subarray(0, 4),
          Buffer.from([frame[4]! | 1]),
          frame.subarray(5, at),
          Buffer.from([7]),
          frame.subarray(at),
        ]);
      },
      `${what} needs a zstd dictionary, which conda does not have`,
    ],
    [
      'a block of the reserved type',
      () => {
        const frame = Buffer.from(zstd(tar));
        frame[frameHeaderSize(frame)]! |= 0b110;
        return frame;
      },
      `${what} is not valid zstd data (a block has the reserved type)`,
    ],
  ])('%s is refused', async (_, bytes, message) => {
    const err = await refusal(() => read(bytes()));
    expect(err).toBeInstanceOf(PackageError);
    expect(err.message).toContain(`${CONDA}: ${message}`);
  });
});

describe('repodata from a staged info layer that tar readers would read in two ways', () => {
  const work = mkdtempSync(join(tmpdir(), 'conda-oci-tar-policy-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const FIXTURE = 'demo-pkg-1.2.3-h1234567_0.conda';
  const EVIL_RUN_EXPORTS = '{"weak":["evil-dependency >=6.6.6"]}';
  const EVIL_ABOUT = '{"home":"https://evil.example","summary":"evil"}';

  /** The package's own info layer tar, without its end-of-archive marker. */
  const realTar = (pkg: PackageContents): Uint8Array => {
    const tar = gunzipSync(pkg.infoTarGz);
    let end = tar.length;
    while (end > 0 && tar[end - 1] === 0) end--;
    return tar.subarray(0, Math.ceil(end / 512) * 512);
  };

  /**
   * Before the one policy, repodata's reader stopped at a zero block (so it saw the evil members
   * in front) while tar-stream, which validation used, skips zero blocks and keeps the last of
   * duplicate names (so it saw exactly the package's files); it applied a pax global path to the
   * members after it, which tar-stream ignores without a pax header of their own. Both published
   * the evil run_exports (checked against the code before this policy).
   */
  test.each([
    [
      'evil members, a zero block, then the real layer',
      (pkg: PackageContents) =>
        concat([
          file('info/index.json', Buffer.from(pkg.indexJson).toString()),
          file('info/run_exports.json', EVIL_RUN_EXPORTS),
          file('info/about.json', EVIL_ABOUT),
          ZERO_BLOCK,
          realTar(pkg),
          END,
        ]),
      'lone-zero-block',
    ],
    [
      'the real layer, then a pax global header that renames the member after it',
      (pkg: PackageContents) =>
        concat([
          realTar(pkg),
          pax([['path', 'info/run_exports.json']], 'g'),
          file('info/recipe/notes.json', EVIL_RUN_EXPORTS),
          END,
        ]),
      'global-header',
    ],
  ])('%s: refused, the package published from its index layer only', async (title, craft, rule) => {
    const dir = join(work, title.replace(/[^a-z]+/g, '-'));
    const url = `oci-layout:${dir}`;
    const uploaded = await execute(
      { command: 'upload', files: [fixturePath(FIXTURE)], to: url },
      { reporter: silentReporter },
    );
    expect(uploaded.exitCode).toBe(0);
    const pkg = await readPackageFile(fixturePath(FIXTURE));
    const store = new LayoutStore(dir);
    const channel = parseChannel(url);
    const ref = packageReference('linux-64', pkg.index.name, pkg.index.version, pkg.index.build);
    const artifact = buildPackageArtifact(
      { ...pkg, infoTarGz: layerAround(craft(pkg)) },
      readFileSync(fixturePath(FIXTURE)),
    );
    await pushArtifact(store.repository(channelRepository(channel, ref.repository)), artifact, {
      tag: ref.tag,
    });

    const warnings: string[] = [];
    const result = await execute(
      { command: 'repodata', channel: url },
      { reporter: { info() {}, warn: (m) => warnings.push(m) } },
    );
    expect(result.exitCode).toBe(0);
    expect(warnings.join('\n')).toContain(`(tar rule "${rule}")`);
    const published = async (relative: string, kind: MetadataKind): Promise<string> => {
      const repository = store.repository(channelRepository(channel, relative));
      const { bytes } = await repository.fetchManifest(LATEST_TAG);
      const layer = metadataJsonLayer(bytes, kind, relative);
      return Buffer.from(
        await repository.readBlob({ digest: layer.digest, size: layer.size }, 1 << 26),
      ).toString();
    };
    const repodata = JSON.parse(
      await published(`linux-64/${METADATA_KINDS.repodata.component}`, METADATA_KINDS.repodata),
    ) as {
      'packages.conda': Record<string, unknown>;
    };
    expect(Object.keys(repodata['packages.conda'])).toEqual([FIXTURE]);
    for (const [relative, kind] of [
      [`linux-64/${METADATA_KINDS.runExports.component}`, METADATA_KINDS.runExports],
      [METADATA_KINDS.channeldata.component, METADATA_KINDS.channeldata],
    ] as const) {
      const text = await published(relative, kind);
      expect(text).not.toContain('evil');
    }
  });
});
