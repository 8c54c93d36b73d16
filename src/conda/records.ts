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
/** v2: records bind their whole request (channel, label, names, digests, identity); v1 records are not accepted. */
export const ARTIFACT_TYPE_VALIDATION = 'application/vnd.conda-oci.validation.v2+json';
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

/** Who asked, as validate proved it (README "Security"): never taken from a request field. */
export interface VerifiedRequester {
  /** `attestation`: a CEP 27 publish attestation verified with Sigstore; `feedstock-token`: a conda-forge feedstock token. */
  method: 'attestation' | 'feedstock-token';
  /** The feedstock repository's name, e.g. `numpy-feedstock`. */
  feedstock: string;
  /** From the certificate (attestation only). */
  repository?: string;
  workflowRef?: string;
  ref?: string;
  commitSha?: string;
  run?: string;
  issuer?: string;
  subjectAlternativeName?: string;
  /** The attestation referrer that proved it, which promote copies to production. */
  attestation?: string;
}

/**
 * A validation record binds the whole request it answers: promote checks every field against
 * its own request before it copies anything (see `recordMismatch`).
 */
export interface ValidationRecord {
  schema: 2;
  passed: boolean;
  /** The staging channel (`oci://host/path`, or `oci-layout:<dir>`), without its label. */
  channel: string;
  /** The label ('' for main). */
  label: string;
  /** The production channel validate compared with, if any. */
  production?: string;
  subject: { repository: string; tag: string; digest: string };
  artifact: { subdir: string; file: string; name: string; version: string; build: string };
  claimed: { sha256: string };
  measured: { sha256?: string; md5?: string; size?: number };
  checks: { name: string; ok: boolean; detail: string }[];
  /** Null when the request proved no identity (allowed only without an owners map). */
  requester: VerifiedRequester | null;
  validatedAt: string;
  tool: string;
}

/** What promote asks of a record: exactly its own request. */
export interface RecordExpectation {
  channel: string;
  label: string;
  production: string;
  subject: { repository: string; tag: string; digest: string };
  artifact: { subdir: string; file: string; name: string; version: string; build: string };
  sha256: string;
}

/** The first field in which a record does not answer this request, or undefined when it does. */
export function recordMismatch(
  record: Partial<ValidationRecord>,
  expected: RecordExpectation,
): string | undefined {
  if (record.schema !== 2) return `schema ${JSON.stringify(record.schema)}, not 2`;
  if (record.passed !== true) return 'it did not pass';
  const fields: [string, unknown, unknown][] = [
    ['channel', record.channel, expected.channel],
    ['label', record.label, expected.label],
    ['subject.repository', record.subject?.repository, expected.subject.repository],
    ['subject.tag', record.subject?.tag, expected.subject.tag],
    ['subject.digest', record.subject?.digest, expected.subject.digest],
    ['artifact.subdir', record.artifact?.subdir, expected.artifact.subdir],
    ['artifact.file', record.artifact?.file, expected.artifact.file],
    ['artifact.name', record.artifact?.name, expected.artifact.name],
    ['artifact.version', record.artifact?.version, expected.artifact.version],
    ['artifact.build', record.artifact?.build, expected.artifact.build],
    ['claimed.sha256', record.claimed?.sha256, expected.sha256],
    ['measured.sha256', record.measured?.sha256, expected.sha256],
  ];
  for (const [name, held, wanted] of fields)
    if (held !== wanted) return `${name} is ${JSON.stringify(held)}, not ${JSON.stringify(wanted)}`;
  // Validated against another production is not validated for this one (its owners, its names).
  if (record.production !== undefined && record.production !== expected.production)
    return `it was validated for production ${JSON.stringify(record.production)}, not ${JSON.stringify(expected.production)}`;
  if (
    !Array.isArray(record.checks) ||
    record.checks.length === 0 ||
    record.checks.some((c) => c?.ok !== true)
  )
    return 'its checks did not all pass';
  return undefined;
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
