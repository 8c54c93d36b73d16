/**
 * `clean` (SPEC §6.4): staging is a waiting room. Deletes staged artifacts older than a given age,
 * with their records, under the channel and every one of its labels (`<channel>/label/<label>`).
 *
 * An artifact's age is taken from what its uploader cannot write: the store's own record of when
 * it took the manifest in (GHCR: the package version's `created_at` from GitHub's Packages API;
 * oci-layout: the manifest file's modification time, set by the file system when we wrote it).
 * A registry that keeps no such record (distribution) leaves the upload receipts, which the
 * uploader writes itself: then the newest receipt counts, a time more than CLOCK_SKEW_MS ahead of
 * ours is not believed, and without a believable receipt the package's build time does. Each
 * result says which (`ageFrom`). A re-upload with other provenance is another manifest, so its
 * clock starts afresh either way.
 */
import { readPackageManifest } from '../conda/artifact.js';
import { channelPrefix, channelUrl, formatReference, isSubdir, type Channel } from '../conda/channel.js';
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
import { NotFoundError, type OciError } from '../oci/errors.js';
import { ANNOTATION_CREATED } from '../oci/media-types.js';
import { listReferrers } from '../oci/referrers.js';
import type { Digest } from '../oci/digest.js';
import type { Repository, Store } from '../oci/storage.js';
import { describeError } from '../util/describe-error.js';
import { mapLimit } from '../util/map-limit.js';
import {
  MAIN_LABEL,
  packageRepositoriesOfEveryLabel,
  placeBelow,
  type PackageRepository,
} from './channel-scan.js';
import { deleteIfHolds, furtherPlaces } from './locations.js';
import { finish, type ArtifactResult, type CommandResult } from './report.js';
import { deleteStaged } from './staged.js';

/** How far ahead of ours an uploader's clock may be and still count (as now): NTP keeps CI within seconds. */
export const CLOCK_SKEW_MS = 5 * 60_000;

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
    help: "Delete staged artifacts older than this (by the registry's record, else their newest upload receipt), with their records.",
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

/** Where an artifact's age came from. */
export type AgeSource =
  /** The store's own record of when it took the manifest in: nothing the uploader writes. */
  | 'registry'
  /** The newest upload receipt that is not dated ahead of us: written by the uploader. */
  | 'receipt'
  /** No believable receipt: the `created` annotation of the package manifest (its build time). */
  | 'build-time';

/** One artifact of a clean, or one place that could not be looked at. */
export interface CleanResult extends ArtifactResult {
  /** The label it is staged under (`main`: the channel itself). */
  label: string;
  ageFrom?: AgeSource;
  /** When it was staged, by `ageFrom`; absent when unknown (then it counts as old). */
  stagedAt?: string;
}

interface Run {
  channel: Channel;
  store: Store;
  options: CleanOptions;
  context: CommandContext;
  now: number;
  cutoff: number;
}

export async function clean(options: CleanOptions, context: CommandContext): Promise<CommandResult> {
  const { channel, store } = context.open(options.channel);
  const now = context.now().getTime();
  const run: Run = { channel, store, options, context, now, cutoff: now - options.olderThanMs };
  const refused: CleanResult[] = [];
  const { labels, repositories } = await packageRepositoriesOfEveryLabel(store, channel, {
    onRefused: (name, reason) => refused.push(refusedPlace(channel, name, reason)),
  });
  context.reporter.info(
    `Looking for artifacts older than ${new Date(run.cutoff).toISOString()} in ${repositories.length} repositories ` +
      `of ${channelUrl(channel)}, ${labels.length} label(s): ${labels.join(', ')}`,
  );
  for (const place of refused) context.reporter.warn(`${place.repository}: ${place.error}`);
  const first = repositories[0];
  if (first && !store.repository(first.name).manifestTime) {
    context.reporter.info(
      `${channelUrl(channel)} keeps no record of when it took a manifest in: ages come from upload receipts, ` +
        `which uploaders write themselves (a receipt dated more than ${CLOCK_SKEW_MS / 60_000} minutes ahead is not believed)`,
    );
  }
  const perRepository = await mapLimit(repositories, options.concurrency, (found) =>
    cleanRepository(found, run),
  );
  return finish('clean', { channel: channelUrl(channel) }, [...refused, ...perRepository.flat()], {
    labels: labels.length,
  });
}

/** A place of the channel the store would not look into (a symbolic link on disk), as a failure. */
function refusedPlace(channel: Channel, name: string, reason: OciError): CleanResult {
  const place = placeBelow(channelPrefix(channel), name, channel.label === undefined);
  const subdir = place?.rest[0];
  return {
    subdir: subdir && isSubdir(subdir) ? subdir : '',
    file: name,
    repository: name,
    label: place?.label ?? channel.label ?? MAIN_LABEL,
    status: 'failed',
    error: reason.message,
  };
}

