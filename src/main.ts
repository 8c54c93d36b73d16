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
import { restoreRepodataCache, saveRepodataCache, type CacheService } from './github/cache.js';
import { ghcrExtras } from './github/packages.js';
import type { ActionInputs } from './inputs.js';
import { describeError } from './util/describe-error.js';
import { parseChannel } from './conda/channel.js';
import { setOutputs } from './outputs.js';
import { onSecret, redact } from './redact.js';
import { writeSummary } from './summary.js';

export interface RunDependencies {
  /** GitHub's REST API; defaults to an Octokit for the github-token input. */
  api?: GitHubApi;
  environment?: Partial<Environment>;
  /** @actions/cache, for repodata's record cache. */
  cache?: CacheService;
}

const GHCR_HOSTS = new Set(['ghcr.io']);

let masking = false;
/** Every secret the run learns (password, token, record key, basic credentials) is masked in the log. */
function maskSecrets(): void {
  if (masking) return;
  masking = true;
  onSecret((secret) => core.setSecret(secret));
}

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
  maskSecrets();
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
    const recordCache =
      options.command === 'repodata' && inputs.cache && options.cacheDir
        ? {
            dir: options.cacheDir,
            key: { channel: `${options.channel} ${options.label ?? ''}`, subdirs: options.subdirs },
          }
        : undefined;
    if (recordCache) await restoreRepodataCache(recordCache.dir, recordCache.key, deps.cache);
    let result: CommandResult;
    try {
      result = await core.group(`conda-oci ${options.command}`, () => execute(options, environment));
    } finally {
      // what was read is worth keeping even when the run failed later
      if (recordCache) await saveRepodataCache(recordCache.dir, recordCache.key, deps.cache);
    }
    setOutputs(result);
    await writeSummary(result);

    if (options.command === 'upload' && inputs.requestValidation) {
      if (!api) throw new Error('request-validation needs github-token');
      const channel = parseChannel(options.to, options.label ? { label: options.label } : {});
      const request = validationRequest(result.artifacts, {
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
      });
      const count = Object.keys(request.outputs).length;
      // Nothing was staged: there is nothing to validate, and the failures are reported below.
      if (count === 0) core.warning('No artifact was uploaded: validation not requested');
      else {
        const sent = await requestValidation(api, inputs.requestValidation, request);
        core.info(
          `Asked ${inputs.requestValidation} to validate ${count} artifact(s)${sent > 1 ? ` in ${sent} dispatches` : ''}`,
        );
      }
    }
    if (options.command === 'validate' && inputs.reportIssue && result.exitCode !== 0) {
      if (!api || !inputs.feedstockRepository)
        core.warning(
          'report-issue needs github-token and the feedstock repository (input feedstock-repository or the payload)',
        );
      else {
        // The failures themselves are what fails the step; a failed report is only a warning.
        try {
          const url = await reportFailures(api, inputs.feedstockRepository, result, inputs.runUrl);
          core.info(`Reported the failures in ${url}`);
        } catch (err) {
          core.warning(
            redact(`Could not report the failures on ${inputs.feedstockRepository}: ${describeError(err)}`),
          );
        }
      }
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
