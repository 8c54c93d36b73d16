/**
 * The action: runs one command through the same `execute` as the CLI, then publishes outputs,
 * the job summary, and (when asked) the dispatch or the feedstock issue. The only place that
 * marks the step failed.
 */
import * as core from '@actions/core';
import type { CommandResult, Reporter } from './commands/report.js';
import { execute, type Environment } from './execute.js';
import { githubApi, type GitHubApi } from './github/api.js';
import { requestValidation, validationRequest } from './github/dispatch.js';
import { reportFailures } from './github/issues.js';
import { ghcrExtras } from './github/packages.js';
import type { ActionInputs } from './inputs.js';
import { describeError } from './oci/errors.js';
import { parseChannel } from './oci/reference.js';
import { setOutputs } from './outputs.js';
import { onSecret, redact } from './redact.js';
import { writeSummary } from './summary.js';

export interface RunDependencies {
  /** GitHub's REST API; defaults to an Octokit for the github-token input. */
  api?: GitHubApi;
  environment?: Partial<Environment>;
}

const GHCR_HOSTS = new Set(['ghcr.io']);

function actionsReporter(): Reporter {
  const lastStep = new Map<string, number>();
  return {
    info: (m) => core.info(redact(m)),
    warn: (m) => core.warning(redact(m)),
    progress(label, done, total) {
      const step = Math.floor((done / total) * 4);
      if (lastStep.get(label) === step && done !== total) return;
      lastStep.set(label, step);
      core.info(`${label}: ${Math.round((done / total) * 100)}% of ${(total / 1048576).toFixed(1)} MiB`);
    },
  };
}

export async function run(
  inputs: ActionInputs,
  deps: RunDependencies = {},
): Promise<CommandResult | undefined> {
  onSecret((secret) => core.setSecret(secret));
  try {
    if (inputs.githubToken) core.setSecret(inputs.githubToken);
    const api = deps.api ?? (inputs.githubToken ? githubApi(inputs.githubToken) : undefined);
    const extras = api ? ghcrExtras(api) : undefined;
    const environment: Environment = {
      reporter: actionsReporter(),
      ...deps.environment,
      storeOptions: {
        registryExtras: (host) => (extras && GHCR_HOSTS.has(host) ? extras : undefined),
        ...deps.environment?.storeOptions,
      },
    };
    const { options } = inputs;
    const result = await core.group(`conda-oci ${options.command}`, () => execute(options, environment));
    setOutputs(result);
    await writeSummary(result);

    if (options.command === 'upload' && inputs.requestValidation) {
      if (!api) throw new Error('request-validation needs github-token');
      const channel = parseChannel(options.to, options.label ? { label: options.label } : {});
      await requestValidation(
        api,
        inputs.requestValidation,
        validationRequest(result.artifacts, {
          staging: options.to,
          ...(channel.label ? { label: channel.label } : {}),
          ...(process.env.GITHUB_REPOSITORY
            ? {
                repository: process.env.GITHUB_REPOSITORY,
                feedstock: process.env.GITHUB_REPOSITORY.split('/')[1]!.replace(/-feedstock$/, ''),
              }
            : {}),
          ...(options.revision ? { sha: options.revision } : {}),
          ...(inputs.runUrl ? { run: inputs.runUrl } : {}),
        }),
      );
      core.info(`Asked ${inputs.requestValidation} to validate ${result.artifacts.length} artifact(s)`);
    }
    if (options.command === 'validate' && inputs.reportIssue && result.exitCode !== 0) {
      if (!api || !inputs.feedstockRepository)
        core.warning(
          'report-issue needs github-token and the feedstock repository (input feedstock-repository or the payload)',
        );
      else
        core.info(
          `Reported the failures in ${await reportFailures(api, inputs.feedstockRepository, result, inputs.runUrl)}`,
        );
    }
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
