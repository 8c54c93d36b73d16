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

/** Sends the dispatch. GitHub allows at most 10 top-level keys in client_payload; this has 7. */
export async function requestValidation(
  api: GitHubApi,
  target: string,
  request: ValidationRequest,
): Promise<void> {
  const { owner, repo } = splitRepository(target);
  await api.request('POST /repos/{owner}/{repo}/dispatches', {
    owner,
    repo,
    event_type: DISPATCH_EVENT_TYPE,
    client_payload: request as unknown as Record<string, unknown>,
  });
}
