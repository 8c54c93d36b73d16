/**
 * The staging gate against a real registry with token auth and two identities, as conda-forge
 * runs it: feedstocks can write staging only; the webservices identity validates and promotes.
 * Every assertion is on registry state.
 */
import { copyFileSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readPackageManifest } from '../../src/conda/artifact.js';
import { packageReference } from '../../src/conda/naming.js';
import {
  ANNOTATION_VALIDATION_RESULT,
  ARTIFACT_TYPE_VALIDATION,
  buildRecord,
} from '../../src/conda/records.js';
import { parseOwners } from '../../src/commands/owners.js';
import type { CleanResult } from '../../src/commands/clean.js';
import { silentReporter, type CommandResult, type Reporter } from '../../src/commands/report.js';
import { execute } from '../../src/core/execute.js';
import { LayoutStore } from '../../src/oci/layout/store.js';
import { manifestBlobs, parseImageManifest } from '../../src/oci/manifest.js';
import { pushArtifact } from '../../src/oci/push.js';
import { listReferrers } from '../../src/oci/referrers.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import type { CommandInput as CommandOptions } from '../../src/core/commands.js';
import { expectedOf, fixturePath } from '../helpers/fixtures.js';
import { actions, startProxy, type TestProxy } from '../helpers/proxy.js';
import { useRegistry } from '../helpers/registry.js';
import { makeTokenRegistry } from '../helpers/feedstock-tokens.js';
import { testSecret } from '../helpers/secrets.js';

// Secrets hold the marker the suite-wide secret scan looks for (helpers/secrets.ts).
const FEEDSTOCK = { username: 'demo-pkg-feedstock', password: testSecret('feedstock-secret-4711') };
const WEBSERVICES = { username: 'webservices', password: testSecret('webservices-secret-0815') };
const KEY = testSecret('record-key-known-only-to-webservices');

const registry = useRegistry({
  auth: 'token',
  users: [
    { ...FEEDSTOCK, grants: { 'staging/**': ['pull', 'push'] } },
    {
      ...WEBSERVICES,
      grants: {
        'staging/**': ['pull', 'push', 'delete'],
        'prod/**': ['pull', 'push', 'delete'],
        'registry:catalog': ['*'],
      },
    },
  ],
});

let proxy: TestProxy;
let admin: RemoteStore;
let work: string;

beforeAll(async () => {
  proxy = await startProxy(registry.url);
  admin = new RemoteStore({ host: registry.host, plainHttp: true, credentials: WEBSERVICES });
  work = mkdtempSync(join(tmpdir(), 'conda-oci-flow-'));
});
afterAll(async () => {
  await admin.close();
  await proxy.close();
});

const CONDA = 'demo-pkg-1.2.3-h1234567_0.conda';
const TARBZ2 = 'demo-pkg-1.2.3-h1234567_0.tar.bz2';
const NEWER = 'demo-pkg-1.2.4-h7654321_1.conda';

function channels(name: string, host = () => registry.host) {
  return { staging: `oci://${host()}/staging/${name}`, production: `oci://${host()}/prod/${name}` };
}

function run(
  options: CommandOptions,
  who: { username: string; password: string },
  now?: Date,
): Promise<CommandResult> {
  return execute(
    { ...options, ...who },
    {
      reporter: silentReporter,
      ...(now ? { now: () => now } : {}),
    },
  );
}

function request(file: string) {
  const e = expectedOf(file);
  return { subdir: e.subdir, file, sha256: e.sha256 };
}

function repositoryOf(channelPath: string, file: string) {
  const e = expectedOf(file);
  const ref = packageReference(e.subdir, e.name, e.version, e.build);
  return { repository: admin.repository(`${channelPath}/${ref.repository}`), tag: ref.tag };
}

