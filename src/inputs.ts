/**
 * The action's inputs, read once into the same typed options the CLI builds (plus the few
 * things only the action does: dispatch, issues, GitHub token). Nothing is read at module load.
 */
import { readFileSync } from 'node:fs';
import * as core from '@actions/core';
import { context } from '@actions/github';
import { mergeRequests, parseArtifactDocument, type RequestedArtifact } from './commands/artifact-list.js';
import { parseDuration } from './commands/clean.js';
import { parseOwners } from './commands/owners.js';
import type { CommandOptions, CommonOptions } from './options.js';
import { parseLayout } from './commands/v0-compat.js';
import { UsageError } from './usage.js';

export interface ActionInputs {
  options: CommandOptions;
  githubToken?: string;
  /** `owner/repo` to send a repository_dispatch to after upload. */
  requestValidation?: string;
  /** Open or update an issue on the feedstock repository when validation fails. */
  reportIssue?: boolean;
  feedstockRepository?: string;
  /** This workflow run's URL. */
  runUrl?: string;
  /** repodata: restore and save the record cache with @actions/cache. */
  cache?: boolean;
}

function input(name: string): string | undefined {
  const value = core.getInput(name).trim();
  return value === '' ? undefined : value;
}

function flag(name: string): boolean {
  const value = input(name);
  if (value === undefined) return false;
  if (/^(true|yes|1)$/i.test(value)) return true;
  if (/^(false|no|0)$/i.test(value)) return false;
  throw new UsageError(`input ${name} must be true or false, not "${value}"`);
}

/** A secret input: masked in the log from the moment it is read. */
function secret(name: string): string | undefined {
  const value = input(name);
  if (value) core.setSecret(value);
  return value;
}

