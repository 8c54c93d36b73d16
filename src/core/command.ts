/**
 * A command, defined once: its name, what it does, its options and `run`. The CLI and the action
 * are shells that read options from argv or inputs by these definitions and call `run` through
 * `execute` (core/execute.ts).
 */
import type { Channel } from '../conda/channel.js';
import type { CacheService } from '../github/cache.js';
import type { GitHubApi } from '../github/api.js';
import type { Store } from '../oci/storage.js';
import type { IdentityProvider } from '@sigstore/sign';
import type { SigstoreEndpoints } from '../identity/publish-attestation.js';
import type { CommandResult, Reporter } from '../commands/report.js';
import type { GivenOptionsOf, OptionsOf, OptionTable, Sources } from './options.js';

export interface OpenOptions {
  /** Registry connections (serve). */
  connections?: number;
  /**
   * The channel may not exist yet (a destination, or production before its first package). An
   * `oci-layout:` directory that does not exist is otherwise an error, never quietly created.
   */
  mayBeNew?: boolean;
}

/** What a command runs with, besides its options. */
export interface CommandContext {
  reporter: Reporter;
  /**
   * The channel a URL names, with this run's label and transport applied, and its store (opened
   * once per channel, closed when the run ends).
   */
  open(url: string, how?: OpenOptions): { channel: Channel; store: Store };
  /** Parses a channel URL the same way, without opening it (usage checks before any I/O). */
  channel(url: string): Channel;
  now: () => Date;
  /** `conda-oci <version>`, written into records. */
  tool: string;
  /** GitHub's REST API, when a token is at hand. */
  github?: GitHubApi;
  /** The Actions cache, in the action only. */
  cache?: CacheService;
  /** Ends long-running commands (serve). */
  signal?: AbortSignal;
  /** Where and as whom upload signs attestations; default GitHub Actions' OIDC and the instance's URLs. */
  signing?: { endpoints?: SigstoreEndpoints; identity?: IdentityProvider };
  /** Told the address once a server listens (serve). */
  onListening?: (server: { url: string }) => void;
  /** The environment and event the shell read its options from. */
  sources: Sources;
}

export interface CommandSpec<Name extends string, Table extends OptionTable> {
  name: Name;
  /** One line, for the command list. */
  summary: string;
  /** A paragraph or two for `--help`. */
  description?: string;
  /** Shown in `--help`: complete command lines. */
  examples?: string[];
  /** `cli`: not offered by the action (a long-running server). */
  only?: 'cli';
  options: Table;
  run(options: OptionsOf<Table> & { command: Name }, context: CommandContext): Promise<CommandResult>;
}

export function defineCommand<Name extends string, Table extends OptionTable>(
  spec: CommandSpec<Name, Table>,
): CommandSpec<Name, Table> {
  return spec;
}

/** The options a program passes to `execute` for a command. */
export type GivenCommand<S> =
  S extends CommandSpec<infer Name, infer Table> ? GivenOptionsOf<Table> & { command: Name } : never;

/** Any command, whatever its options (its `run` is a method, so a specific one fits). */
export type AnyCommandSpec = CommandSpec<string, OptionTable>;
