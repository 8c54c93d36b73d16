/**
 * The steps of one blob upload session of the distribution spec: the monolithic PUT, PATCH
 * chunks, asking where a session stands, the closing PUT with the digest, and DELETE to abandon
 * it. https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-blobs
 * When and in which order they are taken (mounts, retries, resumes) is blob-upload.ts's job.
 */
import { Readable } from 'node:stream';
import type { Digest } from '../digest.js';
import { DigestMismatchError, ProtocolError, RegistryError } from '../errors.js';
import type { BlobSource } from '../storage.js';
import { repositoryScope, type Scope } from './auth.js';
import { checkDigestHeader, type RegistryExchange } from './exchange.js';
import { discard, redactUrl, type HttpResponse } from './http.js';

/** An upload session: its latest Location and the bytes the registry acknowledged. */
export interface UploadSession {
  location: URL;
  offset: number;
  /** A request of this session failed: ask the registry where it stands before going on. */
  broken: boolean;
}

type BlobDescriptor = { digest: Digest; size: number };

/** The Location an upload answer points to, refused when it leaves the registry's origin. */
export function sessionLocation(response: HttpResponse, requestUrl: URL): URL {
  const location = response.headers.location;
  if (!location)
    throw new ProtocolError(`${redactUrl(requestUrl)} answered ${response.status} without a Location header`);
  const url = new URL(location, requestUrl);
  if (url.origin !== requestUrl.origin)
    throw new ProtocolError(
      `${redactUrl(requestUrl)} sent the upload to another origin (${url.origin}); refused`,
    );
  return url;
}

/** The closing PUT of an upload whose bytes have all been sent: the registry checks the digest. */
export async function closeUpload(
  registry: RegistryExchange,
  session: URL,
  digest: Digest,
  scopes: Scope[],
): Promise<void> {
  const url = withDigest(session, digest);
  const response = await registry.exchange({
    method: 'PUT',
    url,
    headers: { 'content-length': '0' },
    scopes,
    expect: [201],
  });
  await discard(response.body);
  checkDigestHeader(response, digest, url);
}

/** Best effort: DELETE of an upload session, so the registry drops what it received. */
export async function cancelUpload(
  registry: RegistryExchange,
  repository: string,
  session: URL,
): Promise<void> {
  try {
    const response = await registry.exchange({
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

/** The whole blob in one PUT to the session, with its digest. */
export async function uploadMonolithic(
  registry: RegistryExchange,
  repository: string,
  upload: UploadSession,
  descriptor: BlobDescriptor,
  source: BlobSource,
  sent: { bytes: number },
  onProgress?: (n: number) => void,
): Promise<void> {
  const url = withDigest(upload.location, descriptor.digest);
  const response = await registry.exchange({
    method: 'PUT',
    url,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(descriptor.size) },
    body: () => progress(openSource(source, 0), onProgress, 0),
    scopes: [repositoryScope(repository, 'pull,push')],
    expect: [201],
  });
  await discard(response.body);
  checkDigestHeader(response, descriptor.digest, url);
  sent.bytes += descriptor.size;
}

/**
 * PATCH chunks from the session's offset, then the closing PUT. The content is read once, in
 * order, from that offset; each chunk (at most `chunkSize`) is held in memory so that it can be
 * sent again after a 401, and `upload` always holds the latest Location and acknowledged offset.
 */
export async function uploadChunks(
  registry: RegistryExchange,
  repository: string,
  upload: UploadSession,
  descriptor: BlobDescriptor,
  source: BlobSource,
  chunkSize: number,
  sent: { bytes: number },
  onProgress?: (n: number) => void,
): Promise<void> {
  const scopes = [repositoryScope(repository, 'pull,push')];
  let reader: ChunkReader | undefined;
  let refusals = 0;
  try {
    while (upload.offset < descriptor.size) {
      const start = upload.offset;
      const length = Math.min(chunkSize, descriptor.size - start);
      const end = start + length - 1;
      reader ??= new ChunkReader(openSource(source, start), start, descriptor);
      const chunk = await reader.read(length);
      const response = await registry.exchange({
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
        const status = await uploadStatus(registry, repository, upload.location, descriptor.size);
        if (!status)
          throw new ProtocolError(
            `${redactUrl(upload.location)} refused a chunk (416) and then forgot the upload`,
          );
        Object.assign(upload, status);
      } else {
        upload.location = sessionLocation(response, upload.location);
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
  await closeUpload(registry, upload.location, descriptor.digest, scopes);
}

/**
 * Where an upload session stands (GET: 204 with Range), or undefined when the registry no
 * longer has it (404/400 BLOB_UPLOAD_UNKNOWN or BLOB_UPLOAD_INVALID).
 */
export async function uploadStatus(
  registry: RegistryExchange,
  repository: string,
  session: URL,
  size: number,
): Promise<UploadSession | undefined> {
  let response: HttpResponse;
  try {
    response = await registry.exchange({
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
  const location = response.headers.location ? sessionLocation(response, session) : session;
  if (offset > size) return undefined;
  return { location, offset, broken: false };
}

/** The registry's answer to a request on an upload session it does not know (any more). */
export function isLostSession(err: unknown): boolean {
  return (
    err instanceof RegistryError &&
    (err.status === 404 || err.status === 400) &&
    (err.has('BLOB_UPLOAD_UNKNOWN') || err.has('BLOB_UPLOAD_INVALID'))
  );
}

/** The last byte of a `Range: 0-<end>` answer (upload progress). */
export function rangeEnd(range: string | undefined): number | undefined {
  const m = range ? /^(?:bytes=)?0-(\d+)$/.exec(range.trim()) : null;
  return m ? Number(m[1]) : undefined;
}

function withDigest(session: URL, digest: Digest): URL {
  const url = new URL(session);
  url.searchParams.set('digest', digest);
  return url;
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

function progress(stream: Readable, onProgress: ((n: number) => void) | undefined, start: number): Readable {
  if (!onProgress) return stream;
  let sent = start;
  stream.on('data', (chunk: Buffer) => {
    sent += chunk.length;
    onProgress(sent);
  });
  return stream;
}

/** Reads a stream in pieces of exactly the asked length. */
class ChunkReader {
  private readonly iterator: AsyncIterator<Buffer>;
  private rest: Buffer | undefined;

  constructor(
    private readonly stream: Readable,
    /** Offset in the blob of the next byte to read. */
    public position: number,
    private readonly descriptor: BlobDescriptor,
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
