/**
 * GHCR's behaviour (SPEC §8) in front of a real registry: a proxy with no `/v2/_catalog`, no
 * manifest DELETE (405 UNSUPPORTED), no referrers API, mounts answered with an upload session,
 * tag lists 100 per page oldest first, 429s with the wait in the message; and a stand-in for
 * GitHub's Packages REST API that derives packages from the registry and deletes for real.
 * Every assertion is on registry state or on what the servers saw.
 */
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readPackageManifest } from '../../src/conda/artifact.js';
import { packageReference } from '../../src/conda/naming.js';
import type { CleanResult } from '../../src/commands/clean.js';
import { silentReporter, type CommandResult } from '../../src/commands/report.js';
import { ARTIFACT_TYPE_UPLOAD_RECEIPT } from '../../src/conda/records.js';
import { execute, type Environment } from '../../src/core/execute.js';
import { githubApi, type GitHubApi } from '../../src/github/api.js';
import { ghcrExtras } from '../../src/github/packages.js';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import { EMPTY_CONFIG, encodeManifest, manifestBlobs, parseImageManifest } from '../../src/oci/manifest.js';
import { ANNOTATION_CREATED, EMPTY_JSON_BYTES, MEDIA_TYPE_OCI_MANIFEST } from '../../src/oci/media-types.js';
import { listReferrers } from '../../src/oci/referrers.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import type { CommandInput as CommandOptions } from '../../src/core/commands.js';
import { expectedOf, fixturePath } from '../helpers/fixtures.js';
import { MESSAGES, startGitHubStandIn, type GitHubStandIn } from '../helpers/github-api.js';
import { actions, startProxy, type TestProxy } from '../helpers/proxy.js';
import { useRegistry, type TestRegistry } from '../helpers/registry.js';

const TOKEN = 'ghs_standInToken0123456789abcdef';
const USER = 'some-maintainer';

const registry = useRegistry();
let proxy: TestProxy;
let github: GitHubStandIn;
let api: GitHubApi;
/** The registry itself, behind GHCR's back: to check what is really stored. */
let direct: RemoteStore;

/** GHCR's answers, on a proxy in front of the real registry. */
function behaveLikeGhcr(proxy: TestProxy, registry: TestRegistry): void {
  proxy.on({ path: '/v2/_catalog' }, actions.notFound());
  proxy.on({ method: 'DELETE', path: /\/manifests\// }, actions.unsupported());
  proxy.on({ method: 'GET', path: /^\/v2\/.+\/referrers\// }, actions.notFound());
  proxy.on(
    { method: 'POST', path: /\/blobs\/uploads\/?\?/, where: (r) => r.query.has('mount') },
    actions.refuseMount(),
  );
  proxy.on(
    { method: 'PATCH', where: (r) => Number(r.headers['content-length'] ?? 0) > 4 * 1024 * 1024 },
    actions.status(416),
  );
  proxy.on(
    { method: 'GET', path: /^\/v2\/.+\/tags\/list(\?|$)/ },
    {
      type: 'handle',
      handler: (req, res, context) => {
        req.resume();
        tagPage(registry, context.request.pathname, context.request.query).then(
          (page) => {
            if (!page) return context.forward();
            res.writeHead(200, {
              'content-type': 'application/json',
              ...(page.next ? { link: `<${page.next}>; rel="next"` } : {}),
            });
            res.end(JSON.stringify(page.body));
          },
          (err: unknown) => {
            res.writeHead(500, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: String(err) }] }));
          },
        );
      },
    },
  );
}

