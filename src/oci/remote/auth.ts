/**
 * Registry authentication: anonymous, basic, and the bearer-token challenge flow.
 * Token protocol: https://distribution.github.io/distribution/spec/auth/token/
 *
 * Credentials go to the registry origin itself and to a token realm that is on the registry's
 * host or a sibling of it (ghcr.io -> ghcr.io/token; registry-1.docker.io -> auth.docker.io), over
 * HTTPS unless the realm is on loopback. Nothing else ever sees them.
 *
 * A token the service issues is a secret like a password: it is handed to `onToken` before any
 * request carries it, so that the program can mask it wherever a registry echoes it back.
 */
import { isLoopbackHost } from '../reference.js';
import { ProtocolError, RegistryError } from '../errors.js';
import { errorFromResponse, readBody, redactUrl, type HttpClient } from './http.js';

export interface Credentials {
  username: string;
  password: string;
}

/** A token-protocol scope, e.g. `repository:org/channel/linux-64/cnumpy:pull,push`. */
export type Scope = string;

export function repositoryScope(repository: string, actions: 'pull' | 'pull,push' | 'delete' | '*'): Scope {
  return `repository:${repository}:${actions}`;
}

export const CATALOG_SCOPE: Scope = 'registry:catalog:*';

interface BearerChallenge {
  scheme: 'bearer';
  realm: URL;
  service?: string;
  scope?: string;
}

type Challenge = { scheme: 'basic' } | BearerChallenge;

/** Parses `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` (or `Basic realm="…"`). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!match) return undefined;
  const scheme = match[1]!.toLowerCase();
  if (scheme === 'basic') return { scheme: 'basic' };
  if (scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  const paramPattern = /([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g;
  for (const m of match[2]!.matchAll(paramPattern)) {
    params[m[1]!.toLowerCase()] = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1');
  }
  if (!params.realm) return undefined;
  let realm: URL;
  try {
    realm = new URL(params.realm);
  } catch {
    return undefined;
  }
  return {
    scheme: 'bearer',
    realm,
    ...(params.service ? { service: params.service } : {}),
    ...(params.scope ? { scope: params.scope } : {}),
  };
}

function hostname(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1).toLowerCase();
  return host.replace(/:\d+$/, '').toLowerCase();
}

function isIpLiteral(host: string): boolean {
  return host.startsWith('[') || host.includes(':') || /^\d{1,3}(\.\d{1,3}){3}$/.test(host);
}

/**
 * True when a token realm may receive the registry's credentials: HTTPS (or loopback), and the
 * registry's own host, a subdomain of it, or a sibling under the same parent domain
 * (registry-1.docker.io -> auth.docker.io). IP addresses must match exactly.
 */
export function realmMayReceiveCredentials(realm: URL, registryHost: string): boolean {
  if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && isLoopbackHost(realm.host)))
    return false;
  const registry = hostname(registryHost);
  const target = realm.hostname.toLowerCase();
  if (target === registry) return true;
  if (isIpLiteral(target) || isIpLiteral(registry)) return false;
  if (registry.includes('.') && target.endsWith(`.${registry}`)) return true;
  const parent = (h: string) => h.split('.').slice(1).join('.');
  return parent(target).includes('.') && parent(target) === parent(registry);
}

/**
 * Scopes with the same resource merged and their actions sorted, so that the challenge's
 * `repository:x:push,pull` and our `repository:x:pull,push` are one scope.
 */
