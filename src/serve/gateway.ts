/**
 * The read-only gateway: presents a channel stored in the CEP v1 layout as an ordinary
 * conda channel over HTTP, for clients that read no OCI registry (conda) or only the v0 layout.
 *
 *   /channeldata.json                             channel-level `channeldata.json:latest`
 *   /<subdir>/repodata.json[.zst|.gz|.bz2]        layers of `<subdir>/mrepodata.json:latest`
 *   /<subdir>/current_repodata.json, …            the other metadata documents, the same way
 *   /<subdir>/repodata_shards.msgpack.zst         CEP 16 shard index, built from repodata.json
 *   /<subdir>/shards/<sha256>.msgpack.zst         CEP 16 shards
 *   /<subdir>/<name>-<version>-<build>.<ext>      the package layer of `<subdir>/c<name>:<tag>`
 *   /label/<label>/…                              the same for a label of the channel
 *
 * - Only GET and HEAD; nothing served writes. The registry credentials stay in the store: no
 *   response carries them, and blob URLs are handed out (redirects) only when the gateway itself
 *   reads the registry anonymously and the registry serves that blob without any credentials.
 * - ETag is the digest of what is sent; If-None-Match answers 304; a single byte range is served
 *   (206, 416), from memory for metadata and by skipping through the verified blob stream for
 *   packages. Repodata gets a short `Cache-Control`, packages and shards `immutable`.
 * - `repodata.json` is sent zstd- or gzip-encoded (Content-Encoding) to clients that accept it:
 *   the registry already holds those copies.
 * - Registry work is bounded (a semaphore around every registry exchange and each streamed
 *   package) and goes over the store's pooled connections; metadata is resolved at most once per
 *   `metadataTtlMs` and kept in memory by digest, concurrent requests for one thing share one fetch.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import { readPackageManifest, type PackageManifestInfo } from '../conda/artifact.js';
import { METADATA_KINDS, SUFFIX_GZIP, SUFFIX_ZSTD, type MetadataKind } from '../conda/metadata-artifact.js';
import { LATEST_TAG, packageReference, parseArtifactFileName } from '../conda/naming.js';
import type { Reporter } from '../commands/report.js';
import type { Digest } from '../oci/digest.js';
import {
  DigestMismatchError,
  InvalidReferenceError,
  NotFoundError,
  RegistryError,
  SizeLimitError,
} from '../oci/errors.js';
import { describeError } from '../util/describe-error.js';
import { parseImageManifest, type Descriptor } from '../oci/manifest.js';
import { isPathComponent } from '../oci/reference.js';
import { channelRepository, channelUrl, isSubdir, type Channel } from '../conda/channel.js';
import type { Store } from '../oci/storage.js';
import { redact } from '../redact.js';
import { LruCache, Semaphore } from './cache.js';
import { chooseCoding, etagOf, ifRangeMatches, noneMatch, parseRange } from './http-semantics.js';
import { buildShards, SHARD_INDEX_FILE, SHARDS_DIR, type ShardSet } from './shards.js';

export interface GatewayOptions {
  /** The channel served at the root (its labels under `/label/<label>/`). */
  channel: Channel;
  /** A path prefix to strip, e.g. `/conda-forge` behind a reverse proxy. */
  basePath?: string;
  /** How long a resolved `latest` is trusted before the registry is asked again (ms). Default 30 s. */
  metadataTtlMs?: number;
  /** `Cache-Control: max-age` of repodata and the shard index (s). Default 60. */
  repodataMaxAge?: number;
  /** Memory for metadata layers and shards. Default 256 MiB. */
  cacheBytes?: number;
  /**
   * Memory for package blobs: packages up to 1/16 of it are read whole (verified), kept by
   * digest and served from memory; larger ones are streamed. Default 256 MiB; 0 streams all.
   */
  packageCacheBytes?: number;
  /** Registry exchanges and streamed packages at once. Default 16. */
  concurrency?: number;
  /** Redirect package downloads to the registry where that needs no credentials at all. */
  redirect?: boolean;
  /** Largest repodata.json turned into shards (JSON.parse needs it as one string). Default 400 MiB. */
  maxShardSource?: number;
}

