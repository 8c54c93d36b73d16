/**
 * The v0 compatibility layout (SPEC §3, last bullet): with `layout: both`, every package is also
 * reachable under its v0 name (conda-oci-mirror, ghcr.io/channel-mirrors), which is what today's
 * clients read: rattler/pixi and mamba fetch `<channel>/<subdir>/repodata.json:latest` and then
 * the package blob by the sha256 that repodata lists, from `<channel>/<subdir>/<name>`.
 *
 * - The v0 name holds the very manifest of the v1 name (same bytes, same digest); its blobs are
 *   mounted from the v1 repository, never uploaded a second time.
 * - v0 names collide with v1 names: the v0 repository of `cmake` is `<subdir>/cmake`, the v1
 *   repository of `make`. A v0 tag that holds another package is never overwritten; whoever reads
 *   a channel takes names from manifest annotations, not from where a manifest sits.
 */
import { artifactManifest } from '../oci/artifact.js';
import { ANNOTATION_SCHEMA, readPackageManifest } from '../conda/artifact.js';
import {
  LATEST_TAG,
  v0PackageReference,
  v0RepodataReference,
  type PackageIdentity,
} from '../conda/naming.js';
import { MEDIA_TYPE_REPODATA, SUFFIX_ZSTD } from '../conda/metadata-artifact.js';
import { copyManifestBlobs } from '../oci/copy.js';
import type { Digest } from '../oci/digest.js';
import { InvalidReferenceError, NotFoundError, OciError } from '../oci/errors.js';
import { descriptorOf, parseImageManifest, type ManifestBytes } from '../oci/manifest.js';
import { MEDIA_TYPE_OCI_MANIFEST } from '../oci/media-types.js';
import { channelRepository, formatReference, type Channel } from '../conda/channel.js';
import type { Repository, Store } from '../oci/storage.js';
import type { ArtifactResult, Reporter } from './report.js';

/** `v1`: the CEP v1 names only. `both`: v1, plus the v0 names today's clients read. */
export type Layout = 'v1' | 'both';

export const LAYOUTS: readonly Layout[] = ['v1', 'both'];

export function parseLayout(value: string, what = 'layout'): Layout {
  const layout = value.trim().toLowerCase();
  if ((LAYOUTS as readonly string[]).includes(layout)) return layout as Layout;
  throw new InvalidReferenceError(`${what} must be v1 or both, not "${value}"`);
}

/** A v0 name is taken by other content: never overwritten. */
export class LayoutConflictError extends OciError {
  override readonly code = 'LAYOUT_CONFLICT';
}

/** Where a package's v0 name is. */
export interface V0Name {
  /** Full repository name (with the channel prefix). */
  repository: string;
  tag: string;
  /** `host/repository:tag`, for people. */
  reference: string;
}

export function v0Name(channel: Channel, subdir: string, identity: PackageIdentity): V0Name {
  const ref = v0PackageReference(subdir, identity.name, identity.version, identity.build);
  const repository = channelRepository(channel, ref.repository);
  return { repository, tag: ref.tag, reference: formatReference(channel, repository, ref.tag) };
}

function describeIdentity(identity: PackageIdentity): string {
  return `${identity.name} ${identity.version} ${identity.build}`;
}

/** What a v0 tag holds, compared with the manifest that belongs there. */
export type V0State =
  | { kind: 'free' }
  | { kind: 'same'; digest: string }
  /** The same package (name, version, build) with other bytes. */
  | { kind: 'other-build'; digest: string }
  /** Another package (the name collision), or something that is not a package at all. */
  | { kind: 'other-package'; digest: string; held: string };

/** Reads what `name` holds: one HEAD, plus a manifest GET only when it holds something else. */
export async function inspectV0(
  store: Store,
  name: V0Name,
  identity: PackageIdentity,
  digest: string,
): Promise<V0State> {
  const repository = store.repository(name.repository);
  const current = await repository.resolve(name.tag);
  if (!current) return { kind: 'free' };
  if (current.digest === digest) return { kind: 'same', digest };
  let held: PackageIdentity;
  try {
    held = readPackageManifest((await repository.fetchManifest(current.digest)).bytes, name.reference);
  } catch (err) {
    if (err instanceof NotFoundError) return { kind: 'free' }; // deleted in between
    return { kind: 'other-package', digest: current.digest, held: 'something that is not a conda package' };
  }
  if (held.name === identity.name && held.version === identity.version && held.build === identity.build)
    return { kind: 'other-build', digest: current.digest };
  return { kind: 'other-package', digest: current.digest, held: describeIdentity(held) };
}

