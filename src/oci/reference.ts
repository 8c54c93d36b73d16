/**
 * The OCI name grammar (repositories, path components, tags) and loopback hosts.
 * Repository names: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests
 */
import { InvalidReferenceError } from './errors.js';

const PATH_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const REPOSITORY_PATTERN = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const COMPONENT_PATTERN = new RegExp(`^${PATH_COMPONENT}$`);
const TAG_PATTERN = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

export function isRepositoryName(name: string): boolean {
  return REPOSITORY_PATTERN.test(name);
}

export function isPathComponent(name: string): boolean {
  return COMPONENT_PATTERN.test(name);
}

export function isTag(tag: string): boolean {
  return TAG_PATTERN.test(tag);
}

export function checkTag(tag: string): string {
  if (!isTag(tag)) throw new InvalidReferenceError(`tag "${tag}" does not match the OCI tag grammar`);
  return tag;
}

export function checkRepositoryName(name: string, what = 'repository'): string {
  if (!isRepositoryName(name)) {
    throw new InvalidReferenceError(`${what} "${name}" does not match the OCI repository-name grammar`);
  }
  return name;
}

export function isLoopbackHost(host: string): boolean {
  const hostname = stripPort(host).toLowerCase();
  if (hostname === 'localhost' || hostname === '[::1]' || hostname === '::1') return true;
  const octets = hostname.split('.');
  return (
    octets.length === 4 && octets[0] === '127' && octets.every((o) => /^\d{1,3}$/.test(o) && Number(o) <= 255)
  );
}

function stripPort(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

const HOST_PATTERN = /^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?)(?::\d{1,5})?$/;

/** A registry host as written in URLs and docker config keys: `name[:port]` or `[v6][:port]`. */
export function isHost(host: string): boolean {
  return HOST_PATTERN.test(host);
}
