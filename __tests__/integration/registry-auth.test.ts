/**
 * Registry authentication against the real distribution registry: htpasswd (basic) and the
 * Docker token protocol with per-identity grants (helpers/token-server.ts), plus credential
 * hygiene on redirects and token realms. Outcomes are checked in registry state and request
 * counts (token server, proxy), never in log text.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import { RegistryError } from '../../src/oci/errors.js';
import { EMPTY_CONFIG, type ImageManifest } from '../../src/oci/manifest.js';
import { canonicalJson } from '../../src/util/canonical-json.js';
import { EMPTY_JSON_BYTES, MEDIA_TYPE_OCI_MANIFEST } from '../../src/oci/media-types.js';
import { normalizeScopes, parseChallenge, realmMayReceiveCredentials } from '../../src/oci/remote/auth.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/oci/remote/client.js';
import { buildCli, runCli } from '../helpers/cli.js';
import { fixturePath } from '../helpers/fixtures.js';
import {
  actions,
  startProxy,
  type ProxyAction,
  type ProxyRequest,
  type TestProxy,
} from '../helpers/proxy.js';
import { useRegistry } from '../helpers/registry.js';
import { findLeaks, testSecret } from '../helpers/secrets.js';

// Holds the marker the suite-wide secret scan looks for (helpers/secrets.ts).
const SECRET = testSecret('pa55-w0rd-that-must-never-leak');
const clients: RegistryClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function content(text: string): { bytes: Buffer; descriptor: { digest: Digest; size: number } } {
  const bytes = Buffer.from(text);
  return { bytes, descriptor: { digest: digestOf(bytes), size: bytes.length } };
}

function manifestOf(layer: { digest: Digest; size: number }) {
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    config: EMPTY_CONFIG,
    layers: [{ mediaType: 'application/octet-stream', ...layer }],
  };
  return { mediaType: MEDIA_TYPE_OCI_MANIFEST, bytes: canonicalJson(manifest) };
}

async function caught(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (err: unknown) => err,
  );
}

/** The error, its JSON and its causes as text: the secret must be in none of them. */
function expectNoSecret(err: unknown): void {
  const texts = [String(err), JSON.stringify(err), (err as Error).message, (err as Error).stack ?? ''];
  for (let cause = (err as Error).cause; cause !== undefined; cause = (cause as Error).cause) {
    texts.push(String(cause), JSON.stringify(cause));
  }
  for (const text of texts) {
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(Buffer.from(`alice:${SECRET}`).toString('base64'));
  }
}

// ---- realm policy (unit) ---------------------------------------------------------------------

describe('realmMayReceiveCredentials', () => {
  test.each([
    ['https://ghcr.io/token', 'ghcr.io', true, 'the registry host itself'],
    ['https://ghcr.io:8443/token', 'ghcr.io', true, 'the registry host on another port'],
    ['https://auth.docker.io/token', 'registry-1.docker.io', true, 'a sibling subdomain'],
    ['https://auth.registry.example.com/token', 'registry.example.com', true, 'a subdomain of the registry'],
    ['https://evil.example.net/token', 'ghcr.io', false, 'a foreign host'],
    ['https://ghcr.io.evil.net/token', 'ghcr.io', false, 'a host that only starts like the registry'],
    ['https://evilghcr.io/token', 'ghcr.io', false, 'a host that only ends like the registry'],
    ['https://auth.docker.io/token', 'docker.io.evil.net', false, 'a sibling of nothing shared'],
    ['http://ghcr.io/token', 'ghcr.io', false, 'plain HTTP to a non-loopback realm'],
    ['http://auth.example.com/token', 'registry.example.com', false, 'plain HTTP to a sibling'],
    ['http://127.0.0.1:5001/token', '127.0.0.1:5000', true, 'plain HTTP on loopback, same host'],
    ['http://localhost:5001/token', 'localhost:5000', true, 'plain HTTP to localhost'],
    ['http://127.0.0.2:5001/token', '127.0.0.1:5000', false, 'another loopback address'],
    ['https://10.0.0.9/token', '192.0.0.9:5000', false, 'IP addresses with a common "parent"'],
    ['https://9.2.3.4/token', '1.2.3.4', false, 'IP addresses differing in the first octet'],
    ['https://[::1]:5001/token', '[::1]:5000', true, 'IPv6 loopback, same address'],
    ['ftp://ghcr.io/token', 'ghcr.io', false, 'not HTTP at all'],
  ])('%s for registry %s: %s (%s)', (realm, host, allowed) => {
    expect(realmMayReceiveCredentials(new URL(realm), host)).toBe(allowed);
  });

  test('challenge scopes are merged with ours whatever the action order', () => {
    expect(
      normalizeScopes([
        'repository:a/b:pull,push',
        'repository:a/b:push,pull repository:c/d:pull',
        'repository:c/d:pull',
      ]),
    ).toEqual(['repository:a/b:pull,push', 'repository:c/d:pull']);
    expect(normalizeScopes(['repository:a:pull', 'repository:a:push'])).toEqual(['repository:a:pull,push']);
    expect(
      parseChallenge(
        'Bearer realm="https://auth.example.com/token",service="registry",scope="repository:a:pull,push",error="insufficient_scope"',
      ),
    ).toEqual({
      scheme: 'bearer',
      realm: new URL('https://auth.example.com/token'),
      service: 'registry',
      scope: 'repository:a:pull,push',
    });
  });
});