/** One page of GHCR's tag list: at most 100, oldest first, `last` continuing after a tag. */
async function tagPage(
  registry: TestRegistry,
  pathname: string,
  query: URLSearchParams,
): Promise<{ body: { name: string; tags: string[] }; next?: string } | undefined> {
  const name = pathname.slice('/v2/'.length, -'/tags/list'.length);
  const response = await fetch(`${registry.url}/v2/${name}/tags/list?n=100000`);
  if (!response.ok) return undefined;
  const tags = ((await response.json()) as { tags: string[] | null }).tags ?? [];
  const dir = join(registry.storageDir, 'docker/registry/v2/repositories', name, '_manifests/tags');
  const written = new Map<string, bigint>();
  for (const tag of tags)
    written.set(
      tag,
      await stat(join(dir, tag, 'current/link'), { bigint: true }).then(
        (s) => s.mtimeNs,
        () => 0n,
      ),
    );
  const ordered = [...tags].sort((a, b) => {
    const d = written.get(a)! - written.get(b)!;
    return d < 0n ? -1 : d > 0n ? 1 : a < b ? -1 : 1;
  });
  const n = Math.min(100, Number(query.get('n') ?? 100) || 100);
  const last = query.get('last');
  const start = last === null ? 0 : ordered.indexOf(last) + 1;
  const page = ordered.slice(start, start + n);
  return {
    body: { name, tags: page },
    ...(start + n < ordered.length
      ? { next: `/v2/${name}/tags/list?last=${encodeURIComponent(page[page.length - 1]!)}&n=${n}` }
      : {}),
  };
}

beforeAll(async () => {
  proxy = await startProxy(registry.url);
  behaveLikeGhcr(proxy, registry);
  github = await startGitHubStandIn({
    registry: { url: registry.url, storageDir: registry.storageDir },
    token: TOKEN,
    users: [USER],
  });
  api = githubApi(TOKEN, github.url);
  direct = new RemoteStore({ host: registry.host, plainHttp: true });
});
afterAll(async () => {
  await direct?.close();
  await github?.close();
  await proxy?.close();
});

const CONDA = 'demo-pkg-1.2.3-h1234567_0.conda';
const NEWER = 'demo-pkg-1.2.4-h7654321_1.conda';
const ZLIB = 'libzlib-1.3.1-hb9d3cd8_2.conda';
const KEY = 'ghcr-record-key-for-tests';

function ghcr(path: string): string {
  return `oci://${proxy.host}/${path}`;
}

function run(options: CommandOptions, extra: Partial<Environment> = {}): Promise<CommandResult> {
  const extras = ghcrExtras(api);
  return execute(options, {
    reporter: silentReporter,
    ...extra,
    storeOptions: {
      registryExtras: (host) => (host === proxy.host ? extras : undefined),
      ...extra.storeOptions,
    },
  });
}

function request(file: string, sha256 = expectedOf(file).sha256) {
  return { subdir: expectedOf(file).subdir, file, sha256 };
}

/** Where the artifact lives in the registry, seen directly. */
function stored(channelPath: string, file: string) {
  const e = expectedOf(file);
  const ref = packageReference(e.subdir, e.name, e.version, e.build);
  const name = `${channelPath}/${ref.repository}`;
  return { repository: direct.repository(name), name, tag: ref.tag };
}

/** How many manifest DELETEs the proxy answered with GHCR's 405 so far. */
const refusedDeletes = (): number => proxy.count({ method: 'DELETE', status: 405 });

/** For every REST deletion: how many 405s the registry API had given before it. */
function watchDeletes(): number[] {
  const seen: number[] = [];
  github.onRequest((r) => {
    if (r.method === 'DELETE') seen.push(refusedDeletes());
  });
  return seen;
}

