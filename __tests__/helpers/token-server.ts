/**
 * A loopback token server implementing the Docker registry token protocol
 * (https://distribution.github.io/distribution/spec/auth/token/ and .../auth/jwt/), for tests.
 *
 * The registry (distribution 2.8, `auth.token`) sends clients a challenge
 * `WWW-Authenticate: Bearer realm="<this server>/token",service="...",scope="..."`; the client asks
 * `GET /token?service=...&scope=repository:a/b:pull,push&scope=...` here, with Basic credentials or
 * none; we answer `{token, access_token, expires_in, issued_at}` where the token is a JWT signed
 * (ES256, hand-written JWS) by a key whose self-signed certificate is in the registry's
 * `rootcertbundle`. The registry verifies the signature, issuer, audience, expiry and the `access`
 * claim, so a token granted for one repository is really refused on another.
 *
 * distribution 2.8 finds the verification key, in this order of preference, from the JWS header
 * `x5c` (certificate chain verified against rootcertbundle), `jwk` (must be one of the bundle's
 * keys, or carry its own verifiable `x5c`) or `kid` (a libtrust fingerprint of a bundle key);
 * all three are supported here (`keyHeader`) and exercised in harness.test.ts.
 *
 * The registry allows 60 s of clock-skew leeway after `exp` (registry/auth/token: `Leeway`). So
 * that a short `expiresIn` is really enforced by the registry, the JWT's `exp` is set to
 * `iat + expiresIn - 60` (and `nbf` to `iat - 60`): the registry then refuses the token
 * `expiresIn` seconds after it was issued, which is what `expires_in` tells the client.
 */
import { execFile } from 'node:child_process';
import {
  createPrivateKey,
  createPublicKey,
  createHash,
  randomUUID,
  sign,
  X509Certificate,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { registerTestSecret } from './secrets.js';

const execFileAsync = promisify(execFile);

/** distribution's clock-skew allowance on `exp` and `nbf` (registry/auth/token/token.go). */
export const REGISTRY_TOKEN_LEEWAY_SECONDS = 60;

export type TokenAction = 'pull' | 'push' | 'delete' | '*';

/**
 * What an identity may do. Keys are repository-name globs (`*` = one path segment, `**` = any
 * number of segments, e.g. `staging/**`), or `<type>:<name glob>` for other resource types,
 * e.g. `registry:catalog` (distribution requires `registry:catalog:*` for `/v2/_catalog`).
 * `'*'` in the list grants every action.
 */
export type TokenGrants = Record<string, readonly TokenAction[]>;

export interface TokenIdentity {
  username: string;
  password: string;
  grants: TokenGrants;
}

/** One resource of a JWT's `access` claim. */
export interface TokenAccess {
  type: string;
  name: string;
  actions: string[];
}

export type KeyHeader = 'x5c' | 'kid' | 'jwk';

/** A private key and its self-signed certificate (PEM files in `dir`). */
export interface TokenSigner {
  privateKey: KeyObject;
  certificatePem: string;
  certificatePath: string;
  /** Base64 (standard, not URL) DER of the certificate: the `x5c` header value. */
  certificateDerBase64: string;
  /** libtrust key ID of the public key, as distribution computes it for `kid` lookups. */
  keyId: string;
  dir: string;
  dispose(): Promise<void>;
}

export interface TokenServerOptions {
  service?: string;
  issuer?: string;
  identities?: TokenIdentity[];
  /**
   * Grants for requests without credentials. Default `{}`: a token with no access is issued (as
   * public registries do; the registry then answers 401). `'deny'`: the token request gets 401.
   */
  anonymous?: TokenGrants | 'deny';
  /** Lifetime, in seconds, both reported (`expires_in`) and enforced by the registry. Default 300. */
  expiresIn?: number;
  /** Which JWS header names the key. Default `x5c`. */
  keyHeader?: KeyHeader;
  /** Use this signer instead of creating one. */
  signer?: TokenSigner;
}

export interface TokenRequestRecord {
  method: string;
  /** null for anonymous requests. */
  username: string | null;
  service: string | null;
  scopes: string[];
  granted: TokenAccess[];
  status: number;
}

export interface SignOptions {
  /** Seconds; default: the server's `expiresIn`. */
  expiresIn?: number;
  subject?: string;
  /** Sign with another key (e.g. a foreign one, to prove the registry checks signatures). */
  signer?: TokenSigner;
  keyHeader?: KeyHeader | 'none';
  issuer?: string;
  audience?: string;
  /** Override the `x5c` header (e.g. a trusted certificate on a token signed by a foreign key). */
  x5c?: string[];
}

export interface TokenServer {
  /** `http://127.0.0.1:<port>/token`, the `realm` of the registry's challenge. */
  readonly realm: string;
  readonly url: string;
  readonly service: string;
  readonly issuer: string;
  readonly signer: TokenSigner;
  /** The certificate bundle the registry trusts (`rootcertbundle`). */
  readonly certificatePath: string;
  /** Every token request served, in order. */
  readonly requests: TokenRequestRecord[];
  /** Number of token requests served (including refused ones). */
  readonly requestCount: number;
  /** Mutable: identities, anonymous grants, expiresIn, keyHeader take effect on the next request. */
  readonly options: Required<Omit<TokenServerOptions, 'signer'>>;
  resetRequests(): void;
  /** Mint a token directly, bypassing the protocol. */
  sign(access: TokenAccess[], options?: SignOptions): string;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Keys, certificates, JWS

/** Creates a P-256 key and a self-signed certificate with openssl, in a fresh temp dir. */
export async function createTokenSigner(commonName = 'conda-oci test token issuer'): Promise<TokenSigner> {
  const dir = await mkdtemp(join(tmpdir(), 'conda-oci-token-'));
  const keyPath = join(dir, 'key.pem');
  const certificatePath = join(dir, 'cert.pem');
  try {
    await execFileAsync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        keyPath,
        '-out',
        certificatePath,
        '-days',
        '2',
        '-subj',
        `/CN=${commonName}`,
      ],
      { timeout: 30_000 },
    );
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(
      'openssl could not create the token signing certificate (is openssl installed? `apt-get install -y openssl`)',
      { cause: error },
    );
  }
  const privateKey = createPrivateKey(await readFile(keyPath));
  const certificatePem = await readFile(certificatePath, 'utf8');
  const certificate = new X509Certificate(certificatePem);
  return {
    privateKey,
    certificatePem,
    certificatePath,
    certificateDerBase64: certificate.raw.toString('base64'),
    keyId: libtrustKeyId(certificate.publicKey),
    dir,
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * libtrust's key ID: the first 240 bits of SHA-256 over the DER SubjectPublicKeyInfo, base32
 * (RFC 4648, no padding), in groups of four characters joined by `:`.
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const b32 = base32(createHash('sha256').update(der).digest().subarray(0, 30));
  return b32.match(/.{1,4}/g)!.join(':');
}

function base32(bytes: Uint8Array): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/** Compact JWS with ES256 (the signature is r||s, as JWS requires, not DER). */
export function signJws(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  key: KeyObject,
): string {
  const signingInput = `${base64url(JSON.stringify({ ...header, alg: 'ES256' }))}.${base64url(JSON.stringify(claims))}`;
  const signature = sign('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' });
  return `${signingInput}.${base64url(signature)}`;
}

