/**
 * Starts a real OCI registry for tests: Debian's `docker-registry` (CNCF distribution 2.8) on a
 * free loopback port, with its storage in a fresh temp dir, and optionally htpasswd or token
 * authentication. No Docker needed.
 *
 *   const reg = await startRegistry({ auth: 'htpasswd', users: [{ username: 'u', password: 'p' }] });
 *   ... reg.url ...
 *   await reg.stop();
 *
 * or, in a vitest file, `const reg = useRegistry({ ... })` (started in beforeAll, stopped in
 * afterAll).
 *
 * The registry runs under a small `sh` wrapper that kills it when our stdin pipe closes, so it
 * does not outlive a test worker that is killed by a signal (Node's 'exit' handlers do not run
 * then); on a normal exit the process group is killed from an 'exit' handler as well.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll } from 'vitest';
import {
  startTokenServer,
  type TokenGrants,
  type TokenServer,
  type TokenServerOptions,
} from './token-server.js';

export const REGISTRY_BINARY = 'docker-registry';
export const INSTALL_COMMAND =
  'apt-get update && apt-get install -y docker-registry skopeo conda-package-handling zstd';

export type RegistryAuthMode = 'none' | 'htpasswd' | 'token';

export interface RegistryUser {
  username: string;
  password: string;
  /** Token mode only: what the user may do. Default: everything on every repository and the catalog. */
  grants?: TokenGrants;
}

export interface StartRegistryOptions {
  auth?: RegistryAuthMode;
  /** htpasswd users, or token-server identities (see `grants`). */
  users?: RegistryUser[];
  /** Token mode: more token-server settings (anonymous grants, expiresIn, keyHeader, ...). */
  token?: Omit<TokenServerOptions, 'identities'>;
  /** Default true: `storage.delete.enabled`. */
  deleteEnabled?: boolean;
  /** distribution's log level. Default `warn`. */
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** Default true: keep the access log (in `logs()`). */
  accessLog?: boolean;
  /** Edit the configuration (a plain object, written as JSON, which is valid YAML) before start. */
  configure?: (config: RegistryConfig) => void;
  /** Milliseconds to wait for `/v2/` to answer. Default 20 s. */
  startTimeout?: number;
}

export type RegistryConfig = Record<string, any>;

export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  readonly host: string;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** The filesystem driver's root directory. */
  readonly storageDir: string;
  readonly configPath: string;
  readonly auth: RegistryAuthMode;
  readonly users: RegistryUser[];
  /** Token mode only. */
  readonly tokenServer: TokenServer | undefined;
  /** stdout and stderr of the registry so far (the last few MB). */
  logs(): string;
  stop(): Promise<void>;
}

const LOG_LIMIT = 4 * 1024 * 1024;
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) killGroup(child, 'SIGKILL');
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

