/**
 * Reads what repodata needs from a package's info layer (the gzipped tar of `info/`, SPEC §4)
 * while it streams: `info/index.json` (its exact bytes), `info/run_exports.json`, the channeldata
 * fields of `info/about.json`, and what `info/paths.json` says about prefixes and link scripts.
 * Everything else is read past. Sizes are bounded, so a hostile layer costs time, not memory.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tarStream from 'tar-stream';
import { SizeLimitError } from '../oci/errors.js';
import { ABOUT_FIELDS, postInstallFromPaths, type JsonObject, type PostInstall } from './repodata.js';

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

function normalize(name: string): string {
  return name.replace(/^(\.\/)+/, '').replace(/^\/+/, '');
}

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

/** Reads the info layer from a stream of its (gzipped) bytes; the stream is consumed to its end. */
export async function readInfoLayer(
  source: Readable,
  limits: InfoLayerLimits = DEFAULT_INFO_LAYER_LIMITS,
): Promise<InfoLayerContents> {
  const members = new Map<string, Uint8Array>();
  const problems: string[] = [];
  const extract = tarStream.extract();
  let total = 0;
  const consume = (async () => {
    for await (const entry of extract) {
      const header = entry.header;
      const path = normalize(header.name);
      const wanted = WANTED.has(path) && header.type === 'file';
      const size = header.size ?? 0;
      total += size;
      if (total > limits.totalBytes) throw new SizeLimitError('info layer (uncompressed)', limits.totalBytes);
      if (wanted && size <= limits.memberBytes) {
        const chunks: Buffer[] = [];
        for await (const chunk of entry as AsyncIterable<Buffer>) chunks.push(chunk);
        members.set(path, new Uint8Array(Buffer.concat(chunks)));
      } else {
        if (wanted) problems.push(`${path} is larger than ${limits.memberBytes} bytes and was skipped`);
        entry.resume();
        await new Promise<void>((resolve, reject) => {
          entry.once('end', resolve);
          entry.once('error', reject);
        });
      }
    }
  })().catch((err: unknown) => {
    extract.destroy(err as Error);
    throw err;
  });
  await Promise.all([pipeline(source, createGunzip(), extract), consume]);

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
