/**
 * Records kept next to a package artifact as OCI referrers (their `subject` is the package
 * manifest): the upload receipt (when and from where it was staged; `clean` reads its age) and
 * the validation record (every check `validate` ran; `promote` requires a passing one).
 *
 * Records carry wall-clock times; package manifests never do, so those stay deterministic.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ProtocolError } from '../oci/errors.js';
import {
  descriptorOf,
  parseImageManifest,
  type Annotations,
  type Descriptor,
  type ImageManifest,
} from '../oci/manifest.js';
import { canonicalJson } from '../util/canonical-json.js';
import { ANNOTATION_CREATED } from '../oci/media-types.js';
import { packArtifact, type Artifact } from '../oci/artifact.js';

export const ARTIFACT_TYPE_UPLOAD_RECEIPT = 'application/vnd.conda-oci.upload-receipt.v1+json';
export const ARTIFACT_TYPE_VALIDATION = 'application/vnd.conda-oci.validation.v1+json';
/** `passed` or `failed`, so promote can pick candidates from the referrers list alone. */
export const ANNOTATION_VALIDATION_RESULT = 'io.github.conda-oci.validation.result';
/** HMAC-SHA256 of the record layer with the validators' key (see `signRecord`). */
export const ANNOTATION_RECORD_SIGNATURE = 'io.github.conda-oci.record.hmac-sha256';

export interface UploadReceipt {
  schema: 1;
  file: string;
  subdir: string;
  sha256: string;
  uploadedAt: string;
  source?: string;
  revision?: string;
  /** The CI run that uploaded it, when known. */
  run?: string;
  tool: string;
}

export interface ValidationRecord {
  schema: 1;
  passed: boolean;
  subject: { repository: string; tag: string; digest: string };
  artifact: { subdir: string; file: string; name?: string; version?: string; build?: string };
  claimed: { sha256: string };
  measured: { sha256?: string; md5?: string; size?: number };
  checks: { name: string; ok: boolean; detail: string }[];
  requester: { feedstock?: string; run?: string; repository?: string };
  validatedAt: string;
  tool: string;
}

/** A record as an artifact ready to push: its blobs, then the manifest (with `subject`). */
export function buildRecord(
  artifactType: string,
  body: object,
  subject: Descriptor,
  createdAt: string,
  extra: Annotations = {},
  key?: string,
): Artifact {
  const layerBytes = canonicalJson(body);
  const layer = descriptorOf(artifactType, layerBytes);
  const annotations: Annotations = { [ANNOTATION_CREATED]: createdAt, ...extra };
  if (key) annotations[ANNOTATION_RECORD_SIGNATURE] = signRecord(layerBytes, key);
  return packArtifact({
    artifactType,
    layers: [{ descriptor: layer, content: layerBytes }],
    subject,
    annotations,
  });
}

/**
 * Signs a record's bytes. Feedstocks can write to staging, so they could also write a record
 * that claims to pass; a key that only the validating side holds makes such a forgery useless.
 */
export function signRecord(bytes: Uint8Array, key: string): string {
  return createHmac('sha256', key).update(bytes).digest('hex');
}

export function verifyRecordSignature(
  bytes: Uint8Array,
  signature: string | undefined,
  key: string,
): boolean {
  if (!signature || !/^[a-f0-9]{64}$/.test(signature)) return false;
  const expected = Buffer.from(signRecord(bytes, key), 'hex');
  return timingSafeEqual(expected, Buffer.from(signature, 'hex'));
}

/** The record layer of a record manifest, checked for shape. */
export function recordLayer(
  manifestBytes: Uint8Array,
  artifactType: string,
  what: string,
): { manifest: ImageManifest; layer: Descriptor } {
  const manifest = parseImageManifest(manifestBytes, what);
  const layer = manifest.layers[0];
  if (
    manifest.artifactType !== artifactType ||
    manifest.layers.length !== 1 ||
    !layer ||
    layer.mediaType !== artifactType
  ) {
    throw new ProtocolError(`${what} is not a ${artifactType} record`);
  }
  return { manifest, layer };
}

export function parseRecordBody<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as T;
  } catch (cause) {
    throw new ProtocolError(`${what} is not JSON`, { cause });
  }
}
