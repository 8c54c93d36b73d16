/**
 * Reads a conda package (.conda or .tar.bz2) in one streaming pass: the sha256, md5 and size of
 * the whole file, the exact bytes of info/index.json, the parsed and type-checked index, and the
 * deterministic info layer (SPEC §4). The input may be a registry blob on the wire: no random
 * access, no temporary file, memory bounded by the limits below whatever the package size.
 *
 * - .conda: the zip is walked by its local headers (zip-stream.ts) and cross-checked with its
 *   central directory at the end; `info-<stem>.tar.zst` is decompressed as it arrives (zstd.ts,
 *   Node's libzstd) and read as tar; `pkg-<stem>.tar.zst` is only hashed and CRC-checked, never
 *   decompressed.
 * - .tar.bz2: bzip2 (bzip2.ts) into tar; every member name and link is checked, info/ members are
 *   kept, the rest is drained.
 *
 * All tar goes through the one tar policy (tar-reader.ts), all decompression through the
 * expansion limit (expansion.ts). Every problem with the package ends in a PackageError that
 * names the file.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { SizeLimitError } from '../oci/errors.js';
import { ArchiveError, quote } from './archive-error.js';
import { formatBytes } from '../util/format-bytes.js';
import { Bzip2Decoder } from './bzip2.js';
import { DEFAULT_EXPANSION, ExpansionLimit, type ExpansionLimits } from './expansion.js';
import { DEFAULT_INFO_LAYER_LIMITS, readInfoLayer } from './info-layer.js';
import { localHasher, type PackageHasher } from './package-hashes.js';
import {
  buildInfoTarGz,
  checkInfoLink,
  INDEX_JSON,
  InfoCollector,
  isInfoPath,
  MAX_INFO_MEMBERS,
  RUN_EXPORTS_JSON,
} from './info-tarball.js';
import { TarReader } from './tar-reader.js';
import { ZipStreamReader, type ZipMember, type ZipMemberSink } from './zip-stream.js';
import { ZstdDecoder } from './zstd.js';

const MIB = 1024 * 1024;

export interface PackageLimits {
  /**
   * Uncompressed size of info/: the decompressed info-*.tar.zst of a .conda, the sum of the info/
   * member sizes of a .tar.bz2. A decompression bomb stops at this many bytes.
   */
  infoBytes: number;
  /** Size of info/index.json. */
  indexJsonBytes: number;
  /** Members of info/ (files, links, directories). */
  infoMembers: number;
  /** Members of any one tar archive (a .tar.bz2, or the info archive of a .conda). */
  archiveMembers?: number;
  /**
   * The expansion limit (expansion.ts) of what is decompressed: the tar of a .tar.bz2 may be at
   * most `expansionRatio` times the compressed bytes read so far plus `expansionAllowance`; the
   * same for the info archive of a .conda (of its compressed size), and for the info layer
   * built from the package (so that the info layer reader, with the same limit, reads it).
   */
  expansionRatio?: number;
  expansionAllowance?: number;
}

/**
 * - info/ 256 MiB: the largest info/ folders on conda-forge (paths.json of packages with 100k+
 *   files, bundled test data, license collections) are tens of MB; 256 MiB leaves room while a
 *   bomb is stopped after a fraction of a second of decompression and ~1 GiB of memory at most.
 * - index.json 1 MiB: real ones are under 10 KB, metapackages with hundreds of pins under 100 KB.
 * - 100,000 info/ members: real packages have tens (recipe and test folders, a few thousand at most).
 * - 1,000,000 members per archive: the largest packages hold a few hundred thousand files; this
 *   bounds the memory of the duplicate and link checks (~100 MB of names).
 * - expansion 100:1 plus 16 MiB (DEFAULT_EXPANSION, see expansion.ts): real payloads compress
 *   2-20:1, bzip2 reaches ~1,000,000:1 on zeros; a bomb stops after ~0.1 s of decoding.
 */
export const DEFAULT_LIMITS: Readonly<Required<PackageLimits>> = Object.freeze({
  infoBytes: 256 * MIB,
  indexJsonBytes: 1 * MIB,
  infoMembers: MAX_INFO_MEMBERS,
  archiveMembers: 1_000_000,
  expansionRatio: DEFAULT_EXPANSION.ratio,
  expansionAllowance: DEFAULT_EXPANSION.floor,
});

