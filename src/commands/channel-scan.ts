/** Finding a channel's package repositories, for the commands that walk a whole channel. */
import { classifyComponent } from '../conda/naming.js';
import { channelPrefix, isSubdir, type Channel } from '../conda/channel.js';
import type { OciError } from '../oci/errors.js';
import { isPathComponent } from '../oci/reference.js';
import type { Store } from '../oci/storage.js';

/** The label of a channel's own repositories (SPEC §2: the URL leaves it out). */
export const MAIN_LABEL = 'main';

export interface PackageRepository {
  /** The full repository name, e.g. `prod/conda-forge/linux-64/cnumpy`. */
  name: string;
  subdir: string;
  /** The component under the subdir, e.g. `cnumpy` or `h<sha256>`. */
  component: string;
  /** The label the repository belongs to: `main`, or `<label>` of `<channel>/label/<label>/…`. */
  label: string;
}

export interface ScanOptions {
  /** Told of a place the store would not list (a symbolic link in a channel on disk), and why. */
  onRefused?: (name: string, reason: OciError) => void;
}

/** Package repositories directly under the channel (not under its labels): `<prefix>/<subdir>/<c…|h…>`. */
export async function packageRepositories(
  store: Store,
  channel: Channel,
  options: ScanOptions = {},
): Promise<PackageRepository[]> {
  return (await scan(store, channel, false, options)).repositories;
}

/**
 * Package repositories of every label of a channel, in one listing: its own (`main`) and each
 * `<channel>/label/<label>/<subdir>/<c…|h…>`. A channel whose URL names a label has that one only.
 * `labels`: every label seen, the channel's own first.
 */
export function packageRepositoriesOfEveryLabel(
  store: Store,
  channel: Channel,
  options: ScanOptions = {},
): Promise<{ labels: string[]; repositories: PackageRepository[] }> {
  return scan(store, channel, channel.label === undefined, options);
}

async function scan(
  store: Store,
  channel: Channel,
  everyLabel: boolean,
  options: ScanOptions,
): Promise<{ labels: string[]; repositories: PackageRepository[] }> {
  const prefix = channelPrefix(channel);
  const own = channel.label ?? MAIN_LABEL;
  const labels = new Set([own]);
  const repositories: PackageRepository[] = [];
  for await (const name of store.listRepositories(prefix, options)) {
    const place = placeBelow(prefix, name, everyLabel);
    if (!place) continue;
    if (place.label) labels.add(place.label);
    const [subdir, component, ...more] = place.rest;
    if (more.length > 0 || !subdir || !component || !isSubdir(subdir)) continue;
    const kind = classifyComponent(component);
    if (kind === 'package' || kind === 'hashed-package')
      repositories.push({ name, subdir, component, label: place.label ?? own });
  }
  return { labels: [...labels], repositories };
}

/**
 * Where a repository name lies below the channel's prefix: under which label (with `everyLabel`,
 * `label/<label>/…`), and the components below that.
 */
export function placeBelow(
  prefix: string,
  name: string,
  everyLabel: boolean,
): { label?: string; rest: string[] } | undefined {
  if (prefix && !name.startsWith(`${prefix}/`)) return undefined;
  const rest = (prefix ? name.slice(prefix.length + 1) : name).split('/');
  if (
    everyLabel &&
    rest[0] === 'label' &&
    rest[1] !== undefined &&
    rest[1] !== MAIN_LABEL &&
    isPathComponent(rest[1])
  )
    return { label: rest[1], rest: rest.slice(2) };
  return { rest };
}
