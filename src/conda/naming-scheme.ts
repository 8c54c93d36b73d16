/**
 * The naming scheme of a channel, chosen once from the `layout` input (README "Installing from a
 * channel we publish"): where each package and each repodata document lives.
 *
 * - `v1`: the CEP v1 names only (SPEC §3).
 * - `v1+v0` (`layout: both`): also the older v0 names that rattler, mamba and pixi read today:
 *   `<subdir>/<name>` (`zzz` before a leading `_`), tag `<version>-<build>` in the v0 spelling,
 *   holding the very manifest of the v1 name; and the v0 repodata documents.
 *
 * Commands ask for an artifact's locations and loop over them; the rules that keep v0 names out of
 * other packages' way live here, and only here. Everything in this module is pure.
 */
import { createHash } from 'node:crypto';
import { InvalidReferenceError, OciError } from '../oci/errors.js';
import {
  classifyComponent,
  decodeVersionOrBuild,
  isCondaBuild,
  isCondaVersion,
  packageReference,
  v0PackageReference,
  v0RepodataReference,
  LATEST_TAG,
  MAX_ENCODED_TAG_LENGTH,
  type OciName,
  type PackageIdentity,
} from './naming.js';

/** Where a package is stored, relative to the channel prefix. */
export interface PackageLocation extends OciName {
  scheme: 'v1' | 'v0';
  /**
   * The manifest's form there: `canonical`, the artifact itself; `pre-oci-1.1`, the same manifest
   * without `artifactType` (conda-oci-mirror's schema refuses it), over the same blobs.
   */
  form: ManifestForm;
}

export type ManifestForm = 'canonical' | 'pre-oci-1.1';

/** A copy of a subdir's repodata for readers of the older layout (always in the pre-OCI-1.1 form). */
export interface RepodataCopy extends OciName {
  /**
   * `all`: the v1 manifest's layers (JSON, zstd and gzip); `zstd`: only the zstd layer; `none`:
   * no repodata layer at all, so that a client probing for sharded repodata (pixi, rattler:
   * `repodata_shards.msgpack.zst:latest`) finds a manifest without the layer it wants and falls
   * back to repodata.json, instead of failing on the registry's 403 or 404 for a name that does
   * not exist.
   */
  layers: 'all' | 'zstd' | 'none';
}

export interface Naming {
  /** The value users give `layout`: `v1` or `both`. */
  readonly layout: 'v1' | 'both';
  /**
   * Every location of a package, the v1 one first. Throws NamingConflictError when a
   * compatibility name could take another package's place: nothing may be written then.
   * `unchecked`: the names as they would be, for clean-up of what an older writer left.
   */
  packageLocations(
    subdir: string,
    identity: PackageIdentity,
    how?: { unchecked?: boolean },
  ): PackageLocation[];
  /** The copies of `<subdir>/mrepodata.json` that older readers look for. */
  repodataCopies(subdir: string): RepodataCopy[];
  /** Components directly under a subdir that hold copies, not packages (listings pass over them). */
  readonly copyComponents: readonly string[];
}

/** A compatibility name that would land where another package's name is or could be. */
export class NamingConflictError extends OciError {
  override readonly code = 'NAMING_CONFLICT';
}

/**
 * mamba's OCI mirror asks for `<subdir>/<file>:latest` and takes the first layer, also for
 * `repodata.json.zst`; rattler takes `<subdir>/repodata.json:latest` and picks the layer by media
 * type, and with sharded repodata on (pixi's default) first asks for
 * `<subdir>/repodata_shards.msgpack.zst:latest`.
 */
export const V0_REPODATA = 'repodata.json';
export const V0_REPODATA_ZST = 'repodata.json.zst';
export const V0_SHARDS = 'repodata_shards.msgpack.zst';
const V0_COPY_COMPONENTS = [V0_REPODATA, V0_REPODATA_ZST, V0_SHARDS] as const;

/** Referrers tag-schema fallback tags (and the cosign-style suffixed tags beside them). */
const REFERRER_TAG = /^sha256-[0-9a-f]{64}(?:\..+)?$/;

function v1Location(subdir: string, identity: PackageIdentity): PackageLocation {
  const { repository, tag } = packageReference(subdir, identity.name, identity.version, identity.build);
  return { scheme: 'v1', repository, tag, form: 'canonical' };
}

/**
 * A v0 tag longer than the OCI grammar allows gets a deterministic short form: its first 110
 * characters, `-h` and 16 hex of its SHA-256. v0 has no rule for this; rattler fetches a v0
 * package's blob by its sha256 from `<subdir>/<name>` (no tag needed) and mamba computes tags
 * it could not have stored anyway, so any deterministic tag that keeps the manifest (and its
 * blobs) alive in the repository serves them.
 */
