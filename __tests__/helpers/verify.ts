/**
 * Checks of what a channel really holds, for the reliability suites: every tag of every
 * repository resolves to a manifest whose blobs (and, for an index, child manifests) are all
 * present with their sizes; every package is byte-identical to its file; `latest` repodata lists
 * exactly the expected packages. Read through the store directly, never through a fault proxy.
 */
import { createHash } from 'node:crypto';
import { readPackageManifest } from '../../src/conda/artifact.js';
import { METADATA_KINDS, metadataJsonLayer } from '../../src/conda/metadata-artifact.js';
import { LATEST_TAG, packageReference } from '../../src/conda/naming.js';
import { mapLimit } from '../../src/util/map-limit.js';
import { manifestBlobs, parseImageIndex, parseImageManifest } from '../../src/oci/manifest.js';
import { MEDIA_TYPE_OCI_INDEX } from '../../src/oci/media-types.js';
import { channelPrefix, channelRepository, type Channel } from '../../src/conda/channel.js';
import type { Repository, Store } from '../../src/oci/storage.js';
import type { MadePackage } from './packages.js';

export interface StoreCheck {
  repositories: number;
  tags: number;
  blobs: number;
  /** One line per broken tag; empty when everything is complete. */
  problems: string[];
}

/** Every tag of every repository below `prefix` points at a complete manifest. */
export async function checkComplete(store: Store, prefix: string, concurrency = 8): Promise<StoreCheck> {
  const names: string[] = [];
  for await (const name of store.listRepositories(prefix)) names.push(name);
  return checkRepositories(store, names, concurrency);
}

/** Every tag of these repositories points at a complete manifest. */
export async function checkRepositories(
  store: Store,
  names: readonly string[],
  concurrency = 8,
): Promise<StoreCheck> {
  const check: StoreCheck = { repositories: names.length, tags: 0, blobs: 0, problems: [] };
  await mapLimit(names, concurrency, async (name) => {
    const repository = store.repository(name);
    for await (const tag of repository.listTags()) {
      check.tags++;
      const problem = await manifestProblem(repository, tag, check);
      if (problem) check.problems.push(`${name}:${tag}: ${problem}`);
    }
  });
  check.problems.sort();
  return check;
}

/** The tag points at a complete manifest: undefined, or what is wrong (absent counts as wrong). */
export async function tagProblem(store: Store, name: string, tag: string): Promise<string | undefined> {
  const check: StoreCheck = { repositories: 1, tags: 1, blobs: 0, problems: [] };
  const problem = await manifestProblem(store.repository(name), tag, check);
  return problem ? `${name}:${tag}: ${problem}` : undefined;
}

async function manifestProblem(
  repository: Repository,
  reference: string,
  check: StoreCheck,
): Promise<string | undefined> {
  let fetched;
  try {
    fetched = await repository.fetchManifest(reference);
  } catch (err) {
    return `manifest unreadable (${(err as Error).message})`;
  }
  if (fetched.descriptor.mediaType === MEDIA_TYPE_OCI_INDEX) {
    for (const child of parseImageIndex(fetched.bytes).manifests) {
      const problem = await manifestProblem(repository, child.digest, check);
      if (problem) return `index entry ${child.digest}: ${problem}`;
    }
    return undefined;
  }
  for (const blob of manifestBlobs(parseImageManifest(fetched.bytes))) {
    check.blobs++;
    const stat = await repository.statBlob(blob.digest);
    if (!stat) return `blob ${blob.digest} is missing`;
    if (stat.size !== blob.size) return `blob ${blob.digest} has ${stat.size} bytes, not ${blob.size}`;
  }
  return undefined;
}

async function sha256Of(stream: NodeJS.ReadableStream): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Each package is stored at its CEP name and tag, its package layer is its file byte for byte
 * (read back in full, verified), and its manifest is complete. Returns the problems.
 */
export async function checkPackages(
  store: Store,
  channel: Channel,
  packages: readonly MadePackage[],
): Promise<string[]> {
  const problems: string[] = [];
  await mapLimit(packages, 8, async (pkg) => {
    const ref = packageReference(pkg.subdir, pkg.name, pkg.version, pkg.build);
    const repository = store.repository(channelRepository(channel, ref.repository));
    const where = `${repository.name}:${ref.tag} (${pkg.file})`;
    try {
      const fetched = await repository.fetchManifest(ref.tag);
      const info = readPackageManifest(fetched.bytes, where);
      if (info.packageLayer.digest !== `sha256:${pkg.sha256}`) {
        problems.push(`${where}: package layer ${info.packageLayer.digest}, file sha256:${pkg.sha256}`);
        return;
      }
      const read = await sha256Of(await repository.openBlob(info.packageLayer));
      if (read !== pkg.sha256) problems.push(`${where}: the blob reads back as ${read}`);
      const check: StoreCheck = { repositories: 0, tags: 0, blobs: 0, problems: [] };
      const problem = await manifestProblem(repository, fetched.descriptor.digest, check);
      if (problem) problems.push(`${where}: ${problem}`);
    } catch (err) {
      problems.push(`${where}: ${(err as Error).message}`);
    }
  });
  return problems.sort();
}

/** The file names `latest` repodata.json of a subdir lists (both keys), or undefined if none. */
export async function latestRepodataFiles(
  store: Store,
  channel: Channel,
  subdir: string,
): Promise<string[] | undefined> {
  const kind = METADATA_KINDS.repodata;
  const repository = store.repository(channelRepository(channel, `${subdir}/${kind.component}`));
  if (!(await repository.resolve(LATEST_TAG))) return undefined;
  const { bytes } = await repository.fetchManifest(LATEST_TAG);
  const layer = metadataJsonLayer(bytes, kind, `${repository.name}:${LATEST_TAG}`);
  const json = JSON.parse(
    new TextDecoder().decode(await repository.readBlob({ digest: layer.digest, size: layer.size }, 1 << 30)),
  ) as { packages?: Record<string, unknown>; 'packages.conda'?: Record<string, unknown> };
  return [...Object.keys(json.packages ?? {}), ...Object.keys(json['packages.conda'] ?? {})].sort();
}

/** The channel's repository prefix, as `listRepositories` takes it. */
export function prefixOf(channel: Channel): string {
  return channelPrefix(channel);
}