describe('who may write where', () => {
  test('the feedstock identity writes staging and is refused on production', async () => {
    const { staging, production } = channels('auth');
    const up = await run({ command: 'upload', files: [fixturePath(CONDA)], to: staging }, FEEDSTOCK);
    expect(up.artifacts[0]!.status).toBe('uploaded');

    const direct = await run({ command: 'upload', files: [fixturePath(CONDA)], to: production }, FEEDSTOCK);
    expect(direct.exitCode).toBe(1);
    expect(direct.artifacts[0]!.error).toMatch(/401|denied|unauthorized|insufficient/i);

    const promoted = await run(
      { command: 'promote', from: staging, to: production, artifacts: [request(CONDA)], recordKey: KEY },
      FEEDSTOCK,
    );
    expect(promoted.exitCode).toBe(1);

    const { repository, tag } = repositoryOf('prod/auth', CONDA);
    expect(await repository.resolve(tag)).toBeUndefined();
    for (const text of [JSON.stringify(direct), JSON.stringify(promoted)])
      expect(text).not.toContain(FEEDSTOCK.password);
  });
});

describe('upload, validate, promote', () => {
  let staging: string;
  let production: string;
  let validated: CommandResult;

  beforeAll(async () => {
    ({ staging, production } = channels('flow'));
    await run({ command: 'upload', files: [fixturePath(CONDA), fixturePath(NEWER)], to: staging }, FEEDSTOCK);
    validated = await run(
      {
        command: 'validate',
        from: staging,
        production,
        artifacts: [request(CONDA), request(NEWER)],
        recordKey: KEY,
        feedstock: 'demo-pkg',
      },
      WEBSERVICES,
    );
  });

  test('validation runs every check and records a signed, passing outcome on the staged manifest', async () => {
    expect(validated.exitCode).toBe(0);
    const result = validated.artifacts.find((a) => a.file === CONDA)!;
    expect(result.checks!.map((c) => c.name)).toEqual([
      'manifest',
      'identity',
      'claimed-sha256',
      'package-bytes',
      'package-index',
      'index-layer',
      'md5',
      'info-layer',
      'manifest-bytes',
      'requester',
      'label',
      'provenance',
      'production',
    ]);
    expect(result.checks!.every((c) => c.ok)).toBe(true);
    const { repository, tag } = repositoryOf('staging/flow', CONDA);
    const staged = await repository.resolve(tag);
    expect(staged?.digest).toBe(result.digest);
    const records = await listReferrers(repository, staged!.digest, ARTIFACT_TYPE_VALIDATION);
    expect(records).toHaveLength(1);
    expect(records[0]!.annotations?.[ANNOTATION_VALIDATION_RESULT]).toBe('passed');
  });

  test('promotion copies the exact manifest, every blob and the record; a second run changes nothing', async () => {
    const promoted = await run(
      {
        command: 'promote',
        from: staging,
        to: production,
        artifacts: [request(CONDA), request(NEWER)],
        recordKey: KEY,
      },
      WEBSERVICES,
    );
    expect(promoted.artifacts.map((a) => a.status)).toEqual(['promoted', 'promoted']);
    for (const file of [CONDA, NEWER]) {
      const { repository, tag } = repositoryOf('prod/flow', file);
      const fetched = await repository.fetchManifest(tag);
      expect(fetched.descriptor.digest).toBe(validated.artifacts.find((a) => a.file === file)!.digest);
      for (const blob of manifestBlobs(parseImageManifest(fetched.bytes)))
        expect(await repository.statBlob(blob.digest)).toEqual({ size: blob.size });
      const records = await listReferrers(repository, fetched.descriptor.digest, ARTIFACT_TYPE_VALIDATION);
      expect(records.map((r) => r.annotations?.[ANNOTATION_VALIDATION_RESULT])).toEqual(['passed']);
    }
    const again = await run(
      {
        command: 'promote',
        from: staging,
        to: production,
        artifacts: [request(CONDA), request(NEWER)],
        recordKey: KEY,
      },
      WEBSERVICES,
    );
    expect(again.artifacts.map((a) => a.status)).toEqual(['already-published', 'already-published']);
  });
});

