/**
 * The OCI artifacts of channel metadata (SPEC §5): one image manifest per document, with the JSON
 * as the first layer and its zstd and gzip copies after it, annotated `org.conda.oci.schema=1`.
 * Each layer carries its file name as `org.opencontainers.image.title`, so `oras pull` writes
 * `repodata.json`, `repodata.json.zst` and `repodata.json.gz`.
 */
import { gzipCompress, zstdCompress } from '../compress.js';
import { digestOf } from '../oci/digest.js';
import { ProtocolError } from '../oci/errors.js';
import { descriptorOf, parseImageManifest, type Descriptor } from '../oci/manifest.js';
import { ANNOTATION_TITLE } from '../oci/media-types.js';
import { packArtifact, type Artifact } from '../oci/artifact.js';
import { ANNOTATION_SCHEMA } from './artifact.js';
import type { MetadataComponent } from './naming.js';

export const MEDIA_TYPE_REPODATA = 'application/vnd.conda.repodata.v1+json';
export const MEDIA_TYPE_RUN_EXPORTS = 'application/vnd.conda.run_exports.v1+json';
export const MEDIA_TYPE_PATCH_INSTRUCTIONS = 'application/vnd.conda.patch_instructions.v1+json';
export const MEDIA_TYPE_CHANNELDATA = 'application/vnd.conda.channeldata.v1+json';
export const SUFFIX_ZSTD = '+zst';
export const SUFFIX_GZIP = '+gzip';

/** A metadata document: its repository component, file name and JSON media type. */
export interface MetadataKind {
  component: MetadataComponent | 'channeldata.json';
  fileName: string;
  mediaType: string;
}

export const METADATA_KINDS = {
  repodata: { component: 'mrepodata.json', fileName: 'repodata.json', mediaType: MEDIA_TYPE_REPODATA },
  repodataFromPackages: {
    component: 'mrepodata_from_packages.json',
    fileName: 'repodata_from_packages.json',
    mediaType: MEDIA_TYPE_REPODATA,
  },
  currentRepodata: {
    component: 'mcurrent_repodata.json',
    fileName: 'current_repodata.json',
    mediaType: MEDIA_TYPE_REPODATA,
  },
  runExports: {
    component: 'mrun_exports.json',
    fileName: 'run_exports.json',
    mediaType: MEDIA_TYPE_RUN_EXPORTS,
  },
  patchInstructions: {
    component: 'mpatch_instructions.json',
    fileName: 'patch_instructions.json',
    mediaType: MEDIA_TYPE_PATCH_INSTRUCTIONS,
  },
  channeldata: {
    component: 'channeldata.json',
    fileName: 'channeldata.json',
    mediaType: MEDIA_TYPE_CHANNELDATA,
  },
} as const satisfies Record<string, MetadataKind>;

export interface CompressionLevels {
  zstd?: number;
  gzip?: number;
}

/**
 * Compressed copies by the JSON's digest, for one run: repodata.json and
 * repodata_from_packages.json are the same bytes when there are no patches.
 */
export type CompressionMemo = Map<string, Promise<{ zst: Uint8Array; gz: Uint8Array }>>;

/** Builds the artifact of one document: blobs (config, JSON, zstd, gzip) and the manifest. */
export async function buildMetadataArtifact(
  kind: MetadataKind,
  json: Uint8Array,
  levels: CompressionLevels = {},
  memo: CompressionMemo = new Map(),
): Promise<Artifact> {
  const key = digestOf(json);
  let compressed = memo.get(key);
  if (!compressed) {
    compressed = (async () => ({
      zst: await zstdCompress(json, levels.zstd),
      gz: gzipCompress(json, levels.gzip),
    }))();
    memo.set(key, compressed);
  }
  const { zst, gz } = await compressed;
  const layer = (mediaType: string, content: Uint8Array, title: string) => ({
    descriptor: descriptorOf(mediaType, content, { [ANNOTATION_TITLE]: title }),
    content,
  });
  return packArtifact({
    artifactType: kind.mediaType,
    layers: [
      layer(kind.mediaType, json, kind.fileName),
      layer(`${kind.mediaType}${SUFFIX_ZSTD}`, zst, `${kind.fileName}.zst`),
      layer(`${kind.mediaType}${SUFFIX_GZIP}`, gz, `${kind.fileName}.gz`),
    ],
    annotations: { [ANNOTATION_SCHEMA]: '1' },
  });
}

/** The JSON layer of a metadata manifest (the one whose media type is the document's). */
export function metadataJsonLayer(manifestBytes: Uint8Array, kind: MetadataKind, what: string): Descriptor {
  const manifest = parseImageManifest(manifestBytes, what);
  const layer = manifest.layers.find((l) => l.mediaType === kind.mediaType);
  if (!layer) throw new ProtocolError(`${what} has no ${kind.mediaType} layer`);
  return layer;
}
