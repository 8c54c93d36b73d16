/**
 * The artifacts a validate or promote run is asked about, from any of the forms users have:
 * `--artifact <subdir>/<file>=<sha256>`, the result document `upload` or `validate` wrote, or
 * conda-forge's `outputs` map `{"<subdir>/<file>": "<sha256>"}` (also inside a
 * repository_dispatch payload).
 */
import { readFileSync } from 'node:fs';
import { InvalidReferenceError } from '../oci/errors.js';
import { checkSubdir } from '../conda/channel.js';
import { parseArtifactFileName } from '../conda/naming.js';

export interface RequestedArtifact {
  subdir: string;
  file: string;
  /** The sha256 the requester claims, lower-case hex. */
  sha256: string;
  /**
   * From a validate result (the trusted job's own output): the staged manifest validate passed
   * and its record. Promote then copies exactly that manifest, proven by exactly that record.
   */
  digest?: string;
  record?: string;
}

/** Identity of a request: `<subdir>/<file>`. */
export function artifactKey(artifact: { subdir: string; file: string }): string {
  return `${artifact.subdir}/${artifact.file}`;
}

function requested(key: string, sha256: unknown, where: string): RequestedArtifact {
  const slash = key.indexOf('/');
  if (slash <= 0) throw new InvalidReferenceError(`${where}: "${key}" is not of the form <subdir>/<file>`);
  const subdir = checkSubdir(key.slice(0, slash));
  const file = key.slice(slash + 1);
  parseArtifactFileName(file);
  if (typeof sha256 !== 'string' || !/^[a-fA-F0-9]{64}$/.test(sha256.replace(/^sha256:/, ''))) {
    throw new InvalidReferenceError(`${where}: the sha256 of ${key} is not 64 hex characters`);
  }
  return { subdir, file, sha256: sha256.replace(/^sha256:/, '').toLowerCase() };
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** The manifest and record digests a validate result carries for an artifact it passed. */
function validatedDigests(
  entry: Record<string, unknown>,
  where: string,
): { digest?: string; record?: string } {
  if (entry.status !== 'passed') return {};
  for (const key of ['digest', 'record'] as const)
    if (entry[key] !== undefined && (typeof entry[key] !== 'string' || !DIGEST.test(entry[key])))
      throw new InvalidReferenceError(`${where}: "${key}" is not a sha256 digest`);
  return {
    ...(typeof entry.digest === 'string' ? { digest: entry.digest } : {}),
    ...(typeof entry.record === 'string' ? { record: entry.record } : {}),
  };
}

/** `--artifact linux-64/foo-1.0-0.conda=<sha256>` */
export function parseArtifactFlag(value: string): RequestedArtifact {
  const eq = value.lastIndexOf('=');
  if (eq <= 0)
    throw new InvalidReferenceError(`--artifact "${value}" is not of the form <subdir>/<file>=<sha256>`);
  return requested(value.slice(0, eq), value.slice(eq + 1), '--artifact');
}

/**
 * A JSON document in any accepted shape: a command result (`{artifacts: [...]}`), a bare list of
 * results, conda-forge's outputs map, or a dispatch payload holding one of those.
 */
export function parseArtifactDocument(value: unknown, where: string): RequestedArtifact[] {
  if (typeof value === 'string') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      throw new InvalidReferenceError(`${where} is not JSON`);
    }
    return parseArtifactDocument(parsed, where);
  }
  if (Array.isArray(value)) {
    // A list of results (the action's `artifacts` output): failed uploads carry no sha256 and
    // are not requests, as in a whole result document.
    return value.flatMap((entry, i) => {
      if (entry === null || typeof entry !== 'object')
        throw new InvalidReferenceError(`${where}: entry ${i} is not an object`);
      const e = entry as Record<string, unknown>;
      if (e.status === 'failed' || e.status === 'skipped') return [];
      if (typeof e.subdir !== 'string' || typeof e.file !== 'string')
        throw new InvalidReferenceError(`${where}: entry ${i} lacks subdir and file`);
      return [
        {
          ...requested(`${e.subdir}/${e.file}`, e.sha256, where),
          ...validatedDigests(e, `${where}: entry ${i}`),
        },
      ];
    });
  }
  if (value === null || typeof value !== 'object')
    throw new InvalidReferenceError(`${where} is neither a list of artifacts nor an outputs map`);
  const obj = value as Record<string, unknown>;
  if (Array.isArray(obj.artifacts)) {
    return parseArtifactDocument(obj.artifacts, where);
  }
  if (obj.outputs !== undefined) return parseArtifactDocument(obj.outputs, where);
  if (obj.client_payload !== undefined) return parseArtifactDocument(obj.client_payload, where);
  return Object.entries(obj).map(([key, sha]) => requested(key, sha, where));
}