/** info/index.json, type-checked for the fields this project relies on; other keys are kept as read. */
export interface IndexJson {
  name: string;
  version: string;
  build: string;
  build_number: number;
  /** `[]` when index.json has no `depends` (as conda reads it). */
  depends: string[];
  constrains?: string[];
  /** Missing in very old packages: the caller then needs the subdir from elsewhere. */
  subdir?: string;
  /** Milliseconds or seconds since the epoch, as written by the build tool. */
  timestamp?: number;
  [key: string]: unknown;
}

export type PackageFormat = 'conda' | 'tar.bz2';

export interface PackageContents {
  /** Base name, e.g. `demo-pkg-1.2.3-h1234567_0.conda`. */
  fileName: string;
  format: PackageFormat;
  /** Of the whole file: lower-case hex digests and the size in bytes. */
  sha256: string;
  md5: string;
  size: number;
  /** The exact bytes of info/index.json. */
  indexJson: Uint8Array;
  index: IndexJson;
  /** The deterministic gzipped tar of info/ (see buildInfoTarGz). */
  infoTarGz: Uint8Array;
  /** info/run_exports.json, parsed, when the package has one. */
  runExports?: unknown;
  /** index.timestamp in milliseconds (seconds are converted), when present. */
  timestamp?: number;
}

export class PackageError extends Error {
  readonly code = 'PACKAGE';
  constructor(
    readonly file: string,
    readonly problem: string,
    options?: ErrorOptions,
  ) {
    super(`${file}: ${problem}`, options);
    this.name = 'PackageError';
  }
}

const NOT_A_PACKAGE_NAME = 'is not a conda package file name (it must end in .conda or .tar.bz2)';

/** The limits with DEFAULT_LIMITS for what is not given. */
function withDefaults(limits: PackageLimits): Required<PackageLimits> {
  const all: Required<PackageLimits> = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(all) as (keyof PackageLimits)[]) {
    const value = limits[key];
    if (value !== undefined) all[key] = value;
  }
  return all;
}

/** The package format from a file name, or undefined. */
export function packageFormat(fileName: string): PackageFormat | undefined {
  if (fileName.endsWith('.conda')) return 'conda';
  if (fileName.endsWith('.tar.bz2')) return 'tar.bz2';
  return undefined;
}

export interface ReadOptions {
  /**
   * The hex sha256 the input is already verified against: a stream that fails at its end unless
   * its bytes hash to it (Repository.openBlob). The reader then reports it instead of hashing the
   * bytes a second time (~0.4 s of CPU per 500 MB); a read that ends without that stream's error
   * proves it.
   */
  verifiedSha256?: string;
  /** Computes sha256 and md5 (e.g. a ThreadHasher, on another thread); default: on this one. */
  hasher?: PackageHasher;
}

/**
 * Reads a package from a stream. Errors of the stream itself (a network failure, a digest
 * mismatch found by a verifying stream) are rethrown unchanged; every problem of the package is a
 * PackageError. On a PackageError the input is closed without reading further.
 *
 * No input chunk is kept once the next is asked for (what is needed later is copied): upload's
 * streamed path reads into the same buffers again (commands/file-pieces.ts).
 */