export interface GatewayContext {
  store: Store;
  reporter: Reporter;
  /** True when the store reads the registry without credentials (a precondition of `redirect`). */
  anonymous: boolean;
  now?: () => number;
}

export interface GatewayStats {
  requests: number;
  notModified: number;
  partial: number;
  redirects: number;
  errors: number;
}

const IMMUTABLE = 'public, max-age=31536000, immutable';
const KINDS_BY_FILE = new Map<string, MetadataKind>(
  Object.values(METADATA_KINDS).map((k): [string, MetadataKind] => [k.fileName, k]),
);
const SUFFIXES: Record<string, { mediaSuffix: string; contentType: string; coding?: string }> = {
  '': { mediaSuffix: '', contentType: 'application/json' },
  '.zst': { mediaSuffix: SUFFIX_ZSTD, contentType: 'application/zstd', coding: 'zstd' },
  '.gz': { mediaSuffix: SUFFIX_GZIP, contentType: 'application/gzip', coding: 'gzip' },
  '.bz2': { mediaSuffix: '+bz2', contentType: 'application/x-bzip2' },
};
const METADATA_LIMIT = 2 ** 31 - 1;
const PACKAGE_HIT_TTL_MS = 10 * 60_000;
const MAX_PACKAGE_ENTRIES = 100_000;

/** What a request gets: bytes in memory or a blob to stream, with the headers that describe it. */
interface Representation {
  etag: string;
  size: number;
  contentType: string;
  cacheControl: string;
  contentEncoding?: string;
  vary?: string;
  /** The bytes: there, to be loaded (not for HEAD or 304), or to be streamed (verified). */
  bytes?: Uint8Array;
  load?: () => Promise<Uint8Array>;
  open?: () => Promise<Readable>;
}

interface Redirect {
  location: string;
}

class HttpFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const notFound = (): HttpFailure => new HttpFailure(404, 'not found');

interface Latest {
  digest: string;
  layers: Descriptor[];
}

interface LatestEntry {
  /** When it was last resolved (or that started). */
  at: number;
  pending?: Promise<Latest | undefined>;
  /** The last successful answer (undefined: no such repository or tag). */
  known?: { value: Latest | undefined };
}

interface Timed<T> {
  at: number;
  value: Promise<T>;
}

export class Gateway {
  readonly stats: GatewayStats = { requests: 0, notModified: 0, partial: 0, redirects: 0, errors: 0 };
  private readonly ttl: number;
  private readonly maxAge: number;
  private readonly registryLimit: Semaphore;
  private readonly layers: LruCache<Uint8Array>;
  private readonly shardSets: LruCache<ShardSet>;
  private readonly blobs: LruCache<Uint8Array>;
  private readonly maxCachedLayer: number;
  private readonly maxCachedPackage: number;
  private readonly latestByRepository = new Map<string, LatestEntry>();
  private readonly packages = new Map<string, Timed<PackageManifestInfo | undefined>>();
  /** Shard set keys per subdir repository, newest last (older ones serve clients with an older index). */
  private readonly recentShardSets = new Map<string, string[]>();
  private readonly anonymousBlobs = new Map<string, Promise<boolean>>();
  private readonly now: () => number;
  private readonly basePath: string;

  constructor(
    private readonly options: GatewayOptions,
    private readonly context: GatewayContext,
  ) {
    this.ttl = options.metadataTtlMs ?? 30_000;
    this.maxAge = options.repodataMaxAge ?? 60;
    this.registryLimit = new Semaphore(options.concurrency ?? 16);
    const cacheBytes = options.cacheBytes ?? 256 * 1024 * 1024;
    this.maxCachedLayer = Math.floor(cacheBytes / 4);
    this.layers = new LruCache(Math.floor(cacheBytes / 2), (b) => b.length);
    this.shardSets = new LruCache(Math.floor(cacheBytes / 2), (s) => s.bytes);
    const packageCacheBytes = options.packageCacheBytes ?? 256 * 1024 * 1024;
    this.blobs = new LruCache(packageCacheBytes, (b) => b.length);
    this.maxCachedPackage = Math.floor(packageCacheBytes / 16);
    this.now = context.now ?? Date.now;
    this.basePath = (options.basePath ?? '').replace(/\/+$/, '');
  }

