/**
 * What promote copies is exactly what validate checked (README "Security"). Each way through the
 * gate a feedstock holding a staging token found is written as its own attack, against a real
 * registry: the assertions are on what production holds afterwards.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'fflate';
import { pack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.js';
import { parseOwners } from '../../src/commands/owners.js';
import { silentReporter, type CommandResult } from '../../src/commands/report.js';
import { NAMING_V1_V0 } from '../../src/conda/naming-scheme.js';
import { packageReference } from '../../src/conda/naming.js';
import type { CommandInput } from '../../src/core/commands.js';
import { execute } from '../../src/core/execute.js';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import { canonicalJson } from '../../src/util/canonical-json.js';
import { mapLimit } from '../../src/util/map-limit.js';
import { artifactManifest } from '../../src/oci/artifact.js';
import { ANNOTATION_VALIDATION_RESULT, ARTIFACT_TYPE_VALIDATION } from '../../src/conda/records.js';
import { ANNOTATION_CREATED } from '../../src/oci/media-types.js';
import { descriptorOf, parseImageManifest, type ImageManifest } from '../../src/oci/manifest.js';
import { MEDIA_TYPE_OCI_INDEX } from '../../src/oci/media-types.js';
import { fallbackTag } from '../../src/oci/referrers.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import type { Repository } from '../../src/oci/storage.js';
import { UsageError } from '../../src/usage.js';
import { inertLines } from '../../src/util/workflow-text.js';
import { makeTokenRegistry } from '../helpers/feedstock-tokens.js';
import { makePackage, type MadePackage } from '../helpers/packages.js';
import { actions, startProxy, type TestProxy } from '../helpers/proxy.js';
import { useRegistry } from '../helpers/registry.js';
import { testSecret } from '../helpers/secrets.js';

const registry = useRegistry({ auth: 'none' });
const other = useRegistry({ auth: 'none' });
const KEY = testSecret('bytes-record-key');
let store: RemoteStore;
let proxy: TestProxy;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'conda-oci-bytes-'));
  store = new RemoteStore({ host: registry.host, plainHttp: true });
  proxy = await startProxy(registry.url);
});
afterAll(async () => {
  await store?.close();
  await proxy?.close();
});

const url = (path: string, host = registry.host) => `oci://${host}/${path}`;
const request = (p: MadePackage) => ({ subdir: p.subdir, file: p.file, sha256: p.sha256 });
const run = (options: CommandInput): Promise<CommandResult> => execute(options, { reporter: silentReporter });
let packages = 0;
const pkg = (name = `pkg${packages++}`, extra: Partial<Parameters<typeof makePackage>[1]> = {}) =>
  makePackage(join(work, `p${packages++}`), { name, version: '1.0', build: 'h0_0', ...extra });

function repositoryOf(path: string, p: MadePackage): { repository: Repository; tag: string } {
  const ref = packageReference(p.subdir, p.name, p.version, p.build);
  return { repository: store.repository(`${path}/${ref.repository}`), tag: ref.tag };
}

/** Stages and validates `p`; `via` is the host promote will read staging through (records bind it). */
async function stageAndValidate(path: string, p: MadePackage, via = registry.host) {
  expect((await run({ command: 'upload', files: [p.path], to: url(`${path}/staging`) })).exitCode).toBe(0);
  const validated = await run({
    command: 'validate',
    from: url(`${path}/staging`, via),
    production: url(`${path}/prod`),
    artifacts: [request(p)],
    recordKey: KEY,
  });
  expect(validated.artifacts[0]!.error).toBeUndefined();
  return validated;
}

const promote = (path: string, p: MadePackage, extra: Partial<CommandInput> = {}) =>
  run({
    command: 'promote',
    from: url(`${path}/staging`),
    to: url(`${path}/prod`),
    artifacts: [request(p)],
    recordKey: KEY,
    ...extra,
  } as CommandInput);