/** Decodes (without verifying) a compact JWS: for assertions in tests. */
export function decodeJwt(token: string): {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
} {
  const [header, claims] = token.split('.');
  if (header === undefined || claims === undefined) throw new Error('not a compact JWS');
  return {
    header: JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as Record<string, unknown>,
    claims: JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')) as Record<string, unknown>,
  };
}

function keyHeaderFields(signer: TokenSigner, keyHeader: KeyHeader | 'none'): Record<string, unknown> {
  switch (keyHeader) {
    case 'x5c':
      return { x5c: [signer.certificateDerBase64] };
    case 'kid':
      return { kid: signer.keyId };
    case 'jwk': {
      const jwk = createPublicKey(signer.privateKey).export({ format: 'jwk' });
      return { jwk: { ...jwk, kid: signer.keyId } };
    }
    case 'none':
      return {};
  }
}

// ---------------------------------------------------------------------------------------------
// Scopes and grants

/** Parses `type[(class)]:name:actions`; the name may itself contain `:` (it never does for repos). */
export function parseScope(scope: string): TokenAccess | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const type = scope.slice(0, first).replace(/\(.*\)$/, '');
  const name = scope.slice(first + 1, last);
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter((a) => a !== '');
  if (name === '') return undefined;
  return { type, name, actions };
}

export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      source += '.*';
      i++;
    } else if (c === '*') source += '[^/]*';
    else source += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/** The intersection of what is requested and what the grants allow. */
