/**
 * The OCI artifact of a conda package (SPEC §4, CEP "OCI registries as conda channels" v1):
 * one image manifest, three layers in a fixed order, and the conda annotations. Built
 * deterministically: the same package file always gives the same manifest digest.
 */
import { packArtifact, type Artifact } from '../oci/artifact.js';
import { canonicalJson } from '../util/canonical-json.js';
import { ProtocolError } from '../oci/errors.js';
import {
  descriptorOf,
  parseImageManifest,
  type Annotations,
  type Descriptor,
  type ImageManifest,
  type ManifestBytes,
} from '../oci/manifest.js';
import {
  ANNOTATION_CREATED,
  ANNOTATION_REVISION,
  ANNOTATION_SOURCE,
  ANNOTATION_TITLE,
} from '../oci/media-types.js';
import type { BlobContent } from '../oci/storage.js';
import { isCondaBuild, isCondaName, isCondaVersion } from './naming.js';
import type { PackageContents } from './package-reader.js';

export const MEDIA_TYPE_CONDA_PACKAGE_V1 = 'application/vnd.conda.package.v1';
export const MEDIA_TYPE_CONDA_PACKAGE_V2 = 'application/vnd.conda.package.v2';
export const MEDIA_TYPE_CONDA_INFO = 'application/vnd.conda.info.v1.tar+gzip';
export const MEDIA_TYPE_CONDA_INDEX = 'application/vnd.conda.info.index.v1+json';

export const ANNOTATION_SCHEMA = 'org.conda.oci.schema';
export const ANNOTATION_PACKAGE_NAME = 'org.conda.package.name';
export const ANNOTATION_PACKAGE_VERSION = 'org.conda.package.version';
export const ANNOTATION_PACKAGE_BUILD = 'org.conda.package.build';
/** The package's MD5, which repodata needs; in this project's own namespace (the CEP reserves org.conda.*). */
export const ANNOTATION_PACKAGE_MD5 = 'io.github.conda-oci.package.md5';

const CONDA_ANNOTATIONS = new Set([
  ANNOTATION_SCHEMA,
  ANNOTATION_PACKAGE_NAME,
  ANNOTATION_PACKAGE_VERSION,
  ANNOTATION_PACKAGE_BUILD,
]);

export function packageMediaType(format: 'conda' | 'tar.bz2'): string {
  return format === 'conda' ? MEDIA_TYPE_CONDA_PACKAGE_V2 : MEDIA_TYPE_CONDA_PACKAGE_V1;
}

export interface ProvenanceOptions {
  /** `org.opencontainers.image.source`: links a GHCR package to its feedstock repository. */
  source?: string | undefined;
  /** `org.opencontainers.image.revision`: the commit the package was built from. */
  revision?: string | undefined;
}

export const INFO_LAYER_TITLE = 'info.tar.gz';
export const INDEX_LAYER_TITLE = 'index.json';

/**
 * The form of a package manifest that readers predating OCI 1.1 accept (conda-oci-mirror's
 * schema, from oras-py, refuses any `artifactType`): the same manifest without it, over the
 * same blobs. Deterministic, so a v0 name's digest follows from the v1 manifest's.
 */
export function withoutArtifactType(manifest: ManifestBytes): ManifestBytes {
  const parsed = JSON.parse(new TextDecoder().decode(manifest.bytes)) as Record<string, unknown>;
  if (parsed.artifactType === undefined) return manifest;
  delete parsed.artifactType;
  return { mediaType: manifest.mediaType, bytes: canonicalJson(parsed) };
}

/** Builds the artifact; `packageContent` re-reads the package bytes for the upload. */
export function buildPackageArtifact(
  pkg: PackageContents,
  packageContent: BlobContent,
  provenance: ProvenanceOptions = {},
): Artifact {
  const packageLayer: Descriptor = {
    mediaType: packageMediaType(pkg.format),
    digest: `sha256:${pkg.sha256}`,
    size: pkg.size,
    annotations: { [ANNOTATION_PACKAGE_MD5]: pkg.md5, [ANNOTATION_TITLE]: pkg.fileName },
  };
  // Titles name the files a generic client (oras pull) writes, as conda-oci-mirror named them.
  const infoLayer = descriptorOf(MEDIA_TYPE_CONDA_INFO, pkg.infoTarGz, {
    [ANNOTATION_TITLE]: INFO_LAYER_TITLE,
  });
  const indexLayer = descriptorOf(MEDIA_TYPE_CONDA_INDEX, pkg.indexJson, {
    [ANNOTATION_TITLE]: INDEX_LAYER_TITLE,
  });
  const annotations: Annotations = {
    [ANNOTATION_SCHEMA]: '1',
    [ANNOTATION_PACKAGE_NAME]: pkg.index.name,
    [ANNOTATION_PACKAGE_VERSION]: pkg.index.version,
    [ANNOTATION_PACKAGE_BUILD]: pkg.index.build,
  };
  if (provenance.source) annotations[ANNOTATION_SOURCE] = provenance.source;
  if (provenance.revision) annotations[ANNOTATION_REVISION] = provenance.revision;
  // `created` comes from the package, never the clock, so the manifest stays deterministic.
  if (typeof pkg.index.timestamp === 'number' && Number.isFinite(pkg.index.timestamp)) {
    annotations[ANNOTATION_CREATED] = timestampToIso(pkg.index.timestamp);
  }
  return packArtifact({
    artifactType: packageLayer.mediaType,
    layers: [
      { descriptor: packageLayer, content: packageContent },
      { descriptor: infoLayer, content: pkg.infoTarGz },
      { descriptor: indexLayer, content: pkg.indexJson },
    ],
    annotations,
  });
}

