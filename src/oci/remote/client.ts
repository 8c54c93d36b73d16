/**
 * A client of the OCI distribution API: https://github.com/opencontainers/distribution-spec/blob/main/spec.md
 * Each protocol step checks its status explicitly; every read is verified against its digest.
 */
import { pipeline, Readable } from 'node:stream';
import { digestOf, VerifyingStream, type Digest } from '../digest.js';
import {
  DigestMismatchError,
  NotFoundError,
  ProtocolError,
  RegistryError,
  UnsupportedError,
} from '../errors.js';
import {
  MANIFEST_SIZE_LIMIT,
  parseImageIndex,
  type Descriptor,
  type ImageIndex,
  type ManifestBytes,
} from '../manifest.js';
import {
  HEADER_DOCKER_CONTENT_DIGEST,
  HEADER_OCI_SUBJECT,
  MANIFEST_MEDIA_TYPES,
  MEDIA_TYPE_OCI_INDEX,
} from '../media-types.js';
import type { BlobContent, BlobSource, PushBlobOptions, PushOutcome, StreamedBlob } from '../storage.js';
import { bytesSource } from '../storage.js';
import { isLoopbackHost } from '../reference.js';
import { Authenticator, CATALOG_SCOPE, repositoryScope, type Credentials, type Scope } from './auth.js';
import {
  discard,
  errorFromResponse,
  gaveUp,
  HttpClient,
  readBody,
  redactUrl,
  TransientError,
  type HttpOptions,
  type HttpRequest,
  type HttpResponse,
} from './http.js';

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
}

interface Exchange {
  method: HttpRequest['method'];
  url: URL;
  headers?: Record<string, string>;
  body?: HttpRequest['body'];
  scopes: Scope[];
  /** Statuses that are answers rather than errors. */
  expect: number[];
}

export class RegistryClient {
  readonly http: HttpClient;
  readonly auth: Authenticator;
  readonly host: string;
  private readonly base: string;
  private readonly monolithicLimit: number;
  private readonly chunkSize: number;
  private readonly maxRedirects: number;
  private readonly listLimit: number;
  private referrersMissing = false;
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

  constructor(options: RegistryClientOptions) {
    this.host = options.host;
    this.base = `${options.plainHttp ? 'http' : 'https'}://${options.host}`;
    this.http = new HttpClient(options);
    this.auth = new Authenticator(this.http, options.host, options.credentials, options.clock);
    this.monolithicLimit = options.monolithicLimit ?? Number.POSITIVE_INFINITY;
    this.chunkSize = Math.min(options.chunkSize ?? MAX_CHUNK_SIZE, MAX_CHUNK_SIZE);
    this.maxRedirects = options.maxRedirects ?? 5;
    this.listLimit = options.listLimit ?? 1_000_000;
  }

  url(path: string): URL {
    return new URL(path, this.base);
  }

  /**
   * One exchange with authentication: sends the known Authorization for the scopes; on a 401,
   * learns the challenge and tries once more. Statuses outside `expect` become RegistryError.
   */
  private async exchange(request: Exchange): Promise<HttpResponse> {
    const scopes = [...request.scopes];
    const sameOrigin = request.url.origin === new URL(this.base).origin;
    for (let authAttempt = 0; ; authAttempt++) {
      const authorization = sameOrigin ? await this.auth.header(scopes) : undefined;
      const headers = { ...request.headers, ...(authorization ? { authorization } : {}) };
      const response = await this.http.send({
        method: request.method,
        url: request.url,
        headers,
        ...(request.body ? { body: request.body } : {}),
      });
      if (
        response.status === 401 &&
        sameOrigin &&
        authAttempt === 0 &&
        this.auth.unauthorized(response.headers['www-authenticate'], scopes, authorization)
      ) {
        await discard(response.body);
        continue;
      }
      if (request.expect.includes(response.status)) return response;
      const error = await errorFromResponse(request.method, request.url, response);
      if (response.status === 401 && sameOrigin) {
        error.errors.unshift({
          code: 'UNAUTHORIZED',
          message: this.auth.describeRefusal(authorization, scopes),
        });
        throw withMessage(error);
      }
      throw error;
    }
  }

