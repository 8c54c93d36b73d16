/**
 * `serve` (issue 8): runs the read-only gateway of src/serve/gateway.ts on a `node:http` server,
 * so that any conda client (conda itself, mamba, rattler/pixi over https) can use a channel
 * published in the CEP v1 layout: `conda install -c http://127.0.0.1:8000 numpy`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvalidReferenceError } from '../oci/errors.js';
import { Gateway, type GatewayContext, type GatewayOptions } from '../serve/gateway.js';

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
