/**
 * Typed errors of the OCI layer. Recognise them with `instanceof` plus the literal `code`;
 * every wrapper chains the original error as `cause`.
 */

/** Error codes of the distribution spec: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#error-codes */
export type DistributionErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | (string & {});

export interface DistributionErrorDetail {
  code: DistributionErrorCode;
  message: string;
  detail?: unknown;
}

export class OciError extends Error {
  readonly code: string = 'OCI_ERROR';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class NotFoundError extends OciError {
  override readonly code = 'NOT_FOUND';
}

export class DigestMismatchError extends OciError {
  override readonly code = 'DIGEST_MISMATCH';
  constructor(
    readonly what: string,
    readonly expected: string,
    readonly actual: string,
    options?: ErrorOptions,
  ) {
    super(`${what}: expected ${expected}, got ${actual}`, options);
  }
}

export class SizeLimitError extends OciError {
  override readonly code = 'SIZE_LIMIT';
  constructor(
    readonly what: string,
    readonly limit: number,
    options?: ErrorOptions,
  ) {
    super(`${what} is larger than the limit of ${limit} bytes`, options);
  }
}

export class UnsupportedError extends OciError {
  override readonly code = 'UNSUPPORTED';
}

/** A malformed reference, channel URL or name: a usage error (exit status 2). */
export class InvalidReferenceError extends OciError {
  override readonly code = 'INVALID_REFERENCE';
}

/** The registry broke the protocol: a missing header, a body of the wrong shape, a redirect loop. */
export class ProtocolError extends OciError {
  override readonly code = 'PROTOCOL';
}

/** An unexpected HTTP status, with the registry's own error list. The URL never holds credentials. */
export class RegistryError extends OciError {
  override readonly code = 'REGISTRY';
  /** The Retry-After header, when the registry sent one. */
  retryAfter?: string;
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    readonly errors: DistributionErrorDetail[] = [],
    options?: ErrorOptions,
  ) {
    const first = errors[0];
    const what = first ? `${first.code}: ${first.message}` : httpStatusText(status);
    const hint = registryHint(method, status, errors);
    super(`${method} ${url} answered ${status} (${what})${hint ? `; ${hint}` : ''}`, options);
  }

  /** True when the registry's body names this distribution error code. */
  has(code: DistributionErrorCode): boolean {
    return this.errors.some((e) => e.code === code);
  }
}

/** The README's Troubleshooting advice for a registry answer, said where it happens. */
function registryHint(method: string, status: number, errors: DistributionErrorDetail[]): string | undefined {
  const codes = new Set(errors.map((e) => e.code));
  if (status === 401 || codes.has('DENIED') || codes.has('UNAUTHORIZED'))
    return status === 403
      ? 'the package exists but belongs to someone else: link it to this repository, or use a token of its org'
      : "the token lacks access to this repository (on GHCR, GITHUB_TOKEN reaches only packages linked to its own repository; another org's needs that org's token with write:packages)";
  if (status === 403)
    return 'the package exists but belongs to someone else: link it to this repository, or use a token of its org';
  if (codes.has('MANIFEST_BLOB_UNKNOWN') || codes.has('BLOB_UNKNOWN'))
    return 'a blob the manifest names is missing: run again (blobs go first, so a retry completes it)';
  if (status === 404 && (codes.has('NAME_UNKNOWN') || codes.has('MANIFEST_UNKNOWN')))
    return 'nothing is there: check the channel URL and label (staging may have been cleaned)';
  if (status === 405 && method === 'DELETE')
    return "this registry has no manifest DELETE (GHCR): deletion goes through GitHub's Packages API, pass github-token";
  return undefined;
}

/** Where a copy failed: reading the source or writing the destination. */
export class CopyError extends OciError {
  override readonly code = 'COPY';
  constructor(
    readonly origin: 'source' | 'destination',
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${origin}: ${message}`, options);
  }
}

function httpStatusText(status: number): string {
  const texts: Record<number, string> = {
    400: 'bad request',
    401: 'unauthorized',
    403: 'forbidden',
    404: 'not found',
    405: 'method not allowed',
    408: 'request timeout',
    409: 'conflict',
    413: 'payload too large',
    416: 'range not satisfiable',
    429: 'too many requests',
    500: 'internal server error',
    502: 'bad gateway',
    503: 'service unavailable',
    504: 'gateway timeout',
  };
  return texts[status] ?? 'unexpected status';
}
