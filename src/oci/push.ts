/** Pushing a whole artifact: every blob first, the manifest last. */
import { mapLimit } from './copy.js';
import type { Descriptor, ManifestBytes } from './manifest.js';
import { pushReferrer } from './referrers.js';
import type { BlobContent, PushOutcome, Repository } from './storage.js';

export interface ArtifactToPush {
  manifest: ManifestBytes;
  descriptor: Descriptor;
  blobs: { descriptor: Descriptor; content: BlobContent }[];
}

export interface PushArtifactOptions {
  tag?: string;
  /** Record the manifest as a referrer of this subject (tag-schema fallback where needed). */
  subject?: Descriptor;
  /** Blobs pushed at once (small artifacts gain little from more). */
  concurrency?: number;
  onProgress?: (blob: Descriptor, bytesSent: number) => void;
}

export interface PushArtifactOutcome {
  descriptor: Descriptor;
  bytesSent: number;
  blobs: PushOutcome[];
}

export async function pushArtifact(
  repository: Repository,
  artifact: ArtifactToPush,
  options: PushArtifactOptions = {},
): Promise<PushArtifactOutcome> {
  const blobs = await mapLimit(artifact.blobs, options.concurrency ?? 2, (blob) =>
    repository.pushBlob(
      blob.descriptor,
      blob.content,
      options.onProgress ? { onProgress: (n) => options.onProgress!(blob.descriptor, n) } : {},
    ),
  );
  const bytesSent = blobs.reduce((sum, b) => sum + b.bytesSent, 0);
  if (options.subject) {
    const descriptor = await pushReferrer(repository, artifact.manifest, options.subject.digest);
    return { descriptor, bytesSent, blobs };
  }
  const pushed = await repository.pushManifest(artifact.manifest, options.tag);
  return { descriptor: pushed.descriptor, bytesSent, blobs };
}