/** The refusal for a v0 tag that holds other content, naming both packages. */
export function conflictError(name: V0Name, identity: PackageIdentity, state: V0State): LayoutConflictError {
  const ours = describeIdentity(identity);
  if (state.kind === 'other-package') {
    return new LayoutConflictError(
      `v0 name ${name.reference} of ${ours} already holds ${state.held} (${state.digest}): v0 and v1 names ` +
        `collide there (the v0 repository of a package "c…" is the v1 repository of the package without the "c"); ` +
        `it is not overwritten, so ${ours} cannot be published in layout both`,
    );
  }
  if (state.kind === 'other-build') {
    return new LayoutConflictError(
      `v0 name ${name.reference} already holds other bytes of ${ours} (${state.digest}); published names never move`,
    );
  }
  return new LayoutConflictError(`v0 name ${name.reference} of ${ours} is not what was expected`);
}

/**
 * Puts `manifest` under the v0 name: its blobs mounted from `from` (a repository of the same
 * store), then the manifest under the v0 tag, then read back. Returns the bytes sent (0 when
 * every mount succeeded).
 */
export async function writeV0(
  store: Store,
  from: string,
  name: V0Name,
  manifest: ManifestBytes,
  tags: string[] = [name.tag],
): Promise<number> {
  const source = { store, repository: store.repository(from) };
  const target = { store, repository: store.repository(name.repository) };
  const blobs = await copyManifestBlobs(source, target, manifest);
  let digest: string | undefined;
  for (const tag of tags) digest = (await target.repository.pushManifest(manifest, tag)).descriptor.digest;
  const now = await target.repository.resolve(name.tag);
  if (now?.digest !== digest) {
    throw new LayoutConflictError(
      `${name.reference} points to ${now?.digest ?? 'nothing'} after the push, not ${digest}`,
    );
  }
  return blobs.reduce((sum, b) => sum + b.bytesSent, 0);
}

/**
 * True when `repository:tag` (a full repository name ending in `<subdir>/<component>`) is exactly
 * the v0 name of the package `identity`, i.e. someone's v0 name that looks like a v1 name.
 */
export function isV0NameOf(
  repository: string,
  subdir: string,
  tag: string,
  identity: PackageIdentity,
): boolean {
  try {
    const v0 = v0PackageReference(subdir, identity.name, identity.version, identity.build);
    return v0.tag === tag && (repository === v0.repository || repository.endsWith(`/${v0.repository}`));
  } catch {
    return false;
  }
}

/** Removes the v0 name of an artifact if it holds exactly `digest` (staging clean-up). */
export async function deleteV0(store: Store, name: V0Name, digest: Digest): Promise<boolean> {
  const repository = store.repository(name.repository);
  if ((await repository.resolve(name.tag))?.digest !== digest) return false;
  await repository.deleteManifest(digest);
  return true;
}

/**
 * upload, layout both: puts a staged artifact under its v0 name too. Staging is a waiting room:
 * other bytes of the same package there are replaced, as the v1 tag is; another package's are
 * not (LayoutConflictError, the artifact fails).
 */
export async function stageV0(
  result: ArtifactResult,
  channel: Channel,
  store: Store,
  reporter: Reporter,
): Promise<ArtifactResult> {
  if ((result.status !== 'uploaded' && result.status !== 'exists') || !result.digest || !result.repository)
    return result;
  const identity = { name: result.name!, version: result.version!, build: result.build! };
  const name = v0Name(channel, result.subdir, identity);
  const state = await inspectV0(store, name, identity, result.digest);
  if (state.kind === 'same') return { ...result, v0Reference: name.reference };
  if (state.kind === 'other-package') throw conflictError(name, identity, state);
  const fetched = await store.repository(result.repository).fetchManifest(result.digest);
  const sent = await writeV0(store, result.repository, name, {
    mediaType: fetched.descriptor.mediaType,
    bytes: fetched.bytes,
  });
  reporter.info(`${result.file}: also staged as ${name.reference} (v0 name, blobs mounted)`);
  return { ...result, v0Reference: name.reference, bytesSent: (result.bytesSent ?? 0) + sent };
}

