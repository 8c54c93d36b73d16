/**
 * Referrers: artifacts whose `subject` is another manifest. Where the store has the referrers API
 * it indexes them itself; elsewhere (GHCR, distribution 2.x, OCI layouts) the client keeps the
 * tag-schema fallback: an image index under the tag `sha256-<hex of the subject>`.
 * https://github.com/opencontainers/distribution-spec/blob/main/spec.md#referrers-tag-schema
 */
import { digestHex, type Digest } from './digest.js';
import { NotFoundError, ProtocolError } from './errors.js';
import {
  encodeManifest,
  parseImageIndex,
  parseImageManifest,
  type Descriptor,
  type ImageIndex,
  type ManifestBytes,
} from './manifest.js';
import { MEDIA_TYPE_OCI_INDEX } from './media-types.js';
import type { Repository } from './storage.js';

export function fallbackTag(subject: Digest): string {
  return `sha256-${digestHex(subject)}`;
}

/** The descriptor a referrers index lists for a referrer manifest. */
function referrerEntry(manifest: ManifestBytes, descriptor: Descriptor): Descriptor {
  const parsed = parseImageManifest(manifest.bytes, 'referrer manifest');
  return {
    mediaType: descriptor.mediaType,
    digest: descriptor.digest,
    size: descriptor.size,
    ...(parsed.artifactType ? { artifactType: parsed.artifactType } : {}),
    ...(parsed.annotations ? { annotations: parsed.annotations } : {}),
  };
}

async function readFallback(repository: Repository, subject: Digest): Promise<ImageIndex | undefined> {
  try {
    const { bytes } = await repository.fetchManifest(fallbackTag(subject));
    return parseImageIndex(bytes, `referrers index ${repository.name}:${fallbackTag(subject)}`);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

async function writeFallback(
  repository: Repository,
  subject: Digest,
  manifests: Descriptor[],
): Promise<void> {
  const index: ImageIndex = { schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests };
  await repository.pushManifest(encodeManifest(index), fallbackTag(subject));
}

/**
 * Pushes a manifest that has a `subject` and makes it findable as a referrer. Concurrent writers
 * of the same fallback index can overwrite each other, so the entry is read back and re-added.
 */
export async function pushReferrer(
  repository: Repository,
  manifest: ManifestBytes,
  subject: Digest,
): Promise<Descriptor> {
  const pushed = await repository.pushManifest(manifest);
  if (pushed.subjectIndexed) return pushed.descriptor;
  const entry = referrerEntry(manifest, pushed.descriptor);
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = (await readFallback(repository, subject))?.manifests ?? [];
    if (current.some((m) => m.digest === entry.digest)) return pushed.descriptor;
    await writeFallback(repository, subject, [...current, entry]);
  }
  const final = (await readFallback(repository, subject))?.manifests ?? [];
  if (!final.some((m) => m.digest === entry.digest)) {
    throw new ProtocolError(
      `could not record referrer ${entry.digest} in ${repository.name}:${fallbackTag(subject)} (concurrent writers)`,
    );
  }
  return pushed.descriptor;
}

/** Referrers of a subject, optionally of one artifact type, from the API or the fallback tag. */
export async function listReferrers(
  repository: Repository,
  subject: Digest,
  artifactType?: string,
): Promise<Descriptor[]> {
  const index = (await repository.referrersApi(subject)) ?? (await readFallback(repository, subject));
  const manifests = index?.manifests ?? [];
  return artifactType ? manifests.filter((m) => m.artifactType === artifactType) : manifests;
}

/** Deletes referrers (and their fallback entries) of a subject. */
export async function deleteReferrers(
  repository: Repository,
  subject: Digest,
  which: Descriptor[],
): Promise<void> {
  const gone = new Set(which.map((d) => d.digest));
  const fallback = await readFallback(repository, subject);
  for (const digest of gone)
    await repository.deleteManifest(digest).catch((err: unknown) => {
      if (!(err instanceof NotFoundError)) throw err;
    });
  if (!fallback) return;
  const remaining = fallback.manifests.filter((m) => !gone.has(m.digest));
  if (remaining.length === fallback.manifests.length) return;
  const current = await repository.resolve(fallbackTag(subject));
  if (current) await repository.deleteManifest(current.digest);
  if (remaining.length > 0) await writeFallback(repository, subject, remaining);
}