/** Merges requests, refusing one artifact claimed with two different digests. */
export function mergeRequests(lists: RequestedArtifact[][]): RequestedArtifact[] {
  const byKey = new Map<string, RequestedArtifact>();
  for (const item of lists.flat()) {
    const key = artifactKey(item);
    const seen = byKey.get(key);
    if (seen && seen.sha256 !== item.sha256)
      throw new InvalidReferenceError(`${key} is requested with two different sha256 values`);
    for (const field of ['digest', 'record'] as const)
      if (seen?.[field] && item[field] && seen[field] !== item[field])
        throw new InvalidReferenceError(`${key} is requested with two different ${field} values`);
    byKey.set(key, { ...seen, ...item });
  }
  return [...byKey.values()];
}

/**
 * A request names at most this many artifacts (README "Security": every
 * cost is bounded). The largest conda-forge feedstocks publish a few hundred files per build.
 */
export const MAX_ARTIFACTS_PER_REQUEST = 2000;

function capped(artifacts: RequestedArtifact[], where: string): RequestedArtifact[] {
  if (artifacts.length > MAX_ARTIFACTS_PER_REQUEST)
    throw new InvalidReferenceError(
      `${where} names ${artifacts.length} artifacts, more than the limit of ${MAX_ARTIFACTS_PER_REQUEST} per request`,
    );
  return artifacts;
}

/**
 * What a shell was given for `artifacts`, each value one of: `<subdir>/<file>=<sha256>` (several
 * separated by spaces or lines), a JSON document (see parseArtifactDocument), or the path of a
 * file holding one (an upload result file).
 */
export function parseArtifactValues(values: readonly string[], where: string): RequestedArtifact[] {
  const lists = values.map((value) => {
    const text = value.trim();
    if (text.startsWith('{') || text.startsWith('[')) return parseArtifactDocument(text, where);
    const tokens = text.split(/\s+/).filter(Boolean);
    if (tokens.length > 0 && tokens.every((t) => /^[^/=\s]+\/[^=\s]+=[^\s]+$/.test(t)))
      return tokens.map(parseArtifactFlag);
    let content: string;
    try {
      content = readFileSync(text, 'utf8');
    } catch (err) {
      throw new InvalidReferenceError(
        `${where}: "${text}" is neither <subdir>/<file>=<sha256>, JSON, nor a readable file (${(err as Error).message})`,
      );
    }
    return parseArtifactDocument(content, `${where} (${text})`);
  });
  const all = capped(mergeRequests(lists), where);
  if (all.length === 0) throw new InvalidReferenceError(`${where} names no artifact`);
  return all;
}

/** The artifacts of a repository_dispatch (or workflow_dispatch) payload, if it names any. */
export function payloadArtifacts(
  payload: Record<string, unknown> | undefined,
): RequestedArtifact[] | undefined {
  if (!payload || (payload.outputs === undefined && payload.artifacts === undefined)) return undefined;
  return capped(mergeRequests([parseArtifactDocument(payload, 'the event payload')]), 'the event payload');
}
