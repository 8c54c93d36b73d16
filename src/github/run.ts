/** The workflow run a step belongs to, from the variables GitHub Actions sets. */

/** `https://github.com/<owner>/<repo>/actions/runs/<id>`, or undefined outside Actions. */
export function runUrl(env: NodeJS.ProcessEnv): string | undefined {
  if (!env.GITHUB_REPOSITORY || !env.GITHUB_RUN_ID) return undefined;
  return `${env.GITHUB_SERVER_URL ?? 'https://github.com'}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}`;
}