  /** An exchange retried on transient failures (only for requests whose body can be re-sent). */
  private retried(what: string, request: Exchange): Promise<HttpResponse> {
    return this.http.withRetry(what, () => this.exchange(request));
  }

  // ---- blobs ------------------------------------------------------------------------------

  async statBlob(repository: string, digest: Digest): Promise<{ size: number } | undefined> {
    const url = this.url(`/v2/${repository}/blobs/${digest}`);
    const response = await this.retried(`HEAD ${redactUrl(url)}`, {
      method: 'HEAD',
      url,
      scopes: [repositoryScope(repository, 'pull')],
      expect: [200, 404],
    });
    await discard(response.body);
    if (response.status === 404) return undefined;
    const size = Number(response.headers['content-length']);
    return { size: Number.isSafeInteger(size) ? size : -1 };
  }

  /** GET of a blob following redirects; credentials stay on the registry's origin. */
  private async getBlob(repository: string, digest: Digest, offset: number): Promise<HttpResponse> {
    let url = this.url(`/v2/${repository}/blobs/${digest}`);
    const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    for (let hop = 0; hop <= this.maxRedirects; hop++) {
      const response = await this.exchange({
        method: 'GET',
        url,
        headers,
        scopes: [repositoryScope(repository, 'pull')],
        expect: [200, 206, 301, 302, 303, 307, 308, 404],
      });
      if (response.status === 200 || response.status === 206) return response;
      if (response.status === 404) {
        throw new NotFoundError(`blob ${digest} not found in ${this.host}/${repository}`, {
          cause: await errorFromResponse('GET', url, response),
        });
      }
      await discard(response.body);
      const location = response.headers.location;
      if (!location) throw new ProtocolError(`GET ${redactUrl(url)} redirected without a Location`);
      const from = url;
      url = new URL(location, url);
      if (url.protocol !== 'https:' && url.protocol !== 'http:')
        throw new ProtocolError(`GET blob ${digest} redirected to a ${url.protocol} URL; refused`);
      if (from.protocol === 'https:' && url.protocol === 'http:' && !isLoopbackHost(url.host))
        throw new ProtocolError(
          `GET blob ${digest} redirected from HTTPS to plain HTTP (${url.origin}); refused`,
        );
    }
    throw new ProtocolError(
      `GET blob ${digest} of ${repository} redirected more than ${this.maxRedirects} times`,
    );
  }

