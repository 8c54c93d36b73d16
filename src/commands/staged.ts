/** Staged artifacts leave staging whole: their records first, then the manifest. */
import type { Digest } from '../oci/digest.js';
import { deleteReferrers, listReferrers } from '../oci/referrers.js';
import type { Repository } from '../oci/storage.js';

/** Removes a staged artifact and every record about it. */
export async function deleteStaged(repository: Repository, digest: Digest): Promise<void> {
  const referrers = await listReferrers(repository, digest);
  await deleteReferrers(repository, digest, referrers);
  await repository.deleteManifest(digest);
}
