/**
 * A channel on disk: every repository is a directory holding an OCI image layout
 * (https://github.com/opencontainers/image-spec/blob/main/image-layout.md), the shape zot uses,
 * readable by `skopeo inspect oci:<dir>/<repository>:<tag>` and `oras --oci-layout`.
 *
 * Writes are atomic (temporary file, then rename); index.json changes are serialised by a lock
 * directory that a crashed holder does not keep forever; every read is verified.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, link, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { digestHex, digestOf, isDigest, verifyBytes, VerifyingStream, type Digest } from '../digest.js';
import { NotFoundError, ProtocolError, SizeLimitError } from '../errors.js';
import {
  MANIFEST_SIZE_LIMIT,
  parseImageIndex,
  type Descriptor,
  type ImageIndex,
  type ManifestBytes,
} from '../manifest.js';
import { ANNOTATION_REF_NAME, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST } from '../media-types.js';
import { checkRepositoryName, checkTag } from '../reference.js';
import type {
  BlobContent,
  FetchedManifest,
  PushBlobOptions,
  PushedManifest,
  PushOutcome,
  Repository,
  Store,
} from '../storage.js';
import { bytesSource } from '../storage.js';

const LAYOUT_FILE = 'oci-layout';
const INDEX_FILE = 'index.json';
const LOCK_DIR = '.lock';
const LOCK_TIMEOUT_MS = 120_000;
/** Blobs linked or written this recently may belong to a manifest not pushed yet: GC spares them. */
const GC_GRACE_MS = 15 * 60_000;

export class LayoutStore implements Store {
  readonly id: string;

  constructor(readonly root: string) {
    this.id = `layout:${root}`;
  }

  repository(name: string): Repository {
    checkRepositoryName(name);
    return new LayoutRepository(this.root, name);
  }

  stats(): undefined {
    return undefined;
  }

  async *listRepositories(prefix: string): AsyncIterable<string> {
    const start = prefix ? join(this.root, ...prefix.split('/')) : this.root;
    yield* walk(start, prefix);
  }

  async close(): Promise<void> {}
}

async function* walk(dir: string, name: string): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isMissing(err)) return;
    throw err;
  }
  if (entries.some((e) => e.isFile() && e.name === LAYOUT_FILE)) {
    yield name;
    return;
  }
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (entry.isDirectory() && !entry.name.startsWith('.'))
      yield* walk(join(dir, entry.name), name ? `${name}/${entry.name}` : entry.name);
  }
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}