// ---- htpasswd --------------------------------------------------------------------------------

describe('htpasswd (basic) registry', () => {
  const registry = useRegistry({ auth: 'htpasswd', users: [{ username: 'alice', password: SECRET }] });
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startProxy(registry.url);
  });
  afterAll(async () => {
    await proxy.close();
  });
  beforeEach(() => {
    proxy.clearRules();
    proxy.clearRecords();
    proxy.redirectTarget.rejectAuthorization = false;
    proxy.redirectTarget.requests.splice(0);
  });

  function client(options: Partial<RegistryClientOptions> = {}): RegistryClient {
    const c = new RegistryClient({
      host: proxy.host,
      plainHttp: true,
      credentials: { username: 'alice', password: SECRET },
      retry: { attempts: 2, baseDelayMs: 1 },
      ...options,
    });
    clients.push(c);
    return c;
  }

  test('the right password: push and read back; one 401 to learn the scheme, no token requests', async () => {
    const c = client();
    const layer = content('basic auth layer');
    await c.pushBlob('basic/a', EMPTY_CONFIG, EMPTY_JSON_BYTES);
    await c.pushBlob('basic/a', layer.descriptor, layer.bytes);
    const pushed = await c.pushManifest('basic/a', manifestOf(layer.descriptor), 'v1');
    expect((await c.fetchManifest('basic/a', 'v1')).descriptor.digest).toBe(pushed.descriptor.digest);
    expect((await readAll(c.openBlob('basic/a', layer.descriptor))).equals(layer.bytes)).toBe(true);
    expect(proxy.count({ status: 401 })).toBe(1);
    expect(c.auth.tokenRequests).toBe(0);
  });

  test('a wrong password: RegistryError naming the registry and 401, never the password', async () => {
    const c = client({ credentials: { username: 'alice', password: `${SECRET}-wrong` } });
    const layer = content('never stored');
    const err = await caught(c.pushBlob('basic/b', layer.descriptor, layer.bytes));
    expect(err).toBeInstanceOf(RegistryError);
    const e = err as RegistryError;
    expect(e.status).toBe(401);
    expect(e.url).toContain(proxy.host);
    expect(e.message).toContain(proxy.host);
    expect(e.message).toContain('401');
    expect(e.message).toContain('the registry refused the credentials');
    expectNoSecret(err);
    // Nothing was written.
    expect(await client().statBlob('basic/b', layer.descriptor.digest)).toBeUndefined();
  });

  test('no credentials: 401 that says credentials are wanted', async () => {
    const c = new RegistryClient({ host: proxy.host, plainHttp: true });
    clients.push(c);
    const err = await caught(c.resolve('basic/a', 'v1'));
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).status).toBe(401);
    expect((err as Error).message).toContain('the registry wants credentials');
  });

  test('a blob GET redirected to another origin carries no Authorization or cookie there', async () => {
    const c = client();
    const layer = content('redirected layer '.repeat(1000));
    await c.pushBlob('basic/redirect', layer.descriptor, layer.bytes);
    const authorizations: (string | undefined)[] = [];
    proxy.on(
      {
        method: 'GET',
        path: /\/blobs\/sha256:/,
        where: (r) => {
          authorizations.push(r.headers.authorization);
          return false;
        },
      },
      actions.forward(),
    );
    proxy.on({ method: 'GET', path: /\/blobs\/sha256:/ }, actions.redirect({ status: 307 }));
    // Like S3 pre-signed URLs: refuse a request that carries an Authorization header.
    proxy.redirectTarget.rejectAuthorization = true;
    const back = await readAll(c.openBlob('basic/redirect', layer.descriptor));
    expect(back.equals(layer.bytes)).toBe(true);
    // The registry's origin got the credentials; the redirect target did not.
    expect(authorizations).toHaveLength(1);
    expect(authorizations[0]).toMatch(/^Basic /);
    const targets = proxy.redirectTarget.requests;
    expect(targets).toHaveLength(1);
    expect(targets[0]!.headers.authorization).toBeUndefined();
    expect(targets[0]!.headers.cookie).toBeUndefined();
    expect(targets[0]!.headers['proxy-authorization']).toBeUndefined();
  });
});

