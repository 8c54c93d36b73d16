/**
 * Every manifest this project writes is an OCI 1.1 artifact of one shape: the empty config, an
 * `artifactType`, layers, annotations and, for records, a `subject`
 * (https://github.com/opencontainers/image-spec/blob/main/manifest.md#guidelines-for-artifact-usage).
 * `packArtifact` is the one place that assembles it, written as canonical JSON so that the same
 * parts always give the same digest.
 */
import { canonicalJson } from '../util/canonical-json.js';
import {
  descriptorOf,
  EMPTY_CONFIG,
  type Annotations,
  type Descriptor,
  type ImageManifest,
  type ManifestBytes,
} from './manifest.js';
import { EMPTY_JSON_BYTES, MEDIA_TYPE_OCI_MANIFEST } from './media-types.js';
import type { BlobContent } from './storage.js';

export interface ArtifactBlob {
  descriptor: Descriptor;
  content: BlobContent;
}

/** An artifact ready to push: its blobs (config first, then the layers in order), then the manifest. */
export interface Artifact {
  manifest: ManifestBytes;
  descriptor: Descriptor;
  blobs: ArtifactBlob[];
}

export interface ManifestParts<Layer = Descriptor> {
  artifactType: string;
  layers: Layer[];
  annotations?: Annotations;
  /** The manifest this one is about (records, attestations): makes it a referrer. */
  subject?: Descriptor;
}

/** The manifest of an artifact whose layers are described (and stored, or about to be). */
export function artifactManifest(parts: ManifestParts): ManifestBytes {
  const { subject } = parts;
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    artifactType: parts.artifactType,
    config: EMPTY_CONFIG,
    layers: parts.layers,
    ...(subject
      ? { subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size } }
      : {}),
    ...(parts.annotations ? { annotations: parts.annotations } : {}),
  };
  return { mediaType: MEDIA_TYPE_OCI_MANIFEST, bytes: canonicalJson(manifest) };
}

/** An artifact with its blobs, ready to push. */
export function packArtifact(parts: ManifestParts<ArtifactBlob>): Artifact {
  const manifest = artifactManifest({ ...parts, layers: parts.layers.map((l) => l.descriptor) });
  return {
    manifest,
    descriptor: descriptorOf(MEDIA_TYPE_OCI_MANIFEST, manifest.bytes),
    blobs: [{ descriptor: EMPTY_CONFIG, content: EMPTY_JSON_BYTES }, ...parts.layers],
  };
}