/** conda timestamps are milliseconds since the epoch (older packages: seconds). */
export function timestampToIso(timestamp: number): string {
  const ms = timestamp > 253402300799 ? timestamp : timestamp * 1000;
  return new Date(Math.trunc(ms)).toISOString();
}

/** What a package manifest says, after the checks of SPEC §4. */
export interface PackageManifestInfo {
  manifest: ImageManifest;
  packageLayer: Descriptor;
  infoLayer: Descriptor;
  indexLayer: Descriptor;
  name: string;
  version: string;
  build: string;
  fileName: string;
  format: 'conda' | 'tar.bz2';
  md5: string | undefined;
}

/**
 * Parses a manifest and checks it is a conda package artifact: an OCI image manifest with exactly
 * the three layers of SPEC §4 in order, the four conda annotations and no other org.conda.* one.
 * Throws ProtocolError naming the first problem.
 */
export function readPackageManifest(bytes: Uint8Array, what: string): PackageManifestInfo {
  const manifest = parseImageManifest(bytes, what);
  const fail = (problem: string): never => {
    throw new ProtocolError(`${what}: ${problem}`);
  };
  if (manifest.layers.length !== 3)
    fail(`has ${manifest.layers.length} layers; a conda package artifact has exactly 3`);
  const [packageLayer, infoLayer, indexLayer] = manifest.layers as [Descriptor, Descriptor, Descriptor];
  let format: 'conda' | 'tar.bz2';
  if (packageLayer.mediaType === MEDIA_TYPE_CONDA_PACKAGE_V2) format = 'conda';
  else if (packageLayer.mediaType === MEDIA_TYPE_CONDA_PACKAGE_V1) format = 'tar.bz2';
  else fail(`layer 1 has media type ${packageLayer.mediaType}, not a conda package type`);
  if (infoLayer.mediaType !== MEDIA_TYPE_CONDA_INFO)
    fail(`layer 2 has media type ${infoLayer.mediaType}, not ${MEDIA_TYPE_CONDA_INFO}`);
  if (indexLayer.mediaType !== MEDIA_TYPE_CONDA_INDEX)
    fail(`layer 3 has media type ${indexLayer.mediaType}, not ${MEDIA_TYPE_CONDA_INDEX}`);
  const annotations = manifest.annotations ?? {};
  if (annotations[ANNOTATION_SCHEMA] !== '1')
    fail(`annotation ${ANNOTATION_SCHEMA} is ${JSON.stringify(annotations[ANNOTATION_SCHEMA])}, not "1"`);
  for (const key of Object.keys(annotations)) {
    if (key.startsWith('org.conda.') && !CONDA_ANNOTATIONS.has(key))
      fail(`has annotation ${key}, which the CEP does not allow`);
  }
  const name = annotations[ANNOTATION_PACKAGE_NAME];
  const version = annotations[ANNOTATION_PACKAGE_VERSION];
  const build = annotations[ANNOTATION_PACKAGE_BUILD];
  if (!name || !version || !build) fail('lacks the org.conda.package.name/version/build annotations');
  if (!isCondaName(name!) || !isCondaVersion(version!) || !isCondaBuild(build!))
    fail(
      `names ${JSON.stringify(`${name} ${version} ${build}`.slice(0, 200))}, which is not a conda name, version and build`,
    );
  // The title is the file name the annotations imply, or nothing: it is printed and listed, so a
  // writer must not be able to put other text there (a newline, a workflow command, another name).
  const fileName = `${name}-${version}-${build}.${format!}`;
  const title = packageLayer.annotations?.[ANNOTATION_TITLE];
  if (title !== undefined && title !== fileName)
    fail(`the package layer's title ${JSON.stringify(title.slice(0, 200))} is not ${fileName}`);
  const md5 = packageLayer.annotations?.[ANNOTATION_PACKAGE_MD5];
  return {
    manifest,
    packageLayer,
    infoLayer,
    indexLayer,
    name: name!,
    version: version!,
    build: build!,
    fileName,
    format: format!,
    md5,
  };
}
