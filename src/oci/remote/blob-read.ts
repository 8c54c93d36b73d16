/**
 * Reading blobs: HEAD for presence and size, GET following redirects (credentials stay on the
 * registry's origin), resumed with a Range request after a broken connection, and verified
 * against digest and size.
 * https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-blobs
 */
import { pipeline, Readable } from 'node:stream';
import { VerifyingStream, type Digest } from '../digest.js';
import { NotFoundError, ProtocolError } from '../errors.js';
import { isLoopbackHost } from '../reference.js';
import { repositoryScope } from './auth.js';
import type { RegistryExchange } from './exchange.js';
import { discard, errorFromResponse, gaveUp, redactUrl, TransientError, type HttpResponse } from './http.js';

export class BlobReader {
  constructor(
    private readonly registry: RegistryExchange,
    private readonly maxRedirects: number,
  ) {}

  async statBlob(repository: string, digest: Digest): Promise<{ size: number } | undefined> {
    const url = this.registry.url(`/v2/${repository}/blobs/${digest}`);
    const response = await this.registry.retried(`HEAD ${redactUrl(url)}`, {
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

  /**
   * The blob as a stream that resumes after a broken connection (Range request from the bytes
   * already received) and fails unless the whole matches digest and size.
   */
  openBlob(repository: string, descriptor: { digest: Digest; size: number }): Readable {
    const { host, http } = this.registry;
    const get = (offset: number) => this.getBlob(repository, descriptor.digest, offset);
    async function* chunks(): AsyncGenerator<Buffer> {
      let received = 0;
      // `attempt` counts failures in a row: bytes received since the last one start it over, so
      // a long download on a flaky network is not given up while it is still moving.
      let receivedAtFailure = 0;
      for (let attempt = 1; ; attempt++) {
        try {
          const response = await get(received);
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
          const delay = http.retryDelay(err, attempt);
          const what = `GET blob ${descriptor.digest} of ${host}/${repository}`;
          if (delay === undefined) throw gaveUp(what, err, attempt);
          await http.retryAfter(what, err, delay);
        }
      }
    }
    const verified = new VerifyingStream(descriptor, `blob ${descriptor.digest} of ${host}/${repository}`);
    // pipeline, not pipe: a reader that stops early (destroys the stream) ends the download too.
    return pipeline(Readable.from(chunks(), { objectMode: false }), verified, () => {});
  }

  /** GET of a blob following redirects; credentials stay on the registry's origin. */
  private async getBlob(repository: string, digest: Digest, offset: number): Promise<HttpResponse> {
    let url = this.registry.url(`/v2/${repository}/blobs/${digest}`);
    const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    for (let hop = 0; hop <= this.maxRedirects; hop++) {
      const response = await this.registry.exchange({
        method: 'GET',
        url,
        headers,
        scopes: [repositoryScope(repository, 'pull')],
        expect: [200, 206, 301, 302, 303, 307, 308, 404],
      });
      if (response.status === 200 || response.status === 206) return response;
      if (response.status === 404) {
        throw new NotFoundError(`blob ${digest} not found in ${this.registry.host}/${repository}`, {
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
}

/** The first byte of a `Content-Range: bytes <start>-<end>/<size>` answer. */
function rangeStart(range: string | undefined): number | undefined {
  const m = range ? /^bytes\s+(\d+)-\d+\/(?:\d+|\*)$/.exec(range.trim()) : null;
  return m ? Number(m[1]) : undefined;
}
