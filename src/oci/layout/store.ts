/**
 * A channel on disk: every repository is a directory holding an OCI image layout
 * (https://github.com/opencontainers/image-spec/blob/main/image-layout.md), the shape zot uses,
 * readable by `skopeo inspect oci:<dir>/<repository>:<tag>` and `oras --oci-layout`.
 *
 * Nothing below the channel's root is reached through a symbolic link (SPEC §10; confined.ts):
 * a link is refused where it is met, by every operation, and never descended into by a listing.
 * Writes are atomic (a new temporary file, then rename); index.json changes are serialised by a
 * lock that a crashed holder does not keep forever (lock.ts); every read is verified.
 */
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestHex, digestOf, isDigest, verifyBytes, VerifyingStream, type Digest } from '../digest.js';
import { NotFoundError, ProtocolError, SizeLimitError, type OciError } from '../errors.js';
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
  ListRepositoriesOptions,
  PushBlobOptions,
  PushedManifest,
  PushOutcome,
  Repository,
  Store,
} from '../storage.js';
import { bytesSource } from '../storage.js';
import { ConfinedTree, SymbolicLinkError, tempName, type OpenDir } from './confined.js';
import { withLock } from './lock.js';

const LAYOUT_FILE = 'oci-layout';
const INDEX_FILE = 'index.json';
/** index.json of a repository with a hundred thousand tags is some 25 MB. */
const INDEX_SIZE_LIMIT = 64 * 1024 * 1024;
/** Blobs linked or written this recently may belong to a manifest not pushed yet: GC spares them. */
const GC_GRACE_MS = 15 * 60_000;
const BLOBS = ['blobs', 'sha256'];

export class LayoutStore implements Store {
  readonly id: string;
  private readonly tree: ConfinedTree;

  constructor(readonly root: string) {
    this.id = `layout:${root}`;
    this.tree = new ConfinedTree(root, `oci-layout:${root}`);
  }

  repository(name: string): Repository {
    checkRepositoryName(name);
    return new LayoutRepository(this.tree, name);
  }

  stats(): undefined {
    return undefined;
  }

  async *listRepositories(prefix: string, options: ListRepositoriesOptions = {}): AsyncIterable<string> {
    const opened: OpenDir[] = [];
    try {
      let dir = await this.tree.open();
      if (!dir) return;
      opened.push(dir);
      for (const part of prefix ? checkRepositoryName(prefix).split('/') : []) {
        dir = await dir.openChild(part);
        if (!dir) return;
        opened.push(dir);
      }
      yield* walk(dir, prefix, options.onRefused);
    } finally {
      for (const dir of opened.reverse()) await dir.close();
    }
  }

  async close(): Promise<void> {}
}

/** Every repository at or below `dir`; a link is reported to `onRefused`, never descended into. */
async function* walk(
  dir: OpenDir,
  name: string,
  onRefused: ((name: string, reason: OciError) => void) | undefined,
): AsyncGenerator<string> {
  const entries = await dir.list();
  const layout = entries.find((e) => e.name === LAYOUT_FILE);
  if (layout?.isSymbolicLink()) return onRefused?.(name, dir.linkRefusal(LAYOUT_FILE));
  if (layout?.isFile()) {
    yield name;
    return;
  }
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (entry.name.startsWith('.')) continue;
    const below = name ? `${name}/${entry.name}` : entry.name;
    if (entry.isSymbolicLink()) {
      onRefused?.(below, dir.linkRefusal(entry.name));
      continue;
    }
    if (!entry.isDirectory()) continue;
    let child: OpenDir | undefined;
    try {
      child = await dir.openChild(entry.name);
    } catch (err) {
      // Swapped for a link since the listing.
      if (!(err instanceof SymbolicLinkError)) throw err;
      onRefused?.(below, err);
      continue;
    }
    if (!child) continue;
    try {
      yield* walk(child, below, onRefused);
    } finally {
      await child.close();
    }
  }
}

/** The entry of a blob in `blobs/sha256`; undefined when absent; anything but a file is refused. */
async function blobEntry(blobs: OpenDir, digest: Digest): Promise<{ size: number; mtime: Date } | undefined> {
  const info = await blobs.stat(digestHex(digest));
  if (!info) return undefined;
  if (!info.isFile()) throw new ProtocolError(`${blobs.location}/${digestHex(digest)} is not a file`);
  return { size: info.size, mtime: info.mtime };
}

async function readIndexIn(dir: OpenDir): Promise<ImageIndex> {
  const bytes = await dir.readFile(INDEX_FILE, INDEX_SIZE_LIMIT);
  if (!bytes) return { schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: [] };
  return parseImageIndex(bytes, `${dir.location}/${INDEX_FILE}`);
}

