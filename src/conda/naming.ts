/**
 * Conda artifact names and the OCI names they are stored under (SPEC §3).
 *
 * - v1: the draft conda CEP "OCI registries as conda channels"
 *   (https://github.com/conda/ceps/pull/115): `<subdir>/c<name>:<enc version>-<enc build>`, hashed
 *   with SHA-256 past 64 (name) or 128 (tag) characters.
 * - v0: the older layout of conda-oci-mirror and ghcr.io/channel-mirrors (CEP PR #70), which
 *   today's clients (rattler, mamba, pixi) read; written only in the compatibility mode.
 *
 * Repositories returned here are relative to the channel prefix (see `channelRepository` in
 * `src/oci/reference.ts`). Everything here is pure; bad input throws InvalidReferenceError.
 */
import { createHash } from 'node:crypto';
import { InvalidReferenceError } from '../oci/errors.js';
import { isPathComponent, isTag } from '../oci/reference.js';
import { checkSubdir } from './channel.js';

// ---------------------------------------------------------------------------------------------
// Conda names

export type ArtifactExtension = 'conda' | 'tar.bz2';

export const ARTIFACT_EXTENSIONS: readonly ArtifactExtension[] = ['conda', 'tar.bz2'];

/** The parts of `<name>-<version>-<build>.<ext>`. */
export interface ArtifactFileName {
  name: string;
  version: string;
  build: string;
  ext: ArtifactExtension;
  fileName: string;
}

const NAME_START = /^[a-z0-9_]/;
const NAME_CHARS = /^[a-z0-9_.-]+$/;
const VERSION_CHARS = /^[A-Za-z0-9_.+!]+$/;
const BUILD_CHARS = /^[A-Za-z0-9_.+]+$/;

function firstOffending(value: string, allowed: RegExp): string {
  for (const ch of value) if (!allowed.test(ch)) return ch;
  return '';
}