export function findExecutable(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A port that was free a moment ago (the OS picks it; we close and hand it on). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Runs the registry ($0 serve $1) and kills it as soon as stdin reaches EOF (our end closed,
 * or we died without stop()); in that case it also removes the temp dir $2, so a test worker
 * killed by a signal leaves nothing behind. The shell's own stderr is /dev/null: its job report
 * ("Terminated") on a closed pipe would kill it with SIGPIPE before the clean-up.
 */
const WRAPPER = `
exec 3<&0 4>&2 2>/dev/null
"$0" serve "$1" </dev/null 2>&4 &
child=$!
( cat <&3 >/dev/null; : > "$2/.orphaned"; kill -TERM "$child" 2>/dev/null ) &
watcher=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
wait "$child"
status=$?
wait "$child" 2>/dev/null
kill "$watcher" 2>/dev/null
if [ -e "$2/.orphaned" ]; then rm -rf -- "$2"; fi
exit "$status"
`;

interface Probe {
  status: number;
  id: string | undefined;
}

function probe(url: string): Promise<Probe | undefined> {
  return new Promise((resolve) => {
    const req = httpRequest(`${url}/v2/`, { method: 'GET', agent: false, timeout: 2000 }, (res) => {
      res.resume();
      const id = res.headers['x-conda-oci-test-registry'];
      resolve({ status: res.statusCode ?? 0, id: Array.isArray(id) ? id[0] : id });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function startRegistry(options: StartRegistryOptions = {}): Promise<TestRegistry> {
  const binary = findExecutable(REGISTRY_BINARY);
  if (binary === undefined) {
    throw new Error(
      `"${REGISTRY_BINARY}" (CNCF distribution) is not on PATH. Install it with: ${INSTALL_COMMAND}` +
        ` (as root; or run \`node scripts/ensure-tools.mjs\`)`,
    );
  }
  installExitHook();
  const auth = options.auth ?? 'none';
  const users = options.users ?? [];
  const dir = await mkdtemp(join(tmpdir(), 'conda-oci-registry-'));
  const storageDir = join(dir, 'storage');
  const configPath = join(dir, 'config.yml');

  let tokenServer: TokenServer | undefined;
  const cleanupDir = async (): Promise<void> => {
    await tokenServer?.close();
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const config: RegistryConfig = {
      version: 0.1,
      log: {
        level: options.logLevel ?? 'warn',
        formatter: 'text',
        accesslog: { disabled: options.accessLog === false },
      },
      storage: {
        filesystem: { rootdirectory: storageDir },
        delete: { enabled: options.deleteEnabled ?? true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: {
        addr: '',
        secret: randomBytes(16).toString('hex'),
        headers: { 'X-Content-Type-Options': ['nosniff'] },
      },
      health: { storagedriver: { enabled: false } },
    };

    if (auth === 'htpasswd') {
      const htpasswdPath = join(dir, 'htpasswd');
      // bcrypt is the only scheme distribution's htpasswd accepts; cost 4 keeps the tests fast.
      const lines = users.map((u) => `${u.username}:${bcrypt.hashSync(u.password, 4)}`);
      await writeFile(htpasswdPath, lines.join('\n') + '\n', { mode: 0o600 });
      config.auth = { htpasswd: { realm: 'conda-oci-test', path: htpasswdPath } };
    } else if (auth === 'token') {
      tokenServer = await startTokenServer({
        ...options.token,
        identities: users.map((u) => ({
          username: u.username,
          password: u.password,
          grants: u.grants ?? { '**': ['*'], 'registry:catalog': ['*'] },
        })),
      });
      config.auth = {
        token: {
          realm: tokenServer.realm,
          service: tokenServer.service,
          issuer: tokenServer.issuer,
          rootcertbundle: tokenServer.certificatePath,
        },
      };
    }
    options.configure?.(config);

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const id = randomBytes(8).toString('hex');
      config.http.addr = `127.0.0.1:${port}`;
      // Our readiness probe recognises our own registry by this header, not a neighbour that
      // grabbed the port between freePort() and the bind.
      config.http.headers['X-Conda-Oci-Test-Registry'] = [id];
      await writeFile(configPath, JSON.stringify(config, null, 2) + '\n');
      const started = await launch(binary, configPath, dir, port, id, options.startTimeout ?? 20_000);
      if (started.ok) {
        return makeHandle(started.child, started.logs, {
          port,
          storageDir,
          configPath,
          auth,
          users,
          tokenServer,
          cleanup: cleanupDir,
        });
      }
      const addressInUse = /address already in use/i.test(started.logs());
      if (!addressInUse || attempt >= 5) {
        throw new Error(
          `docker-registry did not start on 127.0.0.1:${port} (${started.reason}).\n--- config ---\n` +
            `${JSON.stringify(config, null, 2)}\n--- logs ---\n${started.logs()}`,
        );
      }
    }
  } catch (error) {
    await cleanupDir();
    throw error;
  }
}

type Launch =
  { ok: true; child: ChildProcess; logs: () => string } | { ok: false; reason: string; logs: () => string };

async function launch(
  binary: string,
  configPath: string,
  dir: string,
  port: number,
  id: string,
  timeout: number,
): Promise<Launch> {
  const env: NodeJS.ProcessEnv = {};
  // distribution reads REGISTRY_* variables as configuration overrides: keep the caller's out.
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('REGISTRY_') && !key.startsWith('OTEL_')) env[key] = value;
  }
  const child = spawn('/bin/sh', ['-c', WRAPPER, binary, configPath, dir], {
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
    env,
  });
  running.add(child);
  let output = '';
  const append = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    if (output.length > LOG_LIMIT) output = output.slice(output.length - LOG_LIMIT / 2);
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  child.stdin.on('error', () => {});
  let exited: string | undefined;
  child.once('exit', (code, signal) => {
    exited = `exited with ${signal ?? `status ${code}`}`;
    running.delete(child);
  });
  child.once('error', (error) => {
    exited = `failed to spawn: ${error.message}`;
    running.delete(child);
  });
  // Do not keep the test worker alive for the registry's sake.
  child.unref();
  for (const stream of [child.stdout, child.stderr, child.stdin]) {
    (stream as unknown as { unref?: () => void } | null)?.unref?.();
  }

  const logs = (): string => output;
  const deadline = Date.now() + timeout;
  const url = `http://127.0.0.1:${port}`;
  while (Date.now() < deadline) {
    if (exited !== undefined) return { ok: false, reason: exited, logs };
    const answer = await probe(url);
    if (answer && (answer.status === 200 || answer.status === 401) && answer.id === id) {
      return { ok: true, child, logs };
    }
    await sleep(answer ? 50 : 25);
  }
  await terminate(child);
  return { ok: false, reason: `no answer on /v2/ within ${timeout} ms`, logs };
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  killGroup(child, 'SIGTERM');
  child.stdin?.destroy();
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
  // The wrapper may exit before the registry; make sure nothing of the group is left.
  killGroup(child, 'SIGKILL');
}

function makeHandle(
  child: ChildProcess,
  logs: () => string,
  parts: {
    port: number;
    storageDir: string;
    configPath: string;
    auth: RegistryAuthMode;
    users: RegistryUser[];
    tokenServer: TokenServer | undefined;
    cleanup: () => Promise<void>;
  },
): TestRegistry {
  let stopping: Promise<void> | undefined;
  return {
    host: `127.0.0.1:${parts.port}`,
    url: `http://127.0.0.1:${parts.port}`,
    port: parts.port,
    storageDir: parts.storageDir,
    configPath: parts.configPath,
    auth: parts.auth,
    users: parts.users,
    tokenServer: parts.tokenServer,
    logs,
    stop() {
      stopping ??= (async () => {
        await terminate(child);
        running.delete(child);
        await parts.cleanup();
      })();
      return stopping;
    },
  };
}

/**
 * For vitest: starts a registry in beforeAll and stops it in afterAll. The returned object
 * forwards to the running registry (reading it before beforeAll ran throws).
 */
export function useRegistry(options: StartRegistryOptions = {}): TestRegistry {
  let current: TestRegistry | undefined;
  beforeAll(async () => {
    current = await startRegistry(options);
  });
  afterAll(async () => {
    await current?.stop();
    current = undefined;
  });
  const get = (): TestRegistry => {
    if (current === undefined)
      throw new Error('useRegistry(): the registry is not running (outside a test?)');
    return current;
  };
  return {
    get host() {
      return get().host;
    },
    get url() {
      return get().url;
    },
    get port() {
      return get().port;
    },
    get storageDir() {
      return get().storageDir;
    },
    get configPath() {
      return get().configPath;
    },
    get auth() {
      return get().auth;
    },
    get users() {
      return get().users;
    },
    get tokenServer() {
      return get().tokenServer;
    },
    logs: () => get().logs(),
    stop: () => get().stop(),
  };
}

/** Alias of {@link useRegistry}. */
export const withRegistry = useRegistry;