/**
 * Removes the temporary files of writers killed mid-write (an atomic write that never reached its
 * rename). A live writer touches its file with every piece it writes, so one untouched for the
 * grace period is abandoned, whichever machine wrote it.
 */
async function removeAbandonedTemporaries(dir: OpenDir, entries: string[]): Promise<void> {
  for (const file of entries) {
    if (!file.startsWith('.tmp-')) continue;
    const info = await dir.stat(file).catch(() => undefined);
    if (info?.isFile() && Date.now() - info.mtimeMs > GC_GRACE_MS) await dir.remove(file);
  }
}

/** A repository's directory and its `blobs/sha256` (undefined when that does not exist), open. */
interface OpenRepository {
  dir: OpenDir;
  blobs: OpenDir | undefined;
}

class LayoutRepository implements Repository {
  private readonly parts: string[];

  constructor(
    private readonly tree: ConfinedTree,
    readonly name: string,
  ) {
    this.parts = name.split('/');
  }

  /**
   * Runs `work` with the repository's directory and `blobs/sha256` open, from one walk down from
   * the root; undefined when the repository does not exist. With `create`, the directories and
   * the layout files are made first.
   */
  private open<T>(work: (repository: OpenRepository) => Promise<T>, create = false): Promise<T | undefined> {
    return this.tree.withDir(
      this.parts,
      async (dir) => {
        const withBlobs = await dir.withDir(
          BLOBS,
          async (blobs) => {
            if (create) await writeLayoutFiles(dir);
            return { value: await work({ dir, blobs }) };
          },
          { create },
        );
        return withBlobs ? withBlobs.value : work({ dir, blobs: undefined });
      },
      { create },
    );
  }

  async statBlob(digest: Digest): Promise<{ size: number } | undefined> {
    const entry = await this.open(async ({ blobs }) => blobs && blobEntry(blobs, digest));
    return entry ? { size: entry.size } : undefined;
  }

  /** The manifest file's modification time: written when this store received it, by us. */
  async manifestTime(digest: Digest): Promise<Date | undefined> {
    return (await this.open(async ({ blobs }) => blobs && blobEntry(blobs, digest)))?.mtime;
  }