async function published(path: string, p: MadePackage) {
  const { repository, tag } = repositoryOf(`${path}/prod`, p);
  return repository.resolve(tag);
}

/** The staged manifest, changed by `edit`, pushed (with any new blobs) under the staged tag. */
async function repoint(
  path: string,
  p: MadePackage,
  edit: (m: ImageManifest, r: Repository) => Promise<void>,
) {
  const { repository, tag } = repositoryOf(`${path}/staging`, p);
  const manifest = parseImageManifest((await repository.fetchManifest(tag)).bytes);
  await edit(manifest, repository);
  const bytes = canonicalJson(manifest);
  await repository.pushManifest({ mediaType: manifest.mediaType, bytes }, tag);
  return digestOf(bytes);
}

async function pushBlob(repository: Repository, mediaType: string, bytes: Uint8Array) {
  const descriptor = descriptorOf(mediaType, bytes);
  await repository.pushBlob(descriptor, bytes);
  return descriptor;
}

describe('fail closed', () => {
  test('promote without a record key, or with an empty one (a missing secret), refuses to run', async () => {
    const p = await pkg();
    await stageAndValidate('nokey', p);
    await expect(promote('nokey', p, { recordKey: undefined })).rejects.toThrow(UsageError);
    await expect(promote('nokey', p, { recordKey: undefined })).rejects.toThrow(
      /accept-unsigned-records-anyone-can-forge/,
    );
    const args = [
      'promote',
      '--from',
      url('nokey/staging'),
      '--to',
      url('nokey/prod'),
      '--artifact',
      `${p.subdir}/${p.file}=${p.sha256}`,
    ];
    const saved = process.env.CONDA_OCI_RECORD_KEY;
    delete process.env.CONDA_OCI_RECORD_KEY;
    try {
      expect(await main([...args, '--record-key', ''], { reporter: silentReporter })).toBe(2);
      expect(await main(args, { reporter: silentReporter })).toBe(2);
    } finally {
      if (saved !== undefined) process.env.CONDA_OCI_RECORD_KEY = saved;
    }
    expect(await published('nokey', p)).toBeUndefined();
  });
});