  /** The `node:http` request listener. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.stats.requests++;
    this.serve(req, res).catch((err: unknown) => this.fail(res, err));
  };

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new HttpFailure(405, 'method not allowed: this channel is read-only', { allow: 'GET, HEAD' });
    }
    const representation = await this.route(req.url ?? '/')(req);
    if ('location' in representation) {
      this.stats.redirects++;
      res.writeHead(307, {
        location: representation.location,
        'cache-control': 'no-store',
        'content-length': '0',
      });
      res.end();
      return;
    }
    await this.send(req, res, representation);
  }

  // ---- routing ----------------------------------------------------------------------------

  /** What answers a path: a loader of the representation (or of a redirect). Unknown paths: 404. */
  private route(rawUrl: string): (req: IncomingMessage) => Promise<Representation | Redirect> {
    let path = rawUrl.split('?')[0]!;
    if (this.basePath) {
      if (path !== this.basePath && !path.startsWith(`${this.basePath}/`)) throw notFound();
      path = path.slice(this.basePath.length);
    }
    let segments: string[];
    try {
      segments = path
        .split('/')
        .filter((s) => s !== '')
        .map(decodeURIComponent);
    } catch {
      throw notFound();
    }
    let channel = this.options.channel;
    if (segments[0] === 'label') {
      const label = segments[1];
      if (label === undefined || channel.label || !isPathComponent(label)) throw notFound();
      channel = label === 'main' ? channel : { ...channel, label };
      segments = segments.slice(2);
    }
    const load = (fn: (req: IncomingMessage) => Promise<Representation | Redirect>) => fn;
    if (segments.length === 1 && segments[0]!.startsWith('channeldata.json')) {
      const [kind, suffix] = this.metadataFile(segments[0]!, true);
      return load((req) => this.metadata(channel, undefined, kind, suffix, req));
    }
    const subdir = segments[0];
    if (subdir === undefined || !isSubdir(subdir)) throw notFound();
    if (segments.length === 2) {
      const file = segments[1]!;
      if (file === SHARD_INDEX_FILE) return load(() => this.shardIndex(channel, subdir));
      if (file.endsWith('.conda') || file.endsWith('.tar.bz2'))
        return load(() => this.package(channel, subdir, file));
      const [kind, suffix] = this.metadataFile(file, false);
      return load((req) => this.metadata(channel, subdir, kind, suffix, req));
    }
    if (segments.length === 3 && segments[1] === SHARDS_DIR) {
      const match = /^([0-9a-f]{64})\.msgpack\.zst$/.exec(segments[2]!);
      if (!match) throw notFound();
      return load(() => this.shard(channel, subdir, match[1]!));
    }
    throw notFound();
  }

  private metadataFile(file: string, channelLevel: boolean): [MetadataKind, string] {
    for (const suffix of Object.keys(SUFFIXES)) {
      if (suffix && !file.endsWith(suffix)) continue;
      const kind = KINDS_BY_FILE.get(suffix ? file.slice(0, -suffix.length) : file);
      if (!kind) continue;
      if ((kind === METADATA_KINDS.channeldata) !== channelLevel) continue;
      return [kind, suffix];
    }
    throw notFound();
  }

  // ---- metadata ---------------------------------------------------------------------------

  /**
   * `latest` of a metadata repository, resolved (one HEAD) at most once per TTL; its manifest is
   * fetched only when the digest changed. Once known, requests never wait for the registry: an
   * expired entry is refreshed in the background, and kept when the refresh fails.
   */
  private latest(repositoryName: string): Promise<Latest | undefined> {
    const now = this.now();
    let entry = this.latestByRepository.get(repositoryName);
    if (!entry) {
      entry = { at: now };
      this.latestByRepository.set(repositoryName, entry);
      this.refreshLatest(repositoryName, entry);
    } else if (now - entry.at >= this.ttl && !entry.pending) {
      entry.at = now;
      this.refreshLatest(repositoryName, entry);
    }
    return entry.known ? Promise.resolve(entry.known.value) : entry.pending!;
  }