  /**
   * The blob as a stream that resumes after a broken connection (Range request from the bytes
   * already received) and fails unless the whole matches digest and size.
   */
  openBlob(repository: string, descriptor: { digest: Digest; size: number }): Readable {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- a generator cannot be an arrow function
    const client = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      let received = 0;
      // `attempt` counts failures in a row: bytes received since the last one start it over, so
      // a long download on a flaky network is not given up while it is still moving.
      let receivedAtFailure = 0;
      for (let attempt = 1; ; attempt++) {
        try {
          const response = await client.getBlob(repository, descriptor.digest, received);
          let skip = response.status === 200 ? received : 0; // a server that ignores Range starts over
          if (response.status === 206) {
            const start = rangeStart(response.headers['content-range']);
            if (start !== received) {
              await discard(response.body);
              throw new ProtocolError(
                `GET blob ${descriptor.digest} of ${repository} asked for bytes from ${received} and got a part starting at ${start ?? 'an unknown offset'}`,
              );
            }
          }
          for await (const chunk of response.body as AsyncIterable<Buffer>) {
            let piece = chunk;
            if (skip > 0) {
              const dropped = Math.min(skip, piece.length);
              skip -= dropped;
              piece = piece.subarray(dropped);
              if (piece.length === 0) continue;
            }
            received += piece.length;
            yield piece;
          }
          if (received >= descriptor.size) return;
          throw new TransientError(
            `the body of blob ${descriptor.digest} ended after ${received} of ${descriptor.size} bytes`,
          );
        } catch (err) {
          if (received > receivedAtFailure) attempt = 1;
          receivedAtFailure = received;
          const delay = client.http.retryDelay(err, attempt);
          const what = `GET blob ${descriptor.digest} of ${client.host}/${repository}`;
          if (delay === undefined) throw gaveUp(what, err, attempt);
          await client.http.retryAfter(what, err, delay);
        }
      }
    }
    const verified = new VerifyingStream(
      descriptor,
      `blob ${descriptor.digest} of ${this.host}/${repository}`,
    );
    // pipeline, not pipe: a reader that stops early (destroys the stream) ends the download too.
    return pipeline(Readable.from(chunks(), { objectMode: false }), verified, () => {});
  }

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
    const known = this.blobLocations.get(descriptor.digest);
    if (known?.has(repository)) return { action: 'exists', bytesSent: 0 };
    let mountFrom = options.mountFrom ?? (known ? [...known][0] : undefined);
    if (mountFrom && this.mountRefused.has(`${mountFrom} -> ${repository}`)) mountFrom = undefined;
    // With a mount to ask for, it is asked first: when it succeeds, that is the only request. The
    // blob is looked for before anything is sent: here, or once a registry declines the mount.
    if (!mountFrom && options.lookFirst !== false && (await this.statBlob(repository, descriptor.digest)))
      return this.stored(repository, descriptor.digest, 'exists', 0);
    const source: BlobSource = content instanceof Uint8Array ? bytesSource(content) : content;
    if (source.size !== descriptor.size) {
      throw new DigestMismatchError(
        `size of the content for ${descriptor.digest}`,
        String(descriptor.size),
        String(source.size),
      );
    }
    let chunked = descriptor.size > this.monolithicLimit;
    let upload: UploadSession | undefined;
    const sent = { bytes: 0 };
    // Failures in a row: acknowledged bytes beyond any offset reached before start it over.
    let highWater = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        // The closing PUT may have succeeded with its answer lost: then the blob is there.
        if (attempt > 1 && (await this.statBlob(repository, descriptor.digest)))
          return this.stored(repository, descriptor.digest, 'uploaded', sent.bytes);
        if (upload?.broken) upload = await this.uploadStatus(repository, upload.location, descriptor.size);
        if (!upload) {
          const asked = mountFrom;
          const started = await this.startUpload(repository, descriptor.digest, mountFrom);
          if (started === 'mounted') return this.stored(repository, descriptor.digest, 'mounted', 0);
          mountFrom = undefined; // the registry said no once; don't ask again on a retry
          if (asked && (await this.statBlob(repository, descriptor.digest))) {
            await this.cancelUpload(repository, started);
            return this.stored(repository, descriptor.digest, 'exists', 0);
          }
          upload = { location: started, offset: 0, broken: false };
        }
        if (chunked)
          await this.uploadChunks(repository, upload, descriptor, source, sent, options.onProgress);
        else await this.uploadMonolithic(repository, upload, descriptor, source, sent, options.onProgress);
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
          lostSession && attempt < this.http.retry.attempts ? 0 : this.http.retryDelay(err, attempt);
        const what = `uploading blob ${descriptor.digest} to ${this.host}/${repository}`;
        if (delay === undefined) throw gaveUp(what, err, attempt);
        if (lostSession) upload = undefined;
        else if (chunked && upload) upload.broken = true;
        else upload = undefined; // a broken PUT leaves no session worth resuming
        if (descriptor.size > this.chunkSize) chunked = true;
        await this.http.retryAfter(what, err, delay);
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
    let session: URL | undefined;
    try {
      if (this.streamRefused) throw new UnsupportedError(`${this.host} refused a streamed upload before`);
      if (blob.size <= 0) throw new ProtocolError('a streamed upload needs a known, non-zero size');
      const scopes = [repositoryScope(repository, 'pull,push')];
      const started = await this.http.withRetry(`POST /v2/${repository}/blobs/uploads/`, () =>
        this.startUpload(repository, undefined, undefined),
      );
      if (started === 'mounted') throw new ProtocolError('a plain upload session was answered as a mount');
      session = started;
      let sent = false;
      const response = await this.exchange({
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
          return blob.stream;
        },
        scopes,
        expect: [202],
      });
      await discard(response.body);
      session = this.location(response, session);
      const end = rangeEnd(response.headers.range);
      if (end !== undefined && end + 1 !== blob.size)
        throw new ProtocolError(
          `${redactUrl(session)} acknowledged ${end + 1} of the ${blob.size} bytes streamed to it`,
        );
      const digest = await blob.digest;
      await this.closeUpload(session, digest, scopes);
      return { ...this.stored(repository, digest, 'uploaded', blob.size), digest };
    } catch (err) {
      if (err instanceof RegistryError && [400, 413, 416].includes(err.status)) this.streamRefused = true;
      blob.stream.destroy();
      if (session) await this.cancelUpload(repository, session);
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

  /** Best effort: DELETE of an upload session, so the registry drops what it received. */
  private async cancelUpload(repository: string, session: URL): Promise<void> {
    try {
      const response = await this.exchange({
        method: 'DELETE',
        url: session,
        scopes: [repositoryScope(repository, 'pull,push')],
        expect: [200, 202, 204, 404],
      });
      await discard(response.body);
    } catch {
      // the registry purges abandoned sessions itself
    }
  }

  /** POST that opens an upload session; with `mountFrom`, a mount request (201 = mounted). */
  private async startUpload(
    repository: string,
    digest: Digest | undefined,
    mountFrom: string | undefined,
  ): Promise<URL | 'mounted'> {
    const url = this.url(`/v2/${repository}/blobs/uploads/`);
    const scopes = [repositoryScope(repository, 'pull,push')];
    if (mountFrom && digest) {
      url.searchParams.set('mount', digest);
      url.searchParams.set('from', mountFrom);
      scopes.push(repositoryScope(mountFrom, 'pull'));
    }
    let response: HttpResponse;
    try {
      response = await this.exchange({
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
    return this.location(response, url);
  }

  private location(response: HttpResponse, requestUrl: URL): URL {
    const location = response.headers.location;
    if (!location)
      throw new ProtocolError(
        `${redactUrl(requestUrl)} answered ${response.status} without a Location header`,
      );
    const url = new URL(location, requestUrl);
    if (url.origin !== requestUrl.origin)
      throw new ProtocolError(
        `${redactUrl(requestUrl)} sent the upload to another origin (${url.origin}); refused`,
      );
    return url;
  }

  /** The closing PUT of an upload whose bytes have all been sent: the registry checks the digest. */
  private async closeUpload(session: URL, digest: Digest, scopes: Scope[]): Promise<void> {
    const url = this.withDigest(session, digest);
    const response = await this.exchange({
      method: 'PUT',
      url,
      headers: { 'content-length': '0' },
      scopes,
      expect: [201],
    });
    await discard(response.body);
    this.checkDigestHeader(response, digest, url);
  }

  private withDigest(session: URL, digest: Digest): URL {
    const url = new URL(session);
    url.searchParams.set('digest', digest);
    return url;
  }

  private async uploadMonolithic(
    repository: string,
    upload: UploadSession,
    descriptor: { digest: Digest; size: number },
    source: BlobSource,
    sent: { bytes: number },
    onProgress?: (n: number) => void,
  ): Promise<void> {
    const url = this.withDigest(upload.location, descriptor.digest);
    const response = await this.exchange({
      method: 'PUT',
      url,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(descriptor.size) },
      body: () => progress(openSource(source, 0), onProgress, 0),
      scopes: [repositoryScope(repository, 'pull,push')],
      expect: [201],
    });
    await discard(response.body);
    this.checkDigestHeader(response, descriptor.digest, url);
    sent.bytes += descriptor.size;
  }

  /**
   * PATCH chunks from the session's offset, then the closing PUT. The content is read once, in
   * order, from that offset; each chunk (at most 4 MiB) is held in memory so that it can be sent
   * again after a 401, and `upload` always holds the latest Location and acknowledged offset.
   */
  private async uploadChunks(
    repository: string,
    upload: UploadSession,
    descriptor: { digest: Digest; size: number },
    source: BlobSource,
    sent: { bytes: number },
    onProgress?: (n: number) => void,
  ): Promise<void> {
    const scopes = [repositoryScope(repository, 'pull,push')];
    let reader: ChunkReader | undefined;
    let refusals = 0;
    try {
      while (upload.offset < descriptor.size) {
        const start = upload.offset;
        const length = Math.min(this.chunkSize, descriptor.size - start);
        const end = start + length - 1;
        reader ??= new ChunkReader(openSource(source, start), start, descriptor);
        const chunk = await reader.read(length);
        const response = await this.exchange({
          method: 'PATCH',
          url: upload.location,
          headers: {
            'content-type': 'application/octet-stream',
            'content-length': String(length),
            'content-range': `${start}-${end}`,
          },
          body: () => chunk,
          scopes,
          expect: [202, 416],
        });
        await discard(response.body);
        if (response.status === 416) {
          // The registry holds a different offset than we think: ask it and carry on from there.
          if (++refusals > 2)
            throw new ProtocolError(`${redactUrl(upload.location)} keeps refusing chunks (416)`);
          const status = await this.uploadStatus(repository, upload.location, descriptor.size);
          if (!status)
            throw new ProtocolError(
              `${redactUrl(upload.location)} refused a chunk (416) and then forgot the upload`,
            );
          Object.assign(upload, status);
        } else {
          upload.location = this.location(response, upload.location);
          const reported = rangeEnd(response.headers.range);
          upload.offset = reported === undefined ? end + 1 : reported + 1;
          if (upload.offset > descriptor.size)
            throw new ProtocolError(
              `${redactUrl(upload.location)} reports ${upload.offset} bytes received of a ${descriptor.size}-byte blob`,
            );
          refusals = 0;
          sent.bytes += length;
          onProgress?.(upload.offset);
        }
        if (upload.offset !== reader.position) {
          reader.close();
          reader = undefined;
        }
      }
    } finally {
      reader?.close();
    }
    await this.closeUpload(upload.location, descriptor.digest, scopes);
  }

  /**
   * Where an upload session stands (GET: 204 with Range), or undefined when the registry no
   * longer has it (404/400 BLOB_UPLOAD_UNKNOWN or BLOB_UPLOAD_INVALID).
   */
  private async uploadStatus(
    repository: string,
    session: URL,
    size: number,
  ): Promise<UploadSession | undefined> {
    let response: HttpResponse;
    try {
      response = await this.exchange({
        method: 'GET',
        url: session,
        scopes: [repositoryScope(repository, 'pull,push')],
        expect: [204],
      });
    } catch (err) {
      if (err instanceof RegistryError && [400, 404, 410, 416].includes(err.status)) return undefined;
      throw err;
    }
    await discard(response.body);
    const end = rangeEnd(response.headers.range);
    // distribution writes `0-0` for an empty session (and, ambiguously, for one byte): start over.
    const offset = end === undefined || end === 0 ? 0 : end + 1;
    const location = response.headers.location ? this.location(response, session) : session;
    if (offset > size) return undefined;
    return { location, offset, broken: false };
  }

  private checkDigestHeader(response: HttpResponse, expected: Digest, url: URL): void {
    const actual = response.headers[HEADER_DOCKER_CONTENT_DIGEST];
    if (actual !== undefined && actual !== expected)
      throw new DigestMismatchError(`${redactUrl(url)} Docker-Content-Digest`, expected, actual);
  }

  // ---- manifests --------------------------------------------------------------------------

  async resolve(repository: string, reference: string): Promise<Descriptor | undefined> {
    const url = this.url(`/v2/${repository}/manifests/${reference}`);
    const response = await this.retried(`HEAD ${redactUrl(url)}`, {
      method: 'HEAD',
      url,
      headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
      scopes: [repositoryScope(repository, 'pull')],
      expect: [200, 404],
    });
    await discard(response.body);
    if (response.status === 404) return undefined;
    const digest = response.headers[HEADER_DOCKER_CONTENT_DIGEST];
    const size = Number(response.headers['content-length']);
    const mediaType = response.headers['content-type']?.split(';')[0]?.trim();
    if (digest?.startsWith('sha256:') && Number.isSafeInteger(size) && mediaType)
      return { mediaType, digest: digest as Digest, size };
    // Some registries leave the digest off a HEAD: read the manifest instead.
    return (await this.fetchManifest(repository, reference)).descriptor;
  }

  async fetchManifest(
    repository: string,
    reference: string,
  ): Promise<{ descriptor: Descriptor; bytes: Uint8Array }> {
    const url = this.url(`/v2/${repository}/manifests/${reference}`);
    return this.http.withRetry(`GET ${redactUrl(url)}`, async () => {
      const response = await this.exchange({
        method: 'GET',
        url,
        headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
        scopes: [repositoryScope(repository, 'pull')],
        expect: [200, 404],
      });
      if (response.status === 404) {
        throw new NotFoundError(
          `manifest ${this.host}/${repository}${reference.startsWith('sha256:') ? '@' : ':'}${reference} not found`,
          { cause: await errorFromResponse('GET', url, response) },
        );
      }
      const bytes = await readBody(response.body, MANIFEST_SIZE_LIMIT, `manifest ${repository}:${reference}`);
      const digest = digestOf(bytes);
      const what = `manifest ${this.host}/${repository}@${reference}`;
      if (reference.startsWith('sha256:') && digest !== reference)
        throw new DigestMismatchError(what, reference, digest);
      const claimed = response.headers[HEADER_DOCKER_CONTENT_DIGEST];
      if (claimed !== undefined && claimed !== digest)
        throw new DigestMismatchError(`${what} (Docker-Content-Digest)`, claimed, digest);
      const declared = declaredMediaType(bytes);
      const mediaType = response.headers['content-type']?.split(';')[0]?.trim() || declared;
      if (!mediaType) throw new ProtocolError(`${what} came without Content-Type or mediaType`);
      // The media type travels with the descriptor into every copy: a header that contradicts
      // the manifest itself would label production wrongly.
      if (declared !== undefined && declared !== mediaType)
        throw new ProtocolError(
          `${what} is served with Content-Type ${mediaType} but the manifest says ${declared}`,
        );
      return { descriptor: { mediaType, digest, size: bytes.length }, bytes: new Uint8Array(bytes) };
    });
  }

  async pushManifest(
    repository: string,
    manifest: ManifestBytes,
    reference: string,
  ): Promise<{ descriptor: Descriptor; subjectIndexed: boolean }> {
    const url = this.url(`/v2/${repository}/manifests/${reference}`);
    const digest = digestOf(manifest.bytes);
    let response: HttpResponse;
    for (let race = 1; ; race++) {
      try {
        response = await this.retried(`PUT ${redactUrl(url)}`, {
          method: 'PUT',
          url,
          headers: { 'content-type': manifest.mediaType, 'content-length': String(manifest.bytes.length) },
          body: () => manifest.bytes,
          scopes: [repositoryScope(repository, 'pull,push')],
          expect: [201],
        });
        break;
      } catch (err) {
        // Concurrent PUTs of the same manifest can fail one of them (distribution 2.8 answers
        // 400 DIGEST_INVALID while the other is still writing). If the registry holds exactly our
        // manifest there now, it succeeded; if not yet, the same PUT is sent again a little later.
        if (!(err instanceof RegistryError) || err.status >= 500) throw err;
        if ((await this.resolve(repository, reference).catch(() => undefined))?.digest === digest) {
          return {
            descriptor: { mediaType: manifest.mediaType, digest, size: manifest.bytes.length },
            subjectIndexed: false,
          };
        }
        if (!err.has('DIGEST_INVALID') || race >= 4) throw err;
        await this.http.retryAfter(
          `PUT manifest ${reference} of ${this.host}/${repository}`,
          err,
          25 * race + Math.random() * 50,
        );
      }
    }
    await discard(response.body);
    this.checkDigestHeader(response, digest, url);
    return {
      descriptor: { mediaType: manifest.mediaType, digest, size: manifest.bytes.length },
      subjectIndexed: response.headers[HEADER_OCI_SUBJECT] !== undefined,
    };
  }

  /** DELETE of a manifest; UnsupportedError when the registry has no DELETE (GHCR: 405). */
  async deleteManifest(repository: string, digest: Digest): Promise<void> {
    const url = this.url(`/v2/${repository}/manifests/${digest}`);
    try {
      const response = await this.retried(`DELETE ${redactUrl(url)}`, {
        method: 'DELETE',
        url,
        scopes: [repositoryScope(repository, 'delete')],
        expect: [200, 202, 404],
      });
      await discard(response.body);
    } catch (err) {
      if (err instanceof RegistryError && (err.status === 405 || err.has('UNSUPPORTED'))) {
        throw new UnsupportedError(`${this.host} does not delete manifests through the registry API`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  // ---- listings ---------------------------------------------------------------------------

  /** Every tag of a repository across `Link` pages; a repository that does not exist has none. */
  async *listTags(repository: string, pageSize = 1000): AsyncGenerator<string> {
    const first = this.url(`/v2/${repository}/tags/list`);
    first.searchParams.set('n', String(pageSize));
    yield* this.paginate(first, [repositoryScope(repository, 'pull')], 'tags', `tags of ${repository}`);
  }

  /** Every repository from `/v2/_catalog`; UnsupportedError where there is no catalog (GHCR). */
  async *catalog(pageSize = 1000): AsyncGenerator<string> {
    const first = this.url('/v2/_catalog');
    first.searchParams.set('n', String(pageSize));
    try {
      yield* this.paginate(first, [CATALOG_SCOPE], 'repositories', 'catalog');
    } catch (err) {
      if (err instanceof RegistryError && [401, 403, 404, 405].includes(err.status)) {
        // GHCR has no catalog at all; elsewhere it may need `registry:catalog:*` access.
        const why =
          err.status === 404 || err.status === 405
            ? 'offers no /v2/_catalog'
            : `refused /v2/_catalog (${err.status}; listing repositories needs registry:catalog:* access)`;
        throw new UnsupportedError(`${this.host} ${why}`, { cause: err });
      }
      throw err;
    }
  }

  private async *paginate(
    first: URL,
    scopes: Scope[],
    field: 'tags' | 'repositories',
    what: string,
  ): AsyncGenerator<string> {
    const seenPages = new Set<string>();
    const seenItems = new Set<string>();
    let next: URL | undefined = first;
    while (next) {
      const url: URL = next;
      if (seenPages.has(url.href))
        throw new ProtocolError(`the ${what} pagination loops back to ${redactUrl(url)}${url.search}`);
      seenPages.add(url.href);
      // The body is read inside the retry: an answer that breaks off is asked for again.
      const page = await this.http.withRetry(`GET ${redactUrl(url)}`, async () => {
        const response = await this.exchange({
          method: 'GET',
          url,
          headers: { accept: 'application/json' },
          scopes,
          expect: [200, 404],
        });
        if (response.status === 404) return { response, body: undefined };
        return { response, body: await readBody(response.body, 16 * 1024 * 1024, `${what} page`) };
      });
      const { response, body } = page;
      if (body === undefined) {
        const error = await errorFromResponse('GET', url, response);
        if (field === 'tags' && (error.has('NAME_UNKNOWN') || error.errors.length === 0)) return;
        throw error;
      }
      let items: unknown;
      try {
        items = (JSON.parse(body.toString('utf8')) as Record<string, unknown>)[field];
      } catch (cause) {
        throw new ProtocolError(`the ${what} page ${redactUrl(url)} is not JSON`, { cause });
      }
      if (items !== null && items !== undefined && !Array.isArray(items))
        throw new ProtocolError(`the ${what} page has no ${field} list`);
      let fresh = 0;
      for (const item of (items as unknown[] | null) ?? []) {
        if (typeof item !== 'string') throw new ProtocolError(`the ${what} page lists a non-string`);
        if (seenItems.has(item)) continue;
        if (seenItems.size >= this.listLimit)
          throw new ProtocolError(
            `the ${what} listing has more than ${this.listLimit} entries (pages without end?) at ${redactUrl(url)}${url.search}`,
          );
        seenItems.add(item);
        fresh++;
        yield item;
      }
      next = nextLink(response.headers.link, url);
      if (next && fresh === 0)
        throw new ProtocolError(`the ${what} pagination does not advance at ${redactUrl(url)}${url.search}`);
    }
  }

  /** The referrers API; undefined where the registry has none (GHCR, distribution 2.x: 404). */
  async referrers(repository: string, subject: Digest): Promise<ImageIndex | undefined> {
    // A registry with the API never answers 404 to it, so one 404 settles it for the session.
    if (this.referrersMissing) return undefined;
    const url = this.url(`/v2/${repository}/referrers/${subject}`);
    const answer = await this.http.withRetry(`GET ${redactUrl(url)}`, async () => {
      const response = await this.exchange({
        method: 'GET',
        url,
        headers: { accept: MEDIA_TYPE_OCI_INDEX },
        scopes: [repositoryScope(repository, 'pull')],
        expect: [200, 400, 404, 405],
      });
      if (response.status !== 200) {
        await discard(response.body);
        return { status: response.status, type: undefined, body: undefined };
      }
      const type = response.headers['content-type']?.split(';')[0]?.trim();
      const body = await readBody(response.body, MANIFEST_SIZE_LIMIT, `referrers of ${subject}`);
      return { status: response.status, type, body };
    });
    if (answer.body === undefined) {
      if (answer.status === 404) this.referrersMissing = true;
      return undefined;
    }
    if (answer.type !== MEDIA_TYPE_OCI_INDEX) return undefined; // not a referrers answer (e.g. an HTML 200)
    return parseImageIndex(answer.body, `referrers of ${repository}@${subject}`);
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}

function openSource(source: BlobSource, offset: number): Readable {
  const opened = source.open(offset);
  if (opened instanceof Readable) return opened;
  // An asynchronous opener: wrap so the HTTP layer still gets a stream right away.
  return Readable.from(
    (async function* () {
      yield* await opened;
    })(),
  );
}

/** The registry's answer to a request on an upload session it does not know (any more). */
function isLostSession(err: unknown): boolean {
  return (
    err instanceof RegistryError &&
    (err.status === 404 || err.status === 400) &&
    (err.has('BLOB_UPLOAD_UNKNOWN') || err.has('BLOB_UPLOAD_INVALID'))
  );
}

/** An upload session: its latest Location and the bytes the registry acknowledged. */
interface UploadSession {
  location: URL;
  offset: number;
  /** A request of this session failed: ask the registry where it stands before going on. */
  broken: boolean;
}

/** Reads a stream in pieces of exactly the asked length. */
class ChunkReader {
  private readonly iterator: AsyncIterator<Buffer>;
  private rest: Buffer | undefined;

  constructor(
    private readonly stream: Readable,
    /** Offset in the blob of the next byte to read. */
    public position: number,
    private readonly descriptor: { digest: Digest; size: number },
  ) {
    this.iterator = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  async read(length: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < length) {
      let piece = this.rest;
      this.rest = undefined;
      if (!piece) {
        const next = await this.iterator.next();
        if (next.done) break;
        piece = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
      }
      if (piece.length > length - have) {
        this.rest = piece.subarray(length - have);
        piece = piece.subarray(0, length - have);
      }
      parts.push(piece);
      have += piece.length;
    }
    if (have < length) {
      throw new DigestMismatchError(
        `size of the content for ${this.descriptor.digest}`,
        String(this.descriptor.size),
        String(this.position + have),
      );
    }
    this.position += length;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
  }

  close(): void {
    this.stream.destroy();
  }
}

function progress(stream: Readable, onProgress: ((n: number) => void) | undefined, start: number): Readable {
  if (!onProgress) return stream;
  let sent = start;
  stream.on('data', (chunk: Buffer) => {
    sent += chunk.length;
    onProgress(sent);
  });
  return stream;
}

/** The first byte of a `Content-Range: bytes <start>-<end>/<size>` answer. */
function rangeStart(range: string | undefined): number | undefined {
  const m = range ? /^bytes\s+(\d+)-\d+\/(?:\d+|\*)$/.exec(range.trim()) : null;
  return m ? Number(m[1]) : undefined;
}

function rangeEnd(range: string | undefined): number | undefined {
  const m = range ? /^(?:bytes=)?0-(\d+)$/.exec(range.trim()) : null;
  return m ? Number(m[1]) : undefined;
}

/** The `rel="next"` target of a Link header, resolved against the request URL. */
export function nextLink(header: string | undefined, base: URL): URL | undefined {
  if (!header) return undefined;
  for (const part of header.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (m && /\brel\s*=\s*"?next"?/i.test(m[2]!)) {
      const url = new URL(m[1]!, base);
      if (url.origin !== base.origin)
        throw new ProtocolError(`a Link header points to another origin (${url.origin})`);
      return url;
    }
  }
  return undefined;
}

/** The same RegistryError, its message rebuilt from its (amended) error list. */
function withMessage(error: RegistryError): RegistryError {
  const rebuilt = new RegistryError(error.method, error.url, error.status, error.errors);
  if (error.retryAfter !== undefined) rebuilt.retryAfter = error.retryAfter;
  return rebuilt;
}

/** The `mediaType` a manifest's JSON declares, if any. */
function declaredMediaType(bytes: Uint8Array): string | undefined {
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes)) as { mediaType?: unknown };
    if (typeof value.mediaType === 'string') return value.mediaType;
  } catch {
    // not JSON: the callers' parsers say so
  }
  return undefined;
}