function tempName(): string {
  return `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * Removes the temporary files of writers killed mid-write (an atomic write that never reached its
 * rename). A live writer touches its file with every piece it writes, so one untouched for the
 * grace period is abandoned, whichever machine wrote it.
 */
async function removeAbandonedTemporaries(dir: string): Promise<void> {
  for (const file of await readdir(dir).catch(() => [] as string[])) {
    if (!file.startsWith('.tmp-')) continue;
    const info = await stat(join(dir, file)).catch(() => undefined);
    if (info?.isFile() && Date.now() - info.mtimeMs > GC_GRACE_MS) await rm(join(dir, file), { force: true });
  }
}

class LayoutRepository implements Repository {
  private readonly dir: string;

  constructor(
    private readonly root: string,
    readonly name: string,
  ) {
    this.dir = join(root, ...name.split('/'));
  }

  private blobPath(digest: Digest): string {
    return join(this.dir, 'blobs', 'sha256', digestHex(digest));
  }

  async statBlob(digest: Digest): Promise<{ size: number } | undefined> {
    try {
      const info = await stat(this.blobPath(digest));
      return { size: info.size };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async openBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>): Promise<Readable> {
    const path = this.blobPath(descriptor.digest);
    if (!(await this.statBlob(descriptor.digest)))
      throw new NotFoundError(`blob ${descriptor.digest} not found in ${this.name}`);
    const verified = new VerifyingStream(descriptor, `blob ${descriptor.digest} of ${path}`);
    const file = createReadStream(path, { highWaterMark: 1024 * 1024 });
    file.on('error', (err) => verified.destroy(err));
    return file.pipe(verified);
  }

  async readBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>, limit: number): Promise<Uint8Array> {
    if (descriptor.size > limit) throw new SizeLimitError(`blob ${descriptor.digest} of ${this.name}`, limit);
    let bytes: Buffer;
    try {
      bytes = await readFile(this.blobPath(descriptor.digest));
    } catch (err) {
      if (isMissing(err))
        throw new NotFoundError(`blob ${descriptor.digest} not found in ${this.name}`, { cause: err });
      throw err;
    }
    verifyBytes(bytes, descriptor, `blob ${descriptor.digest} of ${this.name}`);
    return new Uint8Array(bytes);
  }

  async pushBlob(
    descriptor: Pick<Descriptor, 'digest' | 'size'>,
    content: BlobContent,
    options: PushBlobOptions = {},
  ): Promise<PushOutcome> {
    if (await this.statBlob(descriptor.digest)) return { action: 'exists', bytesSent: 0 };
    await this.ensureLayout();
    const target = this.blobPath(descriptor.digest);
    const temp = join(this.dir, 'blobs', 'sha256', tempName());
    if (options.mountFrom) {
      const from = new LayoutRepository(this.root, checkRepositoryName(options.mountFrom));
      const fromPath = from.blobPath(descriptor.digest);
      if (await from.statBlob(descriptor.digest)) {
        // A hard link shares the bytes; a copy where the file system refuses links.
        await link(fromPath, temp).catch(() => copyFile(fromPath, temp));
        await rename(temp, target);
        return { action: 'mounted', bytesSent: 0 };
      }
    }
    const source = content instanceof Uint8Array ? bytesSource(content) : content;
    try {
      const input = await source.open(0);
      let written = 0;
      input.on('data', (chunk: Buffer) => {
        written += chunk.length;
        options.onProgress?.(written);
      });
      await pipeline(
        input,
        new VerifyingStream(descriptor, `blob ${descriptor.digest}`),
        createWriteStream(temp),
      );
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    return { action: 'uploaded', bytesSent: descriptor.size };
  }

  async resolve(reference: string): Promise<Descriptor | undefined> {
    const index = await this.readIndex();
    if (isDigest(reference)) {
      const listed = index.manifests.find((m) => m.digest === reference);
      if (listed) return plain(listed);
      if (!(await this.statBlob(reference))) return undefined;
      return (await this.fetchManifest(reference)).descriptor;
    }
    const tagged = index.manifests.find((m) => m.annotations?.[ANNOTATION_REF_NAME] === reference);
    return tagged ? plain(tagged) : undefined;
  }

  async fetchManifest(reference: string): Promise<FetchedManifest> {
    const descriptor = isDigest(reference) ? undefined : await this.resolve(reference);
    const digest = isDigest(reference) ? reference : descriptor?.digest;
    if (!digest) throw new NotFoundError(`manifest ${this.name}:${reference} not found`);
    const info = await this.statBlob(digest);
    if (!info) throw new NotFoundError(`manifest ${this.name}@${digest} not found`);
    if (info.size > MANIFEST_SIZE_LIMIT)
      throw new SizeLimitError(`manifest ${this.name}@${digest}`, MANIFEST_SIZE_LIMIT);
    const bytes = await this.readBlob({ digest, size: info.size }, MANIFEST_SIZE_LIMIT);
    const mediaType = descriptor?.mediaType ?? manifestMediaType(bytes, `${this.name}@${digest}`);
    return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
  }

  async pushManifest(manifest: ManifestBytes, tag?: string): Promise<PushedManifest> {
    if (tag !== undefined) checkTag(tag);
    if (manifest.bytes.length > MANIFEST_SIZE_LIMIT)
      throw new SizeLimitError('manifest', MANIFEST_SIZE_LIMIT);
    const digest = digestOf(manifest.bytes);
    // Like a registry: refuse a manifest whose blobs are not all here.
    for (const child of referencedDigests(manifest)) {
      if (!(await this.statBlob(child)))
        throw new NotFoundError(
          `manifest of ${this.name} points to blob ${child}, which is not in the repository (MANIFEST_BLOB_UNKNOWN)`,
        );
    }
    await this.pushBlob({ digest, size: manifest.bytes.length }, manifest.bytes);
    const descriptor: Descriptor = { mediaType: manifest.mediaType, digest, size: manifest.bytes.length };
    await this.updateIndex((manifests) => {
      if (tag === undefined) {
        return manifests.some((m) => m.digest === digest) ? manifests : [...manifests, descriptor];
      }
      const others = manifests.filter(
        (m) =>
          m.annotations?.[ANNOTATION_REF_NAME] !== tag &&
          !(m.digest === digest && !m.annotations?.[ANNOTATION_REF_NAME]),
      );
      return [...others, { ...descriptor, annotations: { [ANNOTATION_REF_NAME]: tag } }];
    });
    return { descriptor, subjectIndexed: false };
  }

  async deleteManifest(digest: Digest): Promise<void> {
    await this.updateIndex((manifests) => manifests.filter((m) => m.digest !== digest));
    await this.collectGarbage();
  }

  async *listTags(): AsyncIterable<string> {
    const index = await this.readIndex();
    const tags = index.manifests
      .map((m) => m.annotations?.[ANNOTATION_REF_NAME])
      .filter((t): t is string => t !== undefined);
    yield* [...new Set(tags)].sort();
  }

  async referrersApi(): Promise<ImageIndex | undefined> {
    return undefined; // The layout has no referrers API: the tag-schema fallback serves.
  }

  // ---- layout files -----------------------------------------------------------------------

  private async ensureLayout(): Promise<void> {
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
    const layoutPath = join(this.dir, LAYOUT_FILE);
    try {
      await stat(layoutPath);
      return;
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    await this.writeAtomic(INDEX_FILE, emptyIndexBytes(), true);
    await this.writeAtomic(LAYOUT_FILE, new TextEncoder().encode('{"imageLayoutVersion":"1.0.0"}'), true);
  }

  private async writeAtomic(file: string, bytes: Uint8Array, onlyIfMissing = false): Promise<void> {
    const temp = join(this.dir, tempName());
    await writeFile(temp, bytes);
    if (onlyIfMissing) {
      // link() fails when the target exists, so a concurrent creator's file is kept.
      await link(temp, join(this.dir, file)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      await rm(temp, { force: true });
      return;
    }
    await rename(temp, join(this.dir, file));
  }

  private async readIndex(): Promise<ImageIndex> {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.dir, INDEX_FILE));
    } catch (err) {
      if (isMissing(err)) return { schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: [] };
      throw err;
    }
    return parseImageIndex(bytes, `${join(this.dir, INDEX_FILE)}`);
  }

  private async updateIndex(change: (manifests: Descriptor[]) => Descriptor[]): Promise<void> {
    await this.ensureLayout();
    await this.withLock(async () => {
      const index = await this.readIndex();
      const manifests = change(index.manifests);
      if (manifests === index.manifests) return;
      const bytes = new TextEncoder().encode(
        JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests }, null, 1),
      );
      await this.writeAtomic(INDEX_FILE, bytes);
    });
  }

  /** Removes blobs that no manifest in index.json reaches any more. */
  private async collectGarbage(): Promise<void> {
    await this.withLock(async () => {
      const index = await this.readIndex();
      const keep = new Set<string>();
      for (const entry of index.manifests) {
        keep.add(entry.digest);
        try {
          const { bytes } = await this.fetchManifest(entry.digest);
          for (const child of referencedDigests({ mediaType: entry.mediaType, bytes })) keep.add(child);
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
        }
      }
      const blobDir = join(this.dir, 'blobs', 'sha256');
      await removeAbandonedTemporaries(this.dir);
      await removeAbandonedTemporaries(blobDir);
      for (const file of await readdir(blobDir).catch(() => [] as string[])) {
        if (file.startsWith('.') || keep.has(`sha256:${file}`)) continue;
        const info = await stat(join(blobDir, file)).catch(() => undefined);
        // ctime moves on write and on link(), so a freshly mounted blob counts as fresh too.
        if (info && Date.now() - info.ctimeMs > GC_GRACE_MS) await rm(join(blobDir, file), { force: true });
      }
    });
  }

  /**
   * Runs `work` holding the repository's lock: the file `.lock`, holding the holder's pid. It is
   * made by hard-linking a file already written (link() fails when the name exists, on every
   * platform), so it never exists without its owner, and released by unlinking it, in one step:
   * a holder killed at any moment leaves a lock whose owner can be checked, and no contender can
   * slip in between two steps of a release. (Earlier versions used a directory with an `owner`
   * file inside; such a lock is still recognised.)
   */
  private async withLock<T>(work: () => Promise<T>): Promise<T> {
    const lock = join(this.dir, LOCK_DIR);
    const deadline = Date.now() + LOCK_TIMEOUT_MS;
    const candidate = join(this.dir, tempName());
    await writeFile(candidate, `${process.pid}`);
    try {
      for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
        try {
          await link(candidate, lock);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          const stale = await staleOwner(lock);
          if (stale !== undefined) {
            await removeStaleLock(lock, stale, this.dir);
            continue;
          }
          if (Date.now() > deadline)
            throw new ProtocolError(`${this.dir} stayed locked for ${LOCK_TIMEOUT_MS / 1000} s (${lock})`);
          await sleep(wait);
        }
      }
    } finally {
      await rm(candidate, { force: true });
    }
    try {
      return await work();
    } finally {
      await rm(lock, { force: true });
    }
  }
}

/**
 * What identifies a lock whose owner process is gone (e.g. killed mid-write), or one that is very
 * old: its content; undefined while the lock is held.
 */
async function staleOwner(lock: string): Promise<string | undefined> {
  let owner: string | undefined;
  try {
    const info = await stat(lock);
    const ownerFile = info.isDirectory() ? join(lock, 'owner') : lock;
    owner = await readFile(ownerFile, 'utf8').catch(() => undefined);
    const pid = Number(owner);
    // Held for minutes: a holder whose pid was reused by another process (work under the lock
    // takes milliseconds, a garbage collection of a large repository seconds).
    if (Date.now() - info.mtimeMs > 10 * 60_000) return owner ?? '';
    if (owner !== undefined && Number.isInteger(pid) && pid > 0) {
      try {
        process.kill(pid, 0);
        return undefined;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ESRCH') return owner;
        return undefined;
      }
    }
    // No owner (a directory lock of an earlier version between mkdir and writing its owner).
    return Date.now() - info.mtimeMs > 30_000 ? (owner ?? '') : undefined;
  } catch {
    return undefined; // gone meanwhile: try again
  }
}

/**
 * Removes a stale lock, unless someone replaced it meanwhile: it is moved aside in one step,
 * then checked, and put back if it turns out to be a live lock.
 */
async function removeStaleLock(lock: string, staleContent: string, dir: string): Promise<void> {
  const aside = join(dir, tempName());
  try {
    await rename(lock, aside);
  } catch {
    return; // someone else removed it
  }
  const info = await stat(aside).catch(() => undefined);
  const content = info?.isDirectory()
    ? await readFile(join(aside, 'owner'), 'utf8').catch(() => '')
    : await readFile(aside, 'utf8').catch(() => '');
  if (info && !info.isDirectory() && content !== staleContent) {
    // A live lock, taken between our check and the move: give it back.
    await link(aside, lock).catch(() => undefined);
  }
  await rm(aside, { recursive: true, force: true });
}

function plain(entry: Descriptor): Descriptor {
  return { mediaType: entry.mediaType, digest: entry.digest, size: entry.size };
}

function emptyIndexBytes(): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: [] }),
  );
}

function manifestMediaType(bytes: Uint8Array, what: string): string {
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes)) as { mediaType?: unknown; manifests?: unknown };
    if (typeof value.mediaType === 'string') return value.mediaType;
    return Array.isArray(value.manifests) ? MEDIA_TYPE_OCI_INDEX : MEDIA_TYPE_OCI_MANIFEST;
  } catch (cause) {
    throw new ProtocolError(`manifest ${what} is not JSON`, { cause });
  }
}

/** Digests a manifest or index points to (config, layers, child manifests; not the subject). */
function referencedDigests(manifest: ManifestBytes): Digest[] {
  let value: {
    config?: { digest?: unknown };
    layers?: { digest?: unknown }[];
    manifests?: { digest?: unknown }[];
  };
  try {
    value = JSON.parse(new TextDecoder().decode(manifest.bytes)) as typeof value;
  } catch (cause) {
    throw new ProtocolError('manifest is not JSON', { cause });
  }
  const digests = [
    value.config?.digest,
    ...(value.layers ?? []).map((l) => l.digest),
    ...(value.manifests ?? []).map((m) => m.digest),
  ];
  return digests.filter((d): d is Digest => isDigest(d));
}
