/**
 * `repodata` through the action and the CLI: `readInputs()` from `INPUT_*` variables, `run()`
 * with the Actions cache replaced by a recorder that keeps the cache directory in memory (restore
 * before the run, save after it, failures as warnings), and `conda-oci repodata` argument parsing.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, test, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { silentReporter } from '../../src/commands/report.js';
import { execute } from '../../src/core/execute.js';
import { buildPackageArtifact } from '../../src/conda/artifact.js';
import { buildInfoTarGz } from '../../src/conda/info-tarball.js';
import { packageReference } from '../../src/conda/naming.js';
import type { CacheService } from '../../src/github/cache.js';
import { LayoutStore } from '../../src/oci/layout/store.js';
import { pushArtifact } from '../../src/oci/push.js';
import { readInputs } from '../../src/action/inputs.js';
import { run } from '../../src/action/run.js';
import { fixturePath } from '../helpers/fixtures.js';

const core = vi.hoisted(() => {
  const summary: Record<string, (...args: unknown[]) => unknown> = {};
  for (const method of ['addHeading', 'addRaw', 'addTable', 'addDetails', 'addList', 'addEOL'])
    summary[method] = () => summary;
  summary.write = async () => summary;
  return { summary, outputs: new Map<string, string>(), warnings: [] as string[], failed: [] as string[] };
});

vi.mock('@actions/core', async (importOriginal) => {
  const real = await importOriginal<typeof import('@actions/core')>();
  return {
    ...real,
    summary: core.summary,
    setOutput: (name: string, value: unknown) => core.outputs.set(name, String(value)),
    setFailed: (message: string) => core.failed.push(message),
    setSecret: () => {},
    warning: (message: string) => core.warnings.push(String(message)),
    info: () => {},
    group: async (_name: string, fn: () => Promise<unknown>) => fn(),
  };
});

let work: string;
let channel: string;
const savedEnv = { ...process.env };

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'conda-oci-repodata-action-'));
  channel = `oci-layout:${join(work, 'channel')}`;
  const uploaded = await execute(
    {
      command: 'upload',
      files: [
        fixturePath('demo-pkg-1.2.4-h7654321_1.conda'),
        fixturePath('pure-py-0.9.0-pyhd8ed1ab_0.conda'),
      ],
      to: channel,
    },
    { reporter: silentReporter },
  );
  expect(uploaded.exitCode).toBe(0);
});

beforeEach(() => {
  core.outputs.clear();
  core.warnings.splice(0);
  core.failed.splice(0);
  for (const key of Object.keys(process.env)) if (key.startsWith('INPUT_')) delete process.env[key];
  process.env.RUNNER_TEMP = join(work, 'runner-temp');
  process.env.GITHUB_RUN_ID = '99';
});
afterEach(() => {
  for (const key of Object.keys(process.env)) if (!(key in savedEnv)) delete process.env[key];
  Object.assign(process.env, savedEnv);
});

function setInputs(inputs: Record<string, string>): void {
  for (const [name, value] of Object.entries(inputs)) process.env[`INPUT_${name.toUpperCase()}`] = value;
}

/** An Actions cache that keeps saved directories in a folder of its own. */
function recordingCache(): CacheService & { calls: string[]; store: string } {
  const store = mkdtempSync(join(tmpdir(), 'conda-oci-fake-actions-cache-'));
  const calls: string[] = [];
  return {
    calls,
    store,
    isFeatureAvailable: () => true,
    async restoreCache(paths, key, restoreKeys) {
      calls.push(`restore ${key} ${restoreKeys?.join(',')}`);
      const hit = readdirSync(store).find((k) => restoreKeys?.some((p) => k.startsWith(p)));
      if (!hit) return undefined;
      cpSync(join(store, hit), paths[0]!, { recursive: true });
      return hit;
    },
    async saveCache(paths, key) {
      calls.push(`save ${key}`);
      cpSync(paths[0]!, join(store, key), { recursive: true });
      return 1;
    },
  };
}

