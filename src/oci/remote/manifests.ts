/**
 * Manifests: resolve a tag or digest (HEAD), fetch verified against the digest, push (with the
 * race of concurrent pushes of the same manifest), delete.
 * https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests
 */
import { digestOf, type Digest } from '../digest.js';
import {
  DigestMismatchError,
  NotFoundError,
  ProtocolError,
  RegistryError,
  UnsupportedError,
} from '../errors.js';
import { MANIFEST_SIZE_LIMIT, type Descriptor, type ManifestBytes } from '../manifest.js';
import { HEADER_DOCKER_CONTENT_DIGEST, HEADER_OCI_SUBJECT, MANIFEST_MEDIA_TYPES } from '../media-types.js';
import { repositoryScope } from './auth.js';
import { checkDigestHeader, mediaTypeOf, type RegistryExchange } from './exchange.js';
import { discard, errorFromResponse, readBody, redactUrl, type HttpResponse } from './http.js';

export class ManifestClient {
  constructor(private readonly registry: RegistryExchange) {}

  async resolve(repository: string, reference: string): Promise<Descriptor | undefined> {
    const url = this.registry.url(`/v2/${repository}/manifests/${reference}`);
    const response = await this.registry.retried(`HEAD ${redactUrl(url)}`, {
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
    const mediaType = mediaTypeOf(response);
    if (digest?.startsWith('sha256:') && Number.isSafeInteger(size) && mediaType)
      return { mediaType, digest: digest as Digest, size };
    // Some registries leave the digest off a HEAD: read the manifest instead.
    return (await this.fetchManifest(repository, reference)).descriptor;
  }

  async fetchManifest(
    repository: string,
    reference: string,
  ): Promise<{ descriptor: Descriptor; bytes: Uint8Array }> {
    const { registry } = this;
    const url = registry.url(`/v2/${repository}/manifests/${reference}`);
    return registry.http.withRetry(`GET ${redactUrl(url)}`, async () => {
      const response = await registry.exchange({
        method: 'GET',
        url,
        headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
        scopes: [repositoryScope(repository, 'pull')],
        expect: [200, 404],
      });
      if (response.status === 404) {
        throw new NotFoundError(
          `manifest ${registry.host}/${repository}${reference.startsWith('sha256:') ? '@' : ':'}${reference} not found`,
          { cause: await errorFromResponse('GET', url, response) },
        );
      }
      const bytes = await readBody(response.body, MANIFEST_SIZE_LIMIT, `manifest ${repository}:${reference}`);
      const digest = digestOf(bytes);
      const what = `manifest ${registry.host}/${repository}@${reference}`;
      if (reference.startsWith('sha256:') && digest !== reference)
        throw new DigestMismatchError(what, reference, digest);
      const claimed = response.headers[HEADER_DOCKER_CONTENT_DIGEST];
      if (claimed !== undefined && claimed !== digest)
        throw new DigestMismatchError(`${what} (Docker-Content-Digest)`, claimed, digest);
      const declared = declaredMediaType(bytes);
      const mediaType = mediaTypeOf(response) || declared;
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
    const { registry } = this;
    const url = registry.url(`/v2/${repository}/manifests/${reference}`);
    const digest = digestOf(manifest.bytes);
    let response: HttpResponse;
    for (let race = 1; ; race++) {
      try {
        response = await registry.retried(`PUT ${redactUrl(url)}`, {
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
        await registry.http.retryAfter(
          `PUT manifest ${reference} of ${registry.host}/${repository}`,
          err,
          25 * race + Math.random() * 50,
        );
      }
    }
    await discard(response.body);
    checkDigestHeader(response, digest, url);
    return {
      descriptor: { mediaType: manifest.mediaType, digest, size: manifest.bytes.length },
      subjectIndexed: response.headers[HEADER_OCI_SUBJECT] !== undefined,
    };
  }

  /** DELETE of a manifest; UnsupportedError when the registry has no DELETE (GHCR: 405). */
  async deleteManifest(repository: string, digest: Digest): Promise<void> {
    const url = this.registry.url(`/v2/${repository}/manifests/${digest}`);
    try {
      const response = await this.registry.retried(`DELETE ${redactUrl(url)}`, {
        method: 'DELETE',
        url,
        scopes: [repositoryScope(repository, 'delete')],
        expect: [200, 202, 404],
      });
      await discard(response.body);
    } catch (err) {
      if (err instanceof RegistryError && (err.status === 405 || err.has('UNSUPPORTED'))) {
        throw new UnsupportedError(
          `${this.registry.host} does not delete manifests through the registry API`,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
  }
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