describe('the manifest promote copies is the one validate checked', () => {
  test('re-pointed after validation at a manifest with a new index.json layer: promote refuses, production unchanged', async () => {
    const p = await pkg();
    await stageAndValidate('repoint', p);
    const backdoor = new TextEncoder().encode(
      JSON.stringify({
        name: p.name,
        version: p.version,
        build: p.build,
        subdir: p.subdir,
        depends: ['attacker-backdoor >=1'],
      }),
    );
    await repoint('repoint', p, async (m, r) => {
      m.layers[2] = await pushBlob(r, m.layers[2]!.mediaType, backdoor);
    });
    const promoted = await promote('repoint', p);
    expect(promoted.artifacts[0]!.status).toBe('failed');
    expect(promoted.artifacts[0]!.error).toMatch(/no passing validation record/);
    expect(await published('repoint', p)).toBeUndefined();
    // Validated now, the same manifest is refused: it is not the package's canonical artifact.
    const again = await run({
      command: 'validate',
      from: url('repoint/staging'),
      artifacts: [request(p)],
      recordKey: KEY,
    });
    expect(again.artifacts[0]!.checks!.filter((c) => !c.ok).map((c) => c.name)).toEqual([
      'index-layer',
      'manifest-bytes',
    ]);
  });

  test("a genuine signed record of one's own package, replayed with its manifest under another name's tag, publishes nothing there", async () => {
    const attackers = await pkg('attackerpkg');
    const victim = await pkg('victimpkg');
    await stageAndValidate('replay', attackers);
    // Copy the attacker's manifest (and so its record, a referrer of that digest) to the victim's place.
    const from = repositoryOf('replay/staging', attackers);
    const to = repositoryOf('replay/staging', victim);
    const fetched = await from.repository.fetchManifest(from.tag);
    const manifest = parseImageManifest(fetched.bytes);
    for (const blob of [manifest.config, ...manifest.layers])
      await to.repository.pushBlob(blob, await from.repository.readBlob(blob, 1 << 26));
    await to.repository.pushManifest(
      { mediaType: fetched.descriptor.mediaType, bytes: fetched.bytes },
      to.tag,
    );
    const index = await from.repository.fetchManifest(fallbackTag(fetched.descriptor.digest));
    for (const entry of parseIndexDigests(index.bytes)) {
      const record = await from.repository.fetchManifest(entry);
      for (const blob of [
        parseImageManifest(record.bytes).config,
        ...parseImageManifest(record.bytes).layers,
      ])
        await to.repository.pushBlob(blob, await from.repository.readBlob(blob, 1 << 20));
      await to.repository.pushManifest({ mediaType: record.descriptor.mediaType, bytes: record.bytes });
    }
    await to.repository.pushManifest(
      { mediaType: MEDIA_TYPE_OCI_INDEX, bytes: index.bytes },
      fallbackTag(fetched.descriptor.digest),
    );
    // The victim's name, claimed with the attacker's sha256 (that is what the copied manifest holds).
    const promoted = await promote('replay', victim, {
      artifacts: [{ ...request(victim), sha256: attackers.sha256 }],
    });
    expect(promoted.artifacts[0]!.status).toBe('failed');
    expect(promoted.artifacts[0]!.error).toMatch(
      /describes attackerpkg-1\.0-h0_0\.conda .*not victimpkg-1\.0-h0_0\.conda/,
    );
    expect(await published('replay', victim)).toBeUndefined();
  });

  test.each([
    ['a pax global header', (entries: TarEntry[]) => ['PAX-GLOBAL', ...entries]],
    [
      'a zero block before more members',
      (entries: TarEntry[]) => [
        ...entries,
        'ZERO',
        { name: 'info/run_exports.json', body: '{"weak":["attacker-backdoor"]}' },
      ],
    ],
  ] as const)(
    'an info layer rebuilt with %s is refused: one reader, one canonical packing',
    async (_what, rebuild) => {
      const p = await pkg();
      await stageAndValidate(`info${packages}`, p);
      const path = `info${packages}`;
      await repoint(path, p, async (m, r) => {
        const tar = await tarOf(rebuild(await infoEntries(r, m)) as TarEntry[]);
        m.layers[1] = await pushBlob(r, m.layers[1]!.mediaType, gzipSync(tar));
      });
      const again = await run({
        command: 'validate',
        from: url(`${path}/staging`),
        artifacts: [request(p)],
        recordKey: KEY,
      });
      expect(again.artifacts[0]!.checks!.filter((c) => !c.ok).map((c) => c.name)).toEqual([
        'info-layer',
        'manifest-bytes',
      ]);
    },
  );

  test.each([
    [
      'a 1 MiB config blob',
      async (m: ImageManifest, r: Repository) => {
        m.config = await pushBlob(r, 'application/vnd.oci.image.config.v1+json', randomBytes(1 << 20));
      },
      /config/,
    ],
    [
      'a subject',
      async (m: ImageManifest) => {
        m.subject = { ...m.layers[2]!, mediaType: 'application/vnd.oci.image.manifest.v1+json' };
      },
      /"subject"/,
    ],
    [
      'another artifactType',
      async (m: ImageManifest) => {
        m.artifactType = 'application/vnd.example.other';
      },
      /artifactType/,
    ],
    [
      'an annotation outside org.conda.*',
      async (m: ImageManifest) => {
        m.annotations = { ...m.annotations, 'com.example.note': 'x' };
      },
      /"com\.example\.note"/,
    ],
    [
      'descriptor urls',
      async (m: ImageManifest) => {
        (m.layers[0] as { urls?: string[] }).urls = ['https://attacker.example/pkg.conda'];
      },
      /"urls"/,
    ],
  ])('a staged manifest with %s is refused before anything is copied', async (_what, edit, detail) => {
    const p = await pkg();
    const path = `shape${packages}`;
    await stageAndValidate(path, p);
    await repoint(path, p, edit);
    const again = await run({
      command: 'validate',
      from: url(`${path}/staging`),
      artifacts: [request(p)],
      recordKey: KEY,
    });
    const failed = again.artifacts[0]!.checks!.filter((c) => !c.ok);
    expect(failed.map((c) => c.name)).toContain('manifest-bytes');
    expect(failed.find((c) => c.name === 'manifest-bytes')!.detail).toMatch(detail);
    expect((await promote(path, p)).artifacts[0]!.status).toBe('failed');
    expect(await published(path, p)).toBeUndefined();
  });
});