describe('repodata in the action', () => {
  test('inputs: channel, subdirs, patch instructions, cache and verify', () => {
    setInputs({
      command: 'repodata',
      channel,
      subdirs: 'linux-64, noarch\nosx-arm64',
      'patch-instructions': '/path/patches.json',
      cache: 'true',
      verify: 'true',
      concurrency: '8',
    });
    const inputs = readInputs();
    expect(inputs.options).toMatchObject({
      command: 'repodata',
      channel,
      subdirs: ['linux-64', 'noarch', 'osx-arm64'],
      patchInstructions: '/path/patches.json',
      cache: true,
      verify: true,
      concurrency: 8,
    });
    setInputs({ cache: 'false', verify: 'false', subdirs: '' });
    const plain = readInputs();
    expect(plain.options).toHaveProperty('cache', false);
    expect(plain.options).not.toHaveProperty('cacheDir');
    expect(plain.options).not.toHaveProperty('subdirs');
  });

  test('run(): the record cache is restored before and saved after; the second run reads nothing', async () => {
    const cache = recordingCache();
    setInputs({ command: 'repodata', channel, cache: 'true' });
    const first = await run(readInputs(), { cache });
    expect(first?.exitCode).toBe(0);
    expect(first?.summary).toMatchObject({ records: 2, fetched: 2, cached: 0 });
    expect(cache.calls).toHaveLength(2);
    expect(cache.calls[0]).toMatch(/^restore conda-oci-repodata-v1-[0-9a-f]{16}-all-99-1 /);
    expect(cache.calls[1]).toMatch(/^save conda-oci-repodata-v1-[0-9a-f]{16}-all-99-1$/);
    expect(JSON.parse(core.outputs.get('outputs')!)).toHaveProperty(['linux-64/repodata.json']);

    // a new runner: empty temp directory, the cache comes back from the service
    rmSync(join(work, 'runner-temp'), { recursive: true, force: true });
    process.env.GITHUB_RUN_ID = '100';
    const second = await run(readInputs(), { cache });
    expect(second?.exitCode).toBe(0);
    expect(second?.summary).toMatchObject({ records: 2, fetched: 0, cached: 2 });
    expect(second?.artifacts.every((a) => a.status === 'exists')).toBe(true);
    expect(core.warnings).toEqual([]);
    expect(core.failed).toEqual([]);
  });

  test('a cache service that fails is a warning, never a failed step', async () => {
    setInputs({ command: 'repodata', channel, cache: 'true' });
    const broken: CacheService = {
      isFeatureAvailable: () => true,
      restoreCache: async () => {
        throw new Error('cache service unreachable');
      },
      saveCache: async () => {
        throw new Error('cache quota exceeded');
      },
    };
    const result = await run(readInputs(), { cache: broken });
    expect(result?.exitCode).toBe(0);
    expect(core.failed).toEqual([]);
    expect(core.warnings).toEqual([
      'Could not restore the repodata cache: cache service unreachable',
      'Could not save the repodata cache: cache quota exceeded',
    ]);
  });
});

describe('conda-oci repodata (CLI)', () => {
  test('parses its flags and runs', async () => {
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const cacheDir = join(work, 'cli-cache');
      expect(
        await main([
          'repodata',
          '--channel',
          channel,
          '--subdir',
          'noarch',
          '--cache-dir',
          cacheDir,
          '--json',
        ]),
      ).toBe(0);
      const printed = JSON.parse(String(stdout.mock.calls.map((c) => c[0]).join('')));
      expect(printed.command).toBe('repodata');
      expect(
        printed.artifacts.map((a: { subdir: string; file: string }) => `${a.subdir}/${a.file}`),
      ).toContain('noarch/repodata.json');
      expect(existsSync(cacheDir)).toBe(true);
      expect(await main(['repodata'])).toBe(2);
      expect(await main(['repodata', '--channel', channel, '--subdir', 'Linux_64'])).toBe(2);
      expect(
        await main(['repodata', '--channel', channel, '--patch-instructions', join(work, 'missing.json')]),
      ).toBe(2);
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
  });
});

describe('an artifact that is not a well-formed package', () => {
  test('is left out with a warning; the subdir is still published', async () => {
    const dir = join(work, 'hostile');
    const hostile = `oci-layout:${dir}`;
    await execute(
      { command: 'upload', files: [fixturePath('demo-pkg-1.2.4-h7654321_1.conda')], to: hostile },
      { reporter: silentReporter },
    );
    // written past upload's checks: an index.json nested 200 levels deep
    let deep: unknown = 'bottom';
    for (let i = 0; i < 200; i++) deep = [deep];
    const index = {
      name: 'deep',
      version: '1.0',
      build: 'h0_0',
      build_number: 0,
      depends: [],
      subdir: 'linux-64',
      extra: deep,
    };
    const indexJson = new TextEncoder().encode(JSON.stringify(index));
    const packageBytes = new Uint8Array([1, 2, 3]);
    const artifact = buildPackageArtifact(
      {
        fileName: 'deep-1.0-h0_0.conda',
        format: 'conda',
        sha256: '039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81',
        md5: '5289df737df57326fcdd22597afb1fac',
        size: 3,
        indexJson,
        index: index,
        infoTarGz: await buildInfoTarGz([
          { path: 'info/index.json', type: 'file', mode: 0o644, data: indexJson },
        ]),
      },
      packageBytes,
    );
    const ref = packageReference('linux-64', 'deep', '1.0', 'h0_0');
    const store = new LayoutStore(dir);
    await pushArtifact(store.repository(ref.repository), artifact, { tag: ref.tag });
    const warnings: string[] = [];
    const result = await execute(
      { command: 'repodata', channel: hostile },
      { reporter: { info() {}, warn: (m) => warnings.push(m) } },
    );
    expect(result.exitCode).toBe(0);
    expect(result.summary).toMatchObject({ records: 1, skipped: 1 });
    expect(warnings.join('\n')).toMatch(/nested deeper than 64 levels/);
  });
});
