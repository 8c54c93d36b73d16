/**
 * The action: reads its inputs, runs the command through the same `execute` as the CLI, then
 * publishes outputs and the job summary. The only place that marks the step failed.
 */
import * as core from '@actions/core';
import type { CommandResult } from '../commands/report.js';
import { execute, type Environment } from '../core/execute.js';
import type { GitHubApi } from '../github/api.js';
import * as actionsCache from '@actions/cache';
import type { CacheService } from '../github/cache.js';
import { onSecret, redact } from '../redact.js';
import { describeError } from '../util/describe-error.js';
import type { ActionInputs } from './inputs.js';
import { actionsReporter } from './log.js';
import { setOutputs } from './outputs.js';
import { writeSummary } from './summary.js';

export interface RunDependencies {
  /** GitHub's REST API; defaults to an Octokit for the github-token input. */
  api?: GitHubApi;
  environment?: Partial<Environment>;
  /** @actions/cache, for repodata's record cache. */
  cache?: CacheService;
}

let masking = false;
/** Every secret the run learns (password, token, record key, basic credentials) is masked in the log. */
function maskSecrets(): void {
  if (masking) return;
  masking = true;
  onSecret((secret) => core.setSecret(secret));
}

export async function run(
  inputs: ActionInputs,
  deps: RunDependencies = {},
): Promise<CommandResult | undefined> {
  maskSecrets();
  try {
    const { options } = inputs;
    const result = await core.group(`conda-oci ${options.command}`, () =>
      execute(options, {
        reporter: actionsReporter(),
        cache: deps.cache ?? actionsCache,
        ...(deps.api ? { github: deps.api } : {}),
        sources: inputs.sources ?? { env: process.env, shell: 'action' },
        ...deps.environment,
      }),
    );
    setOutputs(result);
    await writeSummary(result);
    if (result.exitCode !== 0) {
      const failed = result.artifacts.filter((a) => a.status === 'failed');
      core.setFailed(
        redact(
          `${failed.length} artifact(s) failed: ${failed.map((a) => `${a.subdir}/${a.file} (${a.error ?? 'failed'})`).join('; ')}`,
        ),
      );
    }
    return result;
  } catch (err) {
    core.setFailed(redact(describeError(err)));
    return undefined;
  }
}
