/**
 * Concurrency: two CLI processes at once on the same channel: `promote` on an `oci-layout:` channel (two promotes on a registry are in
 * staging-flow.test.ts), and `repodata` on a registry and on an `oci-layout:` channel. Both runs
 * end cleanly, and the state is what one run alone would leave: every package promoted once with
 * exactly one validation record, every tag on a complete manifest, `latest` repodata listing
 * every package, no lock left behind.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { packageReference } from '../../src/conda/naming.js';
import { ARTIFACT_TYPE_VALIDATION } from '../../src/conda/records.js';
import { silentReporter } from '../../src/commands/report.js';
import { execute } from '../../src/core/execute.js';
import { LayoutStore } from '../../src/oci/layout/store.js';
import { channelRepository, parseChannel } from '../../src/conda/channel.js';
import { listReferrers } from '../../src/oci/referrers.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import type { Store } from '../../src/oci/storage.js';
import { buildCli, runCli, type CliRun } from '../helpers/cli.js';
import { makePackage, type MadePackage } from '../helpers/packages.js';
import { useRegistry } from '../helpers/registry.js';
import { checkComplete, checkPackages, latestRepodataFiles } from '../helpers/verify.js';

const ROUNDS = 2;
const KEY = 'record-key-of-the-concurrency-suite';
const registry = useRegistry();
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'conda-oci-concurrency-'));
  await buildCli();
}, 180_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

let serial = 0;
async function fresh(count: number): Promise<MadePackage[]> {
  const made: MadePackage[] = [];
  for (let i = 0; i < count; i++) {
    const n = serial++;
    made.push(
      await makePackage(join(work, 'build'), {
        name: `race-${n % 5}`,
        version: `2.${n}`,
        build: `h${(4096 + n).toString(16)}_0`,
        subdir: n % 4 === 0 ? 'noarch' : 'linux-64',
        payloadBytes: 50_000,
      }),
    );
  }
  return made;
}

/** Two runs of the same command at once; both must succeed. */
async function twice(args: string[]): Promise<[CliRun, CliRun]> {
  const runs = await Promise.all([runCli([...args, '--json']), runCli([...args, '--json'])]);
  for (const run of runs) {
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { artifacts: { status: string; error?: string }[] };
    expect(result.artifacts.filter((a) => a.status === 'failed').map((a) => a.error)).toEqual([]);
  }
  return runs;
}

function locksBelow(dir: string): string[] {
  const found: string[] = [];
  const walk = (at: string): void => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      if (entry.name === '.lock') found.push(join(at, entry.name));
      else if (entry.isDirectory()) walk(join(at, entry.name));
    }
  };
  walk(dir);
  return found;
}

test('two promote processes at once on an oci-layout channel', async () => {
  const stagingDir = join(work, 'layout-staging');
  const productionDir = join(work, 'layout-prod');
  const production = parseChannel(`oci-layout:${productionDir}`);
  const store = new LayoutStore(productionDir);
  const promoted: MadePackage[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const packages = await fresh(4);
    const up = await execute(
      { command: 'upload', files: packages.map((p) => p.path), to: `oci-layout:${stagingDir}` },
      { reporter: silentReporter },
    );
    expect(up.exitCode).toBe(0);
    const artifacts = packages.map((p) => ({ subdir: p.subdir, file: p.file, sha256: p.sha256 }));
    const validated = await execute(
      { command: 'validate', from: `oci-layout:${stagingDir}`, artifacts, recordKey: KEY },
      { reporter: silentReporter },
    );
    expect(validated.exitCode).toBe(0);
    await twice([
      'promote',
      '--from',
      `oci-layout:${stagingDir}`,
      '--to',
      `oci-layout:${productionDir}`,
      ...packages.flatMap((p) => ['--artifact', p.artifact]),
      '--record-key',
      KEY,
    ]);
    promoted.push(...packages);
    expect(await checkPackages(store, production, promoted)).toEqual([]);
    for (const p of packages) {
      const ref = packageReference(p.subdir, p.name, p.version, p.build);
      const repository = store.repository(channelRepository(production, ref.repository));
      const subject = (await repository.resolve(ref.tag))!.digest;
      expect(await listReferrers(repository, subject, ARTIFACT_TYPE_VALIDATION), p.file).toHaveLength(1);
    }
  }
  expect((await checkComplete(store, '')).problems).toEqual([]);
  expect(locksBelow(productionDir)).toEqual([]);
});

describe.each([
  { kind: 'registry', url: () => `oci://${registry.host}/race/index` },
  { kind: 'oci-layout', url: () => `oci-layout:${join(work, 'layout-index')}` },
])('two repodata processes at once ($kind)', ({ kind, url }) => {
  test('both end cleanly; latest lists every package and every tag is complete', async () => {
    const channel = parseChannel(url());
    const store: Store =
      kind === 'registry'
        ? new RemoteStore({ host: registry.host, plainHttp: true })
        : new LayoutStore(join(work, 'layout-index'));
    const published: MadePackage[] = [];
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const packages = await fresh(3);
        const up = await execute(
          { command: 'upload', files: packages.map((p) => p.path), to: url() },
          { reporter: silentReporter },
        );
        expect(up.exitCode).toBe(0);
        published.push(...packages);
        await twice(['repodata', '--channel', url()]);
        for (const subdir of ['linux-64', 'noarch']) {
          const expected = published
            .filter((p) => p.subdir === subdir)
            .map((p) => p.file)
            .sort();
          expect(await latestRepodataFiles(store, channel, subdir), subdir).toEqual(expected);
        }
      }
      const prefix = kind === 'registry' ? 'race/index' : '';
      expect((await checkComplete(store, prefix)).problems).toEqual([]);
      if (kind === 'oci-layout') expect(locksBelow(join(work, 'layout-index'))).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