  async openBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>): Promise<Readable> {
    const opened = await this.open(async ({ blobs }) => blobs?.openFile(digestHex(descriptor.digest)));
    if (!opened) throw new NotFoundError(`blob ${descriptor.digest} not found in ${this.name}`);
    const verified = new VerifyingStream(
      descriptor,
      `blob ${descriptor.digest} of ${this.tree.label}/${this.name}`,
    );
    const file = opened.handle.createReadStream({ highWaterMark: 1024 * 1024 });
    file.on('error', (err) => verified.destroy(err));
    // A reader that stops early closes the file too.
    verified.on('close', () => file.destroy());
    return file.pipe(verified);
  }

  async readBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>, limit: number): Promise<Uint8Array> {
    if (descriptor.size > limit) throw new SizeLimitError(`blob ${descriptor.digest} of ${this.name}`, limit);
    const bytes = await this.open(async ({ blobs }) => blobs?.readFile(digestHex(descriptor.digest), limit));
    if (!bytes) throw new NotFoundError(`blob ${descriptor.digest} not found in ${this.name}`);
    verifyBytes(bytes, descriptor, `blob ${descriptor.digest} of ${this.name}`);
    return new Uint8Array(bytes);
  }

  async pushBlob(
    descriptor: Pick<Descriptor, 'digest' | 'size'>,
    content: BlobContent,
    options: PushBlobOptions = {},
  ): Promise<PushOutcome> {
    if (await this.statBlob(descriptor.digest)) return { action: 'exists', bytesSent: 0 };
    const outcome = await this.open(async ({ blobs }) => {
      const into = present(blobs, this.name);
      if (await blobEntry(into, descriptor.digest)) return { action: 'exists' as const, bytesSent: 0 };
      if (options.mountFrom) {
        const from = new LayoutRepository(this.tree, checkRepositoryName(options.mountFrom));
        if (await from.mountInto(into, descriptor.digest))
          return { action: 'mounted' as const, bytesSent: 0 };
      }
      const source = content instanceof Uint8Array ? bytesSource(content) : content;
      await writeBlob(into, descriptor, async (output) => {
        const input = await source.open(0);
        let written = 0;
        input.on('data', (chunk: Buffer) => {
          written += chunk.length;
          options.onProgress?.(written);
        });
        await pipeline(input, new VerifyingStream(descriptor, `blob ${descriptor.digest}`), output);
      });
      return { action: 'uploaded' as const, bytesSent: descriptor.size };
    }, true);
    return present(outcome, this.name);
  }

  /** Puts this repository's blob into another's `blobs/sha256`: a hard link shares the bytes; false when absent. */
  private async mountInto(target: OpenDir, digest: Digest): Promise<boolean> {
    const mounted = await this.open(async ({ blobs }) => {
      if (!blobs || !(await blobEntry(blobs, digest))) return false;
      const hex = digestHex(digest);
      const temp = tempName();
      try {
        await target.linkFrom(blobs, hex, temp).catch(async () => {
          // A copy where the file system refuses links.
          const opened = await blobs.openFile(hex);
          if (!opened) throw new NotFoundError(`blob ${digest} left ${blobs.location}`);
          const output = await target.createFile(temp);
          await pipeline(opened.handle.createReadStream(), output.createWriteStream());
        });
        await target.rename(temp, hex);
      } catch (err) {
        await target.remove(temp);
        throw err;
      }
      return true;
    });
    return mounted === true;
  }

  async resolve(reference: string): Promise<Descriptor | undefined> {
    return this.open(async ({ dir, blobs }) => {
      const index = await readIndexIn(dir);
      if (!isDigest(reference)) {
        const tagged = index.manifests.find((m) => m.annotations?.[ANNOTATION_REF_NAME] === reference);
        return tagged ? plain(tagged) : undefined;
      }
      const listed = index.manifests.find((m) => m.digest === reference);
      if (listed) return plain(listed);
      const bytes = blobs && (await readManifestBlob(blobs, reference, this.name));
      if (!bytes) return undefined;
      const mediaType = manifestMediaType(bytes, `${this.name}@${reference}`);
      return { mediaType, digest: reference, size: bytes.length };
    });
  }

  async fetchManifest(reference: string): Promise<FetchedManifest> {
    const fetched = await this.open(async ({ dir, blobs }) => {
      const descriptor = isDigest(reference)
        ? undefined
        : (await readIndexIn(dir)).manifests.find((m) => m.annotations?.[ANNOTATION_REF_NAME] === reference);
      const digest = isDigest(reference) ? reference : descriptor?.digest;
      if (!digest) throw new NotFoundError(`manifest ${this.name}:${reference} not found`);
      const bytes = blobs && (await readManifestBlob(blobs, digest, this.name));
      if (!bytes) throw new NotFoundError(`manifest ${this.name}@${digest} not found`);
      const mediaType = descriptor?.mediaType ?? manifestMediaType(bytes, `${this.name}@${digest}`);
      return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
    });
    if (!fetched) throw new NotFoundError(`manifest ${this.name}:${reference} not found`);
    return fetched;
  }

  async pushManifest(manifest: ManifestBytes, tag?: string): Promise<PushedManifest> {
    if (tag !== undefined) checkTag(tag);
    if (manifest.bytes.length > MANIFEST_SIZE_LIMIT)
      throw new SizeLimitError('manifest', MANIFEST_SIZE_LIMIT);
    const digest = digestOf(manifest.bytes);
    const descriptor: Descriptor = { mediaType: manifest.mediaType, digest, size: manifest.bytes.length };
    // Like a registry: refuse a manifest whose blobs are not all here, before anything is written.
    const children = referencedDigests(manifest);
    const missing = await this.open(async ({ blobs }) => {
      for (const child of children) if (!blobs || !(await blobEntry(blobs, child))) return child;
      return null;
    });
    if (missing !== null && (missing !== undefined || children.length > 0))
      throw new NotFoundError(
        `manifest of ${this.name} points to blob ${missing ?? children[0]}, which is not in the repository (MANIFEST_BLOB_UNKNOWN)`,
      );
    await this.open(async ({ dir, blobs }) => {
      const into = present(blobs, this.name);
      if (!(await blobEntry(into, digest))) await into.replaceFile(digestHex(digest), manifest.bytes);
      await withLock(dir, async () => {
        const index = await readIndexIn(dir);
        const manifests = withTag(index.manifests, descriptor, tag);
        if (manifests !== index.manifests) await writeIndex(dir, manifests);
      });
    }, true);
    return { descriptor, subjectIndexed: false };
  }

  /**
   * Removes the manifest from index.json, then the blobs no manifest reaches any more, all under
   * the lock. A link anywhere in the repository stops it before anything changes.
   */
  async deleteManifest(digest: Digest): Promise<void> {
    await this.open(({ dir, blobs }) =>
      withLock(dir, async () => {
        const entries = await dir.namesRefusingLinks();
        const files = await blobs?.namesRefusingLinks();
        const manifests = await removeFromIndex(dir, digest);
        await removeAbandonedTemporaries(dir, entries);
        if (blobs && files) await collectGarbage(blobs, files, manifests, this.name);
      }),
    );
  }

  async *listTags(): AsyncIterable<string> {
    const index = await this.open(({ dir }) => readIndexIn(dir));
    const tags = (index?.manifests ?? [])
      .map((m) => m.annotations?.[ANNOTATION_REF_NAME])
      .filter((t): t is string => t !== undefined);
    yield* [...new Set(tags)].sort();
  }

  async referrersApi(): Promise<ImageIndex | undefined> {
    return undefined; // The layout has no referrers API: the tag-schema fallback serves.
  }
}