export async function readPackage(
  input: NodeJS.ReadableStream | AsyncIterable<Uint8Array>,
  fileName: string,
  limits: PackageLimits = DEFAULT_LIMITS,
  options: ReadOptions = {},
): Promise<PackageContents> {
  const name = baseName(fileName);
  const hasher = options.hasher ?? localHasher(options.verifiedSha256 === undefined);
  let size = 0;
  const iterator = (input as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  let reading = false;
  let parser: Parser | undefined;
  try {
    const format = packageFormat(name);
    if (format === undefined) throw new ArchiveError(NOT_A_PACKAGE_NAME);
    const all = withDefaults(limits);
    parser = format === 'conda' ? new CondaParser(name, all) : new TarBz2Parser(all);
    for (;;) {
      reading = true;
      const next = await iterator.next();
      reading = false;
      if (next.done) break;
      const chunk = next.value;
      if (!(chunk instanceof Uint8Array)) {
        throw new ArchiveError('the input stream yields text, not bytes (do not set an encoding on it)');
      }
      const room = hasher.update(chunk);
      if (room) await room;
      size += chunk.length;
      parser.push(chunk);
      await parser.settle();
    }
    const info = await parser.end();
    const contents = await describe(name, format, info, all);
    const digests = await hasher.digests();
    return { ...contents, sha256: options.verifiedSha256 ?? digests.sha256!, md5: digests.md5, size };
  } catch (err) {
    parser?.destroy();
    if (reading) throw err; // an error of the input itself, unchanged
    await closeQuietly(iterator);
    throw toPackageError(name, err);
  }
}

/** Reads a package file from disk. */
export async function readPackageFile(path: string, limits?: PackageLimits): Promise<PackageContents> {
  const name = baseName(path);
  if (packageFormat(name) === undefined) throw new PackageError(name, NOT_A_PACKAGE_NAME);
  try {
    // Reads of at most the file's size: a 1 MiB buffer per read of a small file costs GC time.
    const { size } = await stat(path);
    const highWaterMark = Math.max(64 * 1024, Math.min(MIB, size));
    return await readPackage(createReadStream(path, { highWaterMark }), name, limits);
  } catch (err) {
    if (err instanceof PackageError) throw err;
    const detail = err instanceof Error ? err.message : String(err);
    throw new PackageError(name, `cannot be read (${detail})`, { cause: err });
  }
}

interface Parser {
  push(chunk: Uint8Array): void;
  /** Waits for the decoding of what was pushed that runs off the main thread (zstd). */
  settle(): Promise<void>;
  end(): Promise<InfoCollector>;
  /** Stops any decoding still running (the read failed). */
  destroy(): void;
}

function expansionOf(limits: Required<PackageLimits>): ExpansionLimits {
  return { ratio: limits.expansionRatio, floor: limits.expansionAllowance };
}

class CondaParser implements Parser {
  private readonly zip = new ZipStreamReader({ member: (member) => this.member(member) });
  private readonly stem: string;
  private readonly info: InfoCollector;
  private metadata: Uint8Array | undefined;
  /** The info archive while it is being decoded: its zstd decoder, and whether all of it was written. */
  private infoArchive: { zstd: ZstdDecoder; tar: TarReader; written: boolean } | undefined;
  private infoRead = false;
  private payloadSeen = false;

  constructor(
    fileName: string,
    private readonly limits: Required<PackageLimits>,
  ) {
    this.stem = fileName.slice(0, -'.conda'.length);
    this.info = new InfoCollector(limits);
  }

  push(chunk: Uint8Array): void {
    this.zip.push(chunk);
  }

  async settle(): Promise<void> {
    const archive = this.infoArchive;
    if (archive === undefined) return;
    await archive.zstd.settle();
    if (!archive.written) return;
    archive.tar.end();
    this.infoArchive = undefined;
    this.infoRead = true;
  }

  destroy(): void {
    this.infoArchive?.zstd.destroy();
  }

  async end(): Promise<InfoCollector> {
    this.zip.end();
    await this.settle();
    if (this.metadata === undefined) throw new ArchiveError('the .conda has no metadata.json');
    if (!this.infoRead) throw new ArchiveError(`the .conda has no ${quote(`info-${this.stem}.tar.zst`)}`);
    if (!this.payloadSeen) throw new ArchiveError(`the .conda has no ${quote(`pkg-${this.stem}.tar.zst`)}`);
    const metadata = parseJson(this.metadata, 'metadata.json');
    if (!isObject(metadata) || metadata['conda_pkg_format_version'] !== 2) {
      throw new ArchiveError('metadata.json does not say "conda_pkg_format_version": 2');
    }
    return this.info;
  }

  private member(member: ZipMember): ZipMemberSink | undefined {
    const { name } = member;
    if (name === 'metadata.json') {
      if (member.size > 64 * 1024)
        throw new ArchiveError(`metadata.json is ${formatBytes(member.size)}, more than 64 KiB`);
      const bytes = new Uint8Array(member.size);
      let fill = 0;
      return {
        data: (chunk) => {
          bytes.set(chunk, fill);
          fill += chunk.length;
        },
        end: () => {
          this.metadata = bytes;
        },
      };
    }
    if (name === `pkg-${this.stem}.tar.zst`) {
      this.payloadSeen = true;
      return undefined; // hashed and CRC-checked by the zip reader, never decompressed
    }
    if (name === `info-${this.stem}.tar.zst`) return this.infoMember(member);
    const kind = /^(info|pkg)-.*\.tar\.zst$/.exec(name)?.[1];
    if (kind !== undefined) {
      throw new ArchiveError(
        `member ${quote(name)} does not match the file name (expected ${quote(`${kind}-${this.stem}.tar.zst`)})`,
      );
    }
    throw new ArchiveError(
      `unexpected member ${quote(name)} (a .conda holds metadata.json, info-<name>.tar.zst and pkg-<name>.tar.zst)`,
    );
  }

  private infoMember(member: ZipMember): ZipMemberSink {
    const what = quote(member.name);
    const { infoBytes } = this.limits;
    // zstd can only grow incompressible data by a few bytes per 128 KiB block.
    const maxCompressed = infoBytes + Math.ceil(infoBytes / 1024) + 1024;
    if (member.size > maxCompressed) {
      throw new ArchiveError(
        `${what} is ${formatBytes(member.size)}, more than the limit of ${formatBytes(infoBytes)} for info/`,
        { cause: new SizeLimitError(what, infoBytes) },
      );
    }
    const limit = new ExpansionLimit(what, expansionOf(this.limits), {
      bytes: infoBytes,
      error: () =>
        new ArchiveError(
          `${what} decompresses to more than ${formatBytes(infoBytes)} (the limit for info/; a decompression bomb?)`,
          { cause: new SizeLimitError(`${what} (decompressed)`, infoBytes) },
        ),
    });
    const tar = new TarReader(
      {
        entry: (entry) => {
          if (entry.path === '') return undefined;
          if (!isInfoPath(entry.path)) {
            throw new ArchiveError(
              `the info archive ${what} holds ${quote(entry.name)}, which is outside info/`,
            );
          }
          checkInfoLink(entry);
          return this.info.entry(entry);
        },
      },
      `the info archive ${what}`,
      { maxMembers: this.limits.archiveMembers },
    );
    const zstd = new ZstdDecoder(what, member.size, limit, (chunk) => tar.push(chunk));
    const archive = { zstd, tar, written: false };
    this.infoArchive = archive;
    return {
      data: (chunk) => archive.zstd.write(chunk),
      end: () => {
        archive.zstd.end();
        archive.written = true;
      },
    };
  }
}

class TarBz2Parser implements Parser {
  private readonly info: InfoCollector;
  private readonly tar: TarReader;
  private readonly bzip2: Bzip2Decoder;

  constructor(limits: Required<PackageLimits>) {
    this.info = new InfoCollector(limits);
    this.tar = new TarReader(
      {
        entry: (entry) => {
          if (!isInfoPath(entry.path)) return undefined;
          checkInfoLink(entry);
          return this.info.entry(entry);
        },
      },
      'the tar archive',
      { maxMembers: limits.archiveMembers },
    );
    const limit = new ExpansionLimit('the tar archive', expansionOf(limits));
    this.bzip2 = new Bzip2Decoder((chunk) => {
      limit.check(this.bzip2.bytesOut, this.bzip2.bytesIn);
      this.tar.push(chunk);
    });
  }

  push(chunk: Uint8Array): void {
    this.bzip2.push(chunk);
  }

  settle(): Promise<void> {
    return Promise.resolve();
  }

  async end(): Promise<InfoCollector> {
    this.bzip2.end();
    this.tar.end();
    return this.info;
  }

  destroy(): void {}
}

async function describe(
  fileName: string,
  format: PackageFormat,
  info: InfoCollector,
  limits: Required<PackageLimits>,
): Promise<Omit<PackageContents, 'sha256' | 'md5' | 'size'>> {
  const indexJson = info.read(INDEX_JSON);
  if (indexJson === undefined) throw new ArchiveError('the package has no info/index.json');
  if (indexJson.length > limits.indexJsonBytes) {
    // Reached through a link: the size of info/index.json itself was checked as it was read.
    throw new ArchiveError(
      `info/index.json is ${formatBytes(indexJson.length)}, more than the limit of ${formatBytes(limits.indexJsonBytes)}`,
      { cause: new SizeLimitError('info/index.json', limits.indexJsonBytes) },
    );
  }
  const index = parseIndex(indexJson);
  const expected = `${index.name}-${index.version}-${index.build}.${format}`;
  if (expected !== fileName) {
    throw new ArchiveError(
      `the file name does not match info/index.json, which gives name ${quote(index.name)}, version ${quote(index.version)}, build ${quote(index.build)}: expected ${quote(expected)}`,
    );
  }
  const infoTarGz = await buildInfoTarGz(info.list());
  await checkReadsBack(infoTarGz, limits);
  const contents: Omit<PackageContents, 'sha256' | 'md5' | 'size'> = {
    fileName,
    format,
    indexJson,
    index,
    infoTarGz,
  };
  const runExports = info.read(RUN_EXPORTS_JSON);
  if (runExports !== undefined) contents.runExports = parseJson(runExports, RUN_EXPORTS_JSON);
  if (index.timestamp !== undefined) contents.timestamp = timestampMs(index.timestamp);
  return contents;
}

/**
 * The info layer must read back with the reader repodata uses (info-layer.ts: the same tar policy,
 * the same expansion limit): a package whose info/ expands more in gzip than that limit allows
 * is refused here rather than published without its run_exports.
 */
async function checkReadsBack(infoTarGz: Uint8Array, limits: Required<PackageLimits>): Promise<void> {
  try {
    await readInfoLayer(infoTarGz, {
      ...DEFAULT_INFO_LAYER_LIMITS,
      members: limits.infoMembers,
      expansion: expansionOf(limits),
    });
  } catch (err) {
    if (!(err instanceof ArchiveError)) throw err;
    throw new ArchiveError(`the info layer built from this package cannot be read back: ${err.problem}`, {
      cause: err.cause ?? err,
    });
  }
}

/** Type checks of info/index.json; the message names the key and what it holds. */
export function parseIndex(bytes: Uint8Array): IndexJson {
  const value = parseJson(bytes, INDEX_JSON);
  if (!isObject(value))
    throw new ArchiveError(`info/index.json is not a JSON object but ${describeValue(value)}`);
  const fail = (key: string, wanted: string): never => {
    throw new ArchiveError(
      `info/index.json: ${quote(key)} must be ${wanted}, not ${describeValue(value[key])}`,
    );
  };
  for (const key of ['name', 'version', 'build']) {
    const field = value[key];
    if (typeof field !== 'string' || field === '') fail(key, 'a non-empty string');
  }
  const buildNumber = value['build_number'];
  if (typeof buildNumber !== 'number' || !Number.isSafeInteger(buildNumber) || buildNumber < 0) {
    fail('build_number', 'a non-negative integer');
  }
  if (value['depends'] === undefined) value['depends'] = [];
  for (const key of ['depends', 'constrains']) {
    const field = value[key];
    if (field !== undefined && !(Array.isArray(field) && field.every((item) => typeof item === 'string'))) {
      fail(key, 'a list of strings');
    }
  }
  if (value['subdir'] !== undefined && (typeof value['subdir'] !== 'string' || value['subdir'] === '')) {
    fail('subdir', 'a non-empty string');
  }
  const timestamp = value['timestamp'];
  if (
    timestamp !== undefined &&
    (typeof timestamp !== 'number' || !Number.isFinite(timestamp) || timestamp < 0)
  ) {
    fail('timestamp', 'a non-negative number');
  }
  return value as IndexJson;
}

/** conda writes milliseconds; old packages wrote seconds (conda tells them apart the same way). */
function timestampMs(timestamp: number): number {
  return Math.round(timestamp > 253402300799 ? timestamp : timestamp * 1000);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function parseJson(bytes: Uint8Array, what: string): unknown {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new ArchiveError(`${what} is not valid UTF-8`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new ArchiveError(`${what} is not valid JSON (${detail})`);
  }
  if (nestingExceeds(value, MAX_JSON_DEPTH)) {
    // JSON.parse takes any depth; what reads the value later (repodata's canonical JSON, which
    // recurses) would overflow its stack on one such package and fail a whole subdir.
    throw new ArchiveError(`${what} nests arrays or objects more than ${MAX_JSON_DEPTH} levels deep`);
  }
  return value;
}

/** index.json and run_exports.json are two or three levels deep. */
const MAX_JSON_DEPTH = 32;

/** True when `value` nests arrays/objects deeper than `limit` (iterative: any depth is safe). */
function nestingExceeds(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (current === null || typeof current !== 'object') continue;
    if (depth >= limit) return true;
    for (const child of Object.values(current)) stack.push([child, depth + 1]);
  }
  return false;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `the string ${quote(value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

function baseName(fileName: string): string {
  const name = basename(fileName.replaceAll('\\', '/'));
  return name === '' ? fileName : name;
}

function toPackageError(file: string, err: unknown): PackageError {
  if (err instanceof PackageError) return err;
  if (err instanceof ArchiveError) {
    return new PackageError(file, err.problem, err.cause === undefined ? undefined : { cause: err.cause });
  }
  // A corrupt structure that no check caught, or a bug: still reported as a problem of this file.
  const detail = err instanceof Error ? err.message : String(err);
  return new PackageError(file, `cannot be read (${detail})`, { cause: err });
}

async function closeQuietly(iterator: AsyncIterator<unknown>): Promise<void> {
  try {
    await iterator.return?.();
  } catch {
    // the input is being abandoned; its own close errors do not matter
  }
}