// ---- token auth ------------------------------------------------------------------------------

describe('token registry', () => {
  const registry = useRegistry({
    auth: 'token',
    users: [
      { username: 'admin', password: SECRET },
      { username: 'staging', password: `${SECRET}-staging`, grants: { 'staging/**': ['pull', 'push'] } },
      {
        username: 'production',
        password: `${SECRET}-production`,
        grants: { 'prod/**': ['pull', 'push'], 'staging/**': ['pull'] },
      },
      // May write to dst/** but read nothing else: a mount from src/** is refused.
      { username: 'promoter', password: `${SECRET}-promoter`, grants: { 'dst/**': ['pull', 'push'] } },
    ],
  });
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startProxy(registry.url);
  });
  afterAll(async () => {
    await proxy.close();
  });
  beforeEach(() => {
    proxy.clearRules();
    proxy.clearRecords();
    registry.tokenServer!.options.expiresIn = 300;
  });

  function client(username: string, options: Partial<RegistryClientOptions> = {}): RegistryClient {
    const password = username === 'admin' ? SECRET : `${SECRET}-${username}`;
    const c = new RegistryClient({
      host: proxy.host,
      plainHttp: true,
      credentials: { username, password },
      retry: { attempts: 2, baseDelayMs: 1 },
      ...options,
    });
    clients.push(c);
    return c;
  }

  const tokens = (): number => registry.tokenServer!.requestCount;

  test('a staging identity writes to staging and is refused on prod, where nothing appears', async () => {
    const staging = client('staging');
    const admin = client('admin');
    const layer = content('staging only');
    const manifest = manifestOf(layer.descriptor);

    await staging.pushBlob('staging/pkg', EMPTY_CONFIG, EMPTY_JSON_BYTES);
    await staging.pushBlob('staging/pkg', layer.descriptor, layer.bytes);
    await staging.pushManifest('staging/pkg', manifest, 'v1');
    expect(await admin.resolve('staging/pkg', 'v1')).toBeDefined();

    const blobErr = await caught(staging.pushBlob('prod/pkg', layer.descriptor, layer.bytes));
    expect(blobErr).toBeInstanceOf(RegistryError);
    expect((blobErr as RegistryError).status).toBe(401);
    expect((blobErr as Error).message).toMatch(/does not grant repository:prod\/pkg:pull/);
    const manifestErr = await caught(staging.pushManifest('prod/pkg', manifest, 'v1'));
    expect(manifestErr).toBeInstanceOf(RegistryError);
    expect((manifestErr as RegistryError).status).toBe(401);
    expectNoSecret(blobErr);
    expectNoSecret(manifestErr);

    expect(await admin.statBlob('prod/pkg', layer.descriptor.digest)).toBeUndefined();
    expect(await admin.resolve('prod/pkg', 'v1')).toBeUndefined();
    expect(await admin.resolve('prod/pkg', digestOf(manifest.bytes))).toBeUndefined();

    // The production identity may do it.
    const production = client('production');
    await production.pushBlob('prod/pkg', EMPTY_CONFIG, EMPTY_JSON_BYTES);
    await production.pushBlob('prod/pkg', layer.descriptor, layer.bytes, { mountFrom: 'staging/pkg' });
    await production.pushManifest('prod/pkg', manifest, 'v1');
    expect((await admin.resolve('prod/pkg', 'v1'))?.digest).toBe(digestOf(manifest.bytes));
  });

  test('tokens are cached per scope set: one token request each, not one per request', async () => {
    const c = client('production');
    const before = tokens();
    const layers = Array.from({ length: 5 }, (_, i) => content(`cached layer ${i}`));
    for (const layer of layers)
      expect(await c.statBlob('prod/cache', layer.descriptor.digest)).toBeUndefined();
    // 1 token so far: repository:prod/cache:pull.
    expect(tokens() - before).toBe(1);
    await c.pushBlob('prod/cache', EMPTY_CONFIG, EMPTY_JSON_BYTES);
    for (const layer of layers) await c.pushBlob('prod/cache', layer.descriptor, layer.bytes);
    await c.pushManifest('prod/cache', manifestOf(layers[0]!.descriptor), 'v1');
    for (let i = 0; i < 5; i++) expect(await c.resolve('prod/cache', 'v1')).toBeDefined();
    // 2 in all (pull; pull,push) for 30 registry requests: 5 + 1 HEAD (the first met the
    // challenge), 6 blobs x (HEAD, POST, PUT), 1 manifest PUT, 5 manifest HEADs.
    expect(tokens() - before).toBe(2);
    expect(proxy.count()).toBe(30);
    // Only the very first request met a 401 (to learn the challenge).
    expect(proxy.count({ status: 401 })).toBe(1);
    expect(c.auth.tokenRequests).toBe(2);
  });

  test('an expired token is replaced before use (client clock)', async () => {
    registry.tokenServer!.options.expiresIn = 2;
    const c = client('production');
    const layer = content('expiry layer');
    await c.pushBlob('prod/expiry', layer.descriptor, layer.bytes);
    const before = tokens();
    await new Promise((resolve) => setTimeout(resolve, 3200));
    proxy.clearRecords();
    expect(await c.statBlob('prod/expiry', layer.descriptor.digest)).toEqual({ size: layer.bytes.length });
    expect(tokens() - before).toBe(1);
    expect(proxy.count({ status: 401 })).toBe(0);
  });

  test('a token the registry finds expired is replaced and the request succeeds', async () => {
    registry.tokenServer!.options.expiresIn = 2;
    // A client whose clock stands still believes its token is fresh forever.
    const c = client('production', { clock: () => 0 });
    const layer = content('expiry layer 2');
    await c.pushBlob('prod/expiry2', layer.descriptor, layer.bytes);
    const before = tokens();
    await new Promise((resolve) => setTimeout(resolve, 3200));
    proxy.clearRecords();
    expect(await c.statBlob('prod/expiry2', layer.descriptor.digest)).toEqual({ size: layer.bytes.length });
    expect(tokens() - before).toBe(1);
    expect(proxy.count({ method: 'HEAD', status: 401 })).toBe(1);
    expect(proxy.count({ method: 'HEAD', status: 200 })).toBe(1);
  });

  test('a mount refused for lack of pull on the source falls back to an upload', async () => {
    const admin = client('admin');
    const layers = [content('mount source 1'), content('mount source 2')];
    for (const layer of layers) await admin.pushBlob('src/a', layer.descriptor, layer.bytes);
    const promoter = client('promoter');
    proxy.clearRecords();
    for (const layer of layers) {
      const outcome = await promoter.pushBlob('dst/a', layer.descriptor, layer.bytes, { mountFrom: 'src/a' });
      expect(outcome).toEqual({ action: 'uploaded', bytesSent: layer.bytes.length });
    }
    for (const layer of layers) {
      expect(await admin.statBlob('dst/a', layer.descriptor.digest)).toEqual({ size: layer.bytes.length });
      expect((await readAll(admin.openBlob('dst/a', layer.descriptor))).equals(layer.bytes)).toBe(true);
    }
    // The mount was asked once; the second blob went straight to an ordinary upload.
    expect(proxy.count({ method: 'POST', path: /[?&]mount=/ })).toBe(2); // the request and its auth retry
    expect(proxy.count({ method: 'POST', path: /[?&]mount=/, status: 401 })).toBe(2);
    expect(proxy.count({ method: 'POST', status: 202 })).toBe(2);
  });

  test('a wrong password: the token service refuses; the error never holds the password', async () => {
    const c = new RegistryClient({
      host: proxy.host,
      plainHttp: true,
      credentials: { username: 'admin', password: `${SECRET}-wrong` },
      retry: { attempts: 1 },
    });
    clients.push(c);
    const err = await caught(c.resolve('prod/x', 'v1'));
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).status).toBe(401);
    expect((err as Error).message).toContain('the token service refused the credentials');
    expect((err as RegistryError).url).toBe(registry.tokenServer!.realm);
    expectNoSecret(err);
  });

  test('anonymous: a token without access, and an error that asks for credentials', async () => {
    const c = new RegistryClient({ host: proxy.host, plainHttp: true, retry: { attempts: 1 } });
    clients.push(c);
    const before = registry.tokenServer!.requests.length;
    const err = await caught(c.resolve('prod/x', 'v1'));
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toMatch(/anonymous access does not grant repository:prod\/x:pull/);
    const asked = registry.tokenServer!.requests.slice(before);
    expect(asked.length).toBeGreaterThan(0);
    for (const r of asked) expect(r.username).toBeNull();
  });

  describe('credentials only go to allowed realms', () => {
    let foreign: Server;
    let foreignUrl: string;
    const seen: IncomingHttpHeaders[] = [];
    beforeAll(async () => {
      // A token endpoint on another loopback address: a different host than the registry's.
      foreign = createServer((req, res) => {
        seen.push(req.headers);
        req.resume();
        const token = registry.tokenServer!.sign([]);
        const body = JSON.stringify({ token, expires_in: 300 });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.2', () => resolve()));
      foreignUrl = `http://127.0.0.2:${(foreign.address() as AddressInfo).port}/token`;
    });
    afterAll(async () => {
      foreign.closeAllConnections();
      await new Promise<void>((resolve) => foreign.close(() => resolve()));
    });

    test('a challenge naming a foreign realm gets an anonymous token request', async () => {
      proxy.on(
        { where: () => true },
        actions.rewriteResponse({
          headers: {
            'www-authenticate': `Bearer realm="${foreignUrl}",service="${registry.tokenServer!.service}"`,
          },
        }),
      );
      const c = client('admin');
      const err = await caught(c.resolve('prod/x', 'v1'));
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as RegistryError).status).toBe(401);
      expect(seen.length).toBeGreaterThan(0);
      for (const headers of seen) {
        expect(headers.authorization).toBeUndefined();
        expect(headers.cookie).toBeUndefined();
      }
    });

    test('the realm on the registry host gets the credentials', async () => {
      const c = client('admin');
      const before = registry.tokenServer!.requests.length;
      await c.resolve('prod/x', 'v1');
      const asked = registry.tokenServer!.requests.slice(before);
      expect(asked.map((r) => r.username)).toEqual(['admin']);
    });
  });
});

