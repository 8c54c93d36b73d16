/**
 * Hostile registries: a loopback proxy in front of the real registry makes it
 * lie, and every lie is detected and refused with a clear error; production is never written
 * with bad content.
 *
 * Already covered in registry-client.test.ts and not repeated: Link loops and pages that do not
 * advance; a Retry-After of an hour refused at once; redirects to non-HTTP schemes and redirect
 * loops; blobs whose bytes do not match their digest (GET verified, not retried); truncated and
 * stalled blob bodies; 5xx forever. In registry-auth.test.ts: credentials never follow a redirect
 * to another origin, and token realms on other hosts get no credentials. In staging-flow.test.ts:
 * a registry that alters package bytes fails validation, and a forged (unsigned) record is not
 * accepted.
 *
 * Here: manifests over the size limit, wrong media types (in the body, and a Content-Type that
 * lies about it), manifest digests that do not match (by digest, by Docker-Content-Digest, and an
 * altered manifest served without any digest header), pagination that never ends with fresh
 * pages, huge waits in Retry-After dates and in GHCR's message, upload sessions and Link headers
 * pointing to other hosts, token endpoints answering garbage, nothing, or a body without end, a
 * registry that claims blobs (HEAD 200) it serves otherwise or does not have, and a genuine
 * validation record replayed under another artifact's referrers index.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { packageReference } from '../../src/conda/naming.js';
import { silentReporter, type CommandResult } from '../../src/commands/report.js';
import { execute } from '../../src/core/execute.js';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import {
  DigestMismatchError,
  OciError,
  ProtocolError,
  RegistryError,
  SizeLimitError,
} from '../../src/oci/errors.js';
import { LayoutStore } from '../../src/oci/layout/store.js';
import { encodeManifest, MANIFEST_SIZE_LIMIT } from '../../src/oci/manifest.js';
import { MEDIA_TYPE_OCI_INDEX } from '../../src/oci/media-types.js';
import { fallbackTag } from '../../src/oci/referrers.js';
import { RegistryClient } from '../../src/oci/remote/client.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import type { Store } from '../../src/oci/storage.js';
import { makePackage, type MadePackage } from '../helpers/packages.js';
import { actions, startProxy, type TestProxy } from '../helpers/proxy.js';
import { useRegistry } from '../helpers/registry.js';
import { checkComplete } from '../helpers/verify.js';

const KEY = 'record-key-of-the-hostile-registry-suite';
const registry = useRegistry();
let proxy: TestProxy;
let work: string;
let direct: RemoteStore;
const tried: string[] = [];

beforeAll(async () => {
  proxy = await startProxy(registry.url);
  work = mkdtempSync(join(tmpdir(), 'conda-oci-hostile-registry-'));
  direct = new RemoteStore({ host: registry.host, plainHttp: true });
});
afterAll(async () => {
  await direct?.close();
  await proxy?.close();
  if (work) rmSync(work, { recursive: true, force: true });
  console.log(`hostile registry: ${tried.length} lies detected and refused:\n  ${tried.join('\n  ')}`);
});

const fastRetry = { attempts: 2, baseDelayMs: 1, maxDelayMs: 2, maxRetryAfterMs: 5000 };
const lying = (options: Record<string, unknown> = {}) =>
  new RegistryClient({ host: proxy.host, plainHttp: true, retry: fastRetry, ...options });
const env = { reporter: silentReporter, storeOptions: { retry: fastRetry } };

let serial = 0;
const pkg = (): Promise<MadePackage> =>
  makePackage(join(work, 'build'), { name: 'hostile', version: `1.${serial}`, build: `h${serial++}_0` });

/** Stages, validates (signed) a package through the real registry; returns it. */
/** Uploads and validates a package; `via` is the host promote will read staging through (records bind it). */
async function staged(path: string, via = registry.host): Promise<MadePackage> {
  const p = await pkg();
  const up = await execute({ command: 'upload', files: [p.path], to: `oci://${registry.host}/${path}` }, env);
  expect(up.artifacts.map((a) => a.error ?? a.status)).toEqual(['uploaded']);
  const validated = await execute(
    {
      command: 'validate',
      from: `oci://${via}/${path}`,
      artifacts: [{ subdir: p.subdir, file: p.file, sha256: p.sha256 }],
      recordKey: KEY,
    },
    env,
  );
  expect(validated.exitCode).toBe(0);
  return p;
}

