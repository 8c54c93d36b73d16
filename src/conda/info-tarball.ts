/**
 * The info/ folder of a package: what its members must be beyond the tar policy, the collection of
 * info/ members (bounded), and the deterministic `info.tar.gz` that becomes the package's second
 * OCI layer (SPEC §4).
 */
import { gzipSync } from 'fflate';
import tarStream from 'tar-stream';
import { SizeLimitError } from '../oci/errors.js';
import { ArchiveError, quote } from './archive-error.js';
import { formatBytes } from '../util/format-bytes.js';
import { normalizeMemberPath, resolveSymlink, type TarDataSink, type TarEntry } from './tar-reader.js';

export const INFO_DIR = 'info';
export const INDEX_JSON = 'info/index.json';
export const RUN_EXPORTS_JSON = 'info/run_exports.json';

/** One member of info/ as it goes into the info layer. */
export interface InfoEntry {
  /** Normalised archive path, `info/…`. */
  readonly path: string;
  readonly type: 'file' | 'symlink';
  /** 0o644 or 0o755 for files, 0o777 for symlinks. */
  readonly mode: number;
  readonly data: Uint8Array;
  readonly linkName?: string;
}

export function isInfoPath(path: string): boolean {
  return path === INFO_DIR || path.startsWith(`${INFO_DIR}/`);
}

/** The most members info/ may have: real packages have tens (recipe and test folders, a few thousand at most). */
export const MAX_INFO_MEMBERS = 100_000;

/**
 * What a member of info/ must be on top of the tar policy (tar-reader.ts): links in info/ stay in
 * info/, so that reading info/ never needs the payload.
 */
export function checkInfoLink(entry: TarEntry): void {
  const { name, path } = entry;
  if (!isInfoPath(path)) return;
  const target = entry.linkName ?? '';
  if (entry.type === 'symlink' && !isInfoPath(resolveSymlink(path, target) ?? '')) {
    throw new ArchiveError(`symbolic link ${quote(name)} -> ${quote(target)} points outside info/`);
  }
  if (entry.type === 'hardlink' && !isInfoPath(normalizeMemberPath(target))) {
    throw new ArchiveError(`hard link ${quote(name)} -> ${quote(target)} points outside info/`);
  }
}

export interface InfoLimits {
  infoBytes: number;
  indexJsonBytes: number;
  infoMembers: number;
}

/** Keeps the members of info/ in memory, within the limits. */
export class InfoCollector {
  private readonly entries = new Map<string, InfoEntry>();
  private bytes = 0;
  private members = 0;

  constructor(private readonly limits: InfoLimits) {}

  /** Takes an info/ member (already checked by the tar policy) and returns the sink for its data. */
  entry(entry: TarEntry): TarDataSink | undefined {
    if (++this.members > this.limits.infoMembers) {
      throw new ArchiveError(`info/ has more than ${this.limits.infoMembers} members`, {
        cause: new SizeLimitError('info/ member count', this.limits.infoMembers),
      });
    }
    const { path } = entry;
    switch (entry.type) {
      case 'directory':
        return undefined; // the layer holds files and links only
      case 'symlink':
        this.entries.set(path, {
          path,
          type: 'symlink',
          mode: 0o777,
          data: new Uint8Array(0),
          linkName: entry.linkName ?? '',
        });
        return undefined;
      case 'hardlink': {
        // Stored as a copy of its target: readers of the layer need not support hard links.
        const target = this.entries.get(normalizeMemberPath(entry.linkName ?? ''));
        if (target?.type !== 'file') {
          throw new ArchiveError(`hard link ${quote(entry.name)} does not point to an earlier file of info/`);
        }
        this.entries.set(path, { path, type: 'file', mode: target.mode, data: target.data });
        return undefined;
      }
      case 'file': {
        if (path === INDEX_JSON && entry.size > this.limits.indexJsonBytes) {
          throw new ArchiveError(
            `info/index.json is ${formatBytes(entry.size)}, more than the limit of ${formatBytes(this.limits.indexJsonBytes)}`,
            { cause: new SizeLimitError('info/index.json', this.limits.indexJsonBytes) },
          );
        }
        if (this.bytes + entry.size > this.limits.infoBytes) {
          throw new ArchiveError(
            `info/ is larger than the limit of ${formatBytes(this.limits.infoBytes)} (at ${quote(entry.name)}, ${formatBytes(entry.size)}; a decompression bomb?)`,
            { cause: new SizeLimitError('info/', this.limits.infoBytes) },
          );
        }
        this.bytes += entry.size;
        const mode = entry.mode & 0o111 ? 0o755 : 0o644;
        const data = new Uint8Array(entry.size);
        let fill = 0;
        return {
          data: (chunk) => {
            data.set(chunk, fill);
            fill += chunk.length;
          },
          end: () => {
            this.entries.set(path, { path, type: 'file', mode, data });
          },
        };
      }
    }
  }

  /** The bytes of an info/ file, following symlinks inside info/. */
  read(path: string): Uint8Array | undefined {
    let current = path;
    for (let hops = 0; hops < 16; hops++) {
      const entry = this.entries.get(current);
      if (entry === undefined) return undefined;
      if (entry.type === 'file') return entry.data;
      const next = resolveSymlink(current, entry.linkName ?? '');
      if (next === undefined) return undefined;
      current = next;
    }
    throw new ArchiveError(`${quote(path)} is a loop of symbolic links`);
  }

  list(): InfoEntry[] {
    return [...this.entries.values()];
  }
}

/** gzip settings of the info layer. Changing any of them changes every info layer digest. */
const GZIP_OPTIONS = { level: 9, mem: 8, mtime: 0 } as const;

/**
 * The info layer: a tar of the info/ members sorted by the bytes of their path, each with its
 * normalised path (`info/…`), mode 0o644 / 0o755 (files: executable when any execute bit was set)
 * or 0o777 (symlinks), uid/gid 0, no user or group names, mtime 0. Directories are omitted (tar
 * readers create them) and hard links become copies of their target. Names over 100 bytes get a
 * ustar prefix or a pax header, as tar-stream encodes them. Then gzip by fflate at a fixed level
 * with mtime 0, no file name and OS byte 3, so the same package always gives the same bytes.
 */
export async function buildInfoTarGz(entries: readonly InfoEntry[]): Promise<Uint8Array> {
  return gzipInfoTar(await packInfoTar(entries));
}

/** The tar of the info layer (see buildInfoTarGz). */
export async function packInfoTar(entries: readonly InfoEntry[]): Promise<Uint8Array> {
  const sorted = entries
    .map((entry) => ({ entry, key: Buffer.from(entry.path, 'utf8') }))
    .sort((a, b) => Buffer.compare(a.key, b.key))
    .map(({ entry }) => entry);
  const pack = tarStream.pack();
  const chunks: Uint8Array[] = [];
  const collected = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Uint8Array);
  })();
  for (const entry of sorted) {
    const header: Parameters<typeof pack.entry>[0] = {
      name: entry.path,
      mode: entry.mode,
      uid: 0,
      gid: 0,
      uname: '',
      gname: '',
      mtime: new Date(0),
      ...(entry.type === 'symlink'
        ? { type: 'symlink', linkname: entry.linkName ?? '', size: 0 }
        : { type: 'file', size: entry.data.length }),
    };
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (entry.type === 'file') {
        pack.entry(header, Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.length), done);
      } else {
        pack.entry(header, done);
      }
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/** The gzip of the info layer's tar (see buildInfoTarGz). */
export function gzipInfoTar(tar: Uint8Array): Uint8Array {
  return gzipSync(tar, GZIP_OPTIONS);
}