// ---------------------------------------------------------------------------------------------
// Repodata

/**
 * mamba's OCI mirror asks for `<subdir>/<file>:latest` and takes the first layer, also for
 * `repodata.json.zst`; rattler takes `<subdir>/repodata.json:latest` and picks the layer by media
 * type (`…+json`, `…+json+zst`, `…+json+gzip`, `…+json+bz2`).
 */
export const V0_REPODATA_ZST = 'repodata.json.zst';

export interface V0RepodataOutcome {
  repository: string;
  reference: string;
  digest: string;
  status: 'uploaded' | 'exists';
  bytesSent: number;
}

/**
 * Publishes the v0 repodata of a subdir from the v1 `mrepodata.json` manifest `v1Digest`:
 * `<subdir>/repodata.json` gets the same manifest (JSON, zstd and gzip layers, JSON first), and
 * `<subdir>/repodata.json.zst` a manifest whose only layer is the zstd one. Each under `latest`
 * and `timestampTag`; an unchanged one costs one HEAD.
 */
export async function publishV0Repodata(
  store: Store,
  channel: Channel,
  subdir: string,
  v1Repository: string,
  v1Digest: string,
  timestampTag: string,
): Promise<V0RepodataOutcome[]> {
  const source = store.repository(v1Repository);
  let manifest: ManifestBytes | undefined;
  const v1Manifest = async (): Promise<ManifestBytes> => {
    if (!manifest) {
      const fetched = await source.fetchManifest(v1Digest);
      manifest = { mediaType: fetched.descriptor.mediaType, bytes: fetched.bytes };
    }
    return manifest;
  };
  const repodataName = channelRepository(channel, v0RepodataReference(subdir).repository);
  const zstName = channelRepository(channel, `${subdir}/${V0_REPODATA_ZST}`);
  const outcomes: V0RepodataOutcome[] = [];
  outcomes.push(
    await publishMetadataCopy(store, channel, source.name, repodataName, v1Digest, v1Manifest, timestampTag),
  );
  // The zstd-only manifest is derived from the v1 one: its digest is known only once that is read,
  // so an unchanged subdir still costs one HEAD here and one GET of the (small) v1 manifest.
  const zstManifest = zstdOnly((await v1Manifest()).bytes, `${v1Repository}@${v1Digest}`);
  outcomes.push(
    await publishMetadataCopy(
      store,
      channel,
      source.name,
      zstName,
      descriptorOf(MEDIA_TYPE_OCI_MANIFEST, zstManifest.bytes).digest,
      async () => zstManifest,
      timestampTag,
    ),
  );
  return outcomes;
}

async function publishMetadataCopy(
  store: Store,
  channel: Channel,
  from: string,
  repositoryName: string,
  digest: string,
  manifest: () => Promise<ManifestBytes>,
  timestampTag: string,
): Promise<V0RepodataOutcome> {
  const repository: Repository = store.repository(repositoryName);
  const reference = formatReference(channel, repositoryName, LATEST_TAG);
  const current = await repository.resolve(LATEST_TAG);
  if (current?.digest === digest)
    return { repository: repositoryName, reference, digest, status: 'exists', bytesSent: 0 };
  const bytesSent = await writeV0(
    store,
    from,
    { repository: repositoryName, tag: LATEST_TAG, reference },
    await manifest(),
    [timestampTag, LATEST_TAG],
  );
  return { repository: repositoryName, reference, digest, status: 'uploaded', bytesSent };
}

function zstdOnly(v1ManifestBytes: Uint8Array, what: string): ManifestBytes {
  const v1 = parseImageManifest(v1ManifestBytes, what);
  const zst = v1.layers.find((l) => l.mediaType === `${MEDIA_TYPE_REPODATA}${SUFFIX_ZSTD}`);
  if (!zst) throw new NotFoundError(`${what} has no ${MEDIA_TYPE_REPODATA}${SUFFIX_ZSTD} layer`);
  return artifactManifest({
    artifactType: MEDIA_TYPE_REPODATA,
    layers: [zst],
    annotations: { [ANNOTATION_SCHEMA]: '1' },
  });
}
