/**
 * `clean` (SPEC §6.4): staging is a waiting room. Deletes staged artifacts older than a given age,
 * with their records. The age is that of the newest upload receipt (a re-upload restarts the
 * clock); an artifact without one falls back to the package's own build time.
 */
import { readPackageManifest } from '../conda/artifact.js';
import { isPackageTag } from '../conda/naming.js';
import { ARTIFACT_TYPE_UPLOAD_RECEIPT } from '../conda/records.js';
import { InvalidReferenceError } from '../oci/errors.js';
import { describeError } from '../util/describe-error.js';
import { ANNOTATION_CREATED } from '../oci/media-types.js';
import { listReferrers } from '../oci/referrers.js';
import { channelUrl, formatReference, type Channel } from '../conda/channel.js';
import type { Repository, Store } from '../oci/storage.js';
import { mapLimit } from '../util/map-limit.js';
import { packageRepositories } from './channel-scan.js';
import { finish, type ArtifactResult, type CommandResult, type Reporter } from './report.js';
import { deleteStaged } from './validate.js';
import { deleteV0, isV0NameOf, v0Name, type Layout } from './v0-compat.js';

export interface CleanOptions {
  channel: Channel;
  olderThanMs: number;
  dryRun?: boolean;
  concurrency?: number;
  /** `both`: an artifact's v0 name goes with it (where it holds the same manifest). */
  layout?: Layout;
}

export interface CleanContext {
  store: Store;
  reporter: Reporter;
  now?: () => Date;
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `2h`, `90m`, `1h30m`, `1d` → milliseconds. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)\s*([smhdw])/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== trimmed.replace(/\s+/g, '')) {
    throw new InvalidReferenceError(`"${text}" is not a duration like 2h, 90m or 1d`);
  }
  return parts.reduce((sum, p) => sum + Number(p[1]) * UNITS[p[2]!]!, 0);
}

export async function clean(options: CleanOptions, context: CleanContext): Promise<CommandResult> {
  const now = (context.now?.() ?? new Date()).getTime();
  const cutoff = now - options.olderThanMs;
  const repositories = await packageRepositories(context.store, options.channel);
  context.reporter.info(
    `Looking for artifacts older than ${new Date(cutoff).toISOString()} in ${repositories.length} repositories of ${channelUrl(options.channel)}`,
  );
  const perRepository = await mapLimit(repositories, options.concurrency ?? 4, async ({ name, subdir }) => {
    const repository = context.store.repository(name);
    const results: ArtifactResult[] = [];
    for await (const tag of repository.listTags()) {
      if (!isPackageTag(tag)) continue;
      try {
        const result = await cleanOne(repository, subdir, tag, cutoff, options, context);
        if (result) results.push(result);
      } catch (err) {
        results.push({
          subdir,
          file: `${name}:${tag}`,
          repository: name,
          tag,
          status: 'failed',
          error: describeError(err),
        });
      }
    }
    return results;
  });
  return finish('clean', { channel: channelUrl(options.channel) }, perRepository.flat());
}

async function cleanOne(
  repository: Repository,
  subdir: string,
  tag: string,
  cutoff: number,
  options: CleanOptions,
  context: CleanContext,
): Promise<ArtifactResult | undefined> {
  const fetched = await repository.fetchManifest(tag);
  const reference = formatReference(options.channel, repository.name, tag);
  const info = readPackageManifest(fetched.bytes, reference);
  // The v0 name of another package (`<subdir>/cmake` is also the v1 repository of `make`): it
  // goes with that package, never on its own.
  if (isV0NameOf(repository.name, subdir, tag, info)) return undefined;
  const receipts = await listReferrers(repository, fetched.descriptor.digest, ARTIFACT_TYPE_UPLOAD_RECEIPT);
  const times = receipts
    .map((r) => Date.parse(r.annotations?.[ANNOTATION_CREATED] ?? ''))
    .filter((t) => !Number.isNaN(t));
  const stagedAt =
    times.length > 0 ? Math.max(...times) : Date.parse(info.manifest.annotations?.[ANNOTATION_CREATED] ?? '');
  if (!Number.isNaN(stagedAt) && stagedAt > cutoff) return undefined;
  const result: ArtifactResult = {
    subdir,
    file: info.fileName,
    name: info.name,
    version: info.version,
    build: info.build,
    sha256: info.packageLayer.digest.slice('sha256:'.length),
    repository: repository.name,
    tag,
    digest: fetched.descriptor.digest,
    reference,
    status: options.dryRun ? 'would-delete' : 'deleted',
  };
  if (!options.dryRun) {
    try {
      await deleteStaged(repository, fetched.descriptor.digest);
      if (options.layout === 'both')
        await deleteV0(context.store, v0Name(options.channel, subdir, info), fetched.descriptor.digest);
    } catch (err) {
      // Known by now: the result names the package, not only the tag.
      return { ...result, status: 'failed', error: describeError(err) };
    }
  }
  context.reporter.info(
    `${info.fileName}: ${options.dryRun ? 'would delete' : 'deleted'} (staged ${Number.isNaN(stagedAt) ? 'at an unknown time' : new Date(stagedAt).toISOString()})`,
  );
  return result;
}
