/**
 * `conda-oci serve`: CLI only (a gateway is a long-running process, not an action step). Parses
 * its flags, opens the channel's store with pull credentials (which never leave the process),
 * serves until SIGINT or SIGTERM (or `signal`), and exits 0; 2 for usage errors.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_LISTEN, serve, type RunningServer } from '../commands/serve.js';
import type { Reporter } from '../commands/report.js';
import { describeError } from '../util/describe-error.js';
import { openStore } from '../oci/open-store.js';
import { parseChannel } from '../conda/channel.js';
import { resolveCredentials } from '../oci/remote/credentials.js';
import { redact, registerCredentials, registerSecret } from '../redact.js';

export const SERVE_USAGE =
  'serve --channel <channel> [--listen 127.0.0.1:8000] [--base-path /PATH] [--label L] [--redirect]\n' +
  '      [--ttl SECONDS] [--max-age SECONDS] [--cache-mb MB] [--package-cache-mb MB] [--concurrency N] [--plain-http]';

export const SERVE_SUMMARY =
  'serve a channel read-only over HTTP as an ordinary conda channel (repodata, shards, packages)';

const HELP = `Usage: conda-oci ${SERVE_USAGE}

${SERVE_SUMMARY}.

  --channel C       the channel (oci://host/path or oci-layout:DIR); its labels are served under /label/<label>/
  --listen H:P      address to listen on (default ${DEFAULT_LISTEN}; port 0 picks one)
  --base-path P     serve under this path prefix (behind a reverse proxy), e.g. /conda-forge
  --redirect        send package downloads to the registry when it serves them without any credentials
  --ttl S           how long a resolved repodata stays current before the registry is asked again (default 30)
  --max-age S       Cache-Control max-age of repodata and the shard index (default 60)
  --cache-mb MB     memory for repodata and shards (default 256)
  --package-cache-mb MB  memory for package files; those up to 1/16 of it are served from memory (default 256, 0: stream all)
  --concurrency N   registry requests and package streams at once (default 16)
Pull credentials: --username/--password, CONDA_OCI_USERNAME/CONDA_OCI_PASSWORD, or the docker config auths.
They stay in this process; with credentials --redirect never hands out a registry URL.`;

export interface ServeMainOptions {
  /** Stops the server (tests); otherwise SIGINT/SIGTERM do. */
  signal?: AbortSignal;
  /** Told the URL once listening. */
  onListening?: (server: RunningServer) => void;
  reporter?: Reporter;
}

function positive(value: unknown, flag: string, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > max) throw new Error(`--${flag} must be a number from 0 to ${max}`);
  return n;
}

export async function serveMain(args: string[], options: ServeMainOptions = {}): Promise<number> {
  const write = (line: string) => process.stderr.write(`${redact(line)}\n`);
  const reporter: Reporter = options.reporter ?? { info: write, warn: (m) => write(`warning: ${m}`) };
  let running: RunningServer;
  let close: () => Promise<void>;
  try {
    const { values } = parseArgs({
      args,
      options: {
        channel: { type: 'string' },
        listen: { type: 'string' },
        'base-path': { type: 'string' },
        label: { type: 'string' },
        redirect: { type: 'boolean' },
        ttl: { type: 'string' },
        'max-age': { type: 'string' },
        'cache-mb': { type: 'string' },
        'package-cache-mb': { type: 'string' },
        concurrency: { type: 'string' },
        username: { type: 'string' },
        password: { type: 'string' },
        'plain-http': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
    if (values.help) {
      process.stdout.write(`${HELP}\n`);
      return 0;
    }
    if (!values.channel) throw new Error('--channel is required');
    const channel = parseChannel(values.channel, {
      ...(values.label ? { label: values.label } : {}),
      ...(values['plain-http'] ? { plainHttp: true } : {}),
    });
    const concurrency = positive(values.concurrency, 'concurrency', 256) ?? 16;
    const username = values.username ?? process.env.CONDA_OCI_USERNAME;
    const password = values.password ?? process.env.CONDA_OCI_PASSWORD;
    registerSecret(password);
    const anonymous =
      channel.kind === 'registry' &&
      resolveCredentials(channel.host, {
        ...(username ? { username } : {}),
        ...(password ? { password } : {}),
      }).origin === 'anonymous';
    const store = openStore(channel, {
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
      connections: Math.max(1, Math.ceil(concurrency)),
      onCredentials: (creds) => registerCredentials(creds.username, creds.password),
      onToken: registerSecret,
      onRetry: (what, err, ms) =>
        reporter.info(`retrying ${what} in ${Math.round(ms)} ms: ${(err as Error).message}`),
    });
    const ttl = positive(values.ttl, 'ttl', 86_400);
    const maxAge = positive(values['max-age'], 'max-age', 31_536_000);
    const cacheMb = positive(values['cache-mb'], 'cache-mb', 1 << 20);
    const packageCacheMb = positive(values['package-cache-mb'], 'package-cache-mb', 1 << 20);
    try {
      running = await serve(
        {
          channel,
          ...(values.listen ? { listen: values.listen } : {}),
          ...(values['base-path'] ? { basePath: values['base-path'] } : {}),
          ...(values.redirect ? { redirect: true } : {}),
          ...(ttl !== undefined ? { metadataTtlMs: ttl * 1000 } : {}),
          ...(maxAge !== undefined ? { repodataMaxAge: Math.floor(maxAge) } : {}),
          ...(cacheMb !== undefined ? { cacheBytes: Math.floor(cacheMb * 1024 * 1024) } : {}),
          ...(packageCacheMb !== undefined
            ? { packageCacheBytes: Math.floor(packageCacheMb * 1024 * 1024) }
            : {}),
          concurrency: Math.max(1, Math.floor(concurrency)),
        },
        { store, reporter, anonymous },
      );
    } catch (err) {
      await store.close();
      throw err;
    }
    close = async () => {
      await running.close();
      await store.close();
    };
    if (values.redirect && !anonymous)
      reporter.warn('--redirect is off: the gateway holds credentials, so it never hands out registry URLs');
  } catch (err) {
    process.stderr.write(redact(`conda-oci serve: ${describeError(err)}\n`));
    return 2;
  }
  reporter.info(`conda-oci serve: ${running.gateway.describe()} at ${running.url}`);
  options.onListening?.(running);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    if (options.signal) {
      if (options.signal.aborted) return resolve();
      options.signal.addEventListener('abort', stop, { once: true });
    } else {
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    }
  });
  await close();
  reporter.info('conda-oci serve: stopped');
  return 0;
}