describe('production tags never move', () => {
  test('two promotions of two validated builds of one name-version-build through a slow source: one wins, 20 rounds of 20', async () => {
    // Staging is read through a proxy that delays every blob; production is another registry, so
    // blobs are streamed (as from GHCR), not mounted.
    proxy.on({ method: 'GET', path: /\/blobs\/sha256:/ }, actions.delay(60));
    const outcomes: string[] = [];
    try {
      for (let round = 0; round < 20; round++) {
        const a = await makePackage(join(work, `race-a${round}`), {
          name: `race${round}`,
          version: '1.0',
          build: 'h0_0',
        });
        const b = await makePackage(join(work, `race-b${round}`), {
          name: `race${round}`,
          version: '1.0',
          build: 'h0_0',
          payloadBytes: 1500,
        });
        for (const [lane, p] of [
          ['a', a],
          ['b', b],
        ] as const) {
          await run({ command: 'upload', files: [p.path], to: url(`race/${lane}`) });
          const v = await run({
            command: 'validate',
            from: url(`race/${lane}`, proxy.host),
            artifacts: [request(p)],
            recordKey: KEY,
          });
          expect(v.artifacts[0]!.status).toBe('passed');
        }
        const race = (lane: string, p: MadePackage) =>
          run({
            command: 'promote',
            from: url(`race/${lane}`, proxy.host),
            to: url('race/prod', other.host),
            artifacts: [request(p)],
            recordKey: KEY,
            settleMs: 300,
          });
        const [ra, rb] = await Promise.all([race('a', a), race('b', b)]);
        const statuses = [ra.artifacts[0]!, rb.artifacts[0]!];
        const winners = statuses.filter((s) => s.status === 'promoted');
        expect(winners, JSON.stringify(statuses)).toHaveLength(1);
        const loser = statuses.find((s) => s.status !== 'promoted')!;
        expect(loser.error).toMatch(/already holds|was taken by/);
        // The loser names both: what holds the tag (the winner) and itself.
        const winner = winners[0]!;
        expect([winner.digest, `sha256:${winner.sha256}`].some((d) => loser.error!.includes(d!))).toBe(true);
        expect([loser.digest, `sha256:${loser.sha256}`].some((d) => loser.error!.includes(d!))).toBe(true);
        const final = new RemoteStore({ host: other.host, plainHttp: true });
        try {
          const ref = packageReference(a.subdir, a.name, a.version, a.build);
          expect((await final.repository(`race/prod/${ref.repository}`).resolve(ref.tag))?.digest).toBe(
            winners[0]!.digest,
          );
        } finally {
          await final.close();
        }
        outcomes.push(loser.error!.includes('was taken by') ? 'race lost after the check' : 'found taken');
      }
    } finally {
      proxy.clearRules();
    }
    expect(outcomes).toHaveLength(20);
  }, 240_000);
});

