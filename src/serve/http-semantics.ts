/**
 * The parts of HTTP semantics (RFC 9110) the gateway needs, as pure functions: entity tags and
 * conditional requests (§8.8.3, §13.1.2), single byte ranges (§14), content codings (§12.5.3).
 */

/** `"sha256:…"`: the gateway's entity tags are the OCI digests of what it serves. */
export function etagOf(digest: string): string {
  return `"${digest}"`;
}

function etagList(header: string): string[] {
  return header
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
}

/** If-None-Match: weak comparison, `*` matches anything. */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return etagList(header).some((t) => t === '*' || t.replace(/^W\//, '') === etag);
}

/** If-Range with an entity tag: strong comparison (a date never matches: we send no Last-Modified). */
export function ifRangeMatches(header: string | undefined, etag: string): boolean {
  return header === undefined || header.trim() === etag;
}

export type RangeRequest =
  { kind: 'none' } | { kind: 'range'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * A `Range: bytes=…` header against a representation of `size` bytes. Only a single range is
 * served; several ranges, other units or a malformed header are ignored (a full 200 answer, as
 * RFC 9110 allows).
 */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'none' };
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return { kind: 'none' };
  const [, first, last] = match as unknown as [string, string, string];
  if (first === '' && last === '') return { kind: 'none' };
  if (first === '') {
    // A suffix: the last N bytes.
    const length = Number(last);
    if (length === 0) return { kind: 'unsatisfiable' };
    if (size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  if (!Number.isSafeInteger(start)) return { kind: 'none' };
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (!Number.isSafeInteger(end) || end < start) return { kind: 'none' };
  return { kind: 'range', start, end };
}

/** The q-value the client gives a content coding (`identity` is acceptable unless refused). */
export function codingQuality(header: string | undefined, coding: string): number {
  if (header === undefined) return coding === 'identity' ? 1 : 0;
  let wildcard: number | undefined;
  for (const part of header.split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => /^\s*q\s*=\s*([0-9.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    const quality = q === undefined ? 1 : Math.min(1, Number(q) || 0);
    if (name === coding) return quality;
    if (name === '*') wildcard = quality;
  }
  if (wildcard !== undefined) return wildcard;
  return coding === 'identity' ? 1 : 0;
}

/** The best of `offered` content codings for an Accept-Encoding header, or `identity`. */
export function chooseCoding(header: string | undefined, offered: readonly string[]): string {
  let best = 'identity';
  let bestQuality = codingQuality(header, 'identity') > 0 ? 0.001 : 0;
  for (const coding of offered) {
    const quality = codingQuality(header, coding);
    if (quality > bestQuality) {
      best = coding;
      bestQuality = quality;
    }
  }
  return best;
}
