/**
 * Proves the test harness (helpers/registry.ts, helpers/token-server.ts, helpers/proxy.ts) does
 * what the other suites rely on, with plain undici requests (not the project's client), and
 * records, as executable experiments, how distribution 2.8.2 (Debian's docker-registry) behaves
 * where the OCI specs leave room. The findings are summarised here; each is asserted below.
 *
 * distribution 2.8.2 findings (experiment, no auth unless said):
 *  - An OCI image manifest with `artifactType`, a `subject`, and config
 *    `application/vnd.oci.empty.v1+json` (the `{}` blob) is ACCEPTED (201). The response has NO
 *    `OCI-Subject` header. The subject is not checked: a subject digest the registry does not hold
 *    is accepted too.
 *  - `GET /v2/<name>/referrers/<digest>` answers 404 with a text/plain body `404 page not found`
 *    (the route does not exist; not a JSON error): clients must use the referrers tag schema.
 *  - An OCI image index pushed under the tag `sha256-<hex>` is accepted (201) and read back
 *    byte for byte (same digest, `Content-Type: application/vnd.oci.image.index.v1+json`); so is
 *    an index without a top-level `mediaType` field.
 *  - A manifest whose layer (or config) blob is missing is refused: 400 `MANIFEST_BLOB_UNKNOWN`,
 *    `detail` = the missing digest. An index naming a manifest the repository does not hold: same.
 *    Descriptor SIZES are NOT checked (a config descriptor with size 3 for the 2-byte `{}` is
 *    accepted); layer media types are free (`application/vnd.conda.package.v2` accepted).
 *  - A manifest whose Content-Type contradicts its `mediaType` field: 400 `MANIFEST_INVALID`.
 *  - A manifest PUT by digest whose body does not hash to it: 400 `DIGEST_INVALID`.
 *  - A manifest body over 4 MiB: 400 `MANIFEST_INVALID`, detail "http: request body too large".
 *  - Cross-repo mount `POST /v2/<dst>/blobs/uploads/?mount=<digest>&from=<src>` answers 201 with
 *    `Location: <absolute URL of the blob in dst>` and `Docker-Content-Digest`; when the blob is not
 *    in `from` (or `from` is unknown, or absent) it answers 202 with an ordinary upload session
 *    (`Location`, `Docker-Upload-UUID`, `Range: 0-0`).
 *    With token auth the registry demands `pull` on `from` for a mount request: a token without it
 *    gets 401 `insufficient_scope` (the challenge's scope lists `repository:<dst>:pull,push` and
 *    `repository:<src>:pull`, space-separated; the order of the scopes AND of the actions varies
 *    from one answer to the next: `push,pull` happens),
 *    NOT a 202 fallback. Starting any upload (POST) needs `pull` AND `push` on the repository.
 *  - "Monolithic" `POST /v2/<name>/blobs/uploads/?digest=<d>` with the body does NOT store the
 *    blob: it answers 202 and opens an empty session (Range 0-0); the blob is still unknown after.
 *  - PATCH `Content-Range` is not checked against the session offset; an upload status
 *    `GET <location>` answers 204 with `Range: 0-<last byte>`. Every response carries a new
 *    `Location` (its `_state` encodes the offset): a stale Location gets 404 `BLOB_UPLOAD_INVALID`.
 *    Locations are absolute URLs built from the request's Host.
 *  - `/v2/_catalog?n=2` paginates: `Link: </v2/_catalog?last=<url-encoded last>&n=2>; rel="next"`
 *    (a relative URL); the last page has no Link. `n` over 1000: 400 `PAGINATION_NUMBER_INVALID`.
 *    With token auth the catalog needs the scope `registry:catalog:*`.
 *  - `/v2/<name>/tags/list?n=2` does NOT paginate: all tags, no Link header, and the tags are NOT
 *    sorted (directory order). Unknown repository: 404 `NAME_UNKNOWN`.
 *  - DELETE of a manifest by digest: 202 (empty body); again: 404 `MANIFEST_UNKNOWN`. It removes
 *    every tag that pointed at that digest (HEAD by those tags: 404; tags/list no longer lists
 *    them). DELETE by tag: 400 `DIGEST_INVALID`. DELETE of a blob: 202, then HEAD 404.
 *    With `storage.delete.enabled: false`: 405 `UNSUPPORTED` for manifests and blobs (the same
 *    answer GHCR gives to a manifest DELETE). With token auth a DELETE needs the `delete` action.
 *  - Insufficient scope is 401 (never 403), `WWW-Authenticate: Bearer realm=..,service=..,
 *    scope="<what the request needs>",error="insufficient_scope"`, code `UNAUTHORIZED`.
 *  - Token verification: the JWS header may name the key by `x5c` (chain verified against
 *    `rootcertbundle`), `jwk` (a bundle key) or `kid` (libtrust fingerprint of a bundle key); all
 *    three work; a header with none of them, a foreign certificate, or a foreign signature with
 *    the trusted certificate are refused (401). `exp` gets 60 s of leeway.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { actions, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, useRegistry, type TestRegistry } from '../helpers/registry.js';
import { createTokenSigner, decodeJwt, type TokenSigner } from '../helpers/token-server.js';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const EMPTY = 'application/vnd.oci.empty.v1+json';

const sha256 = (data: string | Uint8Array): string =>
  `sha256:${createHash('sha256').update(data).digest('hex')}`;
const basic = (username: string, password: string): string =>
  `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

async function call(url: string | URL, options: Dispatcher.RequestOptions | object = {}): Promise<Answer> {
  const response = await request(url, options as Parameters<typeof request>[1]);
  const body = await response.body.text();
  return { status: response.statusCode, headers: response.headers, body };
}

function header(answer: Answer, name: string): string | undefined {
  const value = answer.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** POST + PUT upload of a small blob; returns its digest. */
