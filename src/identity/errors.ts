/**
 * Errors of the identity modules. Each says what was checked, what was expected and what was
 * found, so that a refused publication can be explained to the feedstock that asked for it.
 * None of them ever holds a token.
 */

/** The part of a publish attestation that failed. */
export type AttestationCheck =
  | 'bundle'
  | 'signature'
  | 'issuer'
  | 'repository'
  | 'organization'
  | 'feedstock'
  | 'workflow'
  | 'ref'
  | 'statement'
  | 'predicate-type'
  | 'subject'
  | 'target-channel';

/** A publish attestation that does not prove what the caller needs proven. */
export class AttestationError extends Error {
  readonly code = 'ATTESTATION_REFUSED';
  constructor(
    readonly check: AttestationCheck,
    message: string,
    readonly expected?: string,
    readonly found?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'AttestationError';
  }
}

/** Signing failed: the OIDC token, Fulcio, Rekor or the timestamp authority refused or failed. */
export class SigningError extends Error {
  readonly code = 'SIGNING_FAILED';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SigningError';
  }
}

/** Trust material (a trusted root) that cannot be read or used. */
export class TrustRootError extends Error {
  readonly code = 'TRUST_ROOT_UNUSABLE';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TrustRootError';
  }
}

/** A feedstock-tokens registry (its files) that cannot be read as the format says. */
export class TokenRegistryError extends Error {
  readonly code = 'TOKEN_REGISTRY_UNUSABLE';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TokenRegistryError';
  }
}

/**
 * A copy of an error chain with every occurrence of `secret` cut out of each message, for errors
 * from libraries that may quote what they were given (@sigstore/sign quotes an unparsable OIDC
 * token in full). Codes are kept; the original objects are not referenced.
 */
export function withoutSecret(err: unknown, secret: string | undefined, depth = 0): Error {
  const text = err instanceof Error ? err.message : String(err);
  const message = secret ? text.split(secret).join('***') : text;
  const cause = err instanceof Error && err.cause !== undefined && depth < 8 ? err.cause : undefined;
  const copy = new Error(
    message,
    cause === undefined ? undefined : { cause: withoutSecret(cause, secret, depth + 1) },
  );
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  if (typeof code === 'string') Object.assign(copy, { code });
  if (err instanceof Error) copy.name = err.name;
  return copy;
}