// ---- issued tokens are secrets -------------------------------------------------------------

describe('a token the token service issues is masked like a password', () => {
  // The token server registers every token it issues with the suite-wide scan
  // (helpers/token-server.ts, registerTestSecret), so a leak here also fails the whole run.
  const registry = useRegistry({ auth: 'token', users: [{ username: 'alice', password: SECRET }] });
  const CONDA = 'demo-pkg-1.2.3-h1234567_0.conda';
  let proxy: TestProxy;
  let work: string;
  beforeAll(async () => {
    proxy = await startProxy(registry.url);
    work = mkdtempSync(join(tmpdir(), 'conda-oci-token-echo-'));
    await buildCli();
  }, 180_000);
  afterAll(async () => {
    await proxy.close();
    rmSync(work, { recursive: true, force: true });
  });
  beforeEach(() => {
    proxy.clearRules();
    proxy.clearRecords();
  });

  /** The bearer token a request carries (the proxy sees what the client sends). */
  const bearer = (r: ProxyRequest): string | undefined =>
    /^Bearer (\S+)$/.exec(String(r.headers.authorization ?? ''))?.[1];

  /** Registries that quote the token back: in an error message, in a retried error, in a header. */
  const echoes: {
    where: string;
    echo: (token: string) => ProxyAction;
    /** Echo on this many requests (then forward). */
    times?: number;
    /** The artifact's status in the result document. */
    status: 'failed' | 'uploaded';
    /** What the output says where the token was. */
    masked: RegExp;
  }[] = [
    {
      where: 'in the error body of a refused manifest PUT',
      echo: (token) =>
        actions.status(400, {
          errors: [{ code: 'MANIFEST_INVALID', message: `manifest refused for bearer ${token}` }],
        }),
      status: 'failed',
      masked: /answered 400 \(MANIFEST_INVALID: manifest refused for bearer \*\*\*\)/,
    },
    {
      where: 'in the error body of a 503, which the retry message quotes',
      echo: (token) =>
        actions.status(503, { errors: [{ code: 'UNAVAILABLE', message: `try later, ${token}` }] }),
      times: 1,
      status: 'uploaded',
      masked: /retrying PUT \S+ in \d+ ms: .*answered 503 \(UNAVAILABLE: try later, \*\*\*\)/,
    },
    {
      where: 'in the Docker-Content-Digest header of a manifest PUT answer, which the mismatch quotes',
      echo: (token) => actions.rewriteResponse({ headers: { 'docker-content-digest': `sha256:${token}` } }),
      status: 'failed',
      masked: /Docker-Content-Digest: expected sha256:[0-9a-f]{64}, got sha256:\*\*\*/,
    },
  ];

  test.each(echoes.map((e, i) => [e.where, { ...e, i }] as const))(
    'echoed %s: stdout, stderr and the result file hold no token',
    async (_, { echo, times, status, masked, i }) => {
      const echoed: string[] = [];
      proxy.on(
        { method: 'PUT', path: /\/manifests\//, where: (r) => bearer(r) !== undefined },
        (r) => {
          echoed.push(bearer(r)!);
          return echo(bearer(r)!);
        },
        times === undefined ? {} : { times },
      );
      const resultFile = join(work, `result-${i}.json`);
      const run = await runCli([
        'upload',
        fixturePath(CONDA),
        '--to',
        `oci://${proxy.host}/echo/${i}`,
        '--username',
        'alice',
        '--password',
        SECRET,
        '--json',
        '--result',
        resultFile,
      ]);
      const result = readFileSync(resultFile, 'utf8');
      const text = `${run.stdout}\n${run.stderr}\n${result}`;
      // The attack happened: the registry echoed real tokens, and the output says where.
      expect(echoed.length).toBeGreaterThan(0);
      expect(text).toMatch(masked);
      const artifacts = (JSON.parse(result) as { artifacts: { file: string; status: string }[] }).artifacts;
      expect(artifacts.map((a) => [a.file, a.status])).toEqual([[CONDA, status]]);
      expect(run.code, run.stderr).toBe(status === 'failed' ? 1 : 0);
      // Not a trace of any of them: as sent, base64- or URL-encoded.
      expect(findLeaks(text, echoed)).toEqual([]);
      for (const token of new Set(echoed)) {
        expect(text.includes(token)).toBe(false);
        expect(text.includes(Buffer.from(token).toString('base64'))).toBe(false);
      }
    },
  );

  test('serve: a token echoed in an error the gateway logs is masked in its stderr and its answers', async () => {
    const echoed: string[] = [];
    const authenticated = (r: ProxyRequest): boolean => bearer(r) !== undefined;
    // A HEAD without Docker-Content-Digest makes the gateway read the manifest (GET), which echoes.
    proxy.on(
      { method: 'HEAD', path: /\/manifests\//, where: authenticated },
      actions.status(200, '{}', { 'content-type': MEDIA_TYPE_OCI_MANIFEST }),
    );
    proxy.on({ method: 'GET', path: /\/manifests\//, where: authenticated }, (r) => {
      echoed.push(bearer(r)!);
      return actions.status(400, {
        errors: [{ code: 'MANIFEST_INVALID', message: `not for bearer ${bearer(r)!}` }],
      });
    });
    let listening: (url: string) => void;
    const url = new Promise<string>((resolve) => (listening = resolve));
    let answers = '';
    const run = await runCli(
      [
        'serve',
        '--channel',
        `oci://${proxy.host}/echo/serve`,
        '--listen',
        '127.0.0.1:0',
        '--username',
        'alice',
        '--password',
        SECRET,
      ],
      {
        onStderr: (text) => {
          const at = / at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(text);
          if (at) listening(at[1]!);
        },
        onSpawn: (child) => {
          void url.then(async (base) => {
            for (const path of ['noarch/repodata.json', 'linux-64/repodata.json']) {
              const response = await fetch(`${base}${path}`);
              answers += `${response.status} ${JSON.stringify([...response.headers])} ${await response.text()}\n`;
            }
            child.kill('SIGTERM');
          });
        },
      },
    );
    const text = `${run.stdout}\n${run.stderr}\n${answers}`;
    expect(echoed.length).toBeGreaterThan(0);
    expect(answers).toMatch(/^502 /);
    expect(run.stderr).toMatch(/answered 400 \(MANIFEST_INVALID: not for bearer \*\*\*\)/);
    expect(findLeaks(text, echoed)).toEqual([]);
    for (const token of new Set(echoed)) expect(text.includes(token)).toBe(false);
  });
});
