/**
 * The remote registry as a Store. Registry-specific gaps are filled by optional providers: a
 * repository lister where there is no `/v2/_catalog`, a deleter where there is no manifest
 * DELETE, and the time a manifest was taken in where the registry records one (all GHCR, served
 * by GitHub's Packages API).
 */
import type { Readable } from 'node:stream';
import { digestOf, type Digest } from '../digest.js';
import { SizeLimitError, UnsupportedError } from '../errors.js';
import type { Descriptor, ImageIndex, ManifestBytes } from '../manifest.js';
import type {
  BlobContent,
  FetchedManifest,
  ListTagsOptions,
  PushBlobOptions,
  PushedManifest,
  PushOutcome,
  Repository,
  Store,
  StreamedBlob,
  StoreStats,
} from '../storage.js';
import { readBody } from './http.js';
import { RegistryClient, type RegistryClientOptions } from './client.js';

/** Lists repositories where the registry has no catalog (e.g. GitHub's Packages API for GHCR). */
export type RepositoryLister = (prefix: string) => AsyncIterable<string>;
/** Deletes a manifest where the registry refuses DELETE (e.g. a GHCR package version). */
export type ManifestDeleter = (repository: string, digest: Digest) => Promise<void>;
/** When the registry took a manifest in, where it records it (e.g. a GHCR package version's `created_at`). */
export type ManifestTimer = (repository: string, digest: Digest) => Promise<Date | undefined>;

export interface RemoteStoreOptions extends RegistryClientOptions {
  listRepositories?: RepositoryLister;
  deleteManifest?: ManifestDeleter;
  manifestTime?: ManifestTimer;
}

export class RemoteStore implements Store {
  readonly id: string;
  readonly client: RegistryClient;
  private readonly lister: RepositoryLister | undefined;
  private readonly deleter: ManifestDeleter | undefined;
  readonly manifestTimer: ManifestTimer | undefined;
  private catalogMissing = false;
  private deleteMissing = false;

  constructor(options: RemoteStoreOptions) {
    this.client = new RegistryClient(options);
    this.id = `registry:${options.host}`;
    this.lister = options.listRepositories;
    this.deleter = options.deleteManifest;
    this.manifestTimer = options.manifestTime;
  }

  repository(name: string): Repository {
    return new RemoteRepository(this, name);
  }

  stats(): StoreStats {
    const { requests, bytesSent, bytesReceived } = this.client.http.stats;
    return { requests, bytesSent, bytesReceived };
  }

  async *listRepositories(prefix: string): AsyncIterable<string> {
    const wanted = (name: string) => prefix === '' || name.startsWith(`${prefix}/`);
    if (!this.catalogMissing) {
      try {
        for await (const name of this.client.catalog()) if (wanted(name)) yield name;
        return;
      } catch (err) {
        if (!(err instanceof UnsupportedError) || !this.lister) throw err;
        this.catalogMissing = true;
      }
    }
    for await (const name of this.lister!(prefix)) if (wanted(name)) yield name;
  }

  async deleteManifest(repository: string, digest: Digest): Promise<void> {
    // GHCR refuses DELETE on /v2/ (405): once it has, cleaning hundreds of tags goes straight to
    // the Packages API instead of asking again for each.
    if (this.deleteMissing && this.deleter) return this.deleter(repository, digest);
    try {
      await this.client.deleteManifest(repository, digest);
    } catch (err) {
      if (!(err instanceof UnsupportedError) || !this.deleter) throw err;
      this.deleteMissing = true;
      return this.deleter(repository, digest);
    }
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

class RemoteRepository implements Repository {
  /** Only where the registry records it (Repository.manifestTime). */
  readonly manifestTime?: (digest: Digest) => Promise<Date | undefined>;

  constructor(
    private readonly store: RemoteStore,
    readonly name: string,
  ) {
    const timer = store.manifestTimer;
    if (timer) this.manifestTime = (digest) => timer(name, digest);
  }

  private get client(): RegistryClient {
    return this.store.client;
  }

  statBlob(digest: Digest): Promise<{ size: number } | undefined> {
    return this.client.statBlob(this.name, digest);
  }

  async openBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>): Promise<Readable> {
    return this.client.openBlob(this.name, descriptor);
  }

  async readBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>, limit: number): Promise<Uint8Array> {
    if (descriptor.size > limit) throw new SizeLimitError(`blob ${descriptor.digest} of ${this.name}`, limit);
    return new Uint8Array(
      await readBody(this.client.openBlob(this.name, descriptor), limit, `blob ${descriptor.digest}`),
    );
  }

  pushBlob(
    descriptor: Pick<Descriptor, 'digest' | 'size'>,
    content: BlobContent,
    options?: PushBlobOptions,
  ): Promise<PushOutcome> {
    return this.client.pushBlob(this.name, descriptor, content, options);
  }

  pushBlobStream(blob: StreamedBlob): Promise<PushOutcome & { digest: Digest }> {
    return this.client.pushBlobStream(this.name, blob);
  }

  resolve(reference: string): Promise<Descriptor | undefined> {
    return this.client.resolve(this.name, reference);
  }

  fetchManifest(reference: string): Promise<FetchedManifest> {
    return this.client.fetchManifest(this.name, reference);
  }

  pushManifest(manifest: ManifestBytes, tag?: string): Promise<PushedManifest> {
    return this.client.pushManifest(this.name, manifest, tag ?? digestOf(manifest.bytes));
  }

  deleteManifest(digest: Digest): Promise<void> {
    return this.store.deleteManifest(this.name, digest);
  }

  listTags(options?: ListTagsOptions): AsyncIterable<string> {
    return this.client.listTags(this.name, options?.pageSize);
  }

  referrersApi(subject: Digest): Promise<ImageIndex | undefined> {
    return this.client.referrers(this.name, subject);
  }
}