/** index.json after a push: the manifest listed, under `tag` when given (moving it there). */
function withTag(manifests: Descriptor[], descriptor: Descriptor, tag: string | undefined): Descriptor[] {
  const { digest } = descriptor;
  if (tag === undefined)
    return manifests.some((m) => m.digest === digest) ? manifests : [...manifests, descriptor];
  const others = manifests.filter(
    (m) =>
      m.annotations?.[ANNOTATION_REF_NAME] !== tag &&
      !(m.digest === digest && !m.annotations?.[ANNOTATION_REF_NAME]),
  );
  return [...others, { ...descriptor, annotations: { [ANNOTATION_REF_NAME]: tag } }];
}

/** `oci-layout` and an empty index.json, unless the repository has them. */
async function writeLayoutFiles(dir: OpenDir): Promise<void> {
  if (await dir.stat(LAYOUT_FILE)) return;
  await dir.createFileOnce(INDEX_FILE, emptyIndexBytes());
  await dir.createFileOnce(LAYOUT_FILE, new TextEncoder().encode('{"imageLayoutVersion":"1.0.0"}'));
}

/** What a walk made with `create` always has: missing only when the repository vanished meanwhile. */
function present<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new NotFoundError(`repository ${name} vanished while being written`);
  return value;
}

/** Writes a new blob through a temporary file, renamed to its digest once `fill` has written it whole. */
async function writeBlob(
  blobs: OpenDir,
  descriptor: Pick<Descriptor, 'digest'>,
  fill: (output: Writable) => Promise<void>,
): Promise<void> {
  const temp = tempName();
  let output: Writable | undefined;
  try {
    output = (await blobs.createFile(temp)).createWriteStream();
    await fill(output);
    await blobs.rename(temp, digestHex(descriptor.digest));
  } catch (err) {
    output?.destroy();
    await blobs.remove(temp);
    throw err;
  }
}

/** Takes a manifest out of index.json; the manifests left. */
async function removeFromIndex(dir: OpenDir, digest: Digest): Promise<Descriptor[]> {
  const index = await readIndexIn(dir);
  const manifests = index.manifests.filter((m) => m.digest !== digest);
  if (manifests.length !== index.manifests.length) await writeIndex(dir, manifests);
  return manifests;
}

async function readManifestBlob(
  blobs: OpenDir,
  digest: Digest,
  what: string,
): Promise<Uint8Array | undefined> {
  const bytes = await blobs.readFile(digestHex(digest), MANIFEST_SIZE_LIMIT).catch((err: unknown) => {
    if (err instanceof SizeLimitError)
      throw new SizeLimitError(`manifest ${what}@${digest}`, MANIFEST_SIZE_LIMIT);
    throw err;
  });
  if (!bytes) return undefined;
  verifyBytes(bytes, { digest, size: bytes.length }, `blob ${digest} of ${what}`);
  return new Uint8Array(bytes);
}

async function writeIndex(dir: OpenDir, manifests: Descriptor[]): Promise<void> {
  const bytes = new TextEncoder().encode(
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests }, null, 1),
  );
  await dir.replaceFile(INDEX_FILE, bytes);
}

/** Removes blobs that none of `manifests` reaches, sparing those written within the grace period. */
async function collectGarbage(
  blobs: OpenDir,
  files: string[],
  manifests: Descriptor[],
  what: string,
): Promise<void> {
  const keep = new Set<string>();
  for (const entry of manifests) {
    keep.add(entry.digest);
    const bytes = await readManifestBlob(blobs, entry.digest, what).catch((err: unknown) => {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    });
    if (bytes) for (const child of referencedDigests({ mediaType: entry.mediaType, bytes })) keep.add(child);
  }
  await removeAbandonedTemporaries(blobs, files);
  for (const file of files) {
    if (file.startsWith('.') || keep.has(`sha256:${file}`)) continue;
    const info = await blobs.stat(file).catch(() => undefined);
    // ctime moves on write and on link(), so a freshly mounted blob counts as fresh too.
    if (info?.isFile() && Date.now() - info.ctimeMs > GC_GRACE_MS) await blobs.remove(file);
  }
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