function refPath(path: string, p: MadePackage): { repository: string; tag: string } {
  const ref = packageReference(p.subdir, p.name, p.version, p.build);
  return { repository: `${path}/${ref.repository}`, tag: ref.tag };
}

async function promoteThroughProxy(
  p: MadePackage,
  staging: string,
  production: string,
): Promise<CommandResult> {
  return execute(
    {
      command: 'promote',
      from: `oci://${proxy.host}/${staging}`,
      to: production,
      artifacts: [{ subdir: p.subdir, file: p.file, sha256: p.sha256 }],
      recordKey: KEY,
    },
    env,
  );
}

/** The promotion failed with an error matching `pattern`, and production holds nothing at all. */
async function refusedAndClean(
  result: CommandResult,
  pattern: RegExp,
  production: Store,
  prefix: string,
): Promise<void> {
  expect(result.exitCode).toBe(1);
  expect(result.artifacts[0]!.status).toBe('failed');
  expect(result.artifacts[0]!.error).toMatch(pattern);
  const state = await checkComplete(production, prefix);
  expect(state.problems).toEqual([]);
  expect(state.tags).toBe(0);
}

describe('manifests', () => {
  test('a manifest over the size limit is refused while it is read (SizeLimitError)', async () => {
    const p = await staged('hr/big', proxy.host);
    const { repository, tag } = refPath('hr/big', p);
    const huge = Buffer.alloc(MANIFEST_SIZE_LIMIT + 1024, 0x20);
    proxy.on(
      { method: 'GET', path: `/v2/${repository}/manifests/${tag}` },
      actions.rewriteResponse({ body: huge }),
    );
    try {
      const error = await lying()
        .fetchManifest(repository, tag)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SizeLimitError);
      expect((error as Error).message).toMatch(/manifest .* is larger than the limit of 4194304 bytes/);
      const layoutDir = join(work, 'big-prod');
      const result = await promoteThroughProxy(p, 'hr/big', `oci-layout:${layoutDir}`);
      await refusedAndClean(result, /larger than the limit/, new LayoutStore(layoutDir), '');
      tried.push('manifest of 4 MiB + 1 KiB: SizeLimitError while reading, promote refused');
    } finally {
      proxy.clearRules();
    }
  });

  test('a package tag holding an index is not a package: refused', async () => {
    const p = await staged('hr/types', proxy.host);
    const { repository, tag } = refPath('hr/types', p);
    const realDigest = (await direct.repository(repository).resolve(tag))!.digest;
    // Hostile staging content: the tag moved to an index that lists the real manifest.
    const index = encodeManifest({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_INDEX,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: realDigest, size: 1 }],
    });
    await direct.repository(repository).pushManifest(index, tag);
    const layoutDir = join(work, 'types-prod');
    const result = await promoteThroughProxy(p, 'hr/types', `oci-layout:${layoutDir}`);
    await refusedAndClean(
      result,
      /mediaType is .*index.*, not application\/vnd\.oci\.image\.manifest\.v1\+json/,
      new LayoutStore(layoutDir),
      '',
    );
    tried.push('package tag on an OCI index: promote refused');
  });

  test('a Content-Type that lies about the manifest is refused, not copied into production', async () => {
    const p = await staged('hr/ctype', proxy.host);
    const { repository, tag } = refPath('hr/ctype', p);
    proxy.on(
      { method: ['GET', 'HEAD'], path: new RegExp(`^/v2/${repository}/manifests/`) },
      actions.rewriteResponse({ headers: { 'content-type': MEDIA_TYPE_OCI_INDEX } }),
    );
    try {
      const error = await lying()
        .fetchManifest(repository, tag)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProtocolError);
      expect((error as Error).message).toMatch(/Content-Type .*index.* but the manifest says .*manifest/);
      const layoutDir = join(work, 'ctype-prod');
      const result = await promoteThroughProxy(p, 'hr/ctype', `oci-layout:${layoutDir}`);
      await refusedAndClean(result, /Content-Type/, new LayoutStore(layoutDir), '');
      tried.push('Content-Type of an index on an image manifest: ProtocolError, promote refused');
    } finally {
      proxy.clearRules();
    }
  });

  test('manifest bytes that do not match their digest: by digest, by Docker-Content-Digest, or without any', async () => {
    const p = await staged('hr/digest', proxy.host);
    const { repository, tag } = refPath('hr/digest', p);
    const real = await direct.repository(repository).fetchManifest(tag);
    // An altered manifest: the package layer swapped for another blob of the same size.
    const altered = Buffer.from(
      new TextDecoder().decode(real.bytes).replace(`sha256:${p.sha256}`, digestOf('other bytes')),
    );
    // 1. Asked by digest: the body must hash to it.
    proxy.on(
      { method: 'GET', path: `/v2/${repository}/manifests/${real.descriptor.digest}` },
      actions.rewriteResponse({ body: altered }),
      { times: 1 },
    );
    await expect(lying().fetchManifest(repository, real.descriptor.digest)).rejects.toBeInstanceOf(
      DigestMismatchError,
    );
    // 2. Asked by tag, with the registry's Docker-Content-Digest of the real one.
    proxy.on(
      { method: 'GET', path: `/v2/${repository}/manifests/${tag}` },
      actions.rewriteResponse({ body: altered }),
      {
        times: 1,
      },
    );
    await expect(lying().fetchManifest(repository, tag)).rejects.toThrow(/Docker-Content-Digest/);
    // 3. Asked by tag, no digest header at all: read as served, but no passing record is about
    // that digest, so promote refuses and production stays empty.
    proxy.on(
      { method: ['GET', 'HEAD'], path: `/v2/${repository}/manifests/${tag}` },
      actions.rewriteResponse({ body: altered, headers: { 'docker-content-digest': null } }),
    );
    try {
      const layoutDir = join(work, 'digest-prod');
      const result = await promoteThroughProxy(p, 'hr/digest', `oci-layout:${layoutDir}`);
      await refusedAndClean(
        result,
        /holds sha256:[0-9a-f]+, not the requested|no passing validation record/,
        new LayoutStore(layoutDir),
        '',
      );
      tried.push(
        'manifest altered: by digest, by Docker-Content-Digest (DigestMismatchError), without header (promote refused)',
      );
    } finally {
      proxy.clearRules();
    }
  });
});