  private refreshLatest(repositoryName: string, entry: LatestEntry): void {
    const before = entry.known?.value;
    const pending = this.registry(async (): Promise<Latest | undefined> => {
      const repository = this.context.store.repository(repositoryName);
      const descriptor = await repository.resolve(LATEST_TAG);
      if (!descriptor) return undefined;
      if (before?.digest === descriptor.digest) return before;
      const fetched = await repository.fetchManifest(descriptor.digest);
      const manifest = parseImageManifest(fetched.bytes, `${repositoryName}:${LATEST_TAG}`);
      return { digest: fetched.descriptor.digest, layers: manifest.layers };
    });
    entry.pending = pending;
    pending.then(
      (value) => {
        entry.known = { value };
        entry.pending = undefined;
      },
      (err: unknown) => {
        entry.pending = undefined;
        if (!entry.known) {
          if (this.latestByRepository.get(repositoryName) === entry)
            this.latestByRepository.delete(repositoryName);
        } else {
          this.context.reporter.warn(
            redact(
              `${repositoryName}:${LATEST_TAG} could not be refreshed, still serving ${before?.digest ?? 'nothing'}: ${describeError(err)}`,
            ),
          );
        }
      },
    );
  }

  private metadataRepository(channel: Channel, subdir: string | undefined, kind: MetadataKind): string {
    return channelRepository(channel, subdir ? `${subdir}/${kind.component}` : kind.component);
  }

  private async metadata(
    channel: Channel,
    subdir: string | undefined,
    kind: MetadataKind,
    suffix: string,
    req: IncomingMessage,
  ): Promise<Representation> {
    const repositoryName = this.metadataRepository(channel, subdir, kind);
    const latest = await this.latest(repositoryName);
    if (!latest) throw notFound();
    const layerOf = (s: string) =>
      latest.layers.find((l) => l.mediaType === `${kind.mediaType}${SUFFIXES[s]!.mediaSuffix}`);
    const cacheControl = `public, max-age=${this.maxAge}`;
    if (suffix === '') {
      // The JSON itself, or (Content-Encoding) one of its compressed copies.
      const offered = (['.zst', '.gz'] as const).filter((s) => layerOf(s));
      const coding = chooseCoding(
        headerValue(req.headers['accept-encoding']),
        offered.map((s) => SUFFIXES[s]!.coding!),
      );
      const encodedSuffix = offered.find((s) => SUFFIXES[s]!.coding === coding);
      const layer = layerOf(encodedSuffix ?? '');
      if (!layer) throw notFound();
      return {
        ...(await this.layerBody(repositoryName, layer)),
        contentType: 'application/json',
        cacheControl,
        vary: 'Accept-Encoding',
        ...(encodedSuffix ? { contentEncoding: coding } : {}),
      };
    }
    const layer = layerOf(suffix);
    if (!layer) throw notFound();
    return {
      ...(await this.layerBody(repositoryName, layer)),
      contentType: SUFFIXES[suffix]!.contentType,
      cacheControl,
    };
  }

  /** A metadata layer: from memory (read once, by digest), or streamed when too large to keep. */
  private async layerBody(
    repositoryName: string,
    layer: Descriptor,
  ): Promise<Pick<Representation, 'etag' | 'size' | 'load' | 'open'>> {
    const etag = etagOf(layer.digest);
    const repository = this.context.store.repository(repositoryName);
    if (layer.size > this.maxCachedLayer)
      return { etag, size: layer.size, open: () => repository.openBlob(layer) };
    return {
      etag,
      size: layer.size,
      load: () =>
        this.layers.get(layer.digest, () => this.registry(() => repository.readBlob(layer, METADATA_LIMIT))),
    };
  }

  // ---- shards -----------------------------------------------------------------------------

