/**
 * OCI image manifest and index: types, strict parsing, deterministic encoding.
 * https://github.com/opencontainers/image-spec/blob/main/manifest.md
 */
import { canonicalJson } from '../util/canonical-json.js';
import { digestOf, isDigest, type Digest } from './digest.js';
import { ProtocolError, SizeLimitError } from './errors.js';
import {
  EMPTY_JSON_BYTES,
  EMPTY_JSON_DIGEST,
  MEDIA_TYPE_OCI_EMPTY,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
} from './media-types.js';

/** Manifests and indexes above this size are refused (GHCR fails at about 4 MiB anyway). */
export const MANIFEST_SIZE_LIMIT = 4 * 1024 * 1024;

export type Annotations = Record<string, string>;

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Annotations;
  artifactType?: string;
  platform?: Record<string, unknown>;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: typeof MEDIA_TYPE_OCI_MANIFEST;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Annotations;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType: typeof MEDIA_TYPE_OCI_INDEX;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Annotations;
}

/** A manifest as stored: its exact bytes, which define its digest. */
export interface ManifestBytes {
  mediaType: string;
  bytes: Uint8Array;
}

export const EMPTY_CONFIG: Descriptor = {
  mediaType: MEDIA_TYPE_OCI_EMPTY,
  digest: EMPTY_JSON_DIGEST,
  size: EMPTY_JSON_BYTES.length,
};

export function descriptorOf(mediaType: string, bytes: Uint8Array, annotations?: Annotations): Descriptor {
  const descriptor: Descriptor = { mediaType, digest: digestOf(bytes), size: bytes.length };
  if (annotations && Object.keys(annotations).length > 0) descriptor.annotations = sortKeys(annotations);
  return descriptor;
}

function sortKeys(record: Annotations): Annotations {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function encodeManifest(manifest: ImageManifest | ImageIndex): ManifestBytes {
  return { mediaType: manifest.mediaType, bytes: canonicalJson(manifest) };
}

function fail(what: string, problem: string): never {
  throw new ProtocolError(`${what}: ${problem}`);
}

function checkDescriptor(value: unknown, what: string): Descriptor {
  if (value === null || typeof value !== 'object') fail(what, 'is not an object');
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== 'string' || d.mediaType.length === 0) fail(what, 'has no mediaType');
  if (!isDigest(d.digest)) fail(what, `has an invalid digest ${JSON.stringify(d.digest)}`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0)
    fail(what, 'has an invalid size');
  if (d.annotations !== undefined) checkAnnotations(d.annotations, what);
  return d as unknown as Descriptor;
}

function checkAnnotations(value: unknown, what: string): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    fail(what, 'annotations are not an object');
  for (const v of Object.values(value)) if (typeof v !== 'string') fail(what, 'has a non-string annotation');
}

function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  if (bytes.length > MANIFEST_SIZE_LIMIT) throw new SizeLimitError(what, MANIFEST_SIZE_LIMIT);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new ProtocolError(`${what} is not valid JSON`, { cause });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(what, 'is not a JSON object');
  const obj = value as Record<string, unknown>;
  if (obj.schemaVersion !== 2) fail(what, 'schemaVersion is not 2');
  if (obj.annotations !== undefined) checkAnnotations(obj.annotations, what);
  return obj;
}

/** Parses and checks an OCI image manifest; throws ProtocolError on anything else. */
export function parseImageManifest(bytes: Uint8Array, what = 'manifest'): ImageManifest {
  const obj = parseJson(bytes, what);
  if (obj.mediaType !== MEDIA_TYPE_OCI_MANIFEST)
    fail(what, `mediaType is ${JSON.stringify(obj.mediaType)}, not ${MEDIA_TYPE_OCI_MANIFEST}`);
  checkDescriptor(obj.config, `${what} config`);
  if (!Array.isArray(obj.layers)) fail(what, 'has no layers array');
  obj.layers.forEach((layer, i) => checkDescriptor(layer, `${what} layer ${i}`));
  if (obj.subject !== undefined) checkDescriptor(obj.subject, `${what} subject`);
  return obj as unknown as ImageManifest;
}

/** Parses and checks an OCI image index; throws ProtocolError on anything else. */
export function parseImageIndex(bytes: Uint8Array, what = 'index'): ImageIndex {
  const obj = parseJson(bytes, what);
  if (obj.mediaType !== undefined && obj.mediaType !== MEDIA_TYPE_OCI_INDEX) {
    fail(what, `mediaType is ${JSON.stringify(obj.mediaType)}, not ${MEDIA_TYPE_OCI_INDEX}`);
  }
  if (!Array.isArray(obj.manifests)) fail(what, 'has no manifests array');
  obj.manifests.forEach((m, i) => checkDescriptor(m, `${what} entry ${i}`));
  return { ...(obj as unknown as ImageIndex), mediaType: MEDIA_TYPE_OCI_INDEX };
}

/** The blobs a manifest points at (config and layers), each once. */
export function manifestBlobs(manifest: ImageManifest): Descriptor[] {
  const seen = new Set<string>();
  const blobs: Descriptor[] = [];
  for (const d of [manifest.config, ...manifest.layers]) {
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    blobs.push(d);
  }
  return blobs;
}
