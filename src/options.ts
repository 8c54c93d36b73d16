/**
 * The typed configuration of every command. The CLI (argv) and the action (inputs) both parse
 * into these, and `execute` runs them: neither entry point holds logic of its own.
 */
import type { RequestedArtifact } from './commands/artifact-list.js';
import type { OwnersMap } from './commands/owners.js';
import type { Requester } from './commands/validate.js';
import type { Layout } from './commands/v0-compat.js';

export interface CommonOptions {
  username?: string;
  password?: string;
  /** Plain HTTP to hosts that are not loopback. */
  plainHttp?: boolean;
  /** Work on this many artifacts at once. */
  concurrency?: number;
  /** Write the result document here. */
  resultFile?: string;
  /** Print the result document on stdout. */
  json?: boolean;
}

export interface UploadCommand extends CommonOptions {
  command: 'upload';
  files: string[];
  to: string;
  label?: string;
  source?: string;
  revision?: string;
  run?: string;
  /** `both`: also write the v0 names today's clients read. Default v1. */
  layout?: Layout;
}

export interface ValidateCommand extends CommonOptions {
  command: 'validate';
  from: string;
  label?: string;
  artifacts: RequestedArtifact[];
  owners?: OwnersMap;
  feedstock?: string;
  production?: string;
  deleteFailed?: boolean;
  recordKey?: string;
  requester?: Requester;
  /** `both`: the v0 name is checked with the v1 one. */
  layout?: Layout;
}

export interface PromoteCommand extends CommonOptions {
  command: 'promote';
  from: string;
  to: string;
  label?: string;
  artifacts: RequestedArtifact[];
  deleteStaged?: boolean;
  recordKey?: string;
  /** `both`: the v0 name is promoted with the v1 one. */
  layout?: Layout;
}

export interface CleanCommand extends CommonOptions {
  command: 'clean';
  channel: string;
  label?: string;
  olderThanMs: number;
  dryRun?: boolean;
  /** `both`: v0 names go with the artifacts they hold. */
  layout?: Layout;
}

export interface RepodataCommand extends CommonOptions {
  command: 'repodata';
  channel: string;
  label?: string;
  /** Subdirs to index; none: every subdir of the channel, plus noarch. */
  subdirs?: string[];
  /** conda-forge patch instructions: a JSON file, or a directory of `<subdir>/patch_instructions.json`. */
  patchInstructions?: string;
  /** Keep the record cache here between runs. */
  cacheDir?: string;
  /** Re-resolve every cached tag and read again what changed. */
  verify?: boolean;
  /** `both`: also publish the v0 repodata. */
  layout?: Layout;
}

export type CommandOptions =
  UploadCommand | ValidateCommand | PromoteCommand | CleanCommand | RepodataCommand;
export type CommandName = CommandOptions['command'];
