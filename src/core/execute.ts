/**
 * Runs one command for either shell: fills its defaults, registers its secrets, opens the stores
 * its channels name (once each, closed at the end), runs it, adds the wire counters and writes
 * the result file. The CLI and the action differ only in how they read options and report.
 */
import { writeFile } from 'node:fs/promises';
import { parseChannel, type Channel } from '../conda/channel.js';
import type { CommandResult, Reporter } from '../commands/report.js';
import { githubApi, type GitHubApi } from '../github/api.js';
import type { CacheService } from '../github/cache.js';
import { ghcrExtras } from '../github/packages.js';
import { openStore, type StoreOptions } from '../oci/open-store.js';
import type { Store } from '../oci/storage.js';
import { redact, registerCredentials, registerSecret } from '../redact.js';
import { existsSync } from 'node:fs';
import { UsageError } from '../usage.js';
import type { CommandContext, OpenOptions } from './command.js';
import { commandSpec, type CommandInput } from './commands.js';
import { withDefaults, type Sources } from './options.js';

/** What a shell (or a test) gives a run besides the options. */
export interface Environment {
  reporter: Reporter;
  /** Store settings beyond credentials (GHCR providers, HTTP tuning). */
  storeOptions?: Omit<StoreOptions, 'username' | 'password' | 'plainHttp'>;
  now?: () => Date;
  tool?: string;
  /** GitHub's REST API; by default one for the github-token option, when there is one. */
  github?: GitHubApi;
  cache?: CacheService;
  signal?: AbortSignal;
  onListening?: (server: { url: string }) => void;
  signing?: CommandContext['signing'];
  sources?: Sources;
}

export const TOOL = `conda-oci ${process.env.CONDA_OCI_VERSION ?? '0.1.0'}`;

/** Registries reached through GitHub's REST API for what their registry API lacks. */
const GHCR_HOSTS = new Set(['ghcr.io']);

export async function execute(given: CommandInput, env: Environment): Promise<CommandResult> {
  const spec = commandSpec(given.command);
  const options = withDefaults(spec.options, given) as Record<string, unknown> & { command: string };
  for (const [key, option] of Object.entries(spec.options))
    if (option.secret && typeof options[key] === 'string') registerSecret(options[key]);
  const opened = new Map<string, { channel: Channel; store: Store }>();
  const label = typeof options.label === 'string' ? options.label : undefined;
  const plainHttp = options.plainHttp === true;
  const github =
    env.github ?? (typeof options.githubToken === 'string' ? githubApi(options.githubToken) : undefined);
  const extras = github ? ghcrExtras(github) : undefined;
  // The label applies to every channel of a run: staging's `rc` artifacts go to production's `rc`.
  const channel = (url: string): Channel =>
    parseChannel(url, { ...(label ? { label } : {}), ...(plainHttp ? { plainHttp } : {}) });
  const open = (url: string, how: OpenOptions = {}) => {
    const known = opened.get(url);
    if (known) return known;
    const c = channel(url);
    if (c.kind === 'layout' && !how.mayBeNew && !existsSync(c.dir))
      throw new UsageError(`${url}: the directory ${c.dir} does not exist (a typo?)`);
    const store = openStore(c, {
      ...(how.connections ? { connections: how.connections } : {}),
      registryExtras: (host) => (extras && GHCR_HOSTS.has(host) ? extras : undefined),
      onRetry: (what, err, ms) =>
        env.reporter.info(`retrying ${what} in ${Math.round(ms)} ms: ${(err as Error).message}`),
      ...env.storeOptions,
      ...(typeof options.username === 'string' ? { username: options.username } : {}),
      ...(typeof options.password === 'string' ? { password: options.password } : {}),
      onCredentials: (creds) => registerCredentials(creds.username, creds.password),
      // Tokens a registry issues are secrets too: masked like passwords wherever they are echoed.
      onToken: registerSecret,
    });
    opened.set(url, { channel: c, store });
    return { channel: c, store };
  };
  const context: CommandContext = {
    reporter: env.reporter,
    open,
    channel,
    now: env.now ?? (() => new Date()),
    tool: env.tool ?? TOOL,
    ...(github ? { github } : {}),
    ...(env.cache ? { cache: env.cache } : {}),
    ...(env.signal ? { signal: env.signal } : {}),
    ...(env.onListening ? { onListening: env.onListening } : {}),
    ...(env.signing ? { signing: env.signing } : {}),
    sources: env.sources ?? { env: process.env, shell: 'cli' },
  };
  let result: CommandResult;
  try {
    result = withWireCounters(
      await spec.run(options, context),
      [...opened.values()].map((o) => o.store),
    );
  } finally {
    await Promise.all([...opened.values()].map((o) => o.store.close()));
  }
  if (typeof options.resultFile === 'string')
    await writeFile(options.resultFile, `${redact(JSON.stringify(result, null, 2))}\n`);
  return result;
}

/**
 * Adds what the stores sent and received, counted on our side of the wire: `requests` (unless
 * the command counted its own), `httpBytesSent` and `httpBytesReceived` (bodies).
 */
function withWireCounters(result: CommandResult, stores: Store[]): CommandResult {
  const counted = stores.map((s) => s.stats()).filter((s) => s !== undefined);
  if (counted.length === 0) return result;
  const total = { requests: 0, bytesSent: 0, bytesReceived: 0 };
  for (const stats of counted) {
    total.requests += stats.requests;
    total.bytesSent += stats.bytesSent;
    total.bytesReceived += stats.bytesReceived;
  }
  result.summary.requests ??= total.requests;
  result.summary.httpBytesSent = total.bytesSent;
  result.summary.httpBytesReceived = total.bytesReceived;
  return result;
}
