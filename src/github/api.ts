/**
 * GitHub's REST API through @actions/github's Octokit. Used for what GHCR's registry API lacks
 * (listing and deleting packages) and for the staging flow (dispatch, issues).
 */
import { getOctokit } from '@actions/github';

export type GitHubApi = ReturnType<typeof getOctokit>;

/**
 * An Octokit for `token`, honouring GITHUB_API_URL (GitHub Enterprise, or a local stand-in).
 * No `request` option: Octokit merges options shallowly, so one would replace the proxy-aware
 * `fetch` that @actions/github sets up for self-hosted runners behind a proxy.
 */
export function githubApi(
  token: string,
  baseUrl = process.env.GITHUB_API_URL || 'https://api.github.com',
): GitHubApi {
  return getOctokit(token, { baseUrl });
}

export function splitRepository(fullName: string): { owner: string; repo: string } {
  const [owner, repo, ...rest] = fullName.split('/');
  if (!owner || !repo || rest.length > 0) throw new Error(`"${fullName}" is not of the form <owner>/<repo>`);
  return { owner, repo };
}