describe('listings', () => {
  test('pagination that never ends with fresh pages stops at the listing limit', async () => {
    let served = 0;
    proxy.on(
      { method: 'GET', path: /^\/v2\/hr\/endless\/tags\/list/ },
      {
        type: 'handle',
        handler: (req, res) => {
          req.resume();
          const page = served++;
          const body = JSON.stringify({
            name: 'hr/endless',
            tags: Array.from({ length: 100 }, (_, i) => `t${page}-${i}`),
          });
          res.writeHead(200, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            link: `</v2/hr/endless/tags/list?n=100&last=t${page}-99>; rel="next"`,
          });
          res.end(body);
        },
      },
    );
    try {
      let count = 0;
      const error = await (async () => {
        for await (const _ of lying({ listLimit: 5000 }).listTags('hr/endless', 100)) count++;
      })().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProtocolError);
      expect((error as Error).message).toMatch(/tags of hr\/endless.*more than 5000/);
      expect(count).toBeLessThanOrEqual(5000);
      expect(served).toBeLessThanOrEqual(51);
      tried.push('endless fresh pages: ProtocolError at the listing limit');
    } finally {
      proxy.clearRules();
    }
  });

  test('a Link header to another host is refused', async () => {
    proxy.on(
      { method: 'GET', path: /^\/v2\/hr\/elsewhere\/tags\/list/ },
      actions.status(
        200,
        { name: 'hr/elsewhere', tags: ['a'] },
        {
          link: '<https://evil.example/v2/hr/elsewhere/tags/list?last=a>; rel="next"',
        },
      ),
    );
    try {
      const error = await (async () => {
        for await (const _ of lying().listTags('hr/elsewhere')) void _;
      })().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProtocolError);
      expect((error as Error).message).toMatch(/another origin \(https:\/\/evil\.example\)/);
      tried.push('Link to another host: ProtocolError');
    } finally {
      proxy.clearRules();
    }
  });
});

