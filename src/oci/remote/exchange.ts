/**
 * One request to the registry with its authentication: the Authorization the scopes need, and
 * on a 401 the challenge learnt and the request sent once more
 * (https://distribution.github.io/distribution/spec/auth/token/). Every other part of the client
 * (blobs, manifests, listings, referrers) talks to the registry through this.
 */
import { DigestMismatchError, RegistryError } from '../errors.js';
import type { Digest } from '../digest.js';
import { HEADER_DOCKER_CONTENT_DIGEST } from '../media-types.js';
import type { Authenticator, Scope } from './auth.js';
import {
  discard,
  errorFromResponse,
  redactUrl,
  type HttpClient,
  type HttpRequest,
  type HttpResponse,
} from './http.js';

export interface Exchange {
  method: HttpRequest['method'];
  url: URL;
  headers?: Record<string, string>;
  body?: HttpRequest['body'];
  scopes: Scope[];
  /** Statuses that are answers rather than errors. */
  expect: number[];
}

export class RegistryExchange {
  private readonly origin: string;

  constructor(
    readonly http: HttpClient,
    readonly auth: Authenticator,
    /** `host` or `host:port`. */
    readonly host: string,
    private readonly base: string,
  ) {
    this.origin = new URL(base).origin;
  }

  url(path: string): URL {
    return new URL(path, this.base);
  }

  /**
   * One exchange with authentication: sends the known Authorization for the scopes; on a 401,
   * learns the challenge and tries once more. Statuses outside `expect` become RegistryError.
   * Requests to another origin (a redirect target) carry no Authorization.
   */
  async exchange(request: Exchange): Promise<HttpResponse> {
    const scopes = [...request.scopes];
    const sameOrigin = request.url.origin === this.origin;
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
  retried(what: string, request: Exchange): Promise<HttpResponse> {
    return this.http.withRetry(what, () => this.exchange(request));
  }
}

/** Fails when the registry names another digest than the one it was given (Docker-Content-Digest). */
export function checkDigestHeader(response: HttpResponse, expected: Digest, url: URL): void {
  const actual = response.headers[HEADER_DOCKER_CONTENT_DIGEST];
  if (actual !== undefined && actual !== expected)
    throw new DigestMismatchError(`${redactUrl(url)} Docker-Content-Digest`, expected, actual);
}

/** The media type of a `Content-Type` header, without its parameters. */
export function mediaTypeOf(response: HttpResponse): string | undefined {
  return response.headers['content-type']?.split(';')[0]?.trim();
}

/** The same RegistryError, its message rebuilt from its (amended) error list. */
function withMessage(error: RegistryError): RegistryError {
  const rebuilt = new RegistryError(error.method, error.url, error.status, error.errors);
  if (error.retryAfter !== undefined) rebuilt.retryAfter = error.retryAfter;
  return rebuilt;
}
