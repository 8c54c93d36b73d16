/**
 * The record cache of `repodata`: per channel and subdir, one JSON-lines file that maps each
 * package tag (`<component>:<tag>`) to the manifest digest it had and what was read from it (the
 * record, run_exports, channeldata fields). Production tags never move (promote refuses to), so a
 * known tag is reused without a request; `--verify` re-checks the digests.
 *
 * The file is read line by line and written through a temporary file and a rename, so a run cut
 * off mid-write leaves the previous cache. A file for another channel, another subdir or another
 * format version is ignored.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const CACHE_FORMAT = 1;

/** What one package tag gave, as stored. JSON values are kept as their canonical JSON text. */
export interface CachedArtifact {
  /** Repository component under the subdir (`cnumpy`, `h<sha256>`). */
  component: string;
  tag: string;
  /** The manifest digest the tag resolved to. */
  digest: string;
  fileName: string;
  /** The repodata record, canonical JSON. */
  record: string;
  /** info/run_exports.json, canonical JSON, when the package has one. */
  runExports?: string;
  /** Channeldata fields of info/about.json, canonical JSON. */
  about?: string;
  /** Prefix and link-script flags (canonical JSON), when info/paths.json set any. */
  postInstall?: string;
}

interface Header {
  format: number;
  channel: string;
  subdir: string;
}

export function cacheKey(component: string, tag: string): string {
  return `${component}:${tag}`;
}

/** The cache file of a channel and subdir. */
export function cacheFile(dir: string, channel: string, subdir: string): string {
  const id = createHash('sha256').update(channel).digest('hex').slice(0, 16);
  return join(dir, `repodata-${id}-${subdir}.jsonl`);
}

function isCachedArtifact(value: unknown): value is CachedArtifact {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.component === 'string' &&
    typeof v.tag === 'string' &&
    typeof v.digest === 'string' &&
    typeof v.fileName === 'string' &&
    typeof v.record === 'string' &&
    ['runExports', 'about', 'postInstall'].every((k) => v[k] === undefined || typeof v[k] === 'string')
  );
}

export interface LoadedCache {
  entries: Map<string, CachedArtifact>;
  /** Why the file was not used, when it was there but unusable. */
  ignored?: string;
}

/** Reads the cache of a channel and subdir; a missing or foreign file gives an empty cache. */
export async function loadCache(dir: string, channel: string, subdir: string): Promise<LoadedCache> {
  const entries = new Map<string, CachedArtifact>();
  const path = cacheFile(dir, channel, subdir);
  let lines: ReturnType<typeof createInterface>;
  try {
    const stream = createReadStream(path, { encoding: 'utf8' });
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    });
    lines = createInterface({ input: stream, crlfDelay: Infinity });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries };
    return { entries, ignored: `cannot read ${path}: ${(err as Error).message}` };
  }
  let header: Header | undefined;
  let bad = 0;
  for await (const line of lines) {
    if (line === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      bad++;
      continue;
    }
    if (header === undefined) {
      header = value as Header;
      if (header?.format !== CACHE_FORMAT || header.channel !== channel || header.subdir !== subdir) {
        lines.close();
        return { entries, ignored: `${path} is for another channel, subdir or format` };
      }
      continue;
    }
    if (isCachedArtifact(value)) entries.set(cacheKey(value.component, value.tag), value);
    else bad++;
  }
  return bad > 0 ? { entries, ignored: `${bad} unreadable line(s) in ${path} were skipped` } : { entries };
}

/** Writes the cache of a channel and subdir (atomically: temporary file, then rename). */
export async function saveCache(
  dir: string,
  channel: string,
  subdir: string,
  entries: Iterable<CachedArtifact>,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const path = cacheFile(dir, channel, subdir);
  const temporary = `${path}.${process.pid}.${Date.now()}.tmp`;
  const handle = await open(temporary, 'w');
  try {
    const header: Header = { format: CACHE_FORMAT, channel, subdir };
    let pending = `${JSON.stringify(header)}\n`;
    for (const entry of entries) {
      pending += `${JSON.stringify(entry)}\n`;
      if (pending.length > 1 << 20) {
        await handle.write(pending);
        pending = '';
      }
    }
    await handle.write(pending);
    await handle.close();
    await rename(temporary, path);
  } catch (err) {
    await handle.close().catch(() => {});
    await rm(temporary, { force: true });
    throw err;
  }
}
