/**
 * Storing blobs: whether to send at all (known locations, HEAD), cross-repository mounts with
 * their fallback, monolithic or chunked, and how a broken upload goes on (resume, new session,
 * retry in chunks); and the streamed upload of a blob whose digest is known only at its end.
 * The protocol steps of a session are in upload-session.ts.
 * https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-blobs
 */
import type { Digest } from '../digest.js';
import { DigestMismatchError, ProtocolError, RegistryError, UnsupportedError } from '../errors.js';
import type { BlobContent, BlobSource, PushBlobOptions, PushOutcome, StreamedBlob } from '../storage.js';
import { bytesSource } from '../storage.js';
import { repositoryScope } from './auth.js';
import type { BlobReader } from './blob-read.js';
import type { RegistryExchange } from './exchange.js';
import { discard, gaveUp, redactUrl, type HttpResponse } from './http.js';
import {
  cancelUpload,
  closeUpload,
  isLostSession,
  rangeEnd,
  sessionLocation,
  uploadChunks,
  uploadMonolithic,
  uploadStatus,
  type UploadSession,
} from './upload-session.js';

export interface BlobUploadOptions {
  /** Blobs up to this size go in one PUT; larger ones in PATCH chunks. */
  monolithicLimit: number;
  chunkSize: number;
}

export class BlobUploader {
  /** The registry refused a streamed upload (a PATCH of the whole blob): don't ask again. */
  private streamRefused = false;
  /** `from -> to` pairs whose mount the registry refused for lack of access. */
  private readonly mountRefused = new Set<string>();
  /**
   * Repositories where this client stored or found each blob: a blob is not looked for again
   * where it is, and is mounted from there into other repositories of the registry (one request
   * instead of HEAD, POST and PUT), as skopeo's blob-info cache does. Uploading 200 packages sends
   * the same empty config blob to 200 repositories.
   */
  private readonly blobLocations = new Map<string, Set<string>>();

  constructor(
    private readonly registry: RegistryExchange,
    private readonly blobs: BlobReader,
    private readonly options: BlobUploadOptions,
  ) {}