describe("v0 names stay out of other packages' way", () => {
  test('a v0 tag that would be a referrers fallback tag (version "sha256", a 64-hex build) is refused before anything is staged', async () => {
    const hex = 'a'.repeat(64);
    const p = await makePackage(join(work, 'fallback'), { name: 'sneaky', version: 'sha256', build: hex });
    const up = await run({
      command: 'upload',
      files: [p.path],
      to: url('v0fb/staging'),
      naming: NAMING_V1_V0,
    });
    expect(up.artifacts[0]!.status).toBe('failed');
    expect(up.artifacts[0]!.error).toMatch(/is a referrers fallback tag/);
    const ref = packageReference(p.subdir, p.name, p.version, p.build);
    expect(await store.repository(`v0fb/staging/${ref.repository}`).resolve(ref.tag)).toBeUndefined();
  });

  test('_x and zzz_x are one name for ownership: zzz_openmp_mutex needs the owner of _openmp_mutex', async () => {
    const p = await pkg('zzz_openmp_mutex');
    await run({ command: 'upload', files: [p.path], to: url('zzz/staging') });
    const tokens = makeTokenRegistry(['evil-feedstock']);
    const validated = await run({
      command: 'validate',
      from: url('zzz/staging'),
      artifacts: [request(p)],
      owners: parseOwners({ _openmp_mutex: ['openmp'] }, 'owners'),
      feedstockTokens: tokens.dir,
      feedstock: 'evil',
      feedstockToken: tokens.tokens['evil-feedstock']!,
      recordKey: KEY,
    });
    expect(validated.artifacts[0]!.checks!.find((c) => c.name === 'owner')).toEqual({
      name: 'owner',
      ok: false,
      detail: '"zzz_openmp_mutex" may be published by openmp, not by evil',
    });
  });
});

describe('bounded cost', () => {
  test("1,500 forged referrers cost promote a bounded number of requests; the validator's own record is found directly", async () => {
    const p = await pkg();
    const validated = await stageAndValidate('forged', p, proxy.host);
    const subject = validated.artifacts[0]!.digest as Digest;
    const { repository } = repositoryOf('forged/staging', p);
    // Someone with staging access lists 1,500 "passing" records, dated in the future so they sort first.
    const genuine = JSON.parse(
      new TextDecoder().decode((await repository.fetchManifest(fallbackTag(subject))).bytes),
    ) as {
      manifests: Record<string, unknown>[];
    };
    // Real manifests (the registry checks that an index's entries exist), sharing one layer blob.
    const layer = await pushBlob(
      repository,
      ARTIFACT_TYPE_VALIDATION,
      new TextEncoder().encode('{"passed":true}'),
    );
    const forged = await mapLimit(
      Array.from({ length: 1500 }, (_, i) => i),
      16,
      async (i) => {
        const annotations = {
          [ANNOTATION_VALIDATION_RESULT]: 'passed',
          [ANNOTATION_CREATED]: `2999-01-01T00:00:00.${String(i).padStart(4, '0')}Z`,
        };
        const manifest = artifactManifest({
          artifactType: ARTIFACT_TYPE_VALIDATION,
          layers: [layer],
          subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject, size: 1 },
          annotations,
        });
        const pushed = await repository.pushManifest(manifest);
        return { ...pushed.descriptor, artifactType: ARTIFACT_TYPE_VALIDATION, annotations };
      },
    );
    await repository.pushManifest(
      {
        mediaType: MEDIA_TYPE_OCI_INDEX,
        bytes: canonicalJson({ ...genuine, manifests: [...forged, ...genuine.manifests] }),
      },
      fallbackTag(subject),
    );
    proxy.clearRecords();
    const listed = await promote('forged', p, {
      from: url('forged/staging', proxy.host),
    });
    expect(listed.artifacts[0]!.status).toBe('failed');
    expect(listed.artifacts[0]!.error).toMatch(
      /1501 records claim to pass; only the newest 8 are looked at \(the limit\)/,
    );
    expect(proxy.count()).toBeLessThanOrEqual(30);
    proxy.clearRecords();
    const direct = await promote('forged', p, {
      from: url('forged/staging', proxy.host),
      artifacts: [{ ...request(p), digest: subject, record: validated.artifacts[0]!.record! }],
    });
    expect(direct.artifacts[0]!.status).toBe('promoted');
    expect(proxy.count()).toBeLessThanOrEqual(30);
  });
});