/** Parses an input's value, turning any refusal into a UsageError that names the input. */
function parsed<T>(name: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`input ${name}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}

function positiveInteger(name: string): number | undefined {
  const value = input(name);
  if (value === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(value))
    throw new UsageError(`input ${name} must be a positive integer, not "${value}"`);
  return Number(value);
}

/**
 * A required input. Channels (`from`, `to`, `production`) are never taken from an event payload:
 * the credentials of the step go to the registry a channel names, so whoever sends the dispatch
 * must not choose it.
 */
function need(name: string, value = input(name)): string {
  if (!value) throw new UsageError(`input ${name} is required for command ${input('command')}`);
  return value;
}

/** The payload of the event that started the run: repository_dispatch's client_payload, or workflow_dispatch's inputs. */
function eventPayload(): Record<string, unknown> {
  const payload = context.payload as Record<string, unknown>;
  const inner = (payload.client_payload ?? payload.inputs) as Record<string, unknown> | undefined;
  return inner && typeof inner === 'object' ? inner : {};
}

function artifactsInput(): RequestedArtifact[] {
  const text = input('artifacts');
  if (text) return parsed('artifacts', () => parseArtifactDocument(text, 'input artifacts'));
  const payload = eventPayload();
  if (payload.outputs !== undefined || payload.artifacts !== undefined)
    return parsed('artifacts', () => mergeRequests([parseArtifactDocument(payload, 'the event payload')]));
  throw new UsageError(
    'input artifacts is required (the upload step output, an outputs map, or a repository_dispatch payload)',
  );
}

export function readInputs(env: NodeJS.ProcessEnv = process.env): ActionInputs {
  const command = need('command');
  const server = env.GITHUB_SERVER_URL ?? 'https://github.com';
  const runUrl =
    env.GITHUB_REPOSITORY && env.GITHUB_RUN_ID
      ? `${server}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}`
      : undefined;
  const payload = eventPayload();
  const concurrency = positiveInteger('concurrency');
  const password = secret('password');
  const recordKey = secret('record-key');
  const githubToken = secret('github-token');
  const label = input('label') ?? (typeof payload.label === 'string' ? payload.label : undefined);
  const layoutInput = input('layout');
  // Only `both` is passed on: `v1` is every command's default.
  const layout = layoutInput === undefined ? undefined : parsed('layout', () => parseLayout(layoutInput));
  const withLayout = layout === 'both' ? { layout } : {};
  const common: CommonOptions & { label?: string } = {
    ...(input('username')
      ? { username: input('username') }
      : env.GITHUB_ACTOR
        ? { username: env.GITHUB_ACTOR }
        : {}),
    ...(password ? { password } : {}),
    ...(flag('plain-http') ? { plainHttp: true } : {}),
    ...(concurrency ? { concurrency } : {}),
    ...(input('result-file') ? { resultFile: input('result-file') } : {}),
    ...(label ? { label } : {}),
  };
  let options: CommandOptions;
  switch (command) {
    case 'upload':
      options = {
        command,
        files: need('files')
          .split(/[\n\s]+/)
          .filter(Boolean),
        to: need('to', input('to') ?? input('channel')),
        source: input('source') ?? (env.GITHUB_REPOSITORY ? `${server}/${env.GITHUB_REPOSITORY}` : undefined),
        revision: input('revision') ?? env.GITHUB_SHA,
        ...(runUrl ? { run: runUrl } : {}),
        ...withLayout,
        ...common,
      };
      break;
    case 'validate': {
      const ownersPath = input('owners');
      const feedstock =
        input('feedstock') ?? (typeof payload.feedstock === 'string' ? payload.feedstock : undefined);
      if (ownersPath && !feedstock)
        throw new UsageError('input owners needs feedstock (or a payload with "feedstock")');
      options = {
        command,
        from: need('from'),
        artifacts: artifactsInput(),
        ...(ownersPath
          ? {
              owners: parsed('owners', () =>
                parseOwners(JSON.parse(readFileSync(ownersPath, 'utf8')) as unknown, ownersPath),
              ),
            }
          : {}),
        ...(feedstock ? { feedstock } : {}),
        ...(input('production') ? { production: input('production') } : {}),
        deleteFailed: flag('delete-failed'),
        ...(recordKey ? { recordKey } : {}),
        requester: {
          ...(feedstock ? { feedstock } : {}),
          ...(typeof payload.run === 'string' ? { run: payload.run } : runUrl ? { run: runUrl } : {}),
          ...(typeof payload.repository === 'string' ? { repository: payload.repository } : {}),
        },
        ...withLayout,
        ...common,
      };
      break;
    }
    case 'promote':
      options = {
        command,
        from: need('from'),
        to: need('to'),
        artifacts: artifactsInput(),
        deleteStaged: flag('delete-staged'),
        ...(recordKey ? { recordKey } : {}),
        ...withLayout,
        ...common,
      };
      break;
    case 'clean':
      options = {
        command,
        channel: need('channel'),
        olderThanMs: parsed('older-than', () => parseDuration(need('older-than'))),
        dryRun: flag('dry-run'),
        ...withLayout,
        ...common,
      };
      break;
    case 'repodata': {
      const subdirs = (input('subdirs') ?? '').split(/[\s,]+/).filter(Boolean);
      const cache = flag('cache');
      const cacheDir =
        input('cache-dir') ?? (cache ? `${env.RUNNER_TEMP ?? '/tmp'}/conda-oci-repodata-cache` : undefined);
      options = {
        command,
        channel: need('channel'),
        ...(subdirs.length ? { subdirs } : {}),
        ...(input('patch-instructions') ? { patchInstructions: input('patch-instructions') } : {}),
        ...(cacheDir ? { cacheDir } : {}),
        ...(flag('verify') ? { verify: true } : {}),
        ...withLayout,
        ...common,
      };
      break;
    }
    default:
      throw new UsageError(
        `input command must be upload, validate, promote, clean or repodata, not "${command}"`,
      );
  }
  const feedstockRepository =
    input('feedstock-repository') ??
    (typeof payload.repository === 'string' ? payload.repository : undefined);
  return {
    options,
    ...(githubToken ? { githubToken } : {}),
    ...(input('request-validation') ? { requestValidation: input('request-validation') } : {}),
    reportIssue: flag('report-issue'),
    ...(feedstockRepository ? { feedstockRepository } : {}),
    ...(runUrl ? { runUrl } : {}),
    ...(command === 'repodata' && flag('cache') ? { cache: true } : {}),
  };
}