export function normalizeScopes(scopes: readonly Scope[]): Scope[] {
  const merged = new Map<string, Set<string>>();
  for (const scope of scopes.flatMap((s) => s.split(/\s+/)).filter((s) => s !== '')) {
    const last = scope.lastIndexOf(':');
    const resource = last > 0 ? scope.slice(0, last) : scope;
    const actions = last > 0 ? scope.slice(last + 1).split(',') : [];
    const set = merged.get(resource) ?? new Set<string>();
    for (const action of actions) if (action !== '') set.add(action);
    merged.set(resource, set);
  }
  return [...merged].map(([resource, actions]) => `${resource}:${[...actions].sort().join(',')}`).sort();
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

export class Authenticator {
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();
  /** Token requests sent, for request accounting. */
  tokenRequests = 0;

  constructor(
    private readonly http: HttpClient,
    private readonly registryHost: string,
    private readonly credentials: Credentials | undefined,
    private readonly now: () => number = Date.now,
    private readonly onToken?: (token: string) => void,
  ) {}

  /** The Authorization header for a request needing `scopes`, once the scheme is known. */
  async header(scopes: Scope[]): Promise<string | undefined> {
    const challenge = this.challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') return this.basic();
    const token = await this.token(challenge, scopes);
    return token ? `Bearer ${token}` : undefined;
  }

  /**
   * Learns from a 401. Returns true when one retry with a (new) Authorization header may succeed:
   * the first challenge, or a bearer token to replace (expired, or too narrow). A scope the
   * challenge names is added to `scopes`, so the retry asks for it.
   */
  unauthorized(
    wwwAuthenticate: string | undefined,
    scopes: Scope[],
    sentHeader: string | undefined,
  ): boolean {
    const challenge = parseChallenge(wwwAuthenticate);
    if (!challenge) return false;
    this.challenge = challenge;
    if (challenge.scheme === 'basic') return this.credentials !== undefined && sentHeader === undefined;
    this.tokens.delete(scopeKey(scopes));
    if (challenge.scope) scopes.splice(0, scopes.length, ...normalizeScopes([...scopes, challenge.scope]));
    return true;
  }

  /** What a refused request carried, for the error message (never the secret itself). */
  describeRefusal(sentHeader: string | undefined, scopes: Scope[]): string {
    if (sentHeader?.startsWith('Basic ')) return 'the registry refused the credentials';
    if (sentHeader?.startsWith('Bearer ')) {
      const what = normalizeScopes(scopes).join(' ');
      return this.credentials
        ? `the token issued for these credentials does not grant ${what}`
        : `anonymous access does not grant ${what}; give credentials`;
    }
    return this.credentials ? 'the registry refused the request' : 'the registry wants credentials';
  }

  /** Drops every cached token, e.g. after credentials were refused. */
  forget(): void {
    this.tokens.clear();
  }

  private basic(): string | undefined {
    if (!this.credentials) return undefined;
    return `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}`;
  }

  private async token(challenge: BearerChallenge, scopes: Scope[]): Promise<string | undefined> {
    const key = scopeKey(scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now()) return cached.token || undefined;
    let inflight = this.pending.get(key);
    if (!inflight) {
      inflight = this.fetchToken(challenge, scopes).finally(() => this.pending.delete(key));
      this.pending.set(key, inflight);
    }
    const fresh = await inflight;
    this.tokens.set(key, fresh);
    return fresh.token || undefined;
  }

  private async fetchToken(challenge: BearerChallenge, scopes: Scope[]): Promise<CachedToken> {
    const url = new URL(challenge.realm);
    if (challenge.service) url.searchParams.set('service', challenge.service);
    for (const scope of normalizeScopes(scopes)) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    const basic = this.basic();
    if (basic && realmMayReceiveCredentials(url, this.registryHost)) headers.authorization = basic;
    const started = this.now();
    const body = await this.http.withRetry(`token from ${redactUrl(url)}`, async () => {
      this.tokenRequests++;
      const response = await this.http.send({ method: 'GET', url, headers });
      if (response.status !== 200) {
        const error = await errorFromResponse('GET', url, response);
        if (response.status === 401 || response.status === 403) {
          throw new RegistryError('GET', redactUrl(url), response.status, [
            {
              code: 'UNAUTHORIZED',
              message: basic
                ? 'the token service refused the credentials'
                : 'the token service refused an anonymous request',
            },
            ...error.errors,
          ]);
        }
        throw error;
      }
      return readBody(response.body, 1024 * 1024, 'token response');
    });
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch (cause) {
      throw new ProtocolError(
        `the token service ${redactUrl(url)} answered with something that is not JSON`,
        { cause },
      );
    }
    const token =
      typeof parsed.token === 'string'
        ? parsed.token
        : typeof parsed.access_token === 'string'
          ? parsed.access_token
          : undefined;
    if (token === undefined)
      throw new ProtocolError(`the token service ${redactUrl(url)} answered without a token`);
    if (token !== '') this.onToken?.(token);
    // The token spec's default lifetime is 60 s; renew a little early.
    const lifetime = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 60;
    return { token, expiresAt: started + lifetime * 900 };
  }
}

function scopeKey(scopes: Scope[]): string {
  return normalizeScopes(scopes).join(' ');
}
