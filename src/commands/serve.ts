/**
 * `serve` (README "Installing from a channel we publish"): runs the read-only gateway of
 * src/serve/gateway.ts on a `node:http` server, so that any conda client (conda itself, mamba,
 * rattler/pixi over https) can use a channel published in the CEP v1 layout:
 * `conda install -c http://127.0.0.1:8000 numpy`. A long-running process: CLI only.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { channelUrl } from '../conda/channel.js';
import { defineCommand, type CommandContext } from '../core/command.js';
import { LABEL_OPTION, REGISTRY_OPTIONS } from '../core/common-options.js';
import { flag, integerIn, numberIn, text, type OptionsOf } from '../core/options.js';
import { InvalidReferenceError } from '../oci/errors.js';
import { resolveCredentials } from '../oci/remote/credentials.js';
import { Gateway, type GatewayContext, type GatewayOptions } from '../serve/gateway.js';
import { finish, type CommandResult } from './report.js';

export const DEFAULT_LISTEN = '127.0.0.1:8000';

export interface ServeOptions extends GatewayOptions {
  /** `host:port` (`[::1]:port` for IPv6); port 0 picks a free one. Default 127.0.0.1:8000. */
  listen?: string;
}

export interface RunningServer {
  /** `http://host:port` plus the base path, with a trailing slash: the channel URL to give clients. */
  url: string;
  gateway: Gateway;
  server: Server;
  close(): Promise<void>;
}

export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new InvalidReferenceError(
      `--listen "${value}" is not host:port (e.g. 127.0.0.1:8000 or [::1]:8000)`,
    );
  }
  return { host: match[1] ?? match[2]!, port };
}

const MIB = 1024 * 1024;

const SERVE_OPTIONS = {
  channel: text('channel', {
    help: 'The channel to serve (oci://host/path or oci-layout:DIR); its labels are served under /label/<label>/.',
    placeholder: '<channel>',
    required: true,
  }),
  listen: text('listen', {
    help: 'The address to listen on (port 0 picks one).',
    placeholder: '<host:port>',
    parse: (t) => (parseListen(t), t),
    default: DEFAULT_LISTEN,
  }),
  basePath: text('base-path', {
    help: 'Serve under this path prefix (behind a reverse proxy).',
    placeholder: '<path>',
    example: '/conda-forge',
  }),
  redirect: flag('redirect', {
    help: 'Send package downloads to the registry when it serves them without any credentials.',
  }),
  ttl: text('ttl', {
    help: 'Seconds a resolved repodata stays current before the registry is asked again.',
    placeholder: '<seconds>',
    parse: numberIn(0, 86_400),
    default: 30,
  }),
  maxAge: text('max-age', {
    help: 'Cache-Control max-age of repodata and the shard index, in seconds.',
    placeholder: '<seconds>',
    parse: numberIn(0, 31_536_000),
    default: 60,
  }),
  cacheMb: text('cache-mb', {
    help: 'Memory for repodata and shards, in MB.',
    placeholder: '<MB>',
    parse: numberIn(0, 1 << 20),
    default: 256,
  }),
  packageCacheMb: text('package-cache-mb', {
    help: 'Memory for package files, in MB; those up to 1/16 of it are served from memory (0: stream all).',
    placeholder: '<MB>',
    parse: numberIn(0, 1 << 20),
    default: 256,
  }),
  concurrency: text('concurrency', {
    help: 'Registry requests and package streams at once.',
    placeholder: '<n>',
    parse: integerIn(1, 256),
    default: 16,
  }),
  ...LABEL_OPTION,
  ...REGISTRY_OPTIONS,
};

export type ServeCommandOptions = OptionsOf<typeof SERVE_OPTIONS>;

export const serveCommand = defineCommand({
  name: 'serve',
  summary: 'serve a channel read-only over HTTP as an ordinary conda channel (repodata, shards, packages)',
  description:
    'A read-only gateway: repodata (also .zst and .gz), CEP 16 sharded repodata, channeldata and ' +
    'packages, with ETags, If-None-Match, HEAD, Range and Cache-Control. Pull credentials stay in this ' +
    'process; with credentials --redirect never hands out a registry URL. Runs until SIGINT or SIGTERM.',
  examples: ['conda-oci serve --channel oci://ghcr.io/conda-forge/conda-forge --listen 127.0.0.1:8000'],
  only: 'cli',
  options: SERVE_OPTIONS,
  run: (options, context) => serveUntilStopped(options, context),
});

async function serveUntilStopped(
  options: ServeCommandOptions,
  context: CommandContext,
): Promise<CommandResult> {
  const { channel, store } = context.open(options.channel, { connections: options.concurrency });
  const anonymous =
    channel.kind === 'registry' &&
    resolveCredentials(channel.host, {
      ...(options.username ? { username: options.username } : {}),
      ...(options.password ? { password: options.password } : {}),
    }).origin === 'anonymous';
  const running = await serve(
    {
      channel,
      listen: options.listen,
      ...(options.basePath ? { basePath: options.basePath } : {}),
      ...(options.redirect ? { redirect: true } : {}),
      metadataTtlMs: options.ttl * 1000,
      repodataMaxAge: Math.floor(options.maxAge),
      cacheBytes: Math.floor(options.cacheMb * MIB),
      packageCacheBytes: Math.floor(options.packageCacheMb * MIB),
      concurrency: options.concurrency,
    },
    { store, reporter: context.reporter, anonymous },
  );
  if (options.redirect && !anonymous)
    context.reporter.warn(
      '--redirect is off: the gateway holds credentials, so it never hands out registry URLs',
    );
  context.reporter.info(`conda-oci serve: ${running.gateway.describe()} at ${running.url}`);
  context.onListening?.(running);
  await new Promise<void>((resolve) => {
    const signal = context.signal;
    if (signal) {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => resolve(), { once: true });
    } else {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    }
  });
  await running.close();
  context.reporter.info('conda-oci serve: stopped');
  return finish('serve', { channel: channelUrl(channel) }, []);
}

export async function serve(options: ServeOptions, context: GatewayContext): Promise<RunningServer> {
  const { host, port } = parseListen(options.listen ?? DEFAULT_LISTEN);
  const gateway = new Gateway(options, context);
  const server = createServer({ keepAlive: true }, gateway.handle);
  // Clients (and load balancers) reuse connections; keep them a little longer than they do.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const base = (options.basePath ?? '').replace(/\/+$/, '');
  return {
    url: `http://${shownHost}:${address.port}${base}/`,
    gateway,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
