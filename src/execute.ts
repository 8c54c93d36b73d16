/** Runs one command: opens the stores its channels name, runs it, closes them. */
import { clean } from './commands/clean.js';
import { promote } from './commands/promote.js';
import { repodata } from './commands/repodata.js';
import type { CommandResult, Reporter } from './commands/report.js';
import { upload } from './commands/upload.js';
import { validate } from './commands/validate.js';
import { openStore, type StoreOptions } from './oci/open-store.js';
import { parseChannel, type Channel } from './conda/channel.js';
import type { Store } from './oci/storage.js';
import type { CommandOptions } from './options.js';
import { registerCredentials, registerSecret } from './redact.js';

export interface Environment {
  reporter: Reporter;
  /** Store settings beyond credentials (GHCR providers, HTTP tuning). */
  storeOptions?: Omit<StoreOptions, 'username' | 'password' | 'plainHttp'>;
  now?: () => Date;
  tool?: string;
}

export const TOOL = `conda-oci ${process.env.CONDA_OCI_VERSION ?? '0.1.0'}`;

export async function execute(options: CommandOptions, env: Environment): Promise<CommandResult> {
  registerSecret(options.password);
  if ('recordKey' in options) registerSecret(options.recordKey);
  const stores: Store[] = [];
  // The label applies to every channel of a run: staging's `rc` artifacts go to production's `rc`.
  const channel = (url: string): Channel =>
    parseChannel(url, {
      ...(options.label ? { label: options.label } : {}),
      ...(options.plainHttp ? { plainHttp: true } : {}),
    });
  const open = (c: Channel): Store => {
    const store = openStore(c, {
      ...env.storeOptions,
      ...(options.username ? { username: options.username } : {}),
      ...(options.password ? { password: options.password } : {}),
      onCredentials: (creds) => registerCredentials(creds.username, creds.password),
      onToken: registerSecret,
      ...(env.storeOptions?.onRetry
        ? {}
        : {
            onRetry: (what, err, ms) =>
              env.reporter.info(`retrying ${what} in ${Math.round(ms)} ms: ${(err as Error).message}`),
          }),
    });
    stores.push(store);
    return store;
  };
  const base = { reporter: env.reporter, tool: env.tool ?? TOOL, ...(env.now ? { now: env.now } : {}) };
  const run = async (): Promise<CommandResult> => {
    switch (options.command) {
      case 'upload': {
        const to = channel(options.to);
        return await upload(
          {
            files: options.files,
            channel: to,
            provenance: { source: options.source, revision: options.revision },
            ...(options.run ? { run: options.run } : {}),
            ...(options.concurrency ? { concurrency: options.concurrency } : {}),
            ...(options.layout ? { layout: options.layout } : {}),
          },
          { ...base, store: open(to) },
        );
      }
      case 'validate': {
        const from = channel(options.from);
        const production = options.production ? channel(options.production) : undefined;
        const staging = open(from);
        return await validate(
          {
            channel: from,
            artifacts: options.artifacts,
            ...(options.owners ? { owners: options.owners } : {}),
            ...(options.feedstock ? { feedstock: options.feedstock } : {}),
            ...(production ? { production } : {}),
            deleteFailed: options.deleteFailed === true,
            ...(options.recordKey ? { recordKey: options.recordKey } : {}),
            ...(options.requester ? { requester: options.requester } : {}),
            ...(options.concurrency ? { concurrency: options.concurrency } : {}),
            ...(options.layout ? { layout: options.layout } : {}),
          },
          { ...base, staging, ...(production ? { production: open(production) } : {}) },
        );
      }
      case 'promote': {
        const from = channel(options.from);
        const to = channel(options.to);
        return await promote(
          {
            from,
            to,
            artifacts: options.artifacts,
            deleteStaged: options.deleteStaged === true,
            ...(options.recordKey ? { recordKey: options.recordKey } : {}),
            ...(options.concurrency ? { concurrency: options.concurrency } : {}),
            ...(options.layout ? { layout: options.layout } : {}),
          },
          { reporter: env.reporter, staging: open(from), production: open(to) },
        );
      }
      case 'clean': {
        const c = channel(options.channel);
        return await clean(
          {
            channel: c,
            olderThanMs: options.olderThanMs,
            dryRun: options.dryRun === true,
            ...(options.layout ? { layout: options.layout } : {}),
          },
          { ...base, store: open(c) },
        );
      }
      case 'repodata': {
        const c = channel(options.channel);
        return await repodata(
          {
            channel: c,
            ...(options.subdirs?.length ? { subdirs: options.subdirs } : {}),
            ...(options.patchInstructions ? { patchInstructions: options.patchInstructions } : {}),
            ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
            ...(options.verify ? { verify: true } : {}),
            ...(options.concurrency ? { concurrency: options.concurrency } : {}),
            ...(options.layout ? { layout: options.layout } : {}),
          },
          { reporter: env.reporter, store: open(c), ...(env.now ? { now: env.now } : {}) },
        );
      }
    }
  };
  try {
    return withHttpCounters(await run(), stores);
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
}

/**
 * Adds what the registry clients sent and received, counted on our side of the wire: `requests`
 * (unless the command counted its own), `httpBytesSent` and `httpBytesReceived` (bodies).
 */
function withHttpCounters(result: CommandResult, stores: Store[]): CommandResult {
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
