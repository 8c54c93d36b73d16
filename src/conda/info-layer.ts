/**
 * Reads what repodata needs from a package's info layer (the gzipped tar of `info/`, SPEC §4)
 * while it streams: `info/index.json` (its exact bytes), `info/run_exports.json`, the channeldata
 * fields of `info/about.json`, and what `info/paths.json` says about prefixes and link scripts.
 * Everything else is read past. Sizes are bounded, so a hostile layer costs time, not memory.
 *
 * The tar goes through the one tar policy (tar-reader.ts) that the package reader applies, and
 * the layer must be what buildInfoTarGz writes: info/ files and symbolic links (staying in info/)
 * only. The gzip is Node's zlib on both paths, under the expansion limit (expansion.ts) that the
 * package reader checked when it built the layer. A nightly run reads tens of thousands of small
 * layers, and a thread-pool round trip per chunk costs more than their bytes: a small layer is
 * inflated with one synchronous call (into at most SYNC_OUTPUT), anything larger streams.
 */
import { createGunzip, gunzipSync } from 'node:zlib';
import { SizeLimitError } from '../oci/errors.js';
import { formatBytes } from '../util/format-bytes.js';
import { ArchiveError, quote } from './archive-error.js';
import { DEFAULT_EXPANSION, ExpansionLimit, type ExpansionLimits } from './expansion.js';
import { checkInfoLink, isInfoPath, MAX_INFO_MEMBERS } from './info-tarball.js';
import { ABOUT_FIELDS, postInstallFromPaths, type JsonObject, type PostInstall } from './repodata.js';
import { TarReader, type TarEntry } from './tar-reader.js';
import { OUTPUT_CHUNK, ZlibDecoder } from './zlib-decoder.js';

export const INFO_INDEX_JSON = 'info/index.json';
export const INFO_RUN_EXPORTS_JSON = 'info/run_exports.json';
export const INFO_ABOUT_JSON = 'info/about.json';
export const INFO_PATHS_JSON = 'info/paths.json';

export interface InfoLayerLimits {
  /** Uncompressed bytes of the whole tar. */
  totalBytes: number;
  /** Largest member kept (paths.json of very large packages is tens of MB). */
  memberBytes: number;
  /** Members of the layer: those of info/, which the package reader bounds the same way. */
  members?: number;
  /** The expansion limit of the gzip; the package reader refuses packages whose layer exceeds it. */
  expansion?: ExpansionLimits;
}

export const DEFAULT_INFO_LAYER_LIMITS: InfoLayerLimits = {
  totalBytes: 512 * 1024 * 1024,
  memberBytes: 64 * 1024 * 1024,
  members: MAX_INFO_MEMBERS,
  expansion: DEFAULT_EXPANSION,
};

/**
 * The most a whole layer is inflated into in one synchronous call; larger layers stream. Below
 * the expansion floor, which any layer may reach, so both paths give the same verdict.
 */
const SYNC_OUTPUT = 8 * 1024 * 1024;
const WHAT = 'the info layer';

export interface InfoLayerContents {
  /** The exact bytes of info/index.json, when the layer has it. */
  indexJson?: Uint8Array;
  /** info/run_exports.json, parsed; undefined when the package has none. */
  runExports?: JsonObject;
  /** The channeldata fields of info/about.json. */
  about?: JsonObject;
  /** Prefix and link-script flags from info/paths.json (all false without one). */
  postInstall: PostInstall;
  /** Members that were there but could not be read, in words. */
  problems: string[];
}

const WANTED = new Set([INFO_INDEX_JSON, INFO_RUN_EXPORTS_JSON, INFO_ABOUT_JSON, INFO_PATHS_JSON]);

function parseObject(bytes: Uint8Array, what: string, problems: string[]): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as JsonObject;
    problems.push(`${what} is not a JSON object`);
  } catch {
    problems.push(`${what} is not valid JSON`);
  }
  return undefined;
}

/**
 * Reads the info layer from its (gzipped) bytes: whole (small layers, the usual case) or as they
 * arrive (the source is read to its end). Problems of the layer are ArchiveErrors.
 */
