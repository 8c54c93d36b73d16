/**
 * The repodata copies of the naming scheme (src/conda/naming-scheme.ts) for readers of the older
 * layout: `<subdir>/repodata.json` gets the v1 `mrepodata.json` manifest itself (JSON, zstd and
 * gzip layers, JSON first), `<subdir>/repodata.json.zst` a manifest whose only layer is the zstd
 * one. Each under `latest` and a timestamp tag; an unchanged one costs one HEAD.
 */
import { ANNOTATION_SCHEMA } from '../conda/artifact.js';
import { formatReference, channelRepository, type Channel } from '../conda/channel.js';
import { MEDIA_TYPE_REPODATA, SUFFIX_ZSTD } from '../conda/metadata-artifact.js';
import { LATEST_TAG } from '../conda/naming.js';
import { NAMING_V1_V0, type RepodataCopy } from '../conda/naming-scheme.js';
import { artifactManifest } from '../oci/artifact.js';
import { NotFoundError } from '../oci/errors.js';
import { descriptorOf, parseImageManifest, type ManifestBytes } from '../oci/manifest.js';
import { MEDIA_TYPE_OCI_MANIFEST } from '../oci/media-types.js';
import type { Store } from '../oci/storage.js';
import { writeCopy } from './locations.js';

/** `v1`: the CEP v1 names only. `both`: v1, plus the v0 names today's clients read. */
export type Layout = 'v1' | 'both';

export { isV0NameOf } from '../conda/naming-scheme.js';

export interface V0RepodataOutcome {
  repository: string;
  reference: string;
  digest: string;
  status: 'uploaded' | 'exists';
  bytesSent: number;
}

/** Publishes the v0 repodata copies of a subdir from the v1 `mrepodata.json` manifest `v1Digest`. */
export async function publishV0Repodata(
  store: Store,
  channel: Channel,
  subdir: string,
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
  for (const copy of NAMING_V1_V0.repodataCopies(subdir)) {
    // A zstd-only copy is derived from the v1 manifest: its digest is known only once that is
    // read, so an unchanged subdir costs one HEAD here and one GET of the (small) v1 manifest.
    const manifest =
      copy.layers === 'all' ? undefined : zstdOnly((await v1Manifest()).bytes, `${v1Repository}@${v1Digest}`);
    const digest = manifest ? descriptorOf(MEDIA_TYPE_OCI_MANIFEST, manifest.bytes).digest : v1Digest;
    outcomes.push(
      await publishCopy(
        store,
        channel,
        v1Repository,
        copy,
        digest,
        async () => manifest ?? (await v1Manifest()),
        timestampTag,
      ),
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
  const bytesSent = await writeCopy(
    store,
    from,
    { repository: repositoryName, tag: LATEST_TAG, reference },
    await manifest(),
    [timestampTag, LATEST_TAG],
  );
  return { repository: repositoryName, reference, digest, status: 'uploaded', bytesSent };
}

function zstdOnly(v1ManifestBytes: Uint8Array, what: string): ManifestBytes {
  const v1 = parseImageManifest(v1ManifestBytes, what);
  const zst = v1.layers.find((l) => l.mediaType === `${MEDIA_TYPE_REPODATA}${SUFFIX_ZSTD}`);
  if (!zst) throw new NotFoundError(`${what} has no ${MEDIA_TYPE_REPODATA}${SUFFIX_ZSTD} layer`);
  return artifactManifest({
    artifactType: MEDIA_TYPE_REPODATA,
    layers: [zst],
    annotations: { [ANNOTATION_SCHEMA]: '1' },
  });
}