async function pushBlob(
  base: string,
  repository: string,
  data: string | Uint8Array,
  headers: Record<string, string> = {},
): Promise<string> {
  const digest = sha256(data);
  const started = await call(`${base}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers });
  expect(started.status).toBe(202);
  const location = new URL(header(started, 'location')!, base);
  location.searchParams.set('digest', digest);
  const done = await call(location, {
    method: 'PUT',
    body: data,
    headers: { ...headers, 'content-type': 'application/octet-stream' },
  });
  expect(done.status, done.body).toBe(201);
  return digest;
}

interface Pushed extends Answer {
  digest: string;
  size: number;
}

async function putManifest(
  base: string,
  repository: string,
  reference: string,
  manifest: object,
  mediaType: string = MANIFEST,
  headers: Record<string, string> = {},
): Promise<Pushed> {
  const body = JSON.stringify(manifest);
  const answer = await call(`${base}/v2/${repository}/manifests/${reference}`, {
    method: 'PUT',
    body,
    headers: { ...headers, 'content-type': mediaType },
  });
  return { ...answer, digest: sha256(body), size: Buffer.byteLength(body) };
}

/** The scopes of a Bearer challenge as sorted `type:name:action` items (distribution's order varies). */
function challengeScopes(answer: Answer): string[] {
  const scope = /scope="([^"]*)"/.exec(header(answer, 'www-authenticate') ?? '')?.[1] ?? '';
  return scope
    .split(' ')
    .filter((s) => s !== '')
    .flatMap((s) => {
      const last = s.lastIndexOf(':');
      return s
        .slice(last + 1)
        .split(',')
        .map((action) => `${s.slice(0, last)}:${action}`);
    })
    .sort();
}

function errorCode(answer: Answer): string | undefined {
  try {
    return (JSON.parse(answer.body) as { errors?: { code?: string }[] }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

// -----------------------------------------------------------------------------------------------

describe('registry without auth', () => {
  const registry = useRegistry();

  test('answers /v2/ with 200 on a loopback address', async () => {
    expect(registry.host).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(registry.url).toBe(`http://${registry.host}`);
    const answer = await call(`${registry.url}/v2/`);
    expect(answer.status).toBe(200);
    expect(header(answer, 'docker-distribution-api-version')).toBe('registry/2.0');
  });

  test('stores blobs under storageDir', async () => {
    const digest = await pushBlob(registry.url, 'harness/storage', 'stored bytes');
    const hex = digest.slice('sha256:'.length);
    const data = join(registry.storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    expect((await stat(data)).size).toBe('stored bytes'.length);
  });
});

test('stop() ends the registry and frees its port; two registries run side by side', async () => {
  const [a, b] = await Promise.all([startRegistry(), startRegistry()]);
  expect(a.port).not.toBe(b.port);
  expect((await call(`${a.url}/v2/`)).status).toBe(200);
  await a.stop();
  await expect(
    call(`${a.url}/v2/`, { dispatcher: new Agent({ connect: { timeout: 2000 } }) }),
  ).rejects.toThrow();
  expect((await call(`${b.url}/v2/`)).status).toBe(200);
  await b.stop();
  await b.stop(); // idempotent
});

describe('registry with htpasswd', () => {
  const registry = useRegistry({ auth: 'htpasswd', users: [{ username: 'alice', password: 's3cret' }] });

  test('401 with a Basic challenge without credentials, 200 with them', async () => {
    const anonymous = await call(`${registry.url}/v2/`);
    expect(anonymous.status).toBe(401);
    expect(header(anonymous, 'www-authenticate')).toMatch(/^Basic realm=/);
    expect(
      (await call(`${registry.url}/v2/`, { headers: { authorization: basic('alice', 'wrong') } })).status,
    ).toBe(401);
    expect(
      (await call(`${registry.url}/v2/`, { headers: { authorization: basic('alice', 's3cret') } })).status,
    ).toBe(200);
  });
});