export function grantAccess(requested: TokenAccess[], grants: TokenGrants): TokenAccess[] {
  const out: TokenAccess[] = [];
  for (const request of requested) {
    const allowed = new Set<string>();
    for (const [key, actions] of Object.entries(grants)) {
      const colon = key.indexOf(':');
      const type = colon >= 0 ? key.slice(0, colon) : 'repository';
      const glob = colon >= 0 ? key.slice(colon + 1) : key;
      if (type !== request.type || !globToRegExp(glob).test(request.name)) continue;
      for (const action of request.actions) {
        if (actions.includes('*') || actions.includes(action as TokenAction)) allowed.add(action);
      }
    }
    const actions = request.actions.filter((a) => allowed.has(a));
    if (actions.length > 0) {
      const existing = out.find((a) => a.type === request.type && a.name === request.name);
      if (existing) existing.actions = [...new Set([...existing.actions, ...actions])];
      else out.push({ type: request.type, name: request.name, actions: [...new Set(actions)] });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The server

export async function startTokenServer(options: TokenServerOptions = {}): Promise<TokenServer> {
  const ownsSigner = options.signer === undefined;
  const signer = options.signer ?? (await createTokenSigner());
  const settings: Required<Omit<TokenServerOptions, 'signer'>> = {
    service: options.service ?? 'conda-oci-test-registry',
    issuer: options.issuer ?? 'conda-oci-test-token-issuer',
    identities: options.identities ?? [],
    anonymous: options.anonymous ?? {},
    expiresIn: options.expiresIn ?? 300,
    keyHeader: options.keyHeader ?? 'x5c',
  };
  const requests: TokenRequestRecord[] = [];

  const mint = (access: TokenAccess[], signOptions: SignOptions = {}): string => {
    const key = signOptions.signer ?? signer;
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = signOptions.expiresIn ?? settings.expiresIn;
    const header: Record<string, unknown> = {
      typ: 'JWT',
      ...keyHeaderFields(key, signOptions.keyHeader ?? settings.keyHeader),
    };
    if (signOptions.x5c) header.x5c = signOptions.x5c;
    const claims = {
      iss: signOptions.issuer ?? settings.issuer,
      sub: signOptions.subject ?? '',
      aud: signOptions.audience ?? settings.service,
      exp: now + expiresIn - REGISTRY_TOKEN_LEEWAY_SECONDS,
      nbf: now - REGISTRY_TOKEN_LEEWAY_SECONDS,
      iat: now,
      jti: randomUUID(),
      access,
    };
    return signJws(header, claims, key.privateKey);
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    const record: TokenRequestRecord = {
      method: req.method ?? 'GET',
      username: null,
      service: url.searchParams.get('service'),
      scopes: url.searchParams
        .getAll('scope')
        .flatMap((s) => s.split(' '))
        .filter((s) => s !== ''),
      granted: [],
      status: 200,
    };
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      record.status = status;
      requests.push(record);
      const text = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
        ...headers,
      });
      res.end(text);
    };
    req.resume();
    if (url.pathname !== '/token')
      return reply(404, { errors: [{ code: 'NOT_FOUND', message: url.pathname }] });
    if (req.method !== 'GET') {
      return reply(405, { errors: [{ code: 'UNSUPPORTED', message: 'only GET token requests' }] });
    }
    if (record.service !== null && record.service !== settings.service) {
      return reply(400, {
        errors: [{ code: 'INVALID_REQUEST', message: `unknown service "${record.service}"` }],
      });
    }

    let grants: TokenGrants;
    const authorization = req.headers.authorization;
    if (authorization === undefined) {
      if (settings.anonymous === 'deny') {
        return reply(
          401,
          { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] },
          { 'www-authenticate': 'Basic realm="conda-oci-test-token"' },
        );
      }
      grants = settings.anonymous;
    } else {
      const match = /^Basic\s+(\S+)$/i.exec(authorization);
      const decoded = match ? Buffer.from(match[1]!, 'base64').toString('utf8') : '';
      const colon = decoded.indexOf(':');
      const username = colon >= 0 ? decoded.slice(0, colon) : '';
      const password = colon >= 0 ? decoded.slice(colon + 1) : '';
      const identity = settings.identities.find((i) => i.username === username && i.password === password);
      record.username = username || null;
      if (!match || !identity) {
        return reply(
          401,
          { errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] },
          { 'www-authenticate': 'Basic realm="conda-oci-test-token"' },
        );
      }
      grants = identity.grants;
    }

    const requested = record.scopes.map(parseScope).filter((s): s is TokenAccess => s !== undefined);
    record.granted = grantAccess(requested, grants);
    const token = mint(record.granted, { subject: record.username ?? '' });
    registerTestSecret(token); // the suite's secret scan looks for every token issued
    reply(200, {
      token,
      access_token: token,
      expires_in: settings.expiresIn,
      issued_at: new Date().toISOString(),
    });
  };

  const server: Server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  return {
    realm: `${url}/token`,
    url,
    get service() {
      return settings.service;
    },
    get issuer() {
      return settings.issuer;
    },
    signer,
    certificatePath: signer.certificatePath,
    requests,
    get requestCount() {
      return requests.length;
    },
    options: settings,
    resetRequests: () => void requests.splice(0),
    sign: mint,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (ownsSigner) await signer.dispose();
    },
  };
}
