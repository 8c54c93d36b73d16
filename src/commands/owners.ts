/**
 * Who may publish which package name: conda-forge keeps this as its feedstock-outputs registry.
 * Here it is one JSON file, in either form:
 *
 *   { "numpy": ["numpy"], "libarrow*": ["arrow-cpp"] }
 *   { "allow_new_names": false, "packages": { "numpy": { "feedstocks": ["numpy"] } } }
 *
 * Keys may be glob patterns (`*`, `?`); feedstock names match with or without `-feedstock`.
 */
import { ownershipName } from '../conda/naming-scheme.js';
import { InvalidReferenceError } from '../oci/errors.js';

export interface OwnersMap {
  allowNewNames: boolean;
  entries: { pattern: string; matcher: RegExp; feedstocks: string[] }[];
}

export function parseOwners(value: unknown, where: string): OwnersMap {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new InvalidReferenceError(`${where}: the owners map must be a JSON object`);
  const obj = value as Record<string, unknown>;
  const packages = (obj.packages ?? obj) as Record<string, unknown>;
  const allowNewNames = obj.allow_new_names === true;
  const entries: OwnersMap['entries'] = [];
  for (const [pattern, owners] of Object.entries(packages)) {
    if (pattern === 'allow_new_names' || pattern === 'packages') continue;
    const list = Array.isArray(owners) ? owners : (owners as { feedstocks?: unknown })?.feedstocks;
    if (!Array.isArray(list) || !list.every((f) => typeof f === 'string')) {
      throw new InvalidReferenceError(
        `${where}: the owners of "${pattern}" must be a list of feedstock names`,
      );
    }
    // `_x` and `zzz_x` share one v0 repository: one name for ownership (naming-scheme.ts).
    const name = ownershipName(pattern);
    entries.push({ pattern: name, matcher: globToRegExp(name), feedstocks: list.map(normalizeFeedstock) });
  }
  return { allowNewNames, entries };
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

export function normalizeFeedstock(name: string): string {
  return name
    .trim()
    .replace(/-feedstock$/, '')
    .toLowerCase();
}

/** The feedstocks the map lets publish `name` (an ownership name), without `-feedstock`. */
export function ownersOf(owners: OwnersMap, name: string): string[] {
  return [...new Set(owners.entries.filter((e) => e.matcher.test(name)).flatMap((e) => e.feedstocks))];
}

/** Whether `feedstock` may publish `name`, and why, in words. */
export function checkOwner(
  owners: OwnersMap,
  name: string,
  feedstock: string,
): { ok: boolean; detail: string } {
  const matching = owners.entries.filter((e) => e.matcher.test(name));
  if (matching.length === 0) {
    return owners.allowNewNames
      ? { ok: true, detail: `"${name}" is not registered yet; new names are allowed` }
      : {
          ok: false,
          detail: `"${name}" is not registered to any feedstock; register it for ${normalizeFeedstock(feedstock)} first`,
        };
  }
  const wanted = normalizeFeedstock(feedstock);
  const allowed = [...new Set(matching.flatMap((e) => e.feedstocks))];
  return allowed.includes(wanted)
    ? { ok: true, detail: `"${name}" is registered to ${wanted}` }
    : { ok: false, detail: `"${name}" is registered to ${allowed.join(', ')}, not to ${wanted}` };
}
