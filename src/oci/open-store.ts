/** Opens the store behind a channel: a registry client or an on-disk layout. */
import { LayoutStore } from './layout/store.js';
import type { Channel } from '../conda/channel.js';
import type { Credentials } from './remote/auth.js';
import { resolveCredentials, type CredentialSources } from './remote/credentials.js';
import type { HttpOptions } from './remote/http.js';
import {
  RemoteStore,
  type ManifestDeleter,
  type ManifestTimer,
  type RepositoryLister,
} from './remote/store.js';
import type { Store } from './storage.js';

export interface StoreOptions extends HttpOptions, CredentialSources {
  /** Providers for what a registry's API lacks (GHCR: catalog, manifest DELETE, times), chosen by host. */
  registryExtras?: (
    host: string,
  ) =>
    | { listRepositories?: RepositoryLister; deleteManifest?: ManifestDeleter; manifestTime?: ManifestTimer }
    | undefined;
  monolithicLimit?: number;
  chunkSize?: number;
  /** Told of the credentials in use, so the caller can mask them in logs. */
  onCredentials?: (credentials: Credentials) => void;
  /** Told of every token a registry's token service issues, so the caller can mask it too. */
  onToken?: (token: string) => void;
}

export function openStore(channel: Channel, options: StoreOptions = {}): Store {
  if (channel.kind === 'layout') return new LayoutStore(channel.dir);
  const { credentials } = resolveCredentials(channel.host, options);
  if (credentials) options.onCredentials?.(credentials);
  return new RemoteStore({
    ...options,
    host: channel.host,
    plainHttp: channel.plainHttp,
    ...(credentials ? { credentials } : {}),
    ...options.registryExtras?.(channel.host),
  });
}