describe('registry with token auth', () => {
  const registry = useRegistry({
    auth: 'token',
    users: [
      { username: 'admin', password: 'pw' },
      { username: 'feedstock', password: 'pw', grants: { 'staging/**': ['pull', 'push'], 'a/b': ['*'] } },
    ],
    token: { anonymous: { 'public/**': ['pull'] } },
  });

  async function token(user: string | null, ...scopes: string[]): Promise<{ token: string; status: number }> {
    const server = registry.tokenServer!;
    const query = new URLSearchParams({ service: server.service });
    for (const scope of scopes) query.append('scope', scope);
    const answer = await call(`${server.realm}?${query.toString()}`, {
      headers: user === null ? {} : { authorization: basic(user, 'pw') },
    });
    if (answer.status !== 200) return { token: '', status: answer.status };
    const parsed = JSON.parse(answer.body) as { token: string; access_token: string; expires_in: number };
    expect(parsed.access_token).toBe(parsed.token);
    expect(parsed.expires_in).toBeGreaterThan(0);
    return { token: parsed.token, status: 200 };
  }
  const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });

  test('anonymous requests get a Bearer challenge naming realm, service and scope', async () => {
    const answer = await call(`${registry.url}/v2/a/b/tags/list`);
    expect(answer.status).toBe(401);
    const challenge = header(answer, 'www-authenticate')!;
    expect(challenge).toContain(`Bearer realm="${registry.tokenServer!.realm}"`);
    expect(challenge).toContain(`service="${registry.tokenServer!.service}"`);
    expect(challenge).toContain('scope="repository:a/b:pull"');
    expect(registry.tokenServer!.realm).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/token$/);
  });

  test('a token for repository:a/b:pull,push starts an upload in a/b and is refused in c/d', async () => {
    const { token: t } = await token('admin', 'repository:a/b:pull,push');
    expect(decodeJwt(t).claims.access).toEqual([
      { type: 'repository', name: 'a/b', actions: ['pull', 'push'] },
    ]);
    expect(
      (await call(`${registry.url}/v2/a/b/blobs/uploads/`, { method: 'POST', headers: bearer(t) })).status,
    ).toBe(202);
    const refused = await call(`${registry.url}/v2/c/d/blobs/uploads/`, {
      method: 'POST',
      headers: bearer(t),
    });
    expect([401, 403]).toContain(refused.status);
    expect(header(refused, 'www-authenticate')).toContain('error="insufficient_scope"');
  });

  test('the token server grants only the intersection of the request and the identity', async () => {
    const { token: t } = await token(
      'feedstock',
      'repository:staging/x/y:pull,push,delete',
      'repository:prod/x:pull,push',
    );
    expect(decodeJwt(t).claims.access).toEqual([
      { type: 'repository', name: 'staging/x/y', actions: ['pull', 'push'] },
    ]);
    expect(
      (await call(`${registry.url}/v2/prod/x/blobs/uploads/`, { method: 'POST', headers: bearer(t) })).status,
    ).toBe(401);
    // '*' grants every action, e.g. delete.
    const { token: all } = await token('feedstock', 'repository:a/b:delete');
    expect(decodeJwt(all).claims.access).toEqual([{ type: 'repository', name: 'a/b', actions: ['delete'] }]);
  });

  test('anonymous token requests get the anonymous grants; bad credentials get 401', async () => {
    const { token: t } = await token(null, 'repository:public/pkgs:pull', 'repository:a/b:pull');
    expect(decodeJwt(t).claims.access).toEqual([
      { type: 'repository', name: 'public/pkgs', actions: ['pull'] },
    ]);
    const server = registry.tokenServer!;
    const wrong = await call(`${server.realm}?service=${server.service}&scope=repository:a/b:pull`, {
      headers: { authorization: basic('admin', 'nope') },
    });
    expect(wrong.status).toBe(401);
  });

  test('counts the token requests it served', async () => {
    const server = registry.tokenServer!;
    server.resetRequests();
    await token('admin', 'repository:a/b:pull');
    await token(null, 'repository:a/b:pull');
    expect(server.requestCount).toBe(2);
    expect(server.requests.map((r) => r.username)).toEqual(['admin', null]);
    expect(server.requests[0]!.scopes).toEqual(['repository:a/b:pull']);
  });

  test('the registry accepts the key named by x5c, jwk or kid, and nothing else', async () => {
    const server = registry.tokenServer!;
    const access = [{ type: 'repository', name: 'a/b', actions: ['pull', 'push'] }];
    for (const keyHeader of ['x5c', 'jwk', 'kid'] as const) {
      const t = server.sign(access, { keyHeader });
      const answer = await call(`${registry.url}/v2/a/b/blobs/uploads/`, {
        method: 'POST',
        headers: bearer(t),
      });
      expect(answer.status, keyHeader).toBe(202);
    }
    const t = server.sign(access, { keyHeader: 'none' });
    expect(
      (await call(`${registry.url}/v2/a/b/blobs/uploads/`, { method: 'POST', headers: bearer(t) })).status,
    ).toBe(401);
  });

  describe('signatures', () => {
    let foreign: TokenSigner;
    beforeAll(async () => {
      foreign = await createTokenSigner('someone else');
    });
    afterAll(async () => {
      await foreign.dispose();
    });

    test('a token signed by a foreign key is refused', async () => {
      const server = registry.tokenServer!;
      const access = [{ type: 'repository', name: 'a/b', actions: ['pull', 'push'] }];
      const post = (t: string): Promise<Answer> =>
        call(`${registry.url}/v2/a/b/blobs/uploads/`, { method: 'POST', headers: bearer(t) });
      // Control: the same claims signed by the trusted key pass.
      expect((await post(server.sign(access))).status).toBe(202);
      // The foreign key with its own certificate: the chain does not reach rootcertbundle.
      expect((await post(server.sign(access, { signer: foreign }))).status).toBe(401);
      // The foreign key claiming the trusted certificate: the signature does not verify.
      expect(
        (await post(server.sign(access, { signer: foreign, x5c: [server.signer.certificateDerBase64] })))
          .status,
      ).toBe(401);
      // Wrong issuer or audience.
      expect((await post(server.sign(access, { issuer: 'other' }))).status).toBe(401);
      expect((await post(server.sign(access, { audience: 'other' }))).status).toBe(401);
    });
  });

  test('expiresIn is enforced by the registry (its 60 s leeway compensated)', async () => {
    const server = registry.tokenServer!;
    const access = [{ type: 'repository', name: 'a/b', actions: ['pull', 'push'] }];
    const t = server.sign(access, { expiresIn: 1 });
    const post = (): Promise<Answer> =>
      call(`${registry.url}/v2/a/b/blobs/uploads/`, { method: 'POST', headers: bearer(t) });
    expect((await post()).status).toBe(202);
    await sleep(2100);
    expect((await post()).status).toBe(401);
  });

  test('the catalog needs registry:catalog:*', async () => {
    const denied = await call(`${registry.url}/v2/_catalog`, {
      headers: bearer((await token('feedstock', 'registry:catalog:*')).token),
    });
    expect(denied.status).toBe(401);
    expect(header(denied, 'www-authenticate')).toContain('scope="registry:catalog:*"');
    const allowed = await call(`${registry.url}/v2/_catalog`, {
      headers: bearer((await token('admin', 'registry:catalog:*')).token),
    });
    expect(allowed.status).toBe(200);
  });
});

test('token server: anonymous "deny" answers 401 to requests without credentials', async () => {
  const registry = await startRegistry({ auth: 'token', users: [], token: { anonymous: 'deny' } });
  try {
    const server = registry.tokenServer!;
    const answer = await call(`${server.realm}?service=${server.service}&scope=repository:a/b:pull`);
    expect(answer.status).toBe(401);
    expect(server.requests[0]!.status).toBe(401);
  } finally {
    await registry.stop();
  }
});

// -----------------------------------------------------------------------------------------------

