/**
 * A package's further locations under the channel's naming scheme (src/conda/naming-scheme.ts):
 * with `layout: both`, its v0 name, which holds the very manifest of the v1 name (same bytes,
 * same digest), its blobs mounted from the v1 repository, never uploaded a second time.
 *
 * A location that holds another package is never overwritten: whoever reads a channel takes names
 * from manifest annotations, not from where a manifest sits.
 */
import { readPackageManifest, withoutArtifactType } from '../conda/artifact.js';
import { channelRepository, formatReference, type Channel } from '../conda/channel.js';
import type { PackageIdentity } from '../conda/naming.js';
import type { ManifestForm, Naming, PackageLocation } from '../conda/naming-scheme.js';
import { copyManifestBlobs } from '../oci/copy.js';
import { digestOf, type Digest } from '../oci/digest.js';
import { NotFoundError, OciError } from '../oci/errors.js';
import type { ManifestBytes } from '../oci/manifest.js';
import type { Store } from '../oci/storage.js';

/** A location is taken by other content: never overwritten. */
export class LocationConflictError extends OciError {
  override readonly code = 'LOCATION_CONFLICT';
}

/** A location in a channel: full repository name, tag, and `host/repository:tag` for people. */
export interface Place {
  scheme: PackageLocation['scheme'];
  form: ManifestForm;
  repository: string;
  tag: string;
  reference: string;
}

/** The manifest as it is stored at a place (naming-scheme.ts: the place's form). */
export function manifestAt(where: Pick<Place, 'form'>, manifest: ManifestBytes): ManifestBytes {
  return where.form === 'pre-oci-1.1' ? withoutArtifactType(manifest) : manifest;
}

/** The digest the manifest has at a place. */
export function digestAt(where: Pick<Place, 'form'>, manifest: ManifestBytes): Digest {
  return digestOf(manifestAt(where, manifest).bytes);
}

/** What counts as this manifest at a place: its form there, or itself (as earlier versions wrote it). */
function digestsAt(where: Pick<Place, 'form'>, manifest: ManifestBytes): Set<string> {
  return new Set([digestAt(where, manifest), digestOf(manifest.bytes)]);
}

export function place(channel: Channel, location: PackageLocation): Place {
  const repository = channelRepository(channel, location.repository);
  return {
    scheme: location.scheme,
    form: location.form,
    repository,
    tag: location.tag,
    reference: formatReference(channel, repository, location.tag),
  };
}

/** Every place of a package in a channel, v1 first (throws before any I/O when one is unsafe). */
export function places(naming: Naming, channel: Channel, subdir: string, identity: PackageIdentity): Place[] {
  return naming.packageLocations(subdir, identity).map((l) => place(channel, l));
}

/**
 * The further places of a package for clean-up, also those the scheme would refuse today (an
 * older writer may have used them): deleting only ever removes a manifest with the exact digest.
 */
export function furtherPlaces(
  naming: Naming,
  channel: Channel,
  subdir: string,
  identity: PackageIdentity,
): Place[] {
  return naming
    .packageLocations(subdir, identity, { unchecked: true })
    .slice(1)
    .map((l) => place(channel, l));
}

/** What a place holds, compared with the manifest that belongs there. */
export type PlaceState =
  | { kind: 'free' }
  | { kind: 'same'; digest: string }
  /** The same package (name, version, build) with other bytes. */
  | { kind: 'other-build'; digest: string }
  /** Another package (a name collision), or something that is not a package at all. */
  | { kind: 'other-package'; digest: string; held: string };

function describeIdentity(identity: PackageIdentity): string {
  return `${identity.name} ${identity.version} ${identity.build}`;
}

/** Reads what a place holds: one HEAD, plus a manifest GET only when it holds something else. */
export async function inspectPlace(
  store: Store,
  where: Place,
  identity: PackageIdentity,
  manifest: ManifestBytes,
): Promise<PlaceState> {
  const repository = store.repository(where.repository);
  const current = await repository.resolve(where.tag);
  if (!current) return { kind: 'free' };
  if (digestsAt(where, manifest).has(current.digest)) return { kind: 'same', digest: current.digest };
  let held: PackageIdentity;
  try {
    held = readPackageManifest((await repository.fetchManifest(current.digest)).bytes, where.reference);
  } catch (err) {
    if (err instanceof NotFoundError) return { kind: 'free' }; // deleted in between
    return { kind: 'other-package', digest: current.digest, held: 'something that is not a conda package' };
  }
  if (held.name === identity.name && held.version === identity.version && held.build === identity.build)
    return { kind: 'other-build', digest: current.digest };
  return { kind: 'other-package', digest: current.digest, held: describeIdentity(held) };
}

/** The refusal for a place that holds other content, naming both packages. */
export function conflictError(
  where: Place,
  identity: PackageIdentity,
  state: PlaceState,
): LocationConflictError {
  const ours = describeIdentity(identity);
  if (state.kind === 'other-package') {
    return new LocationConflictError(
      `${where.scheme} name ${where.reference} of ${ours} already holds ${state.held} (${state.digest}); ` +
        `it is not overwritten, so ${ours} cannot be published there`,
    );
  }
  if (state.kind === 'other-build') {
    return new LocationConflictError(
      `${where.reference} already holds other bytes of ${ours} (${state.digest}); published names never move`,
    );
  }
  return new LocationConflictError(`${where.reference} of ${ours} is not what was expected`);
}

/**
 * Puts `manifest` at a further place: its blobs mounted from `from` (a repository of the same
 * store), then the manifest under each tag, then read back. Returns the bytes sent (0 when every
 * mount succeeded).
 */
export async function writeCopy(
  store: Store,
  from: string,
  where: Pick<Place, 'repository' | 'tag' | 'reference'>,
  manifest: ManifestBytes,
  tags: string[] = [where.tag],
): Promise<number> {
  const source = { store, repository: store.repository(from) };
  const target = { store, repository: store.repository(where.repository) };
  const blobs = await copyManifestBlobs(source, target, manifest);
  let digest: string | undefined;
  for (const tag of tags) digest = (await target.repository.pushManifest(manifest, tag)).descriptor.digest;
  const now = await target.repository.resolve(where.tag);
  if (now?.digest !== digest) {
    throw new LocationConflictError(
      `${where.reference} points to ${now?.digest ?? 'nothing'} after the push, not ${digest}`,
    );
  }
  return blobs.reduce((sum, b) => sum + b.bytesSent, 0);
}

/** Removes the manifest at a place if it holds this very manifest (staging clean-up). */
export async function deleteIfHolds(store: Store, where: Place, manifest: ManifestBytes): Promise<boolean> {
  const repository = store.repository(where.repository);
  const current = await repository.resolve(where.tag);
  if (!current || !digestsAt(where, manifest).has(current.digest)) return false;
  await repository.deleteManifest(current.digest);
  return true;
}
