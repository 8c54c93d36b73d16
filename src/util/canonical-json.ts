/**
 * The one canonical JSON of the project: keys of every object sorted by UTF-16 code unit, no
 * whitespace, `undefined` members left out. Manifests (whose digests must be stable), records and
 * repodata documents (whose bytes must be reproducible) are all written with it.
 */

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Orders strings by UTF-16 code unit, as `Array.prototype.sort` does without a comparator. */
export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Written key by key, so keys that look like integers (`"2"`, a version in channeldata's
 * run_exports) stay in sorted order too; `JSON.stringify` of an object would put them first.
 */
export function canonicalStringify(value: unknown): string {
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? 'null' : canonicalStringify(v))).join(',')}]`;
  if (isObject(value)) {
    const parts: string[] = [];
    for (const key of Object.keys(value).sort(byCodeUnit)) {
      const v = value[key];
      if (v !== undefined) parts.push(`${JSON.stringify(key)}:${canonicalStringify(v)}`);
    }
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** canonicalStringify as UTF-8 bytes: the same value always gives the same bytes, hence digest. */
export function canonicalJson(value: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalStringify(value));
}