/** The channel of one label: `<channel>/label/<label>`, or the channel itself for `main`. */
function channelOfLabel(channel: Channel, label: string): Channel {
  if (label === (channel.label ?? MAIN_LABEL)) return channel;
  return { ...channel, label };
}

async function cleanRepository(found: PackageRepository, run: Run): Promise<CleanResult[]> {
  const { name, subdir, label } = found;
  const repository = run.store.repository(name);
  const results: CleanResult[] = [];
  const failed = (file: string, tag: string | undefined, err: unknown): CleanResult => ({
    subdir,
    file,
    repository: name,
    ...(tag ? { tag } : {}),
    label,
    status: 'failed',
    error: describeError(err),
  });
  try {
    for await (const tag of repository.listTags()) {
      if (!isPackageTag(tag)) continue;
      try {
        const result = await cleanOne(repository, found, tag, run);
        if (result) results.push(result);
      } catch (err) {
        results.push(failed(`${name}:${tag}`, tag, err));
      }
    }
  } catch (err) {
    // The repository could not be listed (e.g. a symbolic link on disk): said, and nothing deleted.
    results.push(failed(name, undefined, err));
  }
  return results;
}

async function cleanOne(
  repository: Repository,
  found: PackageRepository,
  tag: string,
  run: Run,
): Promise<CleanResult | undefined> {
  const { options, context } = run;
  const { subdir, label } = found;
  const channel = channelOfLabel(run.channel, label);
  const fetched = await repository.fetchManifest(tag);
  const reference = formatReference(channel, repository.name, tag);
  const info = readPackageManifest(fetched.bytes, reference);
  // The v0 name of another package (`<subdir>/cmake` is also the v1 repository of `make`): it
  // goes with that package, never on its own.
  if (isV0NameOf(repository.name, subdir, tag, info)) return undefined;
  const age = await stagedAt(repository, fetched.descriptor.digest, info.manifest.annotations, run);
  if (age.at !== undefined && age.at > run.cutoff) return undefined;
  const result: CleanResult = {
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
    label,
    ageFrom: age.from,
    ...(age.at !== undefined ? { stagedAt: new Date(age.at).toISOString() } : {}),
    status: options.dryRun ? 'would-delete' : 'deleted',
  };
  if (!options.dryRun) {
    try {
      await deleteStaged(repository, fetched.descriptor.digest);
      for (const where of furtherPlaces(options.naming, channel, subdir, info))
        await deleteIfHolds(run.store, where, {
          mediaType: fetched.descriptor.mediaType,
          bytes: fetched.bytes,
        });
    } catch (err) {
      // Known by now: the result names the package, not only the tag.
      return { ...result, status: 'failed', error: describeError(err) };
    }
  }
  context.reporter.info(
    `${info.fileName}${label === MAIN_LABEL ? '' : ` (label ${label})`}: ${options.dryRun ? 'would delete' : 'deleted'} ` +
      `(staged ${result.stagedAt ?? 'at an unknown time'}, by the ${age.from === 'registry' ? "registry's record" : age.from})`,
  );
  return result;
}

/** When the artifact was staged, from the most trustworthy source the store offers. */
async function stagedAt(
  repository: Repository,
  digest: Digest,
  annotations: Record<string, string> | undefined,
  run: Run,
): Promise<{ at: number | undefined; from: AgeSource }> {
  if (repository.manifestTime) {
    const time = await repository.manifestTime(digest);
    if (!time)
      throw new NotFoundError(
        `${repository.name}@${digest}: the registry has no record of when it took it in`,
      );
    // The registry's clock, not an uploader's: only a skew between it and ours to absorb.
    return { at: Math.min(time.getTime(), run.now), from: 'registry' };
  }
  const receipts = await listReferrers(repository, digest, ARTIFACT_TYPE_UPLOAD_RECEIPT);
  const times = receipts
    .map((r) => believable(r.annotations?.[ANNOTATION_CREATED], run.now))
    .filter((t) => t !== undefined);
  if (times.length > 0) return { at: Math.max(...times), from: 'receipt' };
  return { at: believable(annotations?.[ANNOTATION_CREATED], run.now), from: 'build-time' };
}

/**
 * A time an uploader wrote: undefined when missing or not a date, or when more than CLOCK_SKEW_MS
 * ahead of ours (one dated far ahead would keep its artifact for good if it counted as now on
 * every run); one a little ahead counts as now.
 */
function believable(text: string | undefined, now: number): number | undefined {
  const time = Date.parse(text ?? '');
  if (Number.isNaN(time) || time > now + CLOCK_SKEW_MS) return undefined;
  return Math.min(time, now);
}