describe('the staging flow on GHCR', () => {
  test('upload, validate with delete-failed, promote by copying: production is byte-identical', async () => {
    const staging = ghcr('cf-staging/conda-forge');
    const production = ghcr('channel-mirrors/conda-forge');
    const up = await run({
      command: 'upload',
      files: [CONDA, NEWER, ZLIB].map(fixturePath),
      to: staging,
    });
    expect(up.artifacts.map((a) => a.status)).toEqual(['uploaded', 'uploaded', 'uploaded']);

    const deletes = watchDeletes();
    const zlibDigest = (await stored('cf-staging/conda-forge', ZLIB).repository.resolve(
      stored('cf-staging/conda-forge', ZLIB).tag,
    ))!.digest;
    const validated = await run({
      command: 'validate',
      from: staging,
      // libzlib is claimed with another artifact's sha256: it fails.
      artifacts: [request(CONDA), request(NEWER), request(ZLIB, expectedOf(CONDA).sha256)],
      deleteFailed: true,
      recordKey: KEY,
    });
    expect(validated.artifacts.map((a) => a.status)).toEqual(['passed', 'passed', 'failed']);

    // delete-failed removes only what the requester attested: nobody attested libzlib, so it
    // stays for clean (whose deletions through the Packages API are tested below).
    const zlib = stored('cf-staging/conda-forge', ZLIB);
    expect((await zlib.repository.resolve(zlib.tag))?.digest).toBe(zlibDigest);
    expect(deletes).toEqual([]);
    // The artifacts that passed are untouched.
    for (const file of [CONDA, NEWER]) {
      const s = stored('cf-staging/conda-forge', file);
      expect(await s.repository.resolve(s.tag)).toBeDefined();
    }

    proxy.clearRecords();
    const promoted = await run({
      command: 'promote',
      from: staging,
      to: production,
      artifacts: [request(CONDA), request(NEWER)],
      recordKey: KEY,
    });
    expect(promoted.artifacts.map((a) => a.status)).toEqual(['promoted', 'promoted']);
    // A mount was asked for, answered with an upload session, and the bytes were sent.
    expect(proxy.count({ method: 'POST', where: (r) => r.query.has('mount') })).toBeGreaterThan(0);
    const packageBytes = expectedOf(CONDA).size + expectedOf(NEWER).size;
    const sent = proxy.bytes({ method: ['PATCH', 'PUT'], path: /\/blobs\/uploads\// }).request;
    expect(sent).toBeGreaterThanOrEqual(packageBytes);

    for (const file of [CONDA, NEWER]) {
      const from = stored('cf-staging/conda-forge', file);
      const to = stored('channel-mirrors/conda-forge', file);
      const staged = await from.repository.fetchManifest(from.tag);
      const published = await to.repository.fetchManifest(to.tag);
      expect(Buffer.from(published.bytes).equals(Buffer.from(staged.bytes))).toBe(true);
      const info = readPackageManifest(published.bytes, file);
      const blob = await to.repository.readBlob(info.packageLayer, 64 * 1024 * 1024);
      expect(Buffer.from(blob).equals(readFileSync(fixturePath(file)))).toBe(true);
      for (const layer of manifestBlobs(parseImageManifest(published.bytes)))
        expect(await to.repository.statBlob(layer.digest)).toEqual({ size: layer.size });
    }
    expect(github.requests.every((r) => r.authorization === `token ${TOKEN}`)).toBe(true);
  });
});

describe('clean through the Packages API', () => {
  // Ages come from GitHub's record of each push (real time), so clean's clock runs three hours
  // ahead instead of the uploads' running behind.
  const later = () => new Date(Date.now() + 3 * 3600_000);

  test('repositories come from the Packages API, deletions go through package versions', async () => {
    const channel = ghcr('cf-staging/waiting-room');
    await run({ command: 'upload', files: [CONDA, NEWER, ZLIB].map(fixturePath), to: channel });
    const deletes = watchDeletes();
    proxy.clearRecords();
    const before = github.requests.length;

    const cleaned = await run({ command: 'clean', channel, olderThanMs: 2 * 3600_000 }, { now: later });
    expect(cleaned.artifacts.map((a) => `${a.file}:${a.status}`).sort()).toEqual(
      [CONDA, NEWER, ZLIB].map((f) => `${f}:deleted`).sort(),
    );
    expect(cleaned.artifacts.map((a) => (a as CleanResult).ageFrom)).toEqual([
      'registry',
      'registry',
      'registry',
    ]);
    // No catalog on GHCR: the proxy said 404, the Packages API was asked instead.
    expect(proxy.count({ path: '/v2/_catalog', status: 404 })).toBeGreaterThan(0);
    const asked = github.requests.slice(before);
    expect(asked.some((r) => r.method === 'GET' && r.pathname === '/orgs/cf-staging/packages')).toBe(true);
    expect(asked.find((r) => r.pathname === '/orgs/cf-staging/packages')!.query.get('package_type')).toBe(
      'container',
    );
    // Every REST deletion came after the registry API refused with 405.
    expect(deletes.length).toBeGreaterThan(0);
    deletes.forEach((refused, i) => expect(refused, `REST DELETE #${i}`).toBeGreaterThan(0));
    // The 405 is remembered: deletions that start after it go straight to the Packages API.
    expect(refusedDeletes()).toBeLessThan(deletes.length);
    for (const file of [CONDA, NEWER, ZLIB]) {
      const s = stored('cf-staging/waiting-room', file);
      expect(await s.repository.resolve(s.tag), file).toBeUndefined();
      expect(await github.versions(s.name)).toEqual([]);
    }
    // Nothing of the channel is left: the next clean finds no package at all.
    const again = await run({ command: 'clean', channel, olderThanMs: 0 }, { now: later });
    expect(again.artifacts).toEqual([]);
  });

  test("a receipt dated far ahead keeps nothing: the age is GitHub's record of the push", async () => {
    const channel = ghcr('cf-staging/future-receipt');
    // The uploader's clock says 2099: so does the upload receipt it writes.
    const up = await run(
      { command: 'upload', files: [fixturePath(ZLIB)], to: channel },
      { now: () => new Date('2099-01-01T00:00:00Z') },
    );
    const pushedAt = Date.now();
    const s = stored('cf-staging/future-receipt', ZLIB);
    const receipts = await listReferrers(
      s.repository,
      up.artifacts[0]!.digest as Digest,
      ARTIFACT_TYPE_UPLOAD_RECEIPT,
    );
    expect(receipts.map((r) => r.annotations?.[ANNOTATION_CREATED])).toEqual(['2099-01-01T00:00:00.000Z']);

    const cleaned = await run({ command: 'clean', channel, olderThanMs: 2 * 3600_000 }, { now: later });
    expect(cleaned.artifacts.map((a) => `${a.file}:${a.status}`)).toEqual([`${ZLIB}:deleted`]);
    const result = cleaned.artifacts[0] as CleanResult;
    expect(result.ageFrom).toBe('registry');
    // GitHub's created_at, to the second.
    expect(Math.abs(Date.parse(result.stagedAt!) - pushedAt)).toBeLessThan(10_000);
    expect(await s.repository.resolve(s.tag)).toBeUndefined();
    expect(await github.versions(s.name)).toEqual([]);
  });

  test('a receipt dated in the past gets no fresh artifact deleted', async () => {
    const channel = ghcr('cf-staging/past-receipt');
    // Its only receipt says 2020: an uploader's clock, or a receipt put there in place of the real one.
    await run(
      { command: 'upload', files: [fixturePath(CONDA)], to: channel },
      { now: () => new Date('2020-01-01T00:00:00Z') },
    );
    const s = stored('cf-staging/past-receipt', CONDA);
    const digest = (await s.repository.resolve(s.tag))!.digest;
    const cleaned = await run({ command: 'clean', channel, olderThanMs: 2 * 3600_000 });
    expect(cleaned.exitCode).toBe(0);
    expect(cleaned.artifacts).toEqual([]);
    expect((await s.repository.resolve(s.tag))?.digest).toBe(digest);
    expect((await github.versions(s.name)).map((v) => v.name)).toContain(digest);
    // GitHub's listing was what it went by: the versions of the package were asked for.
    const pkg = encodeURIComponent('past-receipt/linux-64/cdemo-pkg');
    expect(
      github.count('GET', new RegExp(`^/orgs/cf-staging/packages/container/${pkg}/versions$`)),
    ).toBeGreaterThan(0);
  });

  test("a version with over 5,000 downloads is refused with GitHub's reason; the others are deleted", async () => {
    const channel = ghcr('cf-staging/popular');
    const up = await run({ command: 'upload', files: [CONDA, ZLIB].map(fixturePath), to: channel });
    const popular = up.artifacts.find((a) => a.file === CONDA)!;
    github.setDownloads(popular.repository!, popular.digest!, 5001);

    const cleaned = await run({ command: 'clean', channel, olderThanMs: 2 * 3600_000 }, { now: later });
    expect(cleaned.exitCode).toBe(1);
    expect(cleaned.artifacts.find((a) => a.file === ZLIB)?.status).toBe('deleted');
    const refused = cleaned.artifacts.filter((a) => a.status === 'failed');
    expect(refused).toHaveLength(1);
    expect(refused[0]!.repository).toBe(popular.repository);
    // The failed deletion still names the package it was about.
    expect(refused[0]).toMatchObject({ file: CONDA, sha256: popular.sha256, digest: popular.digest });
    expect(refused[0]!.error).toMatch(/^GitHub refused to delete version \d+ /);
    expect(refused[0]!.error).toContain(MESSAGES.downloads);
    expect(refused[0]!.error).toContain('package popular/linux-64/cdemo-pkg owned by cf-staging');
    expect(refused[0]!.error).toContain(popular.digest);
    const s = stored('cf-staging/popular', CONDA);
    expect((await s.repository.resolve(s.tag))?.digest).toBe(popular.digest);
  });

  test('a channel owned by a user account goes through the /users routes', async () => {
    const channel = ghcr(`${USER}/conda-forge`);
    await run({ command: 'upload', files: [fixturePath(ZLIB)], to: channel });
    const before = github.requests.length;
    const cleaned = await run({ command: 'clean', channel, olderThanMs: 3600_000 }, { now: later });
    expect(cleaned.artifacts.map((a) => a.status)).toEqual(['deleted']);
    const paths = github.requests.slice(before).map((r) => `${r.method} ${r.pathname}`);
    expect(paths).toContain(`GET /users/${USER}/packages`);
    expect(paths.some((p) => p.startsWith(`DELETE /users/${USER}/packages/container/`))).toBe(true);
    expect(paths.some((p) => p.includes('/orgs/') && p !== `GET /orgs/${USER}`)).toBe(false);
    const s = stored(`${USER}/conda-forge`, ZLIB);
    expect(await s.repository.resolve(s.tag)).toBeUndefined();
  });
});

describe('registry API quirks', () => {
  test('tag lists come 100 per page, oldest first, and are read to the end', async () => {
    const store = new RemoteStore({ host: proxy.host, plainHttp: true });
    try {
      const repository = store.repository('cf-staging/tags/noarch/cmany');
      await repository.pushBlob({ digest: EMPTY_CONFIG.digest, size: EMPTY_CONFIG.size }, EMPTY_JSON_BYTES);
      const manifest = encodeManifest({
        schemaVersion: 2,
        mediaType: MEDIA_TYPE_OCI_MANIFEST,
        config: EMPTY_CONFIG,
        layers: [],
      });
      // Written newest-name first, so that oldest-first is not the lexical order.
      const written = Array.from({ length: 250 }, (_, i) => `t${String(250 - i).padStart(3, '0')}`);
      for (const tag of written) await repository.pushManifest(manifest, tag);
      proxy.clearRecords();
      const listed: string[] = [];
      for await (const tag of repository.listTags()) listed.push(tag);
      expect(listed).toEqual(written);
      expect(proxy.count({ method: 'GET', path: /\/tags\/list/ })).toBe(3);
      expect(digestOf(manifest.bytes)).toBe((await repository.resolve('t001'))!.digest);
    } finally {
      await store.close();
    }
  });

  test("GHCR's 429 TOOMANYREQUESTS on blob-upload POSTs is waited out as its message asks", async () => {
    const rule = proxy.on(
      { method: 'POST', path: /\/blobs\/uploads\/?(\?|$)/ },
      actions.ghcrTooManyRequests(300),
      { times: 2 },
    );
    try {
      const started = performance.now();
      const up = await run({ command: 'upload', files: [fixturePath(ZLIB)], to: ghcr('cf-staging/busy') });
      expect(up.artifacts[0]!.error).toBeUndefined();
      expect(up.artifacts[0]!.status).toBe('uploaded');
      expect(rule.hits).toBe(2);
      expect(proxy.count({ method: 'POST', status: 429 })).toBe(2);
      // The 300 ms the message asked for (GHCR sends no Retry-After header); the blobs of one
      // artifact go up in parallel, so the two waits may overlap.
      expect(performance.now() - started).toBeGreaterThanOrEqual(295);
      const s = stored('cf-staging/busy', ZLIB);
      const fetched = await s.repository.fetchManifest(s.tag);
      expect(readPackageManifest(fetched.bytes, ZLIB).packageLayer.digest).toBe(
        `sha256:${expectedOf(ZLIB).sha256}`,
      );
    } finally {
      rule.remove();
    }
  });
});
