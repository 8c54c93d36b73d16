/**
 * A client of the OCI distribution API: https://github.com/opencontainers/distribution-spec/blob/main/spec.md
 * Each protocol step checks its status explicitly; every read is verified against its digest.
 *
 * One facade over the parts, which share one authenticated exchange (exchange.ts): blob reads
 * (blob-read.ts), blob uploads (blob-upload.ts, upload-session.ts), manifests (manifests.ts),
 * paged listings (listing.ts) and referrers (referrers.ts).
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../digest.js';
import type { Descriptor, ImageIndex, ManifestBytes } from '../manifest.js';
import type { BlobContent, PushBlobOptions, PushOutcome, StreamedBlob } from '../storage.js';
import { Authenticator, type Credentials } from './auth.js';
import { BlobReader } from './blob-read.js';
import { BlobUploader } from './blob-upload.js';
import { RegistryExchange } from './exchange.js';
import { HttpClient, type HttpOptions } from './http.js';
import { Listing } from './listing.js';
import { ManifestClient } from './manifests.js';
import { ReferrersClient } from './referrers.js';

export { nextLink } from './listing.js';

/** GHCR refuses PATCH bodies over 4 MiB (416). */
export const MAX_CHUNK_SIZE = 4 * 1024 * 1024;

export interface RegistryClientOptions extends HttpOptions {
  /** `host` or `host:port`. */
  host: string;
  plainHttp: boolean;
  credentials?: Credentials;
  /**
   * Blobs up to this size go in one PUT; larger ones in PATCH chunks. After a failed monolithic
   * PUT, the retry always goes in chunks, so that it can resume.
   */
  monolithicLimit?: number;
  chunkSize?: number;
  maxRedirects?: number;
  /**
   * Most entries one listing (tags, catalog) may have: a registry that keeps answering fresh
   * pages would otherwise be read forever. Default 1,000,000.
   */
  listLimit?: number;
  /** For tests: the clock that decides when a cached token has expired. */
  clock?: () => number;
  /** Told of every token a token service issues, before it is used, so the caller can mask it. */
  onToken?: (token: string) => void;
}

export class RegistryClient {
  readonly http: HttpClient;
  readonly auth: Authenticator;
  readonly host: string;
  private readonly registry: RegistryExchange;
  private readonly blobs: BlobReader;
  private readonly uploads: BlobUploader;
  private readonly manifests: ManifestClient;
  private readonly listing: Listing;
  private readonly referrersApi: ReferrersClient;

  constructor(options: RegistryClientOptions) {
    this.host = options.host;
    this.http = new HttpClient(options);
    this.auth = new Authenticator(
      this.http,
      options.host,
      options.credentials,
      options.clock,
      options.onToken,
    );
    const base = `${options.plainHttp ? 'http' : 'https'}://${options.host}`;
    this.registry = new RegistryExchange(this.http, this.auth, options.host, base);
    this.blobs = new BlobReader(this.registry, options.maxRedirects ?? 5);
    this.uploads = new BlobUploader(this.registry, this.blobs, {
      monolithicLimit: options.monolithicLimit ?? Number.POSITIVE_INFINITY,
      chunkSize: Math.min(options.chunkSize ?? MAX_CHUNK_SIZE, MAX_CHUNK_SIZE),
    });
    this.manifests = new ManifestClient(this.registry);
    this.listing = new Listing(this.registry, options.listLimit ?? 1_000_000);
    this.referrersApi = new ReferrersClient(this.registry);
  }

  url(path: string): URL {
    return this.registry.url(path);
  }

  // ---- blobs (blob-read.ts, blob-upload.ts) ------------------------------------------------

  statBlob(repository: string, digest: Digest): Promise<{ size: number } | undefined> {
    return this.blobs.statBlob(repository, digest);
  }

  /** A stream of the blob that resumes after a broken connection and is verified at its end. */
  openBlob(repository: string, descriptor: { digest: Digest; size: number }): Readable {
    return this.blobs.openBlob(repository, descriptor);
  }

  /** Stores a blob unless present: mounted, in one PUT or in chunks, resumed after a failure. */
  pushBlob(
    repository: string,
    descriptor: { digest: Digest; size: number },
    content: BlobContent,
    options: PushBlobOptions = {},
  ): Promise<PushOutcome> {
    return this.uploads.pushBlob(repository, descriptor, content, options);
  }

  /** Uploads a blob read once, whose digest is known at its end (see StreamedBlob). */
  pushBlobStream(repository: string, blob: StreamedBlob): Promise<PushOutcome & { digest: Digest }> {
    return this.uploads.pushBlobStream(repository, blob);
  }

  // ---- manifests (manifests.ts) -------------------------------------------------------------

  resolve(repository: string, reference: string): Promise<Descriptor | undefined> {
    return this.manifests.resolve(repository, reference);
  }

  fetchManifest(
    repository: string,
    reference: string,
  ): Promise<{ descriptor: Descriptor; bytes: Uint8Array }> {
    return this.manifests.fetchManifest(repository, reference);
  }

  pushManifest(
    repository: string,
    manifest: ManifestBytes,
    reference: string,
  ): Promise<{ descriptor: Descriptor; subjectIndexed: boolean }> {
    return this.manifests.pushManifest(repository, manifest, reference);
  }

  /** DELETE of a manifest; UnsupportedError when the registry has no DELETE (GHCR: 405). */
  deleteManifest(repository: string, digest: Digest): Promise<void> {
    return this.manifests.deleteManifest(repository, digest);
  }

  // ---- listings (listing.ts) and referrers (referrers.ts) ----------------------------------

  /** Every tag of a repository across `Link` pages; a repository that does not exist has none. */
  listTags(repository: string, pageSize = 1000): AsyncGenerator<string> {
    return this.listing.listTags(repository, pageSize);
  }

  /** Every repository from `/v2/_catalog`; UnsupportedError where there is no catalog (GHCR). */
  catalog(pageSize = 1000): AsyncGenerator<string> {
    return this.listing.catalog(pageSize);
  }

  /** The referrers API; undefined where the registry has none (GHCR, distribution 2.x: 404). */
  referrers(repository: string, subject: Digest): Promise<ImageIndex | undefined> {
    return this.referrersApi.referrers(repository, subject);
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}