describe('proxy', () => {
  const registry = useRegistry();
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startProxy(registry.url);
  });
  afterAll(async () => {
    await proxy.close();
  });
  const reset = (): void => {
    proxy.clearRules();
    proxy.clearRecords();
  };

  test('forwards, counts requests and bytes, and rewrites Location to itself', async () => {
    reset();
    const data = Buffer.alloc(100_000, 7);
    const started = await call(`${proxy.url}/v2/harness/proxy/blobs/uploads/`, { method: 'POST' });
    expect(started.status).toBe(202);
    expect(header(started, 'location')!.startsWith(`${proxy.url}/v2/harness/proxy/blobs/uploads/`)).toBe(
      true,
    );
    const location = new URL(header(started, 'location')!);
    location.searchParams.set('digest', sha256(data));
    const done = await call(location, { method: 'PUT', body: data });
    expect(done.status).toBe(201);
    expect(header(done, 'location')!.startsWith(proxy.url)).toBe(true);
    const blob = await call(`${proxy.url}/v2/harness/proxy/blobs/${sha256(data)}`);
    expect(blob.status).toBe(200);

    expect(proxy.count()).toBe(3);
    expect(proxy.count({ method: 'POST', path: '/v2/harness/proxy/blobs/uploads/' })).toBe(1);
    expect(proxy.bytes({ method: 'PUT' })).toEqual({ request: 100_000, response: 0 });
    expect(proxy.bytes({ method: 'GET', path: /\/blobs\/sha256:/ }).response).toBe(100_000);
    expect(proxy.summary().get('PUT /v2/harness/proxy/blobs/uploads/<uuid>')).toEqual({
      count: 1,
      requestBytes: 100_000,
      responseBytes: 0,
    });
  });

  test('injects a 503 once, then forwards', async () => {
    reset();
    const rule = proxy.on({ path: '/v2/' }, actions.status(503), { times: 1 });
    const first = await call(`${proxy.url}/v2/`);
    expect(first.status).toBe(503);
    expect(errorCode(first)).toBe('UNAVAILABLE');
    expect((await call(`${proxy.url}/v2/`)).status).toBe(200);
    expect(rule.hits).toBe(1);
    expect(proxy.count({ status: 503 })).toBe(1);
  });

  test('skip lets the first matches through', async () => {
    reset();
    proxy.on({ path: '/v2/' }, actions.status(500), { skip: 1, times: 1 });
    expect((await call(`${proxy.url}/v2/`)).status).toBe(200);
    expect((await call(`${proxy.url}/v2/`)).status).toBe(500);
    expect((await call(`${proxy.url}/v2/`)).status).toBe(200);
  });

  test('429 with and without Retry-After, and GHCR-style with the wait in the message', async () => {
    reset();
    proxy.on({ path: '/v2/' }, actions.tooManyRequests(2), { times: 1 });
    proxy.on({ path: '/v2/' }, actions.tooManyRequests(), { times: 1 });
    proxy.on({ path: '/v2/' }, actions.ghcrTooManyRequests(120), { times: 1 });
    const withHeader = await call(`${proxy.url}/v2/`);
    expect([withHeader.status, header(withHeader, 'retry-after')]).toEqual([429, '2']);
    const without = await call(`${proxy.url}/v2/`);
    expect([without.status, header(without, 'retry-after')]).toEqual([429, undefined]);
    const ghcr = await call(`${proxy.url}/v2/`);
    expect(ghcr.status).toBe(429);
    expect(header(ghcr, 'retry-after')).toBeUndefined();
    expect(JSON.parse(ghcr.body)).toEqual({
      errors: [
        { code: 'TOOMANYREQUESTS', message: 'retry-after: 120ms, allowed: 44000/minute', detail: null },
      ],
    });
  });

  test('resets the connection after N response bytes', async () => {
    reset();
    const digest = await pushBlob(proxy.url, 'harness/reset', Buffer.alloc(50_000, 1));
    proxy.on({ method: 'GET', path: /\/blobs\/sha256:/ }, actions.reset('response', 1000), { times: 1 });
    const response = await request(`${proxy.url}/v2/harness/reset/blobs/${digest}`);
    expect(response.statusCode).toBe(200);
    await expect(response.body.arrayBuffer()).rejects.toThrow();
    const record = proxy.records.at(-1)!;
    expect(record.action).toBe('reset:response');
    expect(record.responseBytes).toBe(1000);
    // The rule was used up: the next GET gets the whole blob.
    expect((await call(`${proxy.url}/v2/harness/reset/blobs/${digest}`)).body.length).toBe(50_000);
  });

  test('resets the connection after N request bytes; nothing reaches the registry', async () => {
    reset();
    const data = Buffer.alloc(200_000, 2);
    proxy.on({ method: 'PUT' }, actions.reset('request', 10_000), { times: 1 });
    const started = await call(`${proxy.url}/v2/harness/reset2/blobs/uploads/`, { method: 'POST' });
    const location = new URL(header(started, 'location')!);
    location.searchParams.set('digest', sha256(data));
    await expect(call(location, { method: 'PUT', body: data })).rejects.toThrow();
    expect(proxy.records.at(-1)!.requestBytes).toBeLessThanOrEqual(10_000 + 65_536);
    expect(
      (await call(`${registry.url}/v2/harness/reset2/blobs/${sha256(data)}`, { method: 'HEAD' })).status,
    ).toBe(404);
  });

  test('truncates a response, keeping its headers', async () => {
    reset();
    const digest = await pushBlob(proxy.url, 'harness/truncate', 'twenty bytes of data');
    proxy.on({ method: 'GET', path: /\/blobs\// }, actions.truncate(5), { times: 1 });
    const response = await request(`${proxy.url}/v2/harness/truncate/blobs/${digest}`);
    expect(response.headers['content-length']).toBe('20');
    await expect(response.body.text()).rejects.toThrow();
  });

  test('alters response body bytes while keeping the headers', async () => {
    reset();
    const digest = await pushBlob(proxy.url, 'harness/corrupt', 'abcdef');
    proxy.on({ method: 'GET', path: /\/blobs\// }, actions.corrupt(2, 0x20));
    const answer = await call(`${proxy.url}/v2/harness/corrupt/blobs/${digest}`);
    expect(answer.body).toBe('abCdef');
    expect(header(answer, 'docker-content-digest')).toBe(digest);
    expect(header(answer, 'content-length')).toBe('6');
  });

  test('stalls a response and streams what came before the stall', async () => {
    reset();
    const digest = await pushBlob(proxy.url, 'harness/stall', Buffer.alloc(64_000, 3));
    proxy.on({ method: 'GET', path: /\/blobs\// }, actions.stall('response', 1000, 1500), { times: 1 });
    const begin = Date.now();
    const response = await request(`${proxy.url}/v2/harness/stall/blobs/${digest}`);
    let firstChunkAt = 0;
    let total = 0;
    for await (const chunk of response.body) {
      firstChunkAt ||= Date.now() - begin;
      total += (chunk as Buffer).length;
    }
    expect(total).toBe(64_000);
    // The bytes before the stall arrive well before it ends (a margin for a busy machine).
    expect(firstChunkAt).toBeLessThan(1000);
    expect(Date.now() - begin).toBeGreaterThanOrEqual(1490);
  });

  test('a stall without end is ended by the client giving up', async () => {
    reset();
    proxy.on({ path: '/v2/' }, actions.stall('response'), { times: 1 });
    const impatient = new Agent({ bodyTimeout: 300 });
    const response = await request(`${proxy.url}/v2/`, { dispatcher: impatient });
    await expect(response.body.text()).rejects.toThrow();
    await impatient.close();
  });

  test('streams request bodies to the registry as they arrive', async () => {
    reset();
    const chunk = Buffer.alloc(64 * 1024, 4);
    const chunks = 32; // 2 MiB
    proxy.on({ method: 'PATCH' }, actions.stall('request', 1024 * 1024, 1500), { times: 1 });
    const started = await call(`${proxy.url}/v2/harness/streaming/blobs/uploads/`, { method: 'POST' });
    const uuid = header(started, 'docker-upload-uuid')!;
    const dataFile = join(
      registry.storageDir,
      'docker/registry/v2/repositories/harness/streaming/_uploads',
      uuid,
      'data',
    );
    const body = Readable.from(
      (function* () {
        for (let i = 0; i < chunks; i++) yield chunk;
      })(),
    );
    const patch = call(header(started, 'location')!, {
      method: 'PATCH',
      body,
      headers: { 'content-type': 'application/octet-stream' },
    });
    // While the proxy holds back the second MiB, the registry already has (most of) the first.
    let sizeDuringStall = 0;
    for (let i = 0; i < 20 && sizeDuringStall < 512 * 1024; i++) {
      await sleep(50);
      sizeDuringStall = await stat(dataFile).then(
        (s) => s.size,
        () => 0,
      );
    }
    expect(sizeDuringStall).toBeGreaterThanOrEqual(512 * 1024);
    expect(sizeDuringStall).toBeLessThanOrEqual(1024 * 1024);
    const done = await patch;
    expect(done.status).toBe(202);
    expect(header(done, 'range')).toBe(`0-${chunks * chunk.length - 1}`);
  });

  test('drops a path, answers 405 to DELETE, rewrites responses', async () => {
    reset();
    proxy.on({ path: '/v2/_catalog' }, actions.status(404));
    proxy.on({ method: 'DELETE' }, actions.unsupported());
    proxy.on(
      { method: 'GET', path: '/v2/' },
      actions.rewriteResponse({ status: 200, headers: { 'x-extra': 'yes' } }),
    );
    expect((await call(`${proxy.url}/v2/_catalog`)).status).toBe(404);
    const deleted = await call(`${proxy.url}/v2/harness/x/manifests/${sha256('x')}`, { method: 'DELETE' });
    expect([deleted.status, errorCode(deleted)]).toEqual([405, 'UNSUPPORTED']);
    expect(header(await call(`${proxy.url}/v2/`), 'x-extra')).toBe('yes');
  });

  test('answers a cross-repository mount with 202 (mount refused, upload session opened)', async () => {
    reset();
    const digest = await pushBlob(proxy.url, 'harness/mount-src', 'mount me');
    const mountUrl = `${proxy.url}/v2/harness/mount-dst/blobs/uploads/?mount=${digest}&from=harness/mount-src`;
    proxy.on({ method: 'POST', path: /[?&]mount=/ }, actions.refuseMount(), { times: 1 });
    const refused = await call(mountUrl, { method: 'POST' });
    expect(refused.status).toBe(202);
    expect(header(refused, 'location')!.startsWith(`${proxy.url}/v2/harness/mount-dst/blobs/uploads/`)).toBe(
      true,
    );
    const mounted = await call(mountUrl, { method: 'POST' });
    expect(mounted.status).toBe(201);
  });

  test('redirects a blob GET to another origin that records the headers it received', async () => {
    reset();
    const digest = await pushBlob(proxy.url, 'harness/redirect', 'redirected bytes');
    proxy.on({ method: 'GET', path: /\/blobs\/sha256:/ }, actions.redirect());
    const redirect = await call(`${proxy.url}/v2/harness/redirect/blobs/${digest}`, {
      headers: { authorization: 'Bearer registry-token' },
    });
    expect(redirect.status).toBe(307);
    const location = new URL(header(redirect, 'location')!);
    expect(location.hostname).toBe('localhost');
    expect(location.origin).not.toBe(new URL(proxy.url).origin);
    // A careful client follows without the registry's credentials.
    const followed = await call(location, { headers: { 'x-client': 'careful' } });
    expect(followed.status).toBe(200);
    expect(followed.body).toBe('redirected bytes');
    const seen = proxy.redirectTarget.requests.at(-1)!;
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers['x-client']).toBe('careful');
    // Like S3, the target can refuse a request that still carries Authorization.
    proxy.redirectTarget.rejectAuthorization = true;
    const leaked = await call(location, { headers: { authorization: 'Bearer registry-token' } });
    expect(leaked.status).toBe(400);
    expect(proxy.redirectTarget.requests.at(-1)!.headers.authorization).toBe('Bearer registry-token');
    proxy.redirectTarget.rejectAuthorization = false;
  });

  test('a rule can decide per request; delay then act', async () => {
    reset();
    let calls = 0;
    proxy.on({ path: '/v2/' }, () => (++calls % 2 === 0 ? actions.status(502) : undefined));
    proxy.on({ path: '/v2/' }, actions.delay(150, actions.status(504)), { times: 1 });
    const begin = Date.now();
    expect((await call(`${proxy.url}/v2/`)).status).toBe(504);
    expect(Date.now() - begin).toBeGreaterThanOrEqual(140);
    expect((await call(`${proxy.url}/v2/`)).status).toBe(502);
    expect((await call(`${proxy.url}/v2/`)).status).toBe(200);
  });

  test('chaos: a seeded random schedule is reproducible', async () => {
    const run = async (seed: number): Promise<number[]> => {
      reset();
      proxy.chaos({ seed, probability: 0.5, actions: [actions.status(503), actions.status(429)], limit: 6 });
      const statuses: number[] = [];
      for (let i = 0; i < 16; i++) statuses.push((await call(`${proxy.url}/v2/`)).status);
      return statuses;
    };
    const first = await run(7);
    expect(await run(7)).toEqual(first);
    expect(first.filter((s) => s !== 200).length).toBeGreaterThan(0);
    expect(first.filter((s) => s !== 200).length).toBeLessThanOrEqual(6);
    expect(await run(8)).not.toEqual(first);
  });
});

// -----------------------------------------------------------------------------------------------

describe('EXPERIMENT: what distribution 2.8.2 accepts (see the summary at the top)', () => {
  const registry = useRegistry();
  const base = (): string => registry.url;
  const repo = 'exp/artifacts';
  let empty: string;
  let layer: string;
  let subject: Pushed;

  beforeAll(async () => {
    empty = await pushBlob(base(), repo, '{}');
    layer = await pushBlob(base(), repo, 'layer bytes');
    subject = await putManifest(base(), repo, 'v1', {
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: EMPTY, digest: empty, size: 2 },
      layers: [{ mediaType: 'application/vnd.conda.package.v2', digest: layer, size: 11 }],
    });
    expect(subject.status).toBe(201);
  });

  test('a manifest with artifactType, subject and an empty config: accepted, no OCI-Subject header', async () => {
    const referrer = await putManifest(base(), repo, 'placeholder', {
      schemaVersion: 2,
      mediaType: MANIFEST,
      artifactType: 'application/vnd.conda-oci.validation.v1+json',
      config: { mediaType: EMPTY, digest: empty, size: 2 },
      layers: [{ mediaType: EMPTY, digest: empty, size: 2 }],
      subject: { mediaType: MANIFEST, digest: subject.digest, size: subject.size },
    });
    expect(referrer.status).toBe(201);
    expect(header(referrer, 'docker-content-digest')).toBe(referrer.digest);
    expect(header(referrer, 'oci-subject')).toBeUndefined();
    // Pushed by digest, too.
    const byDigest = await putManifest(
      base(),
      repo,
      sha256(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MANIFEST,
          artifactType: 'application/vnd.x',
          config: { mediaType: EMPTY, digest: empty, size: 2 },
          layers: [],
          subject: { mediaType: MANIFEST, digest: subject.digest, size: subject.size },
        }),
      ),
      {
        schemaVersion: 2,
        mediaType: MANIFEST,
        artifactType: 'application/vnd.x',
        config: { mediaType: EMPTY, digest: empty, size: 2 },
        layers: [],
        subject: { mediaType: MANIFEST, digest: subject.digest, size: subject.size },
      },
    );
    expect(byDigest.status).toBe(201);
    expect(header(byDigest, 'oci-subject')).toBeUndefined();
    // The subject is not checked.
    const unknownSubject = await putManifest(base(), repo, 'unknown-subject', {
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: EMPTY, digest: empty, size: 2 },
      layers: [],
      subject: { mediaType: MANIFEST, digest: sha256('no such manifest'), size: 16 },
    });
    expect(unknownSubject.status).toBe(201);
  });

  test('GET /v2/<name>/referrers/<digest> is 404 (text/plain, no such route)', async () => {
    const answer = await call(`${base()}/v2/${repo}/referrers/${subject.digest}`);
    expect(answer.status).toBe(404);
    expect(header(answer, 'content-type')).toMatch(/^text\/plain/);
    expect(answer.body.trim()).toBe('404 page not found');
  });

  test('an OCI index under the tag sha256-<hex> is accepted and read back byte for byte', async () => {
    const referrer = await putManifest(base(), repo, 'referrer', {
      schemaVersion: 2,
      mediaType: MANIFEST,
      artifactType: 'application/vnd.conda-oci.validation.v1+json',
      config: { mediaType: EMPTY, digest: empty, size: 2 },
      layers: [{ mediaType: EMPTY, digest: empty, size: 2 }],
      subject: { mediaType: MANIFEST, digest: subject.digest, size: subject.size },
    });
    const tag = `sha256-${subject.digest.slice('sha256:'.length)}`;
    const index = await putManifest(
      base(),
      repo,
      tag,
      {
        schemaVersion: 2,
        mediaType: INDEX,
        manifests: [
          {
            mediaType: MANIFEST,
            digest: referrer.digest,
            size: referrer.size,
            artifactType: 'application/vnd.conda-oci.validation.v1+json',
          },
        ],
      },
      INDEX,
    );
    expect(index.status).toBe(201);
    const read = await call(`${base()}/v2/${repo}/manifests/${tag}`, { headers: { accept: INDEX } });
    expect(read.status).toBe(200);
    expect(header(read, 'content-type')).toBe(INDEX);
    expect(sha256(read.body)).toBe(index.digest);
    // Without the top-level mediaType field: accepted too.
    const bare = await putManifest(
      base(),
      repo,
      'index-without-media-type',
      {
        schemaVersion: 2,
        manifests: [{ mediaType: MANIFEST, digest: referrer.digest, size: referrer.size }],
      },
      INDEX,
    );
    expect(bare.status).toBe(201);
  });

  test('missing blobs are refused with MANIFEST_BLOB_UNKNOWN; sizes are not checked', async () => {
    const missingLayer = await putManifest(base(), repo, 'missing-layer', {
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: EMPTY, digest: empty, size: 2 },
      layers: [{ mediaType: 'application/octet-stream', digest: sha256('absent'), size: 6 }],
    });
    expect([missingLayer.status, errorCode(missingLayer)]).toEqual([400, 'MANIFEST_BLOB_UNKNOWN']);
    expect(JSON.parse(missingLayer.body).errors[0].detail).toBe(sha256('absent'));

    const missingConfig = await putManifest(base(), repo, 'missing-config', {
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: EMPTY, digest: sha256('{ }'), size: 3 },
      layers: [],
    });
    expect([missingConfig.status, errorCode(missingConfig)]).toEqual([400, 'MANIFEST_BLOB_UNKNOWN']);

    const missingChild = await putManifest(
      base(),
      repo,
      'missing-child',
      {
        schemaVersion: 2,
        mediaType: INDEX,
        manifests: [{ mediaType: MANIFEST, digest: sha256('x'), size: 1 }],
      },
      INDEX,
    );
    expect([missingChild.status, errorCode(missingChild)]).toEqual([400, 'MANIFEST_BLOB_UNKNOWN']);

    const wrongSize = await putManifest(base(), repo, 'wrong-size', {
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: EMPTY, digest: empty, size: 3 },
      layers: [],
    });
    expect(wrongSize.status).toBe(201);
  });

  test('manifest PUT checks: content type vs mediaType, digest reference, 4 MiB limit', async () => {
    const manifest = {
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: EMPTY, digest: empty, size: 2 },
      layers: [],
    };
    const mismatch = await putManifest(base(), repo, 'type-mismatch', manifest, INDEX);
    expect([mismatch.status, errorCode(mismatch)]).toEqual([400, 'MANIFEST_INVALID']);
    const wrongDigest = await putManifest(base(), repo, sha256('something else'), manifest);
    expect([wrongDigest.status, errorCode(wrongDigest)]).toEqual([400, 'DIGEST_INVALID']);
    const big = await putManifest(base(), repo, 'big', {
      ...manifest,
      annotations: { filler: 'x'.repeat(4 * 1024 * 1024) },
    });
    expect([big.status, errorCode(big)]).toEqual([400, 'MANIFEST_INVALID']);
  });

  test('cross-repository mount: 201 when the source has the blob, else a 202 upload session', async () => {
    const mounted = await call(`${base()}/v2/exp/mounted/blobs/uploads/?mount=${layer}&from=${repo}`, {
      method: 'POST',
    });
    expect(mounted.status).toBe(201);
    expect(header(mounted, 'location')).toBe(`${base()}/v2/exp/mounted/blobs/${layer}`);
    expect(header(mounted, 'docker-content-digest')).toBe(layer);
    expect((await call(`${base()}/v2/exp/mounted/blobs/${layer}`, { method: 'HEAD' })).status).toBe(200);

    for (const query of [
      `mount=${sha256('absent')}&from=${repo}`,
      `mount=${layer}&from=exp/nowhere`,
      `mount=${layer}`,
    ]) {
      const fallback = await call(`${base()}/v2/exp/mounted2/blobs/uploads/?${query}`, { method: 'POST' });
      expect(fallback.status, query).toBe(202);
      expect(header(fallback, 'docker-upload-uuid')).toBeDefined();
      expect(header(fallback, 'range')).toBe('0-0');
    }
  });

  test('POST with ?digest= and a body does not upload monolithically (202, blob still unknown)', async () => {
    const data = 'monolithic?';
    const answer = await call(`${base()}/v2/exp/mono/blobs/uploads/?digest=${sha256(data)}`, {
      method: 'POST',
      body: data,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(answer.status).toBe(202);
    expect(header(answer, 'range')).toBe('0-0');
    expect((await call(`${base()}/v2/exp/mono/blobs/${sha256(data)}`, { method: 'HEAD' })).status).toBe(404);
  });

  test('chunked uploads: Content-Range is not checked; a stale Location is BLOB_UPLOAD_INVALID', async () => {
    const started = await call(`${base()}/v2/exp/chunks/blobs/uploads/`, { method: 'POST' });
    const first = new URL(header(started, 'location')!);
    const one = await call(first, {
      method: 'PATCH',
      body: 'abc',
      headers: { 'content-type': 'application/octet-stream', 'content-range': '0-2' },
    });
    expect([one.status, header(one, 'range')]).toEqual([202, '0-2']);
    const two = await call(header(one, 'location')!, {
      method: 'PATCH',
      body: 'def',
      headers: { 'content-type': 'application/octet-stream', 'content-range': '10-12' },
    });
    expect([two.status, header(two, 'range')]).toEqual([202, '0-5']);
    const status = await call(header(two, 'location')!);
    expect([status.status, header(status, 'range')]).toEqual([204, '0-5']);
    const stale = await call(first);
    expect([stale.status, errorCode(stale)]).toEqual([404, 'BLOB_UPLOAD_INVALID']);
    const finish = new URL(header(two, 'location')!);
    finish.searchParams.set('digest', sha256('abcdef'));
    expect((await call(finish, { method: 'PUT' })).status).toBe(201);
  });

  test('/v2/_catalog?n=2 paginates with a relative Link; n > 1000 is refused', async () => {
    for (const name of ['exp/cat-a', 'exp/cat-b', 'exp/cat-c']) await pushBlob(base(), name, name);
    const all = JSON.parse((await call(`${base()}/v2/_catalog`)).body).repositories as string[];
    expect(all.length).toBeGreaterThan(3);
    const page = await call(`${base()}/v2/_catalog?n=2`);
    expect(JSON.parse(page.body).repositories).toEqual(all.slice(0, 2));
    expect(header(page, 'link')).toBe(`</v2/_catalog?last=${encodeURIComponent(all[1]!)}&n=2>; rel="next"`);
    const seen: string[] = [];
    let next: string | undefined = '/v2/_catalog?n=2';
    while (next !== undefined) {
      const answer = await call(new URL(next, base()));
      seen.push(...(JSON.parse(answer.body).repositories as string[]));
      next = /<([^>]+)>;\s*rel="next"/.exec(header(answer, 'link') ?? '')?.[1];
    }
    expect(seen).toEqual(all);
    const tooMany = await call(`${base()}/v2/_catalog?n=1001`);
    expect([tooMany.status, errorCode(tooMany)]).toEqual([400, 'PAGINATION_NUMBER_INVALID']);
  });

  test('/v2/<name>/tags/list?n=2 does not paginate (no Link, all tags, unsorted)', async () => {
    const manifest = {
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: EMPTY, digest: empty, size: 2 },
      layers: [],
    };
    // Blobs are per repository: one held only by another repository is MANIFEST_BLOB_UNKNOWN.
    const elsewhere = await putManifest(base(), 'exp/tags', 't1', manifest);
    expect([elsewhere.status, errorCode(elsewhere)]).toEqual([400, 'MANIFEST_BLOB_UNKNOWN']);
    await pushBlob(base(), 'exp/tags', '{}');
    for (const tag of ['t1', 't2', 't3']) {
      expect((await putManifest(base(), 'exp/tags', tag, manifest)).status).toBe(201);
    }
    const answer = await call(`${base()}/v2/exp/tags/tags/list?n=2`);
    expect(answer.status).toBe(200);
    expect(header(answer, 'link')).toBeUndefined();
    expect([...(JSON.parse(answer.body).tags as string[])].sort()).toEqual(['t1', 't2', 't3']);
    const unknown = await call(`${base()}/v2/exp/no-such-repo/tags/list`);
    expect([unknown.status, errorCode(unknown)]).toEqual([404, 'NAME_UNKNOWN']);
  });

  test('DELETE of a manifest: 202 by digest (untags every tag), 400 DIGEST_INVALID by tag', async () => {
    const manifest = {
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: EMPTY, digest: empty, size: 2 },
      layers: [{ mediaType: 'application/octet-stream', digest: layer, size: 11 }],
      annotations: { purpose: 'delete' },
    };
    await pushBlob(base(), 'exp/delete', '{}');
    await pushBlob(base(), 'exp/delete', 'layer bytes');
    const pushed = await putManifest(base(), 'exp/delete', 'one', manifest);
    expect(pushed.status).toBe(201);
    await putManifest(base(), 'exp/delete', 'two', manifest);
    await putManifest(base(), 'exp/delete', 'keep', { ...manifest, annotations: { purpose: 'keep' } });

    const byTag = await call(`${base()}/v2/exp/delete/manifests/one`, { method: 'DELETE' });
    expect([byTag.status, errorCode(byTag)]).toEqual([400, 'DIGEST_INVALID']);

    const byDigest = await call(`${base()}/v2/exp/delete/manifests/${pushed.digest}`, { method: 'DELETE' });
    expect([byDigest.status, byDigest.body]).toEqual([202, '']);
    const again = await call(`${base()}/v2/exp/delete/manifests/${pushed.digest}`, { method: 'DELETE' });
    expect([again.status, errorCode(again)]).toEqual([404, 'MANIFEST_UNKNOWN']);
    for (const tag of ['one', 'two']) {
      expect((await call(`${base()}/v2/exp/delete/manifests/${tag}`, { method: 'HEAD' })).status).toBe(404);
    }
    expect(JSON.parse((await call(`${base()}/v2/exp/delete/tags/list`)).body).tags).toEqual(['keep']);

    const blob = await call(`${base()}/v2/exp/delete/blobs/${layer}`, { method: 'DELETE' });
    expect(blob.status).toBe(202);
    expect((await call(`${base()}/v2/exp/delete/blobs/${layer}`, { method: 'HEAD' })).status).toBe(404);
  });
});

