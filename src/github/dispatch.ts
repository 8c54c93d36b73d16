/**
 * The feedstock asks the webservices side for validation, as conda-forge feedstocks do after
 * uploading to cf-staging: a `repository_dispatch` carrying the outputs map.
 * https://docs.github.com/en/rest/repos/repos#create-a-repository-dispatch-event
 */
import type { ArtifactResult } from '../commands/report.js';
import { splitRepository, type GitHubApi } from './api.js';

export const DISPATCH_EVENT_TYPE = 'conda-oci-validate';

export interface ValidationRequest {
  /** conda-forge's `outputs` map: `{"<subdir>/<file>": "<sha256>"}`. */
  outputs: Record<string, string>;
  feedstock?: string;
  /** The staging channel URL. */
  staging: string;
  label?: string;
  repository?: string;
  sha?: string;
  run?: string;
  /** conda-forge's feedstock token, for a validating side that checks tokens (never logged there). */
  feedstock_token?: string;
}

export function validationRequest(
  artifacts: ArtifactResult[],
  fields: Omit<ValidationRequest, 'outputs'>,
): ValidationRequest {
  const outputs: Record<string, string> = {};
  for (const a of artifacts)
    if ((a.status === 'uploaded' || a.status === 'exists') && a.sha256)
      outputs[`${a.subdir}/${a.file}`] = a.sha256;
  return { outputs, ...fields };
}

/** GitHub's limits on client_payload: at most 10 top-level keys, under 64 KB of JSON. */
export const DISPATCH_MAX_KEYS = 10;
export const DISPATCH_MAX_PAYLOAD_BYTES = 64 * 1024;

/**
 * Splits a request whose payload would exceed GitHub's size limit into several, each with a
 * part of the outputs map and the same other fields (every artifact is validated on its own).
 */
export function splitRequest(
  request: ValidationRequest,
  limit = DISPATCH_MAX_PAYLOAD_BYTES - 1024,
): ValidationRequest[] {
  const empty = Buffer.byteLength(JSON.stringify({ ...request, outputs: {} }));
  const parts: ValidationRequest[] = [];
  let outputs: Record<string, string> = {};
  let size = empty;
  for (const [key, sha256] of Object.entries(request.outputs)) {
    // `"key":"sha256"` plus the comma before it.
    const entry = Buffer.byteLength(JSON.stringify({ [key]: sha256 })) - 1;
    if (empty + entry > limit)
      throw new Error(`the dispatch payload for ${key} alone exceeds GitHub's limit`);
    if (size + entry > limit) {
      parts.push({ ...request, outputs });
      outputs = {};
      size = empty;
    }
    outputs[key] = sha256;
    size += entry;
  }
  parts.push({ ...request, outputs });
  return parts;
}

/**
 * Sends the dispatch (one per part when the outputs map is too large for one payload).
 * The payload has at most 8 top-level keys, within GitHub's limit of 10. Returns how many were sent.
 */
export async function requestValidation(
  api: GitHubApi,
  target: string,
  request: ValidationRequest,
): Promise<number> {
  const { owner, repo } = splitRepository(target);
  const parts = splitRequest(request);
  for (const part of parts)
    await api.request('POST /repos/{owner}/{repo}/dispatches', {
      owner,
      repo,
      event_type: DISPATCH_EVENT_TYPE,
      client_payload: part as unknown as Record<string, unknown>,
    });
  return parts.length;
}
