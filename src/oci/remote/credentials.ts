/**
 * Where credentials come from, in order: explicit options, CONDA_OCI_USERNAME/CONDA_OCI_PASSWORD,
 * the `auths` of the docker config file (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`),
 * else none (anonymous).
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Credentials } from './auth.js';

export interface CredentialSources {
  username?: string | undefined;
  password?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

export type CredentialOrigin = 'options' | 'environment' | 'docker-config' | 'anonymous';

export function resolveCredentials(
  host: string,
  sources: CredentialSources = {},
): { credentials?: Credentials; origin: CredentialOrigin } {
  const env = sources.env ?? process.env;
  if (sources.password)
    return {
      credentials: { username: sources.username || 'token', password: sources.password },
      origin: 'options',
    };
  if (env.CONDA_OCI_PASSWORD) {
    return {
      credentials: { username: env.CONDA_OCI_USERNAME || 'token', password: env.CONDA_OCI_PASSWORD },
      origin: 'environment',
    };
  }
  const fromConfig = dockerConfigCredentials(host, env);
  if (fromConfig) return { credentials: fromConfig, origin: 'docker-config' };
  return { origin: 'anonymous' };
}

function dockerConfigPath(env: NodeJS.ProcessEnv): string {
  return env.DOCKER_CONFIG
    ? join(env.DOCKER_CONFIG, 'config.json')
    : join(env.HOME || homedir(), '.docker', 'config.json');
}

/** The `auths` entry for a host (keys may be `host`, `https://host` or `https://host/v1/`). */
export function dockerConfigCredentials(
  host: string,
  env: NodeJS.ProcessEnv = process.env,
): Credentials | undefined {
  let config: {
    auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  };
  try {
    config = JSON.parse(readFileSync(dockerConfigPath(env), 'utf8')) as typeof config;
  } catch {
    return undefined; // No file or not JSON: anonymous, as docker itself would be.
  }
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    const keyHost = key
      .replace(/^https?:\/\//, '')
      .replace(/\/.*$/, '')
      .toLowerCase();
    if (keyHost !== host.toLowerCase() || !entry) continue;
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
  }
  return undefined;
}