function shortV0Tag(tag: string): string {
  if (tag.length <= MAX_ENCODED_TAG_LENGTH) return tag;
  return `${tag.slice(0, MAX_ENCODED_TAG_LENGTH - 18)}-h${createHash('sha256').update(tag).digest('hex').slice(0, 16)}`;
}

/** True when a conforming v1 writer could store some package at `component:tag`. */
function couldBeV1Name(component: string, tag: string): boolean {
  const kind = classifyComponent(component);
  if (kind === 'metadata' || kind === 'hashed-package') return true;
  if (kind !== 'package') return false;
  const parts = tag.split('-');
  if (parts.length !== 2) return false;
  try {
    return isCondaVersion(decodeVersionOrBuild(parts[0]!)) && isCondaBuild(decodeVersionOrBuild(parts[1]!));
  } catch {
    return false; // not a v1 encoding: no v1 writer puts anything there
  }
}

/**
 * The v0 location of a package, or why it cannot have one. A v0 name is refused when it could be
 * another package's v1 name and tag (`cmake 4.5 h0__0` is `cmake:4.5-h0__0`, which is the v1
 * name of `make 4.5 h0_0`), a v1 metadata repository, a v0 repodata document, or a referrers
 * fallback tag (`sha256-<hex>`, which holds the referrers index of another manifest).
 */
export function v0Location(subdir: string, identity: PackageIdentity, unchecked = false): PackageLocation {
  const reference = v0PackageReference(subdir, identity.name, identity.version, identity.build);
  const { repository } = reference;
  const tag = shortV0Tag(reference.tag);
  if (unchecked) return { scheme: 'v0', repository, tag, form: 'pre-oci-1.1' };
  const component = repository.slice(subdir.length + 1);
  const ours = `${identity.name} ${identity.version} ${identity.build}`;
  const refuse = (why: string): never => {
    throw new NamingConflictError(
      `the v0 name ${repository}:${tag} of ${ours} ${why}; it is not written (layout both)`,
    );
  };
  if ((V0_COPY_COMPONENTS as readonly string[]).includes(component))
    refuse(`is where the v0 repodata of ${subdir} lives`);
  if (REFERRER_TAG.test(tag)) refuse('is a referrers fallback tag');
  if (couldBeV1Name(component, tag)) refuse('could be the v1 name of another package');
  return { scheme: 'v0', repository, tag, form: 'pre-oci-1.1' };
}

export const NAMING_V1: Naming = {
  layout: 'v1',
  packageLocations: (subdir, identity) => [v1Location(subdir, identity)],
  repodataCopies: () => [],
  copyComponents: [],
};

export const NAMING_V1_V0: Naming = {
  layout: 'both',
  packageLocations: (subdir, identity, how) => [
    v1Location(subdir, identity),
    v0Location(subdir, identity, how?.unchecked),
  ],
  repodataCopies: (subdir) => {
    const repodata = v0RepodataReference(subdir);
    return [
      { ...repodata, layers: 'all' },
      { repository: `${subdir}/${V0_REPODATA_ZST}`, tag: LATEST_TAG, layers: 'zstd' },
      { repository: `${subdir}/${V0_SHARDS}`, tag: LATEST_TAG, layers: 'none' },
    ];
  },
  copyComponents: V0_COPY_COMPONENTS,
};

export function parseNaming(value: string): Naming {
  const layout = value.trim().toLowerCase();
  if (layout === 'v1') return NAMING_V1;
  if (layout === 'both') return NAMING_V1_V0;
  throw new InvalidReferenceError(`must be v1 or both, not "${value}"`);
}

/**
 * True when `repository:tag` (a full repository name ending in `<subdir>/<component>`) is exactly
 * the v0 name of the package `identity`: someone's v0 name that looks like a v1 name (written
 * before such names were refused, or by another tool). Listings of v1 names pass over it.
 */
export function isV0NameOf(
  repository: string,
  subdir: string,
  tag: string,
  identity: PackageIdentity,
): boolean {
  try {
    const v0 = v0Location(subdir, identity, true);
    return v0.tag === tag && (repository === v0.repository || repository.endsWith(`/${v0.repository}`));
  } catch {
    return false;
  }
}

/**
 * The name that owns a package for the owners map: `_x` and `zzz_x` share one v0 repository
 * (`zzz_x`), so they count as one name.
 */
export function ownershipName(name: string): string {
  return name.startsWith('zzz_') ? name.slice(3) : name;
}