  private async currentShards(channel: Channel, subdir: string): Promise<ShardSet> {
    const repositoryName = this.metadataRepository(channel, subdir, METADATA_KINDS.repodata);
    const latest = await this.latest(repositoryName);
    const layer = latest?.layers.find((l) => l.mediaType === METADATA_KINDS.repodata.mediaType);
    if (!layer) throw notFound();
    if (layer.size > (this.options.maxShardSource ?? 400 * 1024 * 1024)) {
      // Clients fall back to repodata.json(.zst) on a 404.
      throw new HttpFailure(404, 'no sharded repodata for a repodata.json this large; use repodata.json.zst');
    }
    const key = `${repositoryName}@${layer.digest}`;
    const recent = this.recentShardSets.get(repositoryName) ?? [];
    if (!recent.includes(key)) {
      recent.push(key);
      if (recent.length > 3) recent.shift();
      this.recentShardSets.set(repositoryName, recent);
    }
    return this.shardSets.get(key, async () => {
      const body = await this.layerBody(repositoryName, layer);
      const json =
        (await body.load?.()) ??
        (await this.registry(() =>
          this.context.store.repository(repositoryName).readBlob(layer, METADATA_LIMIT),
        ));
      return buildShards(json, subdir);
    });
  }

  private async shardIndex(channel: Channel, subdir: string): Promise<Representation> {
    const set = await this.currentShards(channel, subdir);
    return {
      etag: etagOf(`sha256:${set.indexSha256}`),
      size: set.index.length,
      bytes: set.index,
      contentType: 'application/octet-stream',
      cacheControl: `public, max-age=${this.maxAge}`,
    };
  }

  private async shard(channel: Channel, subdir: string, sha256: string): Promise<Representation> {
    const current = await this.currentShards(channel, subdir);
    let bytes = current.shards.get(sha256);
    if (!bytes) {
      // A client holding an index from before the last repodata change.
      const repositoryName = this.metadataRepository(channel, subdir, METADATA_KINDS.repodata);
      for (const key of this.recentShardSets.get(repositoryName) ?? []) {
        bytes = (await this.shardSets.peek(key)?.catch(() => undefined))?.shards.get(sha256);
        if (bytes) break;
      }
    }
    if (!bytes) throw notFound();
    return {
      etag: etagOf(`sha256:${sha256}`),
      size: bytes.length,
      bytes,
      contentType: 'application/octet-stream',
      cacheControl: IMMUTABLE,
    };
  }

  // ---- packages ---------------------------------------------------------------------------

  private packageManifest(repositoryName: string, tag: string): Promise<PackageManifestInfo | undefined> {
    const key = `${repositoryName}:${tag}`;
    const now = this.now();
    const cached = this.packages.get(key);
    if (cached) {
      const age = now - cached.at;
      // Found: production tags never move, so it is kept long; not found: asked again after the TTL.
      if (age < this.ttl) return cached.value;
      if (age < PACKAGE_HIT_TTL_MS) {
        const value = cached.value;
        return value.then((hit) => (hit ? hit : this.refreshPackage(key, repositoryName, tag)));
      }
    }
    return this.refreshPackage(key, repositoryName, tag);
  }

