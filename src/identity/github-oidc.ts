/**
 * The OIDC token of a GitHub Actions job, as Sigstore's Fulcio wants it (audience `sigstore`).
 *
 * A job with `permissions: id-token: write` gets two variables: ACTIONS_ID_TOKEN_REQUEST_URL and
 * ACTIONS_ID_TOKEN_REQUEST_TOKEN. `GET <url>&audience=<aud>` with `Authorization: Bearer <token>`
 * answers `{"value": "<JWT>"}`
 * (https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect).
 * Both can be given explicitly (tests point them at a loopback stand-in); by default they are read
 * from the environment when the token is asked for, not when the source is made.
 */
import type { IdentityProvider } from '@sigstore/sign';
import { registerSecret } from '../redact.js';
import { SigningError } from './errors.js';

export const SIGSTORE_AUDIENCE = 'sigstore';
export const ENV_ID_TOKEN_REQUEST_URL = 'ACTIONS_ID_TOKEN_REQUEST_URL';
export const ENV_ID_TOKEN_REQUEST_TOKEN = 'ACTIONS_ID_TOKEN_REQUEST_TOKEN';

/** A token answer is a JWT of a few KiB; anything far larger is not one. */
const ANSWER_LIMIT = 64 * 1024;

export interface GitHubIdTokenOptions {
  requestUrl?: string;
  requestToken?: string;
  audience?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** A token source for `@sigstore/sign`'s FulcioSigner. */
export function githubActionsIdToken(options: GitHubIdTokenOptions = {}): IdentityProvider {
  return {
    getToken: async () => {
      const env = options.env ?? process.env;
      const requestUrl = options.requestUrl ?? env[ENV_ID_TOKEN_REQUEST_URL];
      const requestToken = options.requestToken ?? env[ENV_ID_TOKEN_REQUEST_TOKEN];
      if (!requestUrl || !requestToken) {
        throw new SigningError(
          `no GitHub Actions OIDC token: ${ENV_ID_TOKEN_REQUEST_URL} and ${ENV_ID_TOKEN_REQUEST_TOKEN} are not set (the job needs "permissions: id-token: write")`,
        );
      }
      registerSecret(requestToken);
      const url = new URL(requestUrl);
      url.searchParams.set('audience', options.audience ?? SIGSTORE_AUDIENCE);
      let response: Response;
      try {
        response = await fetch(url, {
          headers: { accept: 'application/json', authorization: `Bearer ${requestToken}` },
          signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
        });
      } catch (cause) {
        throw new SigningError(`GitHub Actions OIDC token request to ${url.origin} failed`, {
          cause: cause instanceof Error ? new Error(cause.message) : undefined,
        });
      }
      const text = await response.text();
      if (response.status !== 200) {
        throw new SigningError(`GitHub Actions OIDC token request answered ${response.status}`);
      }
      if (text.length > ANSWER_LIMIT) throw new SigningError('GitHub Actions OIDC token answer is too large');
      let value: unknown;
      try {
        value = (JSON.parse(text) as { value?: unknown }).value;
      } catch {
        value = undefined;
      }
      if (typeof value !== 'string' || value.length === 0) {
        throw new SigningError('GitHub Actions OIDC token answer has no "value"');
      }
      registerSecret(value);
      return value;
    },
  };
}