describe('logs', () => {
  test('a layer title holding a newline and a workflow command is refused as a title, and never printed as a command', async () => {
    const p = await pkg();
    const path = 'title';
    await stageAndValidate(path, p);
    await repoint(path, p, async (m) => {
      m.layers[0]!.annotations = {
        ...m.layers[0]!.annotations,
        'org.opencontainers.image.title': 'x.conda\n::error::owned',
      };
    });
    const cleaned = await run({
      command: 'clean',
      channel: url(`${path}/staging`),
      olderThanMs: 0,
      dryRun: true,
    });
    const failed = cleaned.artifacts.find((a) => a.status === 'failed')!;
    expect(failed.error).toMatch(/title "x\.conda\\n::error::owned" is not pkg\d+-1\.0-h0_0\.conda/);
    expect(inertLines(`listing: ${failed.error}\n::error::owned`)).toEqual([
      expect.stringMatching(/^::stop-commands::[0-9a-f]{32}$/),
      `listing: ${failed.error}\n::error::owned`,
      expect.stringMatching(/^::[0-9a-f]{32}::$/),
    ]);
    expect(inertLines('no command here')).toEqual(['no command here']);
  });
});

// ---------------------------------------------------------------------------------------------

type TarEntry = { name: string; body: string } | 'ZERO' | 'PAX-GLOBAL';

/** A pax global header (typeflag `g`) written by hand: tar-stream writes none. */
function paxGlobalHeader(): Buffer {
  const body = ' comment=a global header that a second reader may apply differently\n';
  let length = body.length + 2;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  const data = Buffer.from(`${length}${body}`);
  const header = Buffer.alloc(512);
  header.write('pax_global_header', 0, 'ascii');
  header.write('0000644\0', 100, 'ascii');
  header.write('0000000\0', 108, 'ascii');
  header.write('0000000\0', 116, 'ascii');
  header.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  header.write('00000000000\0', 136, 'ascii');
  header.write('g', 156, 'ascii');
  header.write('ustar\0', 257, 'ascii');
  header.write('00', 263, 'ascii');
  header.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return Buffer.concat([header, data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

async function infoEntries(repository: Repository, manifest: ImageManifest): Promise<TarEntry[]> {
  const { gunzipSync } = await import('node:zlib');
  const { extract } = await import('tar-stream');
  const tar = gunzipSync(await repository.readBlob(manifest.layers[1]!, 1 << 24));
  const entries: TarEntry[] = [];
  const ex = extract();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => void chunks.push(c as Buffer));
      stream.on('end', () => {
        entries.push({ name: header.name, body: Buffer.concat(chunks).toString('utf8') });
        next();
      });
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  ex.end(tar);
  await done;
  return entries;
}

async function tarOf(entries: TarEntry[]): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let zeroAt = -1;
  const p = pack();
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve) => p.on('end', resolve));
  let prefix: Buffer = Buffer.alloc(0);
  for (const entry of entries) {
    if (entry === 'PAX-GLOBAL') {
      prefix = paxGlobalHeader();
      continue;
    }
    if (entry === 'ZERO') {
      await new Promise((r) => setImmediate(r));
      zeroAt = chunks.reduce((n, c) => n + c.length, 0);
      continue;
    }
    p.entry({ name: entry.name }, entry.body);
  }
  p.finalize();
  await ended;
  const tar = Buffer.concat([prefix, ...chunks]);
  if (zeroAt < 0) return tar;
  zeroAt += prefix.length;
  return Buffer.concat([tar.subarray(0, zeroAt), Buffer.alloc(512), tar.subarray(zeroAt)]);
}

function parseIndexDigests(bytes: Uint8Array): string[] {
  return (JSON.parse(new TextDecoder().decode(bytes)) as { manifests: { digest: string }[] }).manifests.map(
    (m) => m.digest,
  );
}