describe('waits and redirects', () => {
  test.each([
    [
      'a Retry-After date a day away',
      actions.status(503, undefined, { 'retry-after': new Date(Date.now() + 86_400_000).toUTCString() }),
    ],
    ["GHCR's message asking for 10^9 ms", actions.ghcrTooManyRequests(1_000_000_000)],
  ])('%s is refused at once, not slept', async (what, action) => {
    proxy.on({ method: 'GET', path: /\/manifests\// }, action);
    const started = Date.now();
    try {
      const error = await lying()
        .fetchManifest('hr/wait', 'latest')
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProtocolError);
      expect((error as Error).message).toMatch(/asked to wait \d+ s before retrying, over the limit/);
      expect(Date.now() - started).toBeLessThan(2000);
      tried.push(`${what}: refused`);
    } finally {
      proxy.clearRules();
    }
  });

  test('an upload session on another host is refused before any byte is sent there', async () => {
    proxy.on(
      { method: 'POST', path: /\/blobs\/uploads\/$/ },
      actions.rewriteResponse({ headers: { location: 'https://evil.example/upload/session' } }),
    );
    try {
      const bytes = Buffer.from('payload for nowhere');
      const error = await lying()
        .pushBlob('hr/session', { digest: digestOf(bytes), size: bytes.length }, bytes)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProtocolError);
      expect((error as Error).message).toMatch(
        /sent the upload to another origin \(https:\/\/evil\.example\); refused/,
      );
      tried.push('upload Location on another host: ProtocolError');
    } finally {
      proxy.clearRules();
    }
  });
});

describe('token endpoints', () => {
  let hostile: Server;
  let mode: 'garbage' | 'no-token' | 'endless' | 'html-401' = 'garbage';
  let realm = '';
  beforeAll(async () => {
    hostile = createServer((req, res) => {
      req.resume();
      if (mode === 'garbage') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"token": ');
      } else if (mode === 'no-token') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"expires_in": 300}');
      } else if (mode === 'html-401') {
        res.writeHead(401, { 'content-type': 'text/html' });
        res.end('<html>login</html>');
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(64 * 1024, 0x41);
        const pump = (): void => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', pump);
        };
        res.write('{"token": "');
        pump();
      }
    });
    await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve));
    realm = `http://127.0.0.1:${(hostile.address() as AddressInfo).port}/token`;
  });
  afterAll(async () => {
    hostile.closeAllConnections();
    await new Promise((resolve) => hostile.close(resolve));
  });

  test.each([
    ['garbage', /answered with something that is not JSON/, ProtocolError],
    ['no-token', /answered without a token/, ProtocolError],
    ['endless', /token response is larger than the limit of 1048576 bytes/, SizeLimitError],
    ['html-401', /the token service refused the credentials/, RegistryError],
  ] as const)('a token endpoint answering %s: a clear error, bounded', async (which, pattern, type) => {
    mode = which;
    proxy.on(
      { path: /^\/v2\// },
      actions.status(
        401,
        { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] },
        {
          'www-authenticate': `Bearer realm="${realm}",service="hostile",scope="repository:hr/token:pull"`,
        },
      ),
    );
    const before = process.memoryUsage().rss;
    try {
      const error = await lying({ credentials: { username: 'u', password: 'p-not-a-real-secret' } })
        .statBlob('hr/token', digestOf('x'))
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(type);
      expect(error).toBeInstanceOf(OciError);
      expect((error as Error).message).toMatch(pattern);
      expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
      tried.push(`token endpoint answering ${which}: ${(error as Error).name}`);
    } finally {
      proxy.clearRules();
    }
  });
});

