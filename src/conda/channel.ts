/**
 * Conda channels stored in OCI (SPEC §2): `oci://<host>[:<port>]/<path>[/label/<label>]` and
 * `oci-layout:<dir>`, the repository names below a channel, and the conda subdir grammar.
 */
import { resolve } from 'node:path';
import { InvalidReferenceError } from '../oci/errors.js';
import { checkRepositoryName, isHost, isLoopbackHost, isPathComponent } from '../oci/reference.js';

const SUBDIR_PATTERN = /^(?:[a-z0-9]+-[a-z0-9]+|noarch)$/;

/**
 * The subdirs conda clients know (rattler's platform list, a superset of conda's and mamba's).
 * Only these count as a claim (a build folder named after one), and only these are created on
 * request without saying so: `linux-65` is a typo, not a platform.
 */
export const KNOWN_SUBDIRS: ReadonlySet<string> = new Set([
  'noarch',
  'linux-32',
  'linux-64',
  'linux-aarch64',
  'linux-armv6l',
  'linux-armv7l',
  'linux-loongarch64',
  'linux-ppc64le',
  'linux-ppc64',
  'linux-ppc',
  'linux-s390x',
  'linux-riscv32',
  'linux-riscv64',
  'freebsd-32',
  'freebsd-64',
  'freebsd-arm64',
  'freebsd-ppc64le',
  'freebsd-ppc64',
  'osx-64',
  'osx-arm64',
  'ios-arm64',
  'iossimulator-arm64',
  'iossimulator-64',
  'android-aarch64',
  'android-armv7a',
  'android-64',
  'android-32',
  'win-32',
  'win-64',
  'win-arm64',
  'emscripten-wasm32',
  'emscripten-wasm64',
  'wasi-wasm32',
  'zos-z',
]);

export function isSubdir(subdir: string): boolean {
  return SUBDIR_PATTERN.test(subdir);
}

export function checkSubdir(subdir: string): string {
  if (!isSubdir(subdir)) {
    throw new InvalidReferenceError(
      `subdir "${subdir}" is not valid: expected "noarch" or "<platform>-<arch>" in lower case`,
    );
  }
  return subdir;
}

/** A channel on a registry: `oci://host[:port]/path[/label/<label>]`. */
export interface RegistryChannel {
  kind: 'registry';
  /** `host` or `host:port`, as used in URLs and docker config keys. */
  host: string;
  plainHttp: boolean;
  path: string;
  label?: string;
}

/** A channel on disk: `oci-layout:<dir>`, one OCI image layout per repository. */
export interface LayoutChannel {
  kind: 'layout';
  dir: string;
  label?: string;
}

export type Channel = RegistryChannel | LayoutChannel;

export interface ParseChannelOptions {
  /** Label from `--label`; `main` means no label. Conflicts with a label in the URL are refused. */
  label?: string;
  /** Allow plain HTTP to a host that is not loopback. */
  plainHttp?: boolean;
}

function normalizeLabel(label: string | undefined, url: string): string | undefined {
  if (label === undefined || label === '' || label === 'main') return undefined;
  if (!isPathComponent(label)) {
    throw new InvalidReferenceError(
      `label "${label}" of ${url} does not match the OCI repository-name grammar`,
    );
  }
  return label;
}

/** Parses a channel URL (SPEC §2). Throws InvalidReferenceError with a clear message. */
export function parseChannel(url: string, options: ParseChannelOptions = {}): Channel {
  const trimmed = url.trim();
  if (trimmed.startsWith('oci-layout:')) {
    const dir = trimmed.slice('oci-layout:'.length);
    if (dir === '')
      throw new InvalidReferenceError(`channel "${url}" names no directory: use oci-layout:<dir>`);
    const label = normalizeLabel(options.label, url);
    return { kind: 'layout', dir: resolve(dir), ...(label ? { label } : {}) };
  }
  if (!trimmed.startsWith('oci://')) {
    throw new InvalidReferenceError(
      `channel "${url}" must start with oci:// (a registry) or oci-layout: (a directory)`,
    );
  }
  const rest = trimmed.slice('oci://'.length).replace(/\/+$/, '');
  const slash = rest.indexOf('/');
  const host = slash === -1 ? rest : rest.slice(0, slash);
  const fullPath = slash === -1 ? '' : rest.slice(slash + 1);
  if (host.includes('@'))
    throw new InvalidReferenceError(
      `channel "${url}": put credentials in options or the docker config, not in the URL`,
    );
  if (!isHost(host)) throw new InvalidReferenceError(`channel "${url}" has an invalid host "${host}"`);
  if (fullPath === '')
    throw new InvalidReferenceError(
      `channel "${url}" has no channel path, e.g. oci://ghcr.io/<org>/<channel>`,
    );

  let path = fullPath;
  let urlLabel: string | undefined;
  const match = /^(.*)\/label\/([^/]+)$/.exec(fullPath);
  if (match) {
    path = match[1]!;
    urlLabel = match[2]!;
  }
  checkRepositoryName(path, `channel path of ${url}`);
  if (
    urlLabel !== undefined &&
    options.label !== undefined &&
    normalizeLabel(urlLabel, url) !== normalizeLabel(options.label, url)
  ) {
    throw new InvalidReferenceError(
      `channel "${url}" names label "${urlLabel}" but the label option says "${options.label}"`,
    );
  }
  const label = normalizeLabel(urlLabel ?? options.label, url);
  const plainHttp = isLoopbackHost(host) || options.plainHttp === true;
  return { kind: 'registry', host: host.toLowerCase(), plainHttp, path, ...(label ? { label } : {}) };
}

/** The repository prefix every name of the channel starts with ('' for an unlabelled layout). */
export function channelPrefix(channel: Channel): string {
  const label = channel.label ? `label/${channel.label}` : '';
  if (channel.kind === 'layout') return label;
  return label ? `${channel.path}/${label}` : channel.path;
}

/** The repository of a component below the channel, e.g. `linux-64/cnumpy`. */
export function channelRepository(channel: Channel, relative: string): string {
  const prefix = channelPrefix(channel);
  const name = prefix ? `${prefix}/${relative}` : relative;
  // The distribution spec warns that many clients cap `host/name` at 255 characters, and
  // distribution itself answers longer names with a 500.
  const full = channel.kind === 'registry' ? `${channel.host}/${name}` : name;
  if (full.length > MAX_REFERENCE_NAME) {
    throw new InvalidReferenceError(
      `${full} is ${full.length} characters long; registries accept at most ${MAX_REFERENCE_NAME}: use a shorter channel path`,
    );
  }
  return name;
}

const MAX_REFERENCE_NAME = 255;

export function channelUrl(channel: Channel): string {
  if (channel.kind === 'layout')
    return `oci-layout:${channel.dir}${channel.label ? ` (label ${channel.label})` : ''}`;
  return `oci://${channel.host}/${channelPrefix(channel)}`;
}

/** `host/repository:tag` or `host/repository@digest`, for logs and results. */
export function formatReference(channel: Channel, repository: string, tagOrDigest: string): string {
  const sep = tagOrDigest.startsWith('sha256:') ? '@' : ':';
  if (channel.kind === 'layout') return `oci-layout:${channel.dir}/${repository}${sep}${tagOrDigest}`;
  return `${channel.host}/${repository}${sep}${tagOrDigest}`;
}

/** The channel itself, without its label (`…/label/rc` → `…`). */
export function withoutLabel(channel: Channel): Channel {
  const { label: _label, ...rest } = channel;
  return rest;
}