function describeChar(ch: string): string {
  return /^[\x21-\x7e]$/.test(ch)
    ? `"${ch}"`
    : `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Why `name` is not a conda package name, or undefined when it is one. */
function nameProblem(name: string): string | undefined {
  if (name === '') return 'the package name is empty';
  if (!NAME_CHARS.test(name)) {
    const bad = describeChar(firstOffending(name, /[a-z0-9_.-]/));
    return `the package name "${name}" contains ${bad}; conda allows only a-z, 0-9, "_", "." and "-"`;
  }
  if (!NAME_START.test(name)) return `the package name "${name}" must start with a-z, 0-9 or "_"`;
  return undefined;
}

/** Why `version` is not a conda version, or undefined when it is one. */
function versionProblem(version: string): string | undefined {
  if (version === '') return 'the version is empty';
  if (!VERSION_CHARS.test(version)) {
    const bad = describeChar(firstOffending(version, /[A-Za-z0-9_.+!]/));
    return `the version "${version}" contains ${bad}; conda allows only letters, digits, "_", ".", "+" and "!"`;
  }
  if (version.indexOf('!') !== version.lastIndexOf('!')) {
    return `the version "${version}" has more than one "!" (the epoch separator)`;
  }
  // Conda refuses it too ("empty version component"), and the OCI tag grammar cannot start with ".".
  if (version.startsWith('.')) return `the version "${version}" starts with "."`;
  return undefined;
}

/** Why `build` is not a conda build string, or undefined when it is one. */
function buildProblem(build: string): string | undefined {
  if (build === '') return 'the build string is empty';
  if (!BUILD_CHARS.test(build)) {
    const bad = describeChar(firstOffending(build, /[A-Za-z0-9_.+]/));
    return `the build string "${build}" contains ${bad}; conda allows only letters, digits, "_", "." and "+"`;
  }
  return undefined;
}

export function isCondaName(name: string): boolean {
  return nameProblem(name) === undefined;
}

export function isCondaVersion(version: string): boolean {
  return versionProblem(version) === undefined;
}

export function isCondaBuild(build: string): boolean {
  return buildProblem(build) === undefined;
}

function packageProblem(name: string, version: string, build: string): string | undefined {
  return nameProblem(name) ?? versionProblem(version) ?? buildProblem(build);
}

function checkPackage(name: string, version: string, build: string): void {
  const problem = packageProblem(name, version, build);
  if (problem !== undefined) {
    throw new InvalidReferenceError(
      `package "${name}" (version "${version}", build "${build}") is not valid: ${problem}`,
    );
  }
}

function fileNameError(fileName: string, problem: string): InvalidReferenceError {
  return new InvalidReferenceError(`conda artifact file name "${fileName}" is not valid: ${problem}`);
}

/**
 * Splits `<name>-<version>-<build>.<ext>` on the last two dashes of the stem (names may contain
 * dashes, versions and build strings may not).
 */
export function parseArtifactFileName(fileName: string): ArtifactFileName {
  if (/[/\\]/.test(fileName)) throw fileNameError(fileName, 'expected a bare file name, without a directory');
  const ext = ARTIFACT_EXTENSIONS.find((e) => fileName.endsWith(`.${e}`));
  if (ext === undefined) throw fileNameError(fileName, 'the extension must be .conda or .tar.bz2');
  const stem = fileName.slice(0, fileName.length - ext.length - 1);
  const buildDash = stem.lastIndexOf('-');
  const versionDash = buildDash > 0 ? stem.lastIndexOf('-', buildDash - 1) : -1;
  if (versionDash < 0) throw fileNameError(fileName, `expected <name>-<version>-<build>.${ext}`);
  const name = stem.slice(0, versionDash);
  const version = stem.slice(versionDash + 1, buildDash);
  const build = stem.slice(buildDash + 1);
  const problem = packageProblem(name, version, build);
  if (problem !== undefined) throw fileNameError(fileName, problem);
  return { name, version, build, ext, fileName };
}

/** `<name>-<version>-<build>.<ext>`, the inverse of parseArtifactFileName. */
export function artifactFileName(
  name: string,
  version: string,
  build: string,
  ext: ArtifactExtension,
): string {
  checkPackage(name, version, build);
  if (!ARTIFACT_EXTENSIONS.includes(ext)) {
    throw new InvalidReferenceError(`extension "${String(ext)}" is not valid: expected conda or tar.bz2`);
  }
  return `${name}-${version}-${build}.${ext}`;
}

// ---------------------------------------------------------------------------------------------
// CEP v1

/** An OCI repository (relative to the channel prefix) and tag. */
export interface OciName {
  repository: string;
  tag: string;
}

export interface PackageReference extends OciName {
  /** True when the name and tag are `h<sha256>` (they are hashed together or not at all). */
  hashed: boolean;
}

export interface PackageIdentity {
  name: string;
  version: string;
  build: string;
}

export type DecodedPackageReference = (PackageIdentity & { hashed: false }) | { hashed: true };

export type ComponentKind = 'package' | 'hashed-package' | 'metadata' | 'reserved';

/** An encoded name longer than this is hashed. */
export const MAX_ENCODED_NAME_LENGTH = 64;
/** A tag longer than this is hashed (it is also the OCI tag grammar's limit). */
export const MAX_ENCODED_TAG_LENGTH = 128;

/** Subdir-level metadata repositories (the `m…` namespace). */
export const METADATA_COMPONENTS = [
  'mrepodata.json',
  'mcurrent_repodata.json',
  'mrepodata_from_packages.json',
  'mrun_exports.json',
  'mpatch_instructions.json',
] as const;

export type MetadataComponent = (typeof METADATA_COMPONENTS)[number];

/** The channel-level repository `<channel path>/channeldata.json`. */
export const CHANNELDATA_COMPONENT = 'channeldata.json';

/** The tag of the metadata copy in use; older copies are tagged `YYYYMMDDThhmmssZ`. */
export const LATEST_TAG = 'latest';

const HASHED_PATTERN = /^h[0-9a-f]{64}$/;
const ENCODED_CHARS = /^[A-Za-z0-9_.]*$/;
/** Referrers tag-schema fallback tags, and the cosign-style `.sig`/`.att`/`.sbom` tags next to them. */
const REFERRER_TAG_PATTERN = /^sha256-[0-9a-f]{64}(?:\..+)?$/;

function hashedForm(value: string): string {
  return `h${createHash('sha256').update(value, 'utf8').digest('hex')}`;
}

/** `c` + the conda name: `numpy` -> `cnumpy`, `_libgcc_mutex` -> `c_libgcc_mutex`. */
export function encodePackageName(name: string): string {
  return `c${name}`;
}

/** Applies, in this order, `_`->`__`, `+`->`_P`, `!`->`_N`. */
export function encodeVersionOrBuild(value: string): string {
  return value.replaceAll('_', '__').replaceAll('+', '_P').replaceAll('!', '_N');
}

/**
 * The exact inverse of encodeVersionOrBuild. The encoding maps each character on its own
 * (`_`, `+`, `!` to two-character codes that all start with `_`, everything else to itself),
 * so reading left to right, an `_` always starts a pair: `__` -> `_`, `_P` -> `+`, `_N` -> `!`.
 * Replacing `_N`, `_P`, `__` string-wide in that order would not be an inverse: `a_P` encodes to
 * `a__P`, which such replacements turn into `a_+`.
 */
export function decodeVersionOrBuild(encoded: string): string {
  if (!ENCODED_CHARS.test(encoded)) {
    throw new InvalidReferenceError(
      `"${encoded}" is not an OCI-encoded version or build string: it may only contain letters, digits, "_" and "."`,
    );
  }
  let decoded = '';
  for (let i = 0; i < encoded.length; i++) {
    const ch = encoded[i]!;
    if (ch !== '_') {
      decoded += ch;
      continue;
    }
    const next = encoded[i + 1];
    const original = next === '_' ? '_' : next === 'P' ? '+' : next === 'N' ? '!' : undefined;
    if (original === undefined) {
      throw new InvalidReferenceError(
        `"${encoded}" is not an OCI-encoded version or build string: "_" at position ${i} is not followed by "_", "P" or "N"`,
      );
    }
    decoded += original;
    i++;
  }
  return decoded;
}

interface EncodedPackage {
  component: string;
  tag: string;
  hashed: boolean;
}

function encodePackage(name: string, version: string, build: string): EncodedPackage {
  checkPackage(name, version, build);
  const encodedName = encodePackageName(name);
  // Checked whatever the length, so that whether a name can be stored never depends on hashing.
  if (!isPathComponent(encodedName)) {
    throw new InvalidReferenceError(
      `package name "${name}" cannot be stored in an OCI registry: "${encodedName}" does not match the OCI ` +
        'path-component grammar [a-z0-9]+((.|_|__|-+)[a-z0-9]+)* (a separator must sit between letters or digits)',
    );
  }
  const tag = `${encodeVersionOrBuild(version)}-${encodeVersionOrBuild(build)}`;
  if (encodedName.length > MAX_ENCODED_NAME_LENGTH || tag.length > MAX_ENCODED_TAG_LENGTH) {
    return { component: hashedForm(encodedName), tag: hashedForm(tag), hashed: true };
  }
  if (!isTag(tag)) {
    throw new InvalidReferenceError(
      `package "${name}" (version "${version}", build "${build}") cannot be stored in an OCI registry: tag "${tag}" does not match the OCI tag grammar`,
    );
  }
  return { component: encodedName, tag, hashed: false };
}

/**
 * The v1 repository (`<subdir>/<encoded name>`, relative to the channel prefix) and tag of a
 * package. If the encoded name exceeds 64 characters or the tag 128, both become `h<sha256 hex>`.
 */
export function packageReference(
  subdir: string,
  name: string,
  version: string,
  build: string,
): PackageReference {
  checkSubdir(subdir);
  const { component, tag, hashed } = encodePackage(name, version, build);
  return { repository: `${subdir}/${component}`, tag, hashed };
}

/**
 * Reads a package's conda name, version and build back from its repository component (the part
 * under `<subdir>/`) and tag. Hashed names cannot be decoded: take them from the manifest
 * annotations. Refuses anything a conforming writer would not have produced.
 */
export function decodePackageReference(repositoryComponent: string, tag: string): DecodedPackageReference {
  const where = `${repositoryComponent}:${tag}`;
  const kind = classifyComponent(repositoryComponent);
  if (kind === 'hashed-package') {
    if (!HASHED_PATTERN.test(tag)) {
      throw new InvalidReferenceError(
        `${where} is not a package reference: a hashed name needs a hashed tag (h<sha256 hex>)`,
      );
    }
    return { hashed: true };
  }
  if (kind !== 'package') {
    throw new InvalidReferenceError(
      `${where} is not a package reference: "${repositoryComponent}" is not "c<conda name>" or "h<sha256 hex>"`,
    );
  }
  if (HASHED_PATTERN.test(tag)) {
    throw new InvalidReferenceError(`${where} is not a package reference: a hashed tag needs a hashed name`);
  }
  const parts = tag.split('-');
  if (parts.length !== 2) {
    throw new InvalidReferenceError(
      `${where} is not a package reference: the tag must be <encoded version>-<encoded build>`,
    );
  }
  let identity: PackageIdentity;
  let canonical: EncodedPackage;
  try {
    identity = {
      name: repositoryComponent.slice(1),
      version: decodeVersionOrBuild(parts[0]!),
      build: decodeVersionOrBuild(parts[1]!),
    };
    canonical = encodePackage(identity.name, identity.version, identity.build);
  } catch (err) {
    throw new InvalidReferenceError(`${where} is not a package reference`, { cause: err });
  }
  if (canonical.component !== repositoryComponent || canonical.tag !== tag) {
    throw new InvalidReferenceError(
      `${where} is not a package reference: a conforming writer stores ${identity.name} ${identity.version} ` +
        `${identity.build} as ${canonical.component}:${canonical.tag}`,
    );
  }
  return { hashed: false, ...identity };
}

/**
 * What a repository component directly under `<subdir>/` is: `c<conda name>` a package,
 * `h<sha256 hex>` a hashed package, one of METADATA_COMPONENTS metadata. Anything else
 * (unknown `m…` names, malformed `c…`/`h…` names, names with no reserved prefix) is 'reserved':
 * not something this layout writes, and nothing may be written there.
 */
export function classifyComponent(component: string): ComponentKind {
  if (HASHED_PATTERN.test(component)) return 'hashed-package';
  if ((METADATA_COMPONENTS as readonly string[]).includes(component)) return 'metadata';
  if (component.startsWith('c') && isPathComponent(component) && isCondaName(component.slice(1)))
    return 'package';
  return 'reserved';
}

/**
 * True for a tag that names a package: `<encoded version>-<encoded build>` (exactly one `-`,
 * as encoded versions and builds have none) or `h<sha256 hex>`. False for `latest`, timestamp
 * tags (`YYYYMMDDThhmmssZ`) and referrers fallback tags (`sha256-<hex>`, with or without a
 * `.sig`-style suffix).
 */
export function isPackageTag(tag: string): boolean {
  if (!isTag(tag)) return false;
  if (HASHED_PATTERN.test(tag)) return true;
  if (REFERRER_TAG_PATTERN.test(tag)) return false;
  const parts = tag.split('-');
  if (parts.length !== 2) return false;
  try {
    return isCondaVersion(decodeVersionOrBuild(parts[0]!)) && isCondaBuild(decodeVersionOrBuild(parts[1]!));
  } catch {
    return false;
  }
}

/** `<subdir>/<metadata component>:latest`. */
export function metadataReference(subdir: string, component: MetadataComponent): OciName {
  checkSubdir(subdir);
  return { repository: `${subdir}/${component}`, tag: LATEST_TAG };
}

/** `channeldata.json:latest`, at channel level. */
export function channeldataReference(): OciName {
  return { repository: CHANNELDATA_COMPONENT, tag: LATEST_TAG };
}

// ---------------------------------------------------------------------------------------------
// v0 (conda-oci-mirror), for the compatibility mode

/** The v0 tag spelling: `+`->`__p__`, `!`->`__e__`, `=`->`__eq__`; `_` is kept. Not reversible. */
export function encodeV0Tag(versionBuild: string): string {
  return versionBuild.replaceAll('+', '__p__').replaceAll('!', '__e__').replaceAll('=', '__eq__');
}

/**
 * The v0 repository `<subdir>/<name>` (`zzz` prepended to a leading `_`) and tag
 * `<version>-<build>` in the v0 spelling. v0 has no hashing: characters outside the OCI grammar
 * are refused; a tag over its length is shortened by the naming scheme (naming-scheme.ts).
 */
export function v0PackageReference(
  subdir: string,
  name: string,
  version: string,
  build: string,
): PackageReference {
  checkSubdir(subdir);
  checkPackage(name, version, build);
  const component = name.startsWith('_') ? `zzz${name}` : name;
  if (!isPathComponent(component)) {
    throw new InvalidReferenceError(
      `package name "${name}" cannot be stored in the v0 layout: "${component}" does not match the OCI path-component grammar`,
    );
  }
  const tag = encodeV0Tag(`${version}-${build}`);
  // Any length: a v0 tag too long for the OCI grammar is shortened by the naming scheme.
  if (!/^[a-zA-Z0-9_][a-zA-Z0-9._-]*$/.test(tag)) {
    throw new InvalidReferenceError(
      `package "${name}" (version "${version}", build "${build}") cannot be stored in the v0 layout: tag "${tag}" does not match the OCI tag grammar`,
    );
  }
  return { repository: `${subdir}/${component}`, tag, hashed: false };
}

/** The v0 repodata: `<subdir>/repodata.json:latest`. */
export function v0RepodataReference(subdir: string): OciName {
  checkSubdir(subdir);
  return { repository: `${subdir}/repodata.json`, tag: LATEST_TAG };
}