describe('blobs a registry claims', () => {
  test('staging serves other bytes than the digest: promote to oci-layout refuses, writes no blob', async () => {
    const p = await staged('hr/other-bytes', proxy.host);
    proxy.on({ method: 'GET', path: new RegExp(`/blobs/sha256:${p.sha256}`) }, actions.corrupt(100));
    try {
      const layoutDir = join(work, 'other-bytes-prod');
      const result = await promoteThroughProxy(p, 'hr/other-bytes', `oci-layout:${layoutDir}`);
      await refusedAndClean(
        result,
        /expected sha256:[0-9a-f]{64}, got sha256:/,
        new LayoutStore(layoutDir),
        '',
      );
      tried.push('staging serves other bytes: promote to oci-layout refused, nothing written');
    } finally {
      proxy.clearRules();
    }
  });

  test('production claims (HEAD 200) blobs it does not have: the manifest is refused, no tag appears', async () => {
    const p = await staged('hr/claims');
    // Production is reached through the proxy; its HEADs on blobs all say "present".
    proxy.on(
      { method: 'HEAD', path: /^\/v2\/hr\/claims-prod\/.*\/blobs\/sha256:/ },
      actions.status(200, '', { 'content-length': '1', 'docker-content-digest': digestOf('x') }),
    );
    try {
      const result = await execute(
        {
          command: 'promote',
          from: `oci://${registry.host}/hr/claims`,
          to: `oci://${proxy.host}/hr/claims-prod`,
          artifacts: [{ subdir: p.subdir, file: p.file, sha256: p.sha256 }],
          recordKey: KEY,
        },
        env,
      );
      await refusedAndClean(result, /MANIFEST_BLOB_UNKNOWN|BLOB_UNKNOWN/, direct, 'hr/claims-prod');
      tried.push('production HEAD 200 for missing blobs: manifest refused, no tag');
    } finally {
      proxy.clearRules();
    }
  });

  test('upload to a staging that claims every blob: the manifest is refused, nothing is tagged', async () => {
    const p = await pkg();
    proxy.on(
      { method: 'HEAD', path: /^\/v2\/hr\/claims-staging\/.*\/blobs\/sha256:/ },
      actions.status(200, '', { 'content-length': '1' }),
    );
    try {
      const result = await execute(
        { command: 'upload', files: [p.path], to: `oci://${proxy.host}/hr/claims-staging` },
        env,
      );
      expect(result.exitCode).toBe(1);
      expect(result.artifacts[0]!.error).toMatch(/MANIFEST_BLOB_UNKNOWN|BLOB_UNKNOWN/);
      expect((await checkComplete(direct, 'hr/claims-staging')).tags).toBe(0);
      tried.push('staging HEAD 200 for missing blobs: upload fails clearly, nothing tagged');
    } finally {
      proxy.clearRules();
    }
  });
});

describe('referrers', () => {
  test("a genuine passing record of another artifact, listed in this artifact's fallback index, is refused", async () => {
    const victim = await staged('hr/replay');
    const other = await staged('hr/replay');
    const v = refPath('hr/replay', victim);
    const o = refPath('hr/replay', other);
    // The victim's own record is replaced by a failing one, so only the replayed record passes.
    const victimSubject = (await direct.repository(v.repository).resolve(v.tag))!.digest;
    const otherSubject = (await direct.repository(o.repository).resolve(o.tag))!.digest;
    const otherIndex = await direct.repository(o.repository).fetchManifest(fallbackTag(otherSubject));
    // Someone with write access to staging copies the other artifact's referrers (its genuine,
    // signed, passing record) under the victim's fallback tag. Different repositories: the
    // record manifest and its blobs are copied along.
    const src = direct.repository(o.repository);
    const dst = direct.repository(v.repository);
    const entries = JSON.parse(new TextDecoder().decode(otherIndex.bytes)) as {
      manifests: { digest: Digest; mediaType: string }[];
    };
    for (const entry of entries.manifests) {
      const record = await src.fetchManifest(entry.digest);
      const parsed = JSON.parse(new TextDecoder().decode(record.bytes)) as {
        config: { digest: Digest; size: number };
        layers: { digest: Digest; size: number }[];
      };
      for (const blob of [parsed.config, ...parsed.layers])
        await dst.pushBlob(blob, await src.readBlob(blob, 1 << 20));
      await dst.pushManifest({ mediaType: entry.mediaType, bytes: record.bytes });
    }
    await dst.pushManifest(
      { mediaType: MEDIA_TYPE_OCI_INDEX, bytes: otherIndex.bytes },
      fallbackTag(victimSubject),
    );
    const layoutDir = join(work, 'replay-prod');
    const result = await execute(
      {
        command: 'promote',
        from: `oci://${registry.host}/hr/replay`,
        to: `oci-layout:${layoutDir}`,
        artifacts: [{ subdir: victim.subdir, file: victim.file, sha256: victim.sha256 }],
        recordKey: KEY,
      },
      env,
    );
    await refusedAndClean(
      result,
      /is about sha256:[0-9a-f]{64}, not sha256:/,
      new LayoutStore(layoutDir),
      '',
    );
    tried.push("another artifact's genuine record under this one's fallback tag: promote refused");
  });
});
