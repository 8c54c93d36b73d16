/**
 * The repodata copies of the naming scheme (src/conda/naming-scheme.ts) for readers of the older
 * layout, each in the pre-OCI-1.1 form (no `artifactType`): `<subdir>/repodata.json` gets the
 * layers of the v1 `mrepodata.json` manifest (JSON, zstd and gzip, JSON first),
 * `<subdir>/repodata.json.zst` only the zstd one, and `<subdir>/repodata_shards.msgpack.zst` a
 * manifest with no repodata layer at all, the answer a client probing for sharded repodata needs.
 * Each under `latest` and a timestamp tag; an unchanged one costs one HEAD.
 */
import { ANNOTATION_SCHEMA, withoutArtifactType } from '../conda/artifact.js';
import { formatReference, channelRepository, type Channel } from '../conda/channel.js';
import { MEDIA_TYPE_REPODATA, SUFFIX_ZSTD } from '../conda/metadata-artifact.js';
import { LATEST_TAG } from '../conda/naming.js';
import type { RepodataCopy } from '../conda/naming-scheme.js';
import { artifactManifest } from '../oci/artifact.js';
import { NotFoundError } from '../oci/errors.js';
import { descriptorOf, parseImageManifest, type Descriptor, type ManifestBytes } from '../oci/manifest.js';
import { MEDIA_TYPE_OCI_MANIFEST } from '../oci/media-types.js';
import type { Store } from '../oci/storage.js';
import { writeCopy } from './locations.js';

export { isV0NameOf } from '../conda/naming-scheme.js';

export interface V0RepodataOutcome {
  repository: string;
  reference: string;
  digest: string;
  status: 'uploaded' | 'exists';
  bytesSent: number;
}

/** Publishes a subdir's v0 repodata copies from the v1 `mrepodata.json` manifest `v1Digest`. */
export async function publishV0Repodata(
  store: Store,
  channel: Channel,
  copies: RepodataCopy[],
  v1Repository: string,
  v1Digest: string,
  timestampTag: string,
): Promise<V0RepodataOutcome[]> {
  const source = store.repository(v1Repository);
  let v1: ManifestBytes | undefined;
  const v1Manifest = async (): Promise<ManifestBytes> => {
    if (!v1) {
      const fetched = await source.fetchManifest(v1Digest);
      v1 = { mediaType: fetched.descriptor.mediaType, bytes: fetched.bytes };
    }
    return v1;
  };
  const outcomes: V0RepodataOutcome[] = [];
  for (const copy of copies) {
    // The copies derive from the v1 manifest: their digests are known only once that is read, so
    // an unchanged subdir costs one GET of the (small) v1 manifest and a HEAD per copy.
    const manifest = copyManifest(copy, (await v1Manifest()).bytes, `${v1Repository}@${v1Digest}`);
    const digest = descriptorOf(MEDIA_TYPE_OCI_MANIFEST, manifest.bytes).digest;
    outcomes.push(
      await publishCopy(store, channel, v1Repository, copy, digest, async () => manifest, timestampTag),
    );
  }
  return outcomes;
}

async function publishCopy(
  store: Store,
  channel: Channel,
  from: string,
  copy: RepodataCopy,
  digest: string,
  manifest: () => Promise<ManifestBytes>,
  timestampTag: string,
): Promise<V0RepodataOutcome> {
  const repositoryName = channelRepository(channel, copy.repository);
  const reference = formatReference(channel, repositoryName, LATEST_TAG);
  const current = await store.repository(repositoryName).resolve(LATEST_TAG);
  if (current?.digest === digest)
    return { repository: repositoryName, reference, digest, status: 'exists', bytesSent: 0 };
  // The shards answer's one layer is not among the v1 manifest's blobs: it goes first, on its own.
  if (copy.layers === 'none')
    await store.repository(repositoryName).pushBlob(descriptorOf(MEDIA_TYPE_NO_SHARDS, NO_SHARDS), NO_SHARDS);
  const bytesSent = await writeCopy(
    store,
    from,
    { repository: repositoryName, tag: LATEST_TAG, reference },
    await manifest(),
    [timestampTag, LATEST_TAG],
  );
  return { repository: repositoryName, reference, digest, status: 'uploaded', bytesSent };
}

/** A shards probe answer: the one layer says why there are no shards, in no repodata media type. */
const NO_SHARDS = new TextEncoder().encode(
  '{"shards":false,"reason":"this channel publishes repodata.json (and .zst), not sharded repodata"}\n',
);
export const MEDIA_TYPE_NO_SHARDS = 'application/vnd.conda-oci.no-shards.v1+json';

function copyManifest(copy: RepodataCopy, v1ManifestBytes: Uint8Array, what: string): ManifestBytes {
  const v1 = parseImageManifest(v1ManifestBytes, what);
  const annotations = { [ANNOTATION_SCHEMA]: '1' };
  const withoutType = (layers: Descriptor[]) =>
    withoutArtifactType(artifactManifest({ artifactType: MEDIA_TYPE_REPODATA, layers, annotations }));
  if (copy.layers === 'all') return withoutType(v1.layers);
  if (copy.layers === 'none') return withoutType([descriptorOf(MEDIA_TYPE_NO_SHARDS, NO_SHARDS)]);
  const zst = v1.layers.find((l) => l.mediaType === `${MEDIA_TYPE_REPODATA}${SUFFIX_ZSTD}`);
  if (!zst) throw new NotFoundError(`${what} has no ${MEDIA_TYPE_REPODATA}${SUFFIX_ZSTD} layer`);
  return withoutType([zst]);
}