describe('what validation refuses', () => {
  test('a registry that alters the package bytes fails validation, and promote then refuses', async () => {
    const { staging, production } = channels('lying', () => proxy.host);
    await run({ command: 'upload', files: [fixturePath(CONDA)], to: staging }, FEEDSTOCK);
    const rule = proxy.on(
      { method: 'GET', path: new RegExp(`/blobs/sha256:${expectedOf(CONDA).sha256}`) },
      actions.corrupt(1000),
    );
    const result = await run(
      { command: 'validate', from: staging, artifacts: [request(CONDA)], recordKey: KEY },
      WEBSERVICES,
    );
    proxy.clearRules();
    void rule;
    expect(result.exitCode).toBe(1);
    const failed = result.artifacts[0]!.checks!.filter((c) => !c.ok).map((c) => c.name);
    expect(failed).toEqual(['package-bytes']);
    const promoted = await run(
      { command: 'promote', from: staging, to: production, artifacts: [request(CONDA)], recordKey: KEY },
      WEBSERVICES,
    );
    expect(promoted.artifacts[0]!.status).toBe('failed');
    expect(promoted.artifacts[0]!.error).toMatch(/no passing validation record/);
    expect(
      await repositoryOf('prod/lying', CONDA).repository.resolve(repositoryOf('prod/lying', CONDA).tag),
    ).toBeUndefined();
  });

  test('an artifact re-tagged to other content after validation is not promoted', async () => {
    const { staging, production } = channels('retag');
    await run({ command: 'upload', files: [fixturePath(CONDA), fixturePath(NEWER)], to: staging }, FEEDSTOCK);
    const ok = await run(
      { command: 'validate', from: staging, artifacts: [request(CONDA)], recordKey: KEY },
      WEBSERVICES,
    );
    expect(ok.exitCode).toBe(0);
    // The feedstock (or anyone with staging access) moves the tag to the other build's manifest.
    const older = repositoryOf('staging/retag', CONDA);
    const newer = repositoryOf('staging/retag', NEWER);
    const other = await newer.repository.fetchManifest(newer.tag);
    await older.repository.pushManifest(
      { mediaType: other.descriptor.mediaType, bytes: other.bytes },
      older.tag,
    );
    const promoted = await run(
      { command: 'promote', from: staging, to: production, artifacts: [request(CONDA)], recordKey: KEY },
      WEBSERVICES,
    );
    expect(promoted.artifacts[0]!.status).toBe('failed');
    expect(promoted.artifacts[0]!.error).toMatch(/not the requested/);
    const prod = repositoryOf('prod/retag', CONDA);
    expect(await prod.repository.resolve(prod.tag)).toBeUndefined();
  });

  test('a passing record written by the feedstock itself is not accepted', async () => {
    const { staging, production } = channels('forged');
    await run({ command: 'upload', files: [fixturePath(CONDA)], to: staging }, FEEDSTOCK);
    const feedstockStore = new RemoteStore({ host: registry.host, plainHttp: true, credentials: FEEDSTOCK });
    try {
      const { tag } = repositoryOf('staging/forged', CONDA);
      const repository = feedstockStore.repository(repositoryOf('staging/forged', CONDA).repository.name);
      const subject = (await repository.resolve(tag))!;
      const body = {
        schema: 1,
        passed: true,
        subject: { repository: repository.name, tag, digest: subject.digest },
        claimed: { sha256: expectedOf(CONDA).sha256 },
        checks: [],
      };
      const forged = buildRecord(
        ARTIFACT_TYPE_VALIDATION,
        body,
        subject,
        new Date().toISOString(),
        { [ANNOTATION_VALIDATION_RESULT]: 'passed' },
        'a-key-the-feedstock-guessed',
      );
      await pushArtifact(repository, forged, { subject });
    } finally {
      await feedstockStore.close();
    }
    const promoted = await run(
      { command: 'promote', from: staging, to: production, artifacts: [request(CONDA)], recordKey: KEY },
      WEBSERVICES,
    );
    expect(promoted.artifacts[0]!.status).toBe('failed');
    expect(promoted.artifacts[0]!.error).toMatch(/not signed with the record key/);
  });

  test('ownership, a wrong claimed sha256 and --delete-failed', async () => {
    const { staging } = channels('owners');
    await run(
      {
        command: 'upload',
        files: [fixturePath(CONDA), fixturePath(NEWER), fixturePath('libzlib-1.3.1-hb9d3cd8_2.conda')],
        to: staging,
      },
      FEEDSTOCK,
    );
    const owners = parseOwners({ 'demo-*': ['demo-pkg'], libzlib: ['zlib-feedstock'] }, 'owners');
    const wrongSha = { ...request(NEWER), sha256: expectedOf(CONDA).sha256 };
    // The requester proves who it is with its feedstock token (conda-forge's feedstock-tokens).
    const registry = makeTokenRegistry(['demo-pkg-feedstock', 'zlib-feedstock']);
    const result = await run(
      {
        command: 'validate',
        from: staging,
        artifacts: [request(CONDA), wrongSha, request('libzlib-1.3.1-hb9d3cd8_2.conda')],
        owners,
        feedstockTokens: registry.dir,
        feedstock: 'demo-pkg-feedstock',
        feedstockToken: registry.tokens['demo-pkg-feedstock']!,
        deleteFailed: true,
      },
      WEBSERVICES,
    );
    const byFile = new Map(result.artifacts.map((a) => [a.file, a]));
    expect(byFile.get(CONDA)!.status).toBe('passed');
    expect(byFile.get(NEWER)!.checks!.find((c) => !c.ok)!.name).toBe('claimed-sha256');
    const zlib = byFile.get('libzlib-1.3.1-hb9d3cd8_2.conda')!;
    expect(zlib.checks!.filter((c) => !c.ok).map((c) => c.name)).toEqual(['owner']);
    expect(zlib.checks!.find((c) => c.name === 'owner')!.detail).toContain('zlib');
    expect(byFile.get(CONDA)!.requester).toBe('demo-pkg-feedstock (feedstock token)');
    // delete-failed removes only what the requester attested; a token attests nothing, so the
    // failed artifacts stay for clean (the attested case: gate.test.ts).
    for (const [file, present] of [
      [CONDA, true],
      [NEWER, true],
      ['libzlib-1.3.1-hb9d3cd8_2.conda', true],
    ] as const) {
      const { repository, tag } = repositoryOf('staging/owners', file);
      expect(Boolean(await repository.resolve(tag)), file).toBe(present);
    }
  });

  test('production holding other content under the same name and tag is refused, never overwritten', async () => {
    const { staging, production } = channels('immutable');
    await run({ command: 'upload', files: [fixturePath(CONDA)], to: staging }, FEEDSTOCK);
    await run(
      { command: 'validate', from: staging, artifacts: [request(CONDA)], recordKey: KEY },
      WEBSERVICES,
    );
    await run(
      {
        command: 'promote',
        from: staging,
        to: production,
        artifacts: [request(CONDA)],
        recordKey: KEY,
        deleteStaged: true,
      },
      WEBSERVICES,
    );
    // The .tar.bz2 of the same name-version-build has other bytes: staged alone, it must not replace it.
    // '_': a random suffix could otherwise make the directory look like a subdir (e.g. bz2-385a2f).
    const bz2Dir = mkdtempSync(join(work, 'bz2_'));
    copyFileSync(fixturePath(TARBZ2), join(bz2Dir, TARBZ2));
    await run({ command: 'upload', files: [join(bz2Dir, TARBZ2)], to: staging }, FEEDSTOCK);
    const checked = await run(
      { command: 'validate', from: staging, production, artifacts: [request(TARBZ2)], recordKey: KEY },
      WEBSERVICES,
    );
    expect(checked.artifacts[0]!.checks!.filter((c) => !c.ok).map((c) => c.name)).toEqual(['production']);
    const promoted = await run(
      { command: 'promote', from: staging, to: production, artifacts: [request(TARBZ2)], recordKey: KEY },
      WEBSERVICES,
    );
    expect(promoted.artifacts[0]!.status).toBe('failed');
    expect(promoted.artifacts[0]!.error).toMatch(/never move/);
    const { repository, tag } = repositoryOf('prod/immutable', CONDA);
    const info = readPackageManifest((await repository.fetchManifest(tag)).bytes, 'prod');
    expect(info.packageLayer.digest).toBe(`sha256:${expectedOf(CONDA).sha256}`);
  });
});

