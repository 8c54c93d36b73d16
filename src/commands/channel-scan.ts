/** Finding a channel's package repositories, for the commands that walk a whole channel. */
import { classifyComponent } from '../conda/naming.js';
import { channelPrefix, isSubdir, type Channel } from '../conda/channel.js';
import type { Store } from '../oci/storage.js';

export interface PackageRepository {
  /** The full repository name, e.g. `prod/conda-forge/linux-64/cnumpy`. */
  name: string;
  subdir: string;
  /** The component under the subdir, e.g. `cnumpy` or `h<sha256>`. */
  component: string;
}

/** Package repositories directly under the channel (not under its labels): `<prefix>/<subdir>/<c…|h…>`. */
export async function packageRepositories(store: Store, channel: Channel): Promise<PackageRepository[]> {
  const prefix = channelPrefix(channel);
  const found: PackageRepository[] = [];
  for await (const name of store.listRepositories(prefix)) {
    const rest = (prefix ? name.slice(prefix.length + 1) : name).split('/');
    if (rest.length !== 2 || !isSubdir(rest[0]!)) continue;
    const kind = classifyComponent(rest[1]!);
    if (kind === 'package' || kind === 'hashed-package')
      found.push({ name, subdir: rest[0]!, component: rest[1]! });
  }
  return found;
}
