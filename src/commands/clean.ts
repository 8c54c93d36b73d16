/**
 * `clean` (SPEC §6.4): staging is a waiting room. Deletes staged artifacts older than a given age,
 * with their records. The age is that of the newest upload receipt (a re-upload restarts the
 * clock); an artifact without one falls back to the package's own build time.
 */
import { readPackageManifest } from '../conda/artifact.js';
import { channelUrl, formatReference, type Channel } from '../conda/channel.js';
import { isPackageTag } from '../conda/naming.js';
import { isV0NameOf } from '../conda/naming-scheme.js';
import { ARTIFACT_TYPE_UPLOAD_RECEIPT } from '../conda/records.js';
import { defineCommand, type CommandContext } from '../core/command.js';
import {
  concurrencyOption,
  GITHUB_TOKEN_OPTION,
  LABEL_OPTION,
  NAMING_OPTION,
  REGISTRY_OPTIONS,
  RESULT_OPTIONS,
} from '../core/common-options.js';
import { flag, text, type OptionsOf } from '../core/options.js';
import { InvalidReferenceError } from '../oci/errors.js';
import { ANNOTATION_CREATED } from '../oci/media-types.js';
import { listReferrers } from '../oci/referrers.js';
import type { Repository, Store } from '../oci/storage.js';
import { describeError } from '../util/describe-error.js';
import { mapLimit } from '../util/map-limit.js';
import { packageRepositories } from './channel-scan.js';
import { deleteIfHolds, furtherPlaces } from './locations.js';
import { finish, type ArtifactResult, type CommandResult } from './report.js';
import { deleteStaged } from './staged.js';

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

const CLEAN_OPTIONS = {
  channel: text('channel', {
    help: 'The staging channel to clean.',
    placeholder: '<channel>',
    example: 'oci://ghcr.io/cf-staging/conda-forge',
    required: true,
  }),
  olderThanMs: text('older-than', {
    help: 'Delete staged artifacts older than this (their newest upload receipt), with their records.',
    placeholder: '<duration>',
    example: '2h',
    parse: parseDuration,
    required: true,
  }),
  dryRun: flag('dry-run', { help: 'List what would be deleted; delete nothing.' }),
  ...LABEL_OPTION,
  ...NAMING_OPTION,
  ...concurrencyOption('Repositories looked at', 4),
  ...REGISTRY_OPTIONS,
  ...GITHUB_TOKEN_OPTION,
  ...RESULT_OPTIONS,
};

export type CleanOptions = OptionsOf<typeof CLEAN_OPTIONS>;

export const cleanCommand = defineCommand({
  name: 'clean',
  summary: 'delete staged artifacts older than a given age',
  description:
    'Staging is a waiting room: conda-forge empties cf-staging of anything older than two hours, ' +
    'hourly. An artifact goes with its records and its further names (layout both).',
  examples: ['conda-oci clean --channel oci://ghcr.io/cf-staging/conda-forge --older-than 2h --dry-run'],
  options: CLEAN_OPTIONS,
  run: (options, context) => clean(options, context),
});

export async function clean(options: CleanOptions, context: CommandContext): Promise<CommandResult> {
  const { channel, store } = context.open(options.channel);
  const cutoff = context.now().getTime() - options.olderThanMs;
  const repositories = await packageRepositories(store, channel);
  context.reporter.info(
    `Looking for artifacts older than ${new Date(cutoff).toISOString()} in ${repositories.length} repositories of ${channelUrl(channel)}`,
  );
  const target = { channel, store, options, context };
  const perRepository = await mapLimit(repositories, options.concurrency, async ({ name, subdir }) => {
    const repository = store.repository(name);
    const results: ArtifactResult[] = [];
    for await (const tag of repository.listTags()) {
      if (!isPackageTag(tag)) continue;
      try {
        const result = await cleanOne(repository, subdir, tag, cutoff, target);
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
  return finish('clean', { channel: channelUrl(channel) }, perRepository.flat());
}

async function cleanOne(
  repository: Repository,
  subdir: string,
  tag: string,
  cutoff: number,
  target: { channel: Channel; store: Store; options: CleanOptions; context: CommandContext },
): Promise<ArtifactResult | undefined> {
  const { channel, options, context } = target;
  const fetched = await repository.fetchManifest(tag);
  const reference = formatReference(channel, repository.name, tag);
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
      for (const where of furtherPlaces(options.naming, channel, subdir, info))
        await deleteIfHolds(target.store, where, fetched.descriptor.digest);
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