describe('concurrency and cleaning', () => {
  test('two promote runs of the same artifacts at once both succeed and agree', async () => {
    const { staging, production } = channels('race');
    const files = [CONDA, NEWER, 'libgcc-14.2.0-h77fa898_1.conda', 'libzlib-1.3.1-hb9d3cd8_2.conda'];
    await run({ command: 'upload', files: files.map(fixturePath), to: staging }, FEEDSTOCK);
    await run(
      { command: 'validate', from: staging, artifacts: files.map(request), recordKey: KEY },
      WEBSERVICES,
    );
    const [a, b] = await Promise.all(
      [0, 1].map(() =>
        run(
          {
            command: 'promote',
            from: staging,
            to: production,
            artifacts: files.map(request),
            recordKey: KEY,
          },
          WEBSERVICES,
        ),
      ),
    );
    for (const result of [a!, b!]) {
      expect(result.artifacts.filter((x) => x.status === 'failed').map((x) => x.error)).toEqual([]);
      expect(result.exitCode).toBe(0);
      expect(result.artifacts.every((x) => x.status === 'promoted' || x.status === 'already-published')).toBe(
        true,
      );
    }
    for (const file of files) {
      const { repository, tag } = repositoryOf('prod/race', file);
      const fetched = await repository.fetchManifest(tag);
      expect(readPackageManifest(fetched.bytes, file).packageLayer.digest).toBe(
        `sha256:${expectedOf(file).sha256}`,
      );
      for (const blob of manifestBlobs(parseImageManifest(fetched.bytes)))
        expect(await repository.statBlob(blob.digest)).toBeDefined();
      expect(
        await listReferrers(repository, fetched.descriptor.digest, ARTIFACT_TYPE_VALIDATION),
      ).toHaveLength(1);
    }
  });

  test('clean deletes what waited longer than the limit, with its records; --dry-run only lists', async () => {
    const { staging } = channels('clean');
    const uploadedAt = new Date('2026-11-23T08:00:00Z');
    await run(
      { command: 'upload', files: [fixturePath(CONDA), fixturePath(NEWER)], to: staging },
      FEEDSTOCK,
      uploadedAt,
    );
    await run({ command: 'validate', from: staging, artifacts: [request(CONDA)] }, WEBSERVICES);
    // NEWER is uploaded again later: its clock restarts.
    await run({ command: 'upload', files: [fixturePath(NEWER)], to: staging }, FEEDSTOCK, uploadedAt);
    const later = new Date('2026-11-23T09:30:00Z');
    await execute(
      {
        command: 'upload',
        files: [fixturePath('libzlib-1.3.1-hb9d3cd8_2.conda')],
        to: staging,
        ...FEEDSTOCK,
      },
      { reporter: silentReporter, now: () => later },
    );

    const at = new Date('2026-11-23T10:30:00Z');
    const dry = await run(
      { command: 'clean', channel: staging, olderThanMs: 2 * 3600_000, dryRun: true },
      WEBSERVICES,
      at,
    );
    expect(dry.artifacts.map((a) => `${a.file}:${a.status}`).sort()).toEqual([
      `${CONDA}:would-delete`,
      `${NEWER}:would-delete`,
    ]);
    const { repository, tag } = repositoryOf('staging/clean', CONDA);
    const digest = (await repository.resolve(tag))!.digest;
    expect(await repository.resolve(tag)).toBeDefined();

    const cleaned = await run(
      { command: 'clean', channel: staging, olderThanMs: 2 * 3600_000 },
      WEBSERVICES,
      at,
    );
    expect(cleaned.artifacts.map((a) => a.status)).toEqual(['deleted', 'deleted']);
    expect(await repository.resolve(tag)).toBeUndefined();
    expect(await listReferrers(repository, digest)).toEqual([]);
    const young = repositoryOf('staging/clean', 'libzlib-1.3.1-hb9d3cd8_2.conda');
    expect(await young.repository.resolve(young.tag)).toBeDefined();
  });
});

