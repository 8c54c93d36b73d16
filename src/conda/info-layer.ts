/**
 * Reads what repodata needs from a package's info layer (the gzipped tar of `info/`, SPEC §4)
 * while it streams: `info/index.json` (its exact bytes), `info/run_exports.json`, the channeldata
 * fields of `info/about.json`, and what `info/paths.json` says about prefixes and link scripts.
 * Everything else is read past. Sizes are bounded, so a hostile layer costs time, not memory.
 *
 * A nightly run reads tens of thousands of small layers, and a zlib stream per layer (a
 * thread-pool round trip per chunk) costs more than the bytes: a small layer is read whole and
 * inflated with one synchronous call, a large one streams through fflate's synchronous gunzip;
 * both feed the synchronous tar reader.
 */
import { gunzipSync } from 'node:zlib';
import { Gunzip } from 'fflate';
import { SizeLimitError } from '../oci/errors.js';
import { ArchiveError } from './archive-error.js';
import { ABOUT_FIELDS, postInstallFromPaths, type JsonObject, type PostInstall } from './repodata.js';
import { TarReader } from './tar-reader.js';

export const INFO_INDEX_JSON = 'info/index.json';
export const INFO_RUN_EXPORTS_JSON = 'info/run_exports.json';
export const INFO_ABOUT_JSON = 'info/about.json';
export const INFO_PATHS_JSON = 'info/paths.json';

export interface InfoLayerLimits {
  /** Uncompressed bytes of the whole tar. */
  totalBytes: number;
  /** Largest member kept (paths.json of very large packages is tens of MB). */
  memberBytes: number;
}

export const DEFAULT_INFO_LAYER_LIMITS: InfoLayerLimits = {
  totalBytes: 512 * 1024 * 1024,
  memberBytes: 64 * 1024 * 1024,
};

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
 * Reads the info layer from its (gzipped) bytes: whole (small layers, the usual case: one
 * synchronous zlib call bounded by the limit) or as they arrive (the source is read to its end).
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
        if (entry.type !== 'file' || !WANTED.has(entry.path)) return undefined;
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
    'the info layer',
  );
  if (source instanceof Uint8Array) {
    let tarBytes: Uint8Array;
    try {
      tarBytes = gunzipSync(source, { maxOutputLength: limits.totalBytes });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE')
        throw new SizeLimitError('info layer (uncompressed)', limits.totalBytes);
      throw err;
    }
    tar.push(tarBytes);
  } else {
    let total = 0;
    const gunzip = new Gunzip((chunk) => {
      total += chunk.length;
      if (total > limits.totalBytes) throw new SizeLimitError('info layer (uncompressed)', limits.totalBytes);
      tar.push(chunk);
    });
    for await (const chunk of source) gunzip.push(chunk, false);
    gunzip.push(new Uint8Array(0), true);
  }
  if (!tar.ended) throw new ArchiveError('the info layer ends before its end-of-archive marker');

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