  private refreshPackage(
    key: string,
    repositoryName: string,
    tag: string,
  ): Promise<PackageManifestInfo | undefined> {
    const value = this.registry(async () => {
      try {
        const fetched = await this.context.store.repository(repositoryName).fetchManifest(tag);
        return readPackageManifest(fetched.bytes, `${repositoryName}:${tag}`);
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    });
    this.packages.delete(key);
    this.packages.set(key, { at: this.now(), value });
    if (this.packages.size > MAX_PACKAGE_ENTRIES) this.packages.delete(this.packages.keys().next().value!);
    value.catch(() => {
      if (this.packages.get(key)?.value === value) this.packages.delete(key);
    });
    return value;
  }

  private async package(channel: Channel, subdir: string, file: string): Promise<Representation | Redirect> {
    let name;
    let ref;
    try {
      name = parseArtifactFileName(file);
      ref = packageReference(subdir, name.name, name.version, name.build);
    } catch (err) {
      if (err instanceof InvalidReferenceError) throw notFound();
      throw err;
    }
    const repositoryName = channelRepository(channel, ref.repository);
    const info = await this.packageManifest(repositoryName, ref.tag);
    // The tag holds this very file (not the .conda when the .tar.bz2 is asked for, nor a stray).
    if (
      !info ||
      info.fileName !== file ||
      info.name !== name.name ||
      info.version !== name.version ||
      info.build !== name.build
    )
      throw notFound();
    const layer = info.packageLayer;
    if (this.options.redirect && (await this.blobIsPublic(repositoryName, layer.digest))) {
      return { location: this.blobUrl(repositoryName, layer.digest) };
    }
    const repository = this.context.store.repository(repositoryName);
    return {
      etag: etagOf(layer.digest),
      size: layer.size,
      contentType: 'application/octet-stream',
      cacheControl: IMMUTABLE,
      ...(layer.size <= this.maxCachedPackage
        ? {
            load: () =>
              this.blobs.get(layer.digest, () => this.registry(() => repository.readBlob(layer, layer.size))),
          }
        : { open: () => repository.openBlob(layer) }),
    };
  }

  private blobUrl(repositoryName: string, digest: string): string {
    const channel = this.options.channel;
    if (channel.kind !== 'registry') throw new Error('no blob URL for an oci-layout channel');
    return `${channel.plainHttp ? 'http' : 'https'}://${channel.host}/v2/${repositoryName}/blobs/${digest}`;
  }

  /**
   * True when the registry serves this repository's blobs to anyone: the gateway holds no
   * credentials and a HEAD without any Authorization is answered 200 (or with a redirect).
   * Asked once per repository.
   */
  private blobIsPublic(repositoryName: string, digest: Digest): Promise<boolean> {
    if (!this.context.anonymous || this.options.channel.kind !== 'registry') return Promise.resolve(false);
    let known = this.anonymousBlobs.get(repositoryName);
    if (!known) {
      known = this.registry(async () => {
        const response = await fetch(this.blobUrl(repositoryName, digest), {
          method: 'HEAD',
          redirect: 'manual',
        });
        return response.status === 200 || (response.status >= 301 && response.status <= 308);
      }).catch(() => false);
      this.anonymousBlobs.set(repositoryName, known);
    }
    return known;
  }

  // ---- sending ----------------------------------------------------------------------------

  private registry<T>(work: () => Promise<T>): Promise<T> {
    return this.registryLimit.run(work);
  }

  private async send(req: IncomingMessage, res: ServerResponse, rep: Representation): Promise<void> {
    const headers: Record<string, string> = {
      etag: rep.etag,
      'cache-control': rep.cacheControl,
      'content-type': rep.contentType,
      'accept-ranges': 'bytes',
      'x-content-type-options': 'nosniff',
    };
    if (rep.vary) headers.vary = rep.vary;
    if (rep.contentEncoding) headers['content-encoding'] = rep.contentEncoding;
    if (noneMatch(headerValue(req.headers['if-none-match']), rep.etag)) {
      this.stats.notModified++;
      delete headers['content-type'];
      res.writeHead(304, headers);
      res.end();
      return;
    }
    let start = 0;
    let end = rep.size - 1;
    let status = 200;
    const range = ifRangeMatches(headerValue(req.headers['if-range']), rep.etag)
      ? parseRange(headerValue(req.headers.range), rep.size)
      : ({ kind: 'none' } as const);
    if (range.kind === 'unsatisfiable') {
      throw new HttpFailure(416, 'range not satisfiable', { 'content-range': `bytes */${rep.size}` });
    }
    if (range.kind === 'range') {
      ({ start, end } = range);
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${rep.size}`;
      this.stats.partial++;
    }
    headers['content-length'] = String(Math.max(0, end - start + 1));
    if (req.method === 'HEAD' || rep.size === 0) {
      res.writeHead(status, headers);
      res.end();
      return;
    }
    const bytes = rep.bytes ?? (await rep.load?.());
    if (bytes) {
      res.writeHead(status, headers);
      res.end(bytes.subarray(start, end + 1));
      return;
    }
    await this.stream(res, rep, status, headers, start, end);
  }

  /** Streams bytes `start..end` of a blob; the registry slot is held until the response is done. */
  private async stream(
    res: ServerResponse,
    rep: Representation,
    status: number,
    headers: Record<string, string>,
    start: number,
    end: number,
  ): Promise<void> {
    const release = await this.registryLimit.acquire();
    let source: Readable;
    try {
      source = await rep.open!();
    } catch (err) {
      release();
      throw err;
    }
    res.once('close', () => {
      source.destroy();
      release();
    });
    // The digest is known to match only once the blob has been read to its end: the last piece
    // is held back until then, so that altered bytes never arrive as a complete response. A range
    // that stops short of the end cannot be checked (clients check the whole file's sha256).
    const toEnd = end === rep.size - 1;
    const sliced = start === 0 && toEnd ? source : source.pipe(slice(start, end, () => source.destroy()));
    const body = toEnd ? sliced.pipe(holdLast()) : sliced;
    const onError = (err: unknown): void => {
      source.destroy();
      if (res.headersSent) {
        // Too late for a status: cut the connection, so that the client sees a broken transfer.
        this.stats.errors++;
        this.context.reporter.warn(redact(`sending ${rep.etag}: ${describeError(err)}`));
        res.destroy();
      } else this.fail(res, err);
    };
    for (const stream of new Set([source, sliced, body])) stream.on('error', onError);
    // The status goes out with the first bytes, so that a blob the registry cannot serve still
    // gets a 502 rather than a cut 200.
    const ready = await new Promise<boolean>((resolve) => {
      const settle = (ok: boolean) => () => {
        body.off('readable', onReadable);
        body.off('end', onEnd);
        for (const stream of new Set([source, sliced, body])) stream.off('error', onFailed);
        resolve(ok);
      };
      const onReadable = settle(true);
      const onEnd = settle(true);
      const onFailed = settle(false);
      body.on('readable', onReadable);
      body.on('end', onEnd);
      for (const stream of new Set([source, sliced, body])) stream.on('error', onFailed);
    });
    if (!ready || res.destroyed || res.headersSent) return;
    res.writeHead(status, headers);
    body.pipe(res);
  }

  private fail(res: ServerResponse, err: unknown): void {
    const failure = toFailure(err);
    if (failure.status >= 500) {
      this.stats.errors++;
      this.context.reporter.warn(redact(`${failure.status}: ${describeError(err)}`));
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = `${failure.message}\n`;
    res.writeHead(failure.status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': 'no-store',
      ...failure.headers,
    });
    res.end(body);
  }

  describe(): string {
    return channelUrl(this.options.channel);
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Errors as short answers: never the registry's own text (it may name hosts, paths or scopes). */
function toFailure(err: unknown): HttpFailure {
  if (err instanceof HttpFailure) return err;
  if (err instanceof NotFoundError || err instanceof InvalidReferenceError) return notFound();
  if (err instanceof RegistryError) {
    if (err.status === 404) return notFound();
    if (err.status === 401 || err.status === 403)
      return new HttpFailure(502, 'the registry refused the gateway');
    if (err.status === 429)
      return new HttpFailure(503, 'the registry is rate limiting; try again later', { 'retry-after': '30' });
    return new HttpFailure(502, `the registry answered ${err.status}`);
  }
  if (err instanceof DigestMismatchError || err instanceof SizeLimitError)
    return new HttpFailure(502, 'the registry sent other bytes than expected');
  return new HttpFailure(502, 'the registry could not be reached');
}

/** Passes every piece on one piece late: the last one goes only when the input ends cleanly. */
function holdLast(): Transform {
  let held: Buffer | undefined;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const previous = held;
      held = chunk;
      callback(null, previous);
    },
    flush(callback) {
      callback(null, held);
    },
  });
}

/** Passes bytes `start..end` (inclusive) of the stream on, then ends and calls `done`. */
function slice(start: number, end: number, done: () => void): Transform {
  let offset = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const chunkStart = offset;
      offset += chunk.length;
      if (offset <= start || chunkStart > end) return callback();
      const from = Math.max(0, start - chunkStart);
      const to = Math.min(chunk.length, end - chunkStart + 1);
      this.push(chunk.subarray(from, to));
      if (offset > end) {
        this.push(null);
        done();
      }
      callback();
    },
  });
}