describe('clean: every label, and where the ages come from', () => {
  const ZLIB = 'libzlib-1.3.1-hb9d3cd8_2.conda';
  const at = new Date('2026-11-23T10:30:00Z');

  function collecting(): Reporter & { infos: string[] } {
    const infos: string[] = [];
    return { infos, info: (m) => infos.push(m), warn: (m) => infos.push(m) };
  }

  test('artifacts under the channel and two labels go; the summary counts the labels', async () => {
    const { staging } = channels('labels');
    const uploadedAt = new Date('2026-11-23T08:00:00Z');
    await run({ command: 'upload', files: [fixturePath(CONDA)], to: staging }, FEEDSTOCK, uploadedAt);
    await run(
      { command: 'upload', files: [fixturePath(NEWER)], to: `${staging}/label/rc` },
      FEEDSTOCK,
      uploadedAt,
    );
    await run(
      { command: 'upload', files: [fixturePath(ZLIB)], to: staging, label: 'dev' },
      FEEDSTOCK,
      uploadedAt,
    );
    // A young one under rc stays.
    await run(
      { command: 'upload', files: [fixturePath(CONDA)], to: `${staging}/label/rc` },
      FEEDSTOCK,
      new Date('2026-11-23T10:00:00Z'),
    );

    const onlyRc = await run(
      { command: 'clean', channel: staging, label: 'rc', olderThanMs: 2 * 3600_000, dryRun: true },
      WEBSERVICES,
      at,
    );
    expect(onlyRc.summary.labels).toBe(1);
    expect(onlyRc.artifacts.map((a) => `${(a as CleanResult).label}:${a.file}`)).toEqual([`rc:${NEWER}`]);

    const cleaned = await run(
      { command: 'clean', channel: staging, olderThanMs: 2 * 3600_000 },
      WEBSERVICES,
      at,
    );
    expect(cleaned.exitCode).toBe(0);
    expect(cleaned.summary.labels).toBe(3);
    expect(cleaned.artifacts.map((a) => `${(a as CleanResult).label}:${a.file}:${a.status}`).sort()).toEqual(
      [`main:${CONDA}:deleted`, `rc:${NEWER}:deleted`, `dev:${ZLIB}:deleted`].sort(),
    );
    for (const [path, file] of [
      ['staging/labels', CONDA],
      ['staging/labels/label/rc', NEWER],
      ['staging/labels/label/dev', ZLIB],
    ] as const) {
      const { repository, tag } = repositoryOf(path, file);
      expect(await repository.resolve(tag), `${path} ${file}`).toBeUndefined();
    }
    const young = repositoryOf('staging/labels/label/rc', CONDA);
    expect(await young.repository.resolve(young.tag)).toBeDefined();

    // A channel with no labels: the channel itself is the one label looked at.
    const { staging: plain } = channels('no-labels');
    await run({ command: 'upload', files: [fixturePath(ZLIB)], to: plain }, FEEDSTOCK, uploadedAt);
    const alone = await run({ command: 'clean', channel: plain, olderThanMs: 2 * 3600_000 }, WEBSERVICES, at);
    expect(alone.summary.labels).toBe(1);
    expect(alone.artifacts.map((a) => `${(a as CleanResult).label}:${a.file}:${a.status}`)).toEqual([
      `main:${ZLIB}:deleted`,
    ]);
  });

  test('distribution keeps no time of its own: receipts, said once and in each result; one dated far ahead is not believed', async () => {
    const { staging } = channels('receipts');
    await run(
      { command: 'upload', files: [fixturePath(CONDA)], to: staging },
      FEEDSTOCK,
      new Date('2026-11-23T08:00:00Z'),
    );
    await run(
      { command: 'upload', files: [fixturePath(NEWER)], to: staging },
      FEEDSTOCK,
      new Date('2026-11-23T10:00:00Z'),
    );
    // An uploader whose clock says 2099: without a believable receipt the build time (2024) counts.
    await run(
      { command: 'upload', files: [fixturePath(ZLIB)], to: staging },
      FEEDSTOCK,
      new Date('2099-01-01T00:00:00Z'),
    );
    // A receipt a minute ahead (clock skew) counts as now.
    const skewed = 'libgcc-14.2.0-h77fa898_1.conda';
    await run(
      { command: 'upload', files: [fixturePath(skewed)], to: staging },
      FEEDSTOCK,
      new Date(at.getTime() + 60_000),
    );

    const reporter = collecting();
    const cleaned = await execute(
      { command: 'clean', channel: staging, olderThanMs: 2 * 3600_000, ...WEBSERVICES },
      { reporter, now: () => at },
    );
    const results = cleaned.artifacts as CleanResult[];
    expect(results.map((a) => `${a.file}:${a.status}:${a.ageFrom}:${a.stagedAt}`).sort()).toEqual(
      [
        `${CONDA}:deleted:receipt:2026-11-23T08:00:00.000Z`,
        `${ZLIB}:deleted:build-time:${new Date(expectedOf(ZLIB).index.timestamp as number).toISOString()}`,
      ].sort(),
    );
    expect(
      reporter.infos.filter((m) => /keeps no record of when it took a manifest in/.test(m)),
    ).toHaveLength(1);
    for (const file of [NEWER, skewed]) {
      const { repository, tag } = repositoryOf('staging/receipts', file);
      expect(await repository.resolve(tag), file).toBeDefined();
    }
    const gone = repositoryOf('staging/receipts', ZLIB);
    expect(await gone.repository.resolve(gone.tag)).toBeUndefined();
  });

  test("oci-layout: the manifest file's modification time, written by us, is the age", async () => {
    const dir = join(work, 'layout-ages');
    const staging = `oci-layout:${dir}`;
    const local = (options: CommandOptions, now: Date) =>
      execute(options, { reporter: silentReporter, now: () => now });
    // Receipts that lie both ways: 2020 on a fresh artifact, 2099 on an old one.
    const fresh = await local(
      { command: 'upload', files: [fixturePath(CONDA)], to: staging },
      new Date('2020-01-01T00:00:00Z'),
    );
    const old = await local(
      { command: 'upload', files: [fixturePath(ZLIB)], to: staging },
      new Date('2099-01-01T00:00:00Z'),
    );
    const oldDigest = old.artifacts[0]!.digest!;
    // Written three hours ago, as far as the file system knows.
    const threeHoursAgo = new Date(Date.now() - 3 * 3600_000);
    const manifestFile = join(
      dir,
      old.artifacts[0]!.repository!,
      'blobs',
      'sha256',
      oldDigest.slice('sha256:'.length),
    );
    utimesSync(manifestFile, threeHoursAgo, threeHoursAgo);

    const cleaned = await local(
      { command: 'clean', channel: staging, olderThanMs: 2 * 3600_000 },
      new Date(),
    );
    const results = cleaned.artifacts as CleanResult[];
    expect(results.map((a) => `${a.file}:${a.status}:${a.ageFrom}`)).toEqual([`${ZLIB}:deleted:registry`]);
    expect(results[0]!.stagedAt).toBe(threeHoursAgo.toISOString());
    const store = new LayoutStore(dir);
    expect(
      await store.repository(old.artifacts[0]!.repository!).resolve(old.artifacts[0]!.tag!),
    ).toBeUndefined();
    expect(
      (await store.repository(fresh.artifacts[0]!.repository!).resolve(fresh.artifacts[0]!.tag!))?.digest,
    ).toBe(fresh.artifacts[0]!.digest);
  });
});

describe('the artifact list comes in every form users have', () => {
  test('the result file of upload, and conda-forge outputs map', async () => {
    const { staging } = channels('forms');
    const up = await run(
      { command: 'upload', files: [fixturePath(CONDA)], to: staging, resultFile: join(work, 'up.json') },
      FEEDSTOCK,
    );
    writeFileSync(join(work, 'up.json'), JSON.stringify(up));
    const { parseArtifactDocument } = await import('../../src/commands/artifact-list.js');
    const fromResult = parseArtifactDocument(JSON.stringify(up), 'result');
    const fromOutputs = parseArtifactDocument({ [`linux-64/${CONDA}`]: expectedOf(CONDA).sha256 }, 'outputs');
    const fromDispatch = parseArtifactDocument(
      {
        client_payload: {
          outputs: { [`linux-64/${CONDA}`]: expectedOf(CONDA).sha256 },
          feedstock: 'demo-pkg',
        },
      },
      'payload',
    );
    expect(fromResult).toEqual(fromOutputs);
    expect(fromDispatch).toEqual(fromOutputs);
    const validated = await run({ command: 'validate', from: staging, artifacts: fromOutputs }, WEBSERVICES);
    expect(validated.exitCode).toBe(0);
  });
});