export async function readInfoLayer(
  source: Uint8Array | AsyncIterable<Uint8Array>,
  limits: InfoLayerLimits = DEFAULT_INFO_LAYER_LIMITS,
): Promise<InfoLayerContents> {
  const members = new Map<string, Uint8Array>();
  const problems: string[] = [];
  const tar = new TarReader(
    {
      entry(entry) {
        checkLayerMember(entry);
        if (entry.type !== 'file' || !WANTED.has(entry.path)) {
          if (WANTED.has(entry.path)) problems.push(`${entry.path} is a symbolic link and was not followed`);
          return undefined;
        }
        if (entry.size > limits.memberBytes) {
          problems.push(`${entry.path} is larger than ${limits.memberBytes} bytes and was skipped`);
          return undefined;
        }
        const data = new Uint8Array(entry.size);
        let fill = 0;
        return {
          data(chunk) {
            data.set(chunk, fill);
            fill += chunk.length;
          },
          end() {
            members.set(entry.path, data);
          },
        };
      },
    },
    WHAT,
    { maxMembers: limits.members ?? MAX_INFO_MEMBERS },
  );
  const limit = new ExpansionLimit(WHAT, limits.expansion ?? DEFAULT_EXPANSION, {
    bytes: limits.totalBytes,
    error: () =>
      new ArchiveError(
        `${WHAT} decompresses to more than ${formatBytes(limits.totalBytes)}, the limit for info layers`,
        { cause: new SizeLimitError(`${WHAT} (uncompressed)`, limits.totalBytes) },
      ),
  });
  const whole = source instanceof Uint8Array ? inflateSmall(source, limit) : undefined;
  if (whole !== undefined) tar.push(whole);
  else {
    const chunks = source instanceof Uint8Array ? [source] : source;
    await inflateStreaming(chunks, limit, (chunk) => tar.push(chunk));
  }
  tar.end();
  return describeLayer(members, problems);
}

/** The layer holds what buildInfoTarGz writes: files and symbolic links of info/. */
function checkLayerMember(entry: TarEntry): void {
  if (!isInfoPath(entry.path) || entry.path === 'info') {
    throw new ArchiveError(`${WHAT} holds ${quote(entry.name)}, which is not inside info/`);
  }
  if (entry.type !== 'file' && entry.type !== 'symlink') {
    throw new ArchiveError(
      `${WHAT} holds the ${entry.type} ${quote(entry.name)}; info layers hold files and symbolic links only`,
    );
  }
  checkInfoLink(entry);
}

/**
 * One synchronous inflate into at most what any layer may expand to (the floor; SYNC_OUTPUT at
 * most), or undefined when the layer inflates to more: then it streams, and the expansion limit
 * is checked as the bytes come out.
 */
function inflateSmall(bytes: Uint8Array, limit: ExpansionLimit): Uint8Array | undefined {
  try {
    return gunzipSync(bytes, { maxOutputLength: Math.min(SYNC_OUTPUT, limit.allowed(0)) });
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_BUFFER_TOO_LARGE') throw gzipError(err as Error);
    return undefined;
  }
}

async function inflateStreaming(
  source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  limit: ExpansionLimit,
  onData: (chunk: Uint8Array) => void,
): Promise<void> {
  let produced = 0;
  const gunzip = new ZlibDecoder(
    createGunzip({ chunkSize: OUTPUT_CHUNK }),
    (chunk, consumed) => {
      produced += chunk.length;
      limit.check(produced, consumed);
      onData(chunk);
    },
    gzipError,
  );
  try {
    for await (const chunk of source) {
      gunzip.write(chunk);
      await gunzip.settle();
    }
    gunzip.end();
    await gunzip.settle();
  } catch (err) {
    gunzip.destroy();
    throw err;
  }
}

function gzipError(err: Error & { code?: string }): ArchiveError {
  if (err.code === 'Z_BUF_ERROR')
    return new ArchiveError(`${WHAT} is truncated (the gzip data ends early)`, { cause: err });
  return new ArchiveError(`${WHAT} is not valid gzip data (${err.message})`, { cause: err });
}

function describeLayer(members: Map<string, Uint8Array>, problems: string[]): InfoLayerContents {
  const contents: InfoLayerContents = { postInstall: postInstallFromPaths(undefined), problems };
  const index = members.get(INFO_INDEX_JSON);
  if (index) contents.indexJson = index;
  const runExports = members.get(INFO_RUN_EXPORTS_JSON);
  if (runExports) {
    const parsed = parseObject(runExports, INFO_RUN_EXPORTS_JSON, problems);
    if (parsed) contents.runExports = parsed;
  }
  const aboutBytes = members.get(INFO_ABOUT_JSON);
  if (aboutBytes) {
    const about = parseObject(aboutBytes, INFO_ABOUT_JSON, problems);
    if (about) {
      const kept: JsonObject = {};
      for (const field of ABOUT_FIELDS) if (about[field] !== undefined) kept[field] = about[field]!;
      if (Object.keys(kept).length > 0) contents.about = kept;
    }
  }
  const paths = members.get(INFO_PATHS_JSON);
  if (paths) {
    const parsed = parseObject(paths, INFO_PATHS_JSON, problems);
    if (parsed) contents.postInstall = postInstallFromPaths(parsed);
  }
  return contents;
}
