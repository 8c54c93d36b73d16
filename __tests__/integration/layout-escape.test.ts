/**
 * Channels on disk never resolve outside their root (SPEC §10). A feedstock that can write in a
 * staging directory plants symbolic links into production: every command refuses them where it
 * meets them, says which path broke which rule, and production stays byte for byte as it was
 * (every file's bytes and modification time are compared).
 */
import { createHash } from 'node:crypto';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeEach, describe, expect, test } from 'vitest';
import { packageReference } from '../../src/conda/naming.js';
import { silentReporter, type CommandResult } from '../../src/commands/report.js';
import type { CommandInput } from '../../src/core/commands.js';
import { execute } from '../../src/core/execute.js';
import { digestHex } from '../../src/oci/digest.js';
import { ConfinedTree } from '../../src/oci/layout/confined.js';
import { LayoutStore } from '../../src/oci/layout/store.js';
import { parseImageManifest } from '../../src/oci/manifest.js';
import { expectedOf, fixturePath } from '../helpers/fixtures.js';

const CONDA = 'demo-pkg-1.2.3-h1234567_0.conda';
const ZLIB = 'libzlib-1.3.1-hb9d3cd8_2.conda';
const RULE = 'is a symbolic link; a channel on disk may not contain any';

const work = mkdtempSync(join(tmpdir(), 'conda-oci-escape-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
let production: string;
let staging: string;

/** Every entry below `dir`: type, and for files their bytes' hash and modification time. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (at: string): void => {
    for (const name of readdirSync(at)) {
      const path = join(at, name);
      const info = lstatSync(path);
      const key = relative(dir, path);
      if (info.isSymbolicLink()) out[key] = 'link';
      else if (info.isDirectory()) {
        out[key] = 'dir';
        walk(path);
      } else
        out[key] =
          `${createHash('sha256').update(readFileSync(path)).digest('hex')} ${info.size} ${info.mtimeMs}`;
    }
  };
  walk(dir);
  return out;
}

function run(options: CommandInput): Promise<CommandResult> {
  return execute(options, { reporter: silentReporter });
}

/** Where a fixture's repository lies below a channel directory. */
function repositoryDir(channelDir: string, file: string, label?: string): string {
  const e = expectedOf(file);
  const { repository } = packageReference(e.subdir, e.name, e.version, e.build);
  return join(channelDir, ...(label ? ['label', label] : []), ...repository.split('/'));
}

function request(file: string, sha256 = expectedOf(file).sha256) {
  return { subdir: expectedOf(file).subdir, file, sha256 };
}

/** The package blob file of a fixture in a channel directory. */
function packageBlob(channelDir: string, file: string): string {
  return join(repositoryDir(channelDir, file), 'blobs', 'sha256', expectedOf(file).sha256);
}

beforeEach(async () => {
  n++;
  production = join(work, `prod-${n}`);
  staging = join(work, `staging-${n}`);
  const published = await run({
    command: 'upload',
    files: [fixturePath(CONDA), fixturePath(ZLIB)],
    to: `oci-layout:${production}`,
  });
  expect(published.exitCode).toBe(0);
  mkdirSync(staging, { recursive: true });
});

/** Replaces `path` (in staging) by a symbolic link to `target` (in production). */
function plantLink(path: string, target: string): void {
  rmSync(path, { recursive: true, force: true });
  mkdirSync(join(path, '..'), { recursive: true });
  symlinkSync(target, path);
}

describe('a staging repository that is a link into production', () => {
  beforeEach(() => {
    plantLink(repositoryDir(staging, CONDA), repositoryDir(production, CONDA));
  });

  test('validate --delete-failed refuses it and deletes nothing in production', async () => {
    const before = snapshot(production);
    const result = await run({
      command: 'validate',
      from: `oci-layout:${staging}`,
      // A claim that fails: the command would delete the staged artifact.
      artifacts: [request(CONDA, '0'.repeat(64))],
      deleteFailed: true,
    });
    expect(snapshot(production)).toEqual(before);
    expect(result.artifacts.map((a) => a.status)).toEqual(['failed']);
    expect(result.artifacts[0]!.error).toContain(`oci-layout:${staging}: linux-64/cdemo-pkg ${RULE}`);
  });

  test('clean refuses it, says why, and deletes nothing in production', async () => {
    const before = snapshot(production);
    const result = await run({ command: 'clean', channel: `oci-layout:${staging}`, olderThanMs: 0 });
    expect(snapshot(production)).toEqual(before);
    expect(result.exitCode).toBe(1);
    const refused = result.artifacts.filter((a) => a.status === 'failed');
    expect(refused.map((a) => a.repository)).toEqual(['linux-64/cdemo-pkg']);
    expect(refused[0]!.error).toBe(`oci-layout:${staging}: linux-64/cdemo-pkg ${RULE}`);
    expect(snapshot(production)).toEqual(before);
  });
});

describe('links inside a staging repository', () => {
  beforeEach(async () => {
    const staged = await run({ command: 'upload', files: [fixturePath(CONDA)], to: `oci-layout:${staging}` });
    expect(staged.exitCode).toBe(0);
  });

  test('a blob file that is a link: not read, and the file it points to is kept', async () => {
    plantLink(packageBlob(staging, CONDA), packageBlob(production, CONDA));
    const before = snapshot(production);
    const repository = new LayoutStore(staging).repository('linux-64/cdemo-pkg');
    const blob = { digest: `sha256:${expectedOf(CONDA).sha256}` as const, size: expectedOf(CONDA).size };
    const refusal = `oci-layout:${staging}: linux-64/cdemo-pkg/blobs/sha256/${expectedOf(CONDA).sha256} ${RULE}`;
    await expect(repository.statBlob(blob.digest)).rejects.toThrow(refusal);
    await expect(repository.readBlob(blob, 1 << 30)).rejects.toThrow(refusal);
    await expect(repository.openBlob(blob)).rejects.toThrow(refusal);

    const validated = await run({
      command: 'validate',
      from: `oci-layout:${staging}`,
      artifacts: [request(CONDA)],
      deleteFailed: true,
    });
    expect(validated.artifacts[0]!.status).toBe('failed');
    const cleaned = await run({ command: 'clean', channel: `oci-layout:${staging}`, olderThanMs: 0 });
    expect(cleaned.artifacts.map((a) => a.status)).toEqual(['failed']);
    expect(cleaned.artifacts[0]!.error).toContain(refusal);
    expect(snapshot(production)).toEqual(before);
    expect(lstatSync(packageBlob(staging, CONDA)).isSymbolicLink()).toBe(true);
  });

  test('blobs/sha256 that is a link: nothing read or deleted through it', async () => {
    plantLink(
      join(repositoryDir(staging, CONDA), 'blobs', 'sha256'),
      join(repositoryDir(production, CONDA), 'blobs', 'sha256'),
    );
    const before = snapshot(production);
    const refusal = `oci-layout:${staging}: linux-64/cdemo-pkg/blobs/sha256 ${RULE}`;
    const repository = new LayoutStore(staging).repository('linux-64/cdemo-pkg');
    await expect(
      repository.fetchManifest(packageReference('linux-64', 'demo-pkg', '1.2.3', 'h1234567_0').tag),
    ).rejects.toThrow(refusal);
    const cleaned = await run({ command: 'clean', channel: `oci-layout:${staging}`, olderThanMs: 0 });
    expect(cleaned.artifacts.map((a) => a.status)).toEqual(['failed']);
    expect(cleaned.artifacts[0]!.error).toContain(refusal);
    expect(snapshot(production)).toEqual(before);
  });

  test('index.json that is a link: not read, not written through', async () => {
    const index = join(repositoryDir(staging, CONDA), 'index.json');
    plantLink(index, join(repositoryDir(production, CONDA), 'index.json'));
    const before = snapshot(production);
    const refusal = `oci-layout:${staging}: linux-64/cdemo-pkg/index.json ${RULE}`;
    const repository = new LayoutStore(staging).repository('linux-64/cdemo-pkg');
    const tags = async () => {
      const out: string[] = [];
      for await (const tag of repository.listTags()) out.push(tag);
      return out;
    };
    await expect(tags()).rejects.toThrow(refusal);
    const again = await run({ command: 'upload', files: [fixturePath(CONDA)], to: `oci-layout:${staging}` });
    expect(again.artifacts[0]!.status).toBe('failed');
    expect(again.artifacts[0]!.error).toContain(refusal);
    const cleaned = await run({ command: 'clean', channel: `oci-layout:${staging}`, olderThanMs: 0 });
    expect(cleaned.artifacts.map((a) => a.status)).toEqual(['failed']);
    expect(cleaned.artifacts[0]!.error).toContain(refusal);
    expect(snapshot(production)).toEqual(before);
  });
});

describe('a link in a label path', () => {
  test('upload --label rc writes nothing through it; clean reports it and leaves production alone', async () => {
    mkdirSync(join(production, 'label', 'rc'), { recursive: true });
    const before = snapshot(production);
    plantLink(join(staging, 'label'), join(production, 'label'));
    const uploaded = await run({
      command: 'upload',
      files: [fixturePath(ZLIB)],
      to: `oci-layout:${staging}`,
      label: 'rc',
    });
    expect(uploaded.artifacts.map((a) => a.status)).toEqual(['failed']);
    expect(uploaded.artifacts[0]!.error).toContain(`oci-layout:${staging}: label ${RULE}`);
    expect(snapshot(production)).toEqual(before);

    const cleaned = await run({ command: 'clean', channel: `oci-layout:${staging}`, olderThanMs: 0 });
    expect(cleaned.artifacts.map((a) => `${a.repository}:${a.status}`)).toEqual(['label:failed']);
    expect(cleaned.artifacts[0]!.error).toBe(`oci-layout:${staging}: label ${RULE}`);
    expect(snapshot(production)).toEqual(before);
  });
});

describe('listing a channel', () => {
  test('a linked directory is reported and not descended into; a linked oci-layout file makes no repository', async () => {
    const staged = await run({ command: 'upload', files: [fixturePath(ZLIB)], to: `oci-layout:${staging}` });
    expect(staged.exitCode).toBe(0);
    plantLink(join(staging, 'noarch'), join(production, 'linux-64'));
    mkdirSync(join(staging, 'osx-64', 'cfake'), { recursive: true });
    symlinkSync(
      join(repositoryDir(production, CONDA), 'oci-layout'),
      join(staging, 'osx-64', 'cfake', 'oci-layout'),
    );
    const refused: [string, string][] = [];
    const names: string[] = [];
    for await (const name of new LayoutStore(staging).listRepositories('', {
      onRefused: (place, reason) => refused.push([place, reason.message]),
    }))
      names.push(name);
    expect(names).toEqual(['linux-64/clibzlib']);
    expect(refused).toEqual([
      ['noarch', `oci-layout:${staging}: noarch ${RULE}`],
      ['osx-64/cfake', `oci-layout:${staging}: osx-64/cfake/oci-layout ${RULE}`],
    ]);
  });

  test('the root may be a link: it is resolved once, and the channel works through it', async () => {
    const alias = join(work, `alias-${n}`);
    symlinkSync(staging, alias);
    const staged = await run({ command: 'upload', files: [fixturePath(ZLIB)], to: `oci-layout:${alias}` });
    expect(staged.exitCode).toBe(0);
    const manifest = readFileSync(
      join(
        repositoryDir(staging, ZLIB),
        'blobs',
        'sha256',
        digestHex(staged.artifacts[0]!.digest as `sha256:${string}`),
      ),
    );
    expect(
      parseImageManifest(manifest).layers.some((l) => l.digest === `sha256:${expectedOf(ZLIB).sha256}`),
    ).toBe(true);
    const cleaned = await run({ command: 'clean', channel: `oci-layout:${alias}`, olderThanMs: 0 });
    expect(cleaned.artifacts.map((a) => `${a.file}:${a.status}`)).toEqual([`${ZLIB}:deleted`]);
  });
});

describe('a directory swapped for a link while it is in use', () => {
  test('what follows still happens in the directory that was checked, never through the link', async () => {
    const root = join(work, `swap-${n}`);
    const outside = join(work, `outside-${n}`);
    mkdirSync(join(root, 'repo'), { recursive: true });
    mkdirSync(outside, { recursive: true });
    writeFileSync(join(outside, 'victim'), 'production bytes');
    writeFileSync(join(root, 'repo', 'victim'), 'staging bytes');
    const tree = new ConfinedTree(root, `oci-layout:${root}`);
    await tree.withDir(['repo'], async (dir) => {
      // Checked and open; now the attacker moves it away and puts a link into production there.
      renameSync(join(root, 'repo'), join(root, 'repo-moved'));
      symlinkSync(outside, join(root, 'repo'));
      await dir.remove('victim');
      await dir.writeNewFile('written', 'new');
    });
    expect(readFileSync(join(outside, 'victim'), 'utf8')).toBe('production bytes');
    expect(readdirSync(outside)).toEqual(['victim']);
    expect(readdirSync(join(root, 'repo-moved'))).toEqual(['written']);
    // And the next walk down refuses the link.
    await expect(tree.withDir(['repo'], async () => {})).rejects.toThrow(`oci-layout:${root}: repo ${RULE}`);
  });
});