test('EXPERIMENT: with delete disabled, DELETE answers 405 UNSUPPORTED (as GHCR does)', async () => {
  const registry = await startRegistry({ deleteEnabled: false });
  try {
    const digest = await pushBlob(registry.url, 'exp/nodelete', '{}');
    const pushed = await putManifest(registry.url, 'exp/nodelete', 'v1', {
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: EMPTY, digest, size: 2 },
      layers: [],
    });
    for (const path of [`manifests/${pushed.digest}`, `blobs/${digest}`]) {
      const answer = await call(`${registry.url}/v2/exp/nodelete/${path}`, { method: 'DELETE' });
      expect([answer.status, errorCode(answer)]).toEqual([405, 'UNSUPPORTED']);
    }
  } finally {
    await registry.stop();
  }
});

test('EXPERIMENT: with token auth, a mount needs pull on the source (else 401, not 202)', async () => {
  const registry: TestRegistry = await startRegistry({
    auth: 'token',
    users: [
      { username: 'staging', password: 'pw', grants: { 'src/**': ['pull', 'push'] } },
      { username: 'prod', password: 'pw', grants: { 'dst/**': ['pull', 'push'] } },
      { username: 'both', password: 'pw', grants: { 'src/**': ['pull'], 'dst/**': ['pull', 'push'] } },
    ],
  });
  try {
    const server = registry.tokenServer!;
    const token = async (user: string, ...scopes: string[]): Promise<Record<string, string>> => {
      const query = new URLSearchParams({ service: server.service });
      for (const scope of scopes) query.append('scope', scope);
      const answer = await call(`${server.realm}?${query.toString()}`, {
        headers: { authorization: basic(user, 'pw') },
      });
      return { authorization: `Bearer ${(JSON.parse(answer.body) as { token: string }).token}` };
    };
    const pushOnly = await token('staging', 'repository:src/a:push');
    const postPushOnly = await call(`${registry.url}/v2/src/a/blobs/uploads/`, {
      method: 'POST',
      headers: pushOnly,
    });
    expect(postPushOnly.status).toBe(401);
    expect(challengeScopes(postPushOnly)).toEqual(['repository:src/a:pull', 'repository:src/a:push']);

    const digest = await pushBlob(
      registry.url,
      'src/a',
      'to mount',
      await token('staging', 'repository:src/a:pull,push'),
    );
    const scopes = ['repository:dst/a:pull,push', 'repository:src/a:pull'];
    const url = `${registry.url}/v2/dst/a/blobs/uploads/?mount=${digest}&from=src/a`;
    const prodOnly = await call(url, { method: 'POST', headers: await token('prod', ...scopes) });
    expect(prodOnly.status).toBe(401);
    // The challenge lists every scope the request needs, in no fixed order (actions neither).
    expect(header(prodOnly, 'www-authenticate')).toContain('error="insufficient_scope"');
    expect(challengeScopes(prodOnly)).toEqual([
      'repository:dst/a:pull',
      'repository:dst/a:push',
      'repository:src/a:pull',
    ]);
    const both = await call(url, { method: 'POST', headers: await token('both', ...scopes) });
    expect(both.status).toBe(201);
  } finally {
    await registry.stop();
  }
});
