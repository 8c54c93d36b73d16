/**
 * The `repodata` record cache kept between workflow runs with @actions/cache. Caches are
 * immutable, so every run saves under a new key (channel, subdirs, run) and restores the newest
 * one whose key starts with the channel and subdirs. A cache is a speed-up: every failure here is
 * a warning, never a failed step.
 */
import { createHash } from 'node:crypto';
import * as actionsCache from '@actions/cache';
import * as core from '@actions/core';

/** The parts of @actions/cache used here (tests pass their own). */
export interface CacheService {
  isFeatureAvailable(): boolean;
  restoreCache(paths: string[], primaryKey: string, restoreKeys?: string[]): Promise<string | undefined>;
  saveCache(paths: string[], key: string): Promise<number>;
}

export interface RepodataCacheKey {
  channel: string;
  subdirs?: string[] | undefined;
}

export interface CacheLog {
  info(message: string): void;
  warning(message: string): void;
}

const PREFIX = 'conda-oci-repodata-v1';

/** `conda-oci-repodata-v1-<channel hash>-<subdirs>-`: every run's key starts with it. */
export function repodataCacheKeyPrefix(key: RepodataCacheKey): string {
  const channel = createHash('sha256').update(key.channel).digest('hex').slice(0, 16);
  const subdirs = key.subdirs?.length ? [...new Set(key.subdirs)].sort().join('+') : 'all';
  return `${PREFIX}-${channel}-${subdirs}-`;
}

function runSuffix(env: NodeJS.ProcessEnv): string {
  return `${env.GITHUB_RUN_ID ?? Date.now()}-${env.GITHUB_RUN_ATTEMPT ?? '1'}`;
}

/** Restores the newest cache of this channel and these subdirs into `dir`; true when one was found. */
export async function restoreRepodataCache(
  dir: string,
  key: RepodataCacheKey,
  service: CacheService = actionsCache,
  log: CacheLog = core,
  env: NodeJS.ProcessEnv = process.env,
): Promise<boolean> {
  try {
    if (!service.isFeatureAvailable()) {
      log.warning('The Actions cache service is not available here; repodata reads every artifact');
      return false;
    }
    const prefix = repodataCacheKeyPrefix(key);
    const hit = await service.restoreCache([dir], `${prefix}${runSuffix(env)}`, [prefix]);
    if (hit) log.info(`Restored the repodata cache ${hit}`);
    else log.info('No repodata cache yet: every artifact is read');
    return hit !== undefined;
  } catch (err) {
    log.warning(`Could not restore the repodata cache: ${(err as Error).message}`);
    return false;
  }
}

/** Saves `dir` as this run's cache. */
export async function saveRepodataCache(
  dir: string,
  key: RepodataCacheKey,
  service: CacheService = actionsCache,
  log: CacheLog = core,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  try {
    if (!service.isFeatureAvailable()) return;
    const name = `${repodataCacheKeyPrefix(key)}${runSuffix(env)}`;
    await service.saveCache([dir], name);
    log.info(`Saved the repodata cache as ${name}`);
  } catch (err) {
    log.warning(`Could not save the repodata cache: ${(err as Error).message}`);
  }
}
