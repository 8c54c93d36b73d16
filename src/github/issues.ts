/**
 * Tells a feedstock that validation refused its artifacts, as conda-forge's webservices do: one
 * open issue per feedstock, labelled, updated with a comment on each new failure.
 */
import type { CommandResult } from '../commands/report.js';
import { redact } from '../redact.js';
import { splitRepository, type GitHubApi } from './api.js';

export const ISSUE_LABEL = 'conda-oci-validation';
const TITLE = 'Package validation failed: artifacts were not published';

const ADVICE: Record<string, string> = {
  manifest: 'Upload the artifact again (the upload step may have failed or staging was cleaned).',
  identity: 'The staged artifact does not match its file name; upload it again with conda-oci.',
  'claimed-sha256': 'The staged file is not the one your build produced; rebuild and upload again.',
  'package-bytes': 'The staged bytes do not match; upload again.',
  'package-index': 'info/index.json disagrees with the file name or subdir; check the recipe and rebuild.',
  'index-layer': 'Upload again with conda-oci.',
  'info-layer': 'Upload again with conda-oci.',
  md5: 'Upload again with conda-oci.',
  owner: 'Register the output name for this feedstock (the owners map) before publishing it.',
  production:
    'This exact name, version and build is already published with different content: bump the build number.',
};

/** GitHub refuses issue and comment bodies over 65,536 characters. */
export const MAX_BODY_CHARS = 65_536;

export function issueBody(result: CommandResult, run?: string): string {
  const lines = [
    `conda-oci refused ${result.artifacts.filter((a) => a.status === 'failed').length} artifact(s)${run ? ` in ${run}` : ''}.`,
    '',
  ];
  for (const artifact of result.artifacts.filter((a) => a.status === 'failed')) {
    lines.push(`### \`${artifact.subdir}/${artifact.file}\``, '');
    const failed = artifact.checks?.filter((c) => !c.ok) ?? [];
    if (failed.length === 0) lines.push(`- ${artifact.error ?? 'failed'}`);
    for (const check of failed)
      lines.push(
        `- **${check.name}**: ${check.detail}${ADVICE[check.name] ? `\n  _How to fix:_ ${ADVICE[check.name]}` : ''}`,
      );
    lines.push('');
  }
  // Posted on a public repository: nothing secret may pass.
  const body = redact(lines.join('\n'));
  if (body.length <= MAX_BODY_CHARS) return body;
  const note = `\n\n… cut to GitHub's size limit; the full list is in the job summary${run ? ` of ${run}` : ''}.`;
  return body.slice(0, MAX_BODY_CHARS - note.length) + note;
}

/** Opens the feedstock's validation issue, or comments on the open one. Returns its URL. */
export async function reportFailures(
  api: GitHubApi,
  repository: string,
  result: CommandResult,
  run?: string,
): Promise<string | undefined> {
  if (!result.artifacts.some((a) => a.status === 'failed')) return undefined;
  const { owner, repo } = splitRepository(repository);
  const body = issueBody(result, run);
  const open = await api.request('GET /repos/{owner}/{repo}/issues', {
    owner,
    repo,
    state: 'open',
    labels: ISSUE_LABEL,
    per_page: 10,
  });
  const existing = (open.data as { number: number; html_url: string; title: string }[]).find(
    (i) => i.title === TITLE,
  );
  if (existing) {
    await api.request('POST /repos/{owner}/{repo}/issues/{issue_number}/comments', {
      owner,
      repo,
      issue_number: existing.number,
      body,
    });
    return existing.html_url;
  }
  const created = await api.request('POST /repos/{owner}/{repo}/issues', {
    owner,
    repo,
    title: TITLE,
    body,
    labels: [ISSUE_LABEL],
  });
  return (created.data as { html_url: string }).html_url;
}
