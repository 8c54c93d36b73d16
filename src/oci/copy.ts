/**
 * Copying manifests and their blobs between any two stores: blobs first (mounted when both
 * repositories are in one store, otherwise streamed with no temporary file), the manifest last,
 * so the destination never holds a manifest whose blobs are missing.
 */
import { mapLimit } from '../util/map-limit.js';
import { Readable } from 'node:stream';
import { CopyError, OciError } from './errors.js';
import { manifestBlobs, parseImageManifest, type Descriptor, type ManifestBytes } from './manifest.js';
import type { BlobSource, PushOutcome, Repository, Store } from './storage.js';

export interface Located {
  store: Store;
  repository: Repository;
}

export interface BlobCopyOutcome extends PushOutcome {
  digest: string;
}

/** A source that re-reads the blob from the source store, from any offset. */
function remoteSource(from: Repository, descriptor: Pick<Descriptor, 'digest' | 'size'>): BlobSource {
  return {
    size: descriptor.size,
    async open(offset: number): Promise<Readable> {
      const stream = await from.openBlob(descriptor);
      if (offset === 0) return stream;
      return skip(stream, offset);
    },
  };
}

function skip(stream: Readable, count: number): Readable {
  return Readable.from(
    (async function* () {
      let left = count;
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        if (left >= chunk.length) {
          left -= chunk.length;
          continue;
        }
        yield left > 0 ? chunk.subarray(left) : chunk;
        left = 0;
      }
    })(),
  );
}

export async function copyBlob(
  from: Located,
  to: Located,
  descriptor: Pick<Descriptor, 'digest' | 'size'>,
  onProgress?: (bytes: number) => void,
): Promise<BlobCopyOutcome> {
  const sameStore = from.store.id === to.store.id;
  try {
    const outcome = await to.repository.pushBlob(descriptor, remoteSource(from.repository, descriptor), {
      ...(sameStore ? { mountFrom: from.repository.name } : {}),
      ...(onProgress ? { onProgress } : {}),
    });
    return { ...outcome, digest: descriptor.digest };
  } catch (err) {
    throw new CopyError(
      sourceOrDestination(err),
      `copying blob ${descriptor.digest} from ${from.repository.name} to ${to.repository.name}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

function sourceOrDestination(err: unknown): 'source' | 'destination' {
  // Verification failures and missing blobs surface while reading the source.
  return err instanceof OciError && (err.code === 'DIGEST_MISMATCH' || err.code === 'NOT_FOUND')
    ? 'source'
    : 'destination';
}

/** Copies the blobs of image manifests (each distinct blob once), at most `concurrency` at a time. */
export async function copyManifestBlobs(
  from: Located,
  to: Located,
  manifest: ManifestBytes | ManifestBytes[],
  concurrency = 4,
): Promise<BlobCopyOutcome[]> {
  const blobs = new Map<string, Descriptor>();
  for (const m of Array.isArray(manifest) ? manifest : [manifest])
    for (const blob of manifestBlobs(parseImageManifest(m.bytes))) blobs.set(blob.digest, blob);
  return mapLimit([...blobs.values()], concurrency, (blob) => copyBlob(from, to, blob));
}