  /**
   * Stores a blob unless present. With `mountFrom`, asks for a cross-repository mount first and
   * uploads into the session the registry opens when it declines (GHCR does).
   *
   * A broken chunked upload asks the registry where the session stands (GET, 204 + Range) and
   * goes on from there; when the registry has given the session up (distribution does once a
   * PATCH was cut mid-body: the stored size no longer matches the session state), a new session
   * starts from byte 0. A broken monolithic PUT is retried in chunks, so that a second failure
   * can resume.
   */
  async pushBlob(
    repository: string,
    descriptor: { digest: Digest; size: number },
    content: BlobContent,
    options: PushBlobOptions = {},
  ): Promise<PushOutcome> {
    const { registry, blobs } = this;
    const { chunkSize, monolithicLimit } = this.options;
    const known = this.blobLocations.get(descriptor.digest);
    if (known?.has(repository)) return { action: 'exists', bytesSent: 0 };
    let mountFrom = options.mountFrom ?? (known ? [...known][0] : undefined);
    if (mountFrom && this.mountRefused.has(`${mountFrom} -> ${repository}`)) mountFrom = undefined;
    // With a mount to ask for, it is asked first: when it succeeds, that is the only request. The
    // blob is looked for before anything is sent: here, or once a registry declines the mount.
    if (!mountFrom && options.lookFirst !== false && (await blobs.statBlob(repository, descriptor.digest)))
      return this.stored(repository, descriptor.digest, 'exists', 0);
    const source: BlobSource = content instanceof Uint8Array ? bytesSource(content) : content;
    if (source.size !== descriptor.size) {
      throw new DigestMismatchError(
        `size of the content for ${descriptor.digest}`,
        String(descriptor.size),
        String(source.size),
      );
    }
    let chunked = descriptor.size > monolithicLimit;
    let upload: UploadSession | undefined;
    const sent = { bytes: 0 };
    // Failures in a row: acknowledged bytes beyond any offset reached before start it over.
    let highWater = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        // The closing PUT may have succeeded with its answer lost: then the blob is there.
        if (attempt > 1 && (await blobs.statBlob(repository, descriptor.digest)))
          return this.stored(repository, descriptor.digest, 'uploaded', sent.bytes);
        if (upload?.broken)
          upload = await uploadStatus(registry, repository, upload.location, descriptor.size);
        if (!upload) {
          const asked = mountFrom;
          const started = await this.startUpload(repository, descriptor.digest, mountFrom);
          if (started === 'mounted') return this.stored(repository, descriptor.digest, 'mounted', 0);
          mountFrom = undefined; // the registry said no once; don't ask again on a retry
          if (asked && (await blobs.statBlob(repository, descriptor.digest))) {
            await cancelUpload(registry, repository, started);
            return this.stored(repository, descriptor.digest, 'exists', 0);
          }
          upload = { location: started, offset: 0, broken: false };
        }
        if (chunked)
          await uploadChunks(
            registry,
            repository,
            upload,
            descriptor,
            source,
            chunkSize,
            sent,
            options.onProgress,
          );
        else
          await uploadMonolithic(registry, repository, upload, descriptor, source, sent, options.onProgress);
        return this.stored(repository, descriptor.digest, 'uploaded', sent.bytes);
      } catch (err) {
        if (upload && upload.offset > highWater) {
          highWater = upload.offset;
          attempt = 1;
        }
        // A session the registry no longer knows (its answer to a request that reached it twice,
        // or a session it dropped) is not a reason to give up: the next attempt finds the blob
        // stored, or starts a new session.
        const lostSession = isLostSession(err);
        const delay =
          lostSession && attempt < registry.http.retry.attempts ? 0 : registry.http.retryDelay(err, attempt);
        const what = `uploading blob ${descriptor.digest} to ${registry.host}/${repository}`;
        if (delay === undefined) throw gaveUp(what, err, attempt);
        if (lostSession) upload = undefined;
        else if (chunked && upload) upload.broken = true;
        else upload = undefined; // a broken PUT leaves no session worth resuming
        if (descriptor.size > chunkSize) chunked = true;
        await registry.http.retryAfter(what, err, delay);
      }
    }
  }

  /**
   * Uploads a blob whose digest is known only once it has been read (see StreamedBlob): POST a
   * session, one PATCH with the whole stream, and the closing PUT with the digest. No retry: the
   * stream can be read once, so on any failure the session is cancelled and the error thrown, and
   * the caller uploads the ordinary way. A registry that caps PATCH bodies (GHCR: 4 MiB) answers
   * 413/416, after which this client does not stream to it again.
   */
  async pushBlobStream(repository: string, blob: StreamedBlob): Promise<PushOutcome & { digest: Digest }> {
    const { registry } = this;
    let session: URL | undefined;
    try {
      if (this.streamRefused) throw new UnsupportedError(`${registry.host} refused a streamed upload before`);
      if (blob.size <= 0) throw new ProtocolError('a streamed upload needs a known, non-zero size');
      const scopes = [repositoryScope(repository, 'pull,push')];
      const started = await registry.http.withRetry(`POST /v2/${repository}/blobs/uploads/`, () =>
        this.startUpload(repository, undefined, undefined),
      );
      if (started === 'mounted') throw new ProtocolError('a plain upload session was answered as a mount');
      session = started;
      let sent = false;
      const response = await registry.exchange({
        method: 'PATCH',
        url: session,
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(blob.size),
          'content-range': `0-${blob.size - 1}`,
        },
        body: () => {
          // A second call would be the retry after a 401: the bytes are gone.
          if (sent) throw new ProtocolError('a streamed blob cannot be sent twice');
          sent = true;
          return blob.chunks;
        },
        scopes,
        expect: [202],
      });
      await discard(response.body);
      session = sessionLocation(response, session);
      const end = rangeEnd(response.headers.range);
      if (end !== undefined && end + 1 !== blob.size)
        throw new ProtocolError(
          `${redactUrl(session)} acknowledged ${end + 1} of the ${blob.size} bytes streamed to it`,
        );
      const digest = await blob.digest;
      await closeUpload(registry, session, digest, scopes);
      return { ...this.stored(repository, digest, 'uploaded', blob.size), digest };
    } catch (err) {
      if (err instanceof RegistryError && [400, 413, 416].includes(err.status)) this.streamRefused = true;
      blob.abandon();
      if (session) await cancelUpload(registry, repository, session);
      throw err;
    }
  }

  /** Notes where a blob now is (see blobLocations) and describes the push. */
  private stored(
    repository: string,
    digest: Digest,
    action: PushOutcome['action'],
    bytesSent: number,
  ): PushOutcome {
    const where = this.blobLocations.get(digest);
    if (where) where.add(repository);
    else this.blobLocations.set(digest, new Set([repository]));
    return { action, bytesSent };
  }

  /** POST that opens an upload session; with `mountFrom`, a mount request (201 = mounted). */
  private async startUpload(
    repository: string,
    digest: Digest | undefined,
    mountFrom: string | undefined,
  ): Promise<URL | 'mounted'> {
    const url = this.registry.url(`/v2/${repository}/blobs/uploads/`);
    const scopes = [repositoryScope(repository, 'pull,push')];
    if (mountFrom && digest) {
      url.searchParams.set('mount', digest);
      url.searchParams.set('from', mountFrom);
      scopes.push(repositoryScope(mountFrom, 'pull'));
    }
    let response: HttpResponse;
    try {
      response = await this.registry.exchange({
        method: 'POST',
        url,
        headers: { 'content-length': '0' },
        scopes,
        expect: [201, 202],
      });
    } catch (err) {
      // Without pull access on the source, distribution refuses the mount (401) instead of
      // opening a session: upload the ordinary way, and don't ask for this pair again.
      if (mountFrom && err instanceof RegistryError && (err.status === 401 || err.status === 403)) {
        this.mountRefused.add(`${mountFrom} -> ${repository}`);
        return this.startUpload(repository, digest, undefined);
      }
      throw err;
    }
    await discard(response.body);
    if (response.status === 201) {
      if (!mountFrom)
        throw new ProtocolError(`POST ${redactUrl(url)} answered 201 to a request that was not a mount`);
      return 'mounted';
    }
    return sessionLocation(response, url);
  }
}
