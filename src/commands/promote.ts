/**
 * `promote` (SPEC §6.3): copies validated artifacts from staging to production. Only an artifact
 * with a passing validation record for its exact staged manifest digest is copied; blobs go first
 * (mounted within one registry, else streamed), then the validation record, then the tagged
 * manifest, so production never shows a tag whose blobs or provenance are missing. A production
 * tag is never moved to different content; promoting again is a no-op.
 */
import { readPackageManifest } from '../conda/artifact.js';
import { packageReference, parseArtifactFileName } from '../conda/naming.js';
import {
  ANNOTATION_RECORD_SIGNATURE,
  ANNOTATION_VALIDATION_RESULT,
  ARTIFACT_TYPE_VALIDATION,
  parseRecordBody,
  recordLayer,
  verifyRecordSignature,
  type ValidationRecord,
} from '../conda/records.js';
import { copyManifestBlobs, type Located } from '../oci/copy.js';
import { mapLimit } from '../util/map-limit.js';
import { digestOf } from '../oci/digest.js';
import { ProtocolError } from '../oci/errors.js';
import { describeError } from '../util/describe-error.js';
import { ANNOTATION_CREATED } from '../oci/media-types.js';
import { listReferrers, pushReferrer } from '../oci/referrers.js';
import { channelRepository, channelUrl, formatReference, type Channel } from '../conda/channel.js';
import type { FetchedManifest, Repository, Store } from '../oci/storage.js';
import type { RequestedArtifact } from './artifact-list.js';
import { finish, type ArtifactResult, type CommandResult, type Reporter } from './report.js';
import { deleteStaged } from './validate.js';
import {
  conflictError,
  deleteV0,
  inspectV0,
  v0Name,
  writeV0,
  type Layout,
  type V0Name,
} from './v0-compat.js';

export interface PromoteOptions {
  from: Channel;
  to: Channel;
  artifacts: RequestedArtifact[];
  deleteStaged?: boolean;
  /** When set, only records signed with this key count (see validate). */
  recordKey?: string;
  concurrency?: number;
  /**
   * `both`: the v0 name is promoted with the v1 one, before the v1 tag, so that production never
   * shows a v1 tag without its v0 name; a v0 name holding other content is never moved.
   */
  layout?: Layout;
}

export interface PromoteContext {
  staging: Store;
  production: Store;
  reporter: Reporter;
}

export async function promote(options: PromoteOptions, context: PromoteContext): Promise<CommandResult> {
  context.reporter.info(
    `Promoting ${options.artifacts.length} artifact(s) from ${channelUrl(options.from)} to ${channelUrl(options.to)}`,
  );
  if (!options.recordKey) {
    context.reporter.warn(
      'No record key: validation records are not signed, so anyone who can write to staging could forge one. Set record-key on validate and promote.',
    );
  }
  const results = await mapLimit(options.artifacts, options.concurrency ?? 4, async (request) => {
    try {
      return await promoteOne(request, options, context);
    } catch (err) {
      const result: ArtifactResult = {
        subdir: request.subdir,
        file: request.file,
        sha256: request.sha256,
        status: 'failed',
        error: describeError(err),
      };
      context.reporter.warn(`${request.file}: ${result.error}`);
      return result;
    }
  });
  return finish('promote', { from: channelUrl(options.from), to: channelUrl(options.to) }, results);
}

async function promoteOne(
  request: RequestedArtifact,
  options: PromoteOptions,
  context: PromoteContext,
): Promise<ArtifactResult> {
  const file = parseArtifactFileName(request.file);
  const ref = packageReference(request.subdir, file.name, file.version, file.build);
  const stagingName = channelRepository(options.from, ref.repository);
  const productionName = channelRepository(options.to, ref.repository);
  const staging: Located = { store: context.staging, repository: context.staging.repository(stagingName) };
  const production: Located = {
    store: context.production,
    repository: context.production.repository(productionName),
  };
  const claimed = `sha256:${request.sha256}`;
  const result: ArtifactResult = {
    subdir: request.subdir,
    file: request.file,
    name: file.name,
    version: file.version,
    build: file.build,
    sha256: request.sha256,
    repository: productionName,
    tag: ref.tag,
    reference: formatReference(options.to, productionName, ref.tag),
    status: 'failed',
  };

  const identity = { name: file.name, version: file.version, build: file.build };
  const v0 = options.layout === 'both' ? v0Name(options.to, request.subdir, identity) : undefined;
  if (v0) result.v0Reference = v0.reference;

  // Production first: the same package there already is success; a different one is refused.
  // The staged manifest is asked for meanwhile (one round trip less), and only used when needed.
  const stagedWhere = formatReference(options.from, stagingName, ref.tag);
  const fetchingStaged = staging.repository.fetchManifest(ref.tag).then(
    (fetched) => fetched,
    (err: unknown) => {
      throw new ProtocolError(`nothing to promote at ${stagedWhere}: ${describeError(err)}`, { cause: err });
    },
  );
  fetchingStaged.catch(() => undefined); // not awaited when production already holds the package
  const published = await production.repository.resolve(ref.tag);
  if (published) {
    const manifest = await production.repository.fetchManifest(published.digest);
    const held = readPackageManifest(manifest.bytes, result.reference!);
    if (held.packageLayer.digest !== claimed) {
      return {
        ...result,
        digest: published.digest,
        error: `${result.reference} already holds ${held.name} ${held.version} ${held.build} (${held.packageLayer.digest}), not ${request.file} (${claimed}); production tags never move`,
      };
    }
    if (v0) {
      // Published before layout both (or by a run cut off between the two names): add the v0 name.
      const added = await ensureV0(context.production, productionName, v0, identity, {
        mediaType: manifest.descriptor.mediaType,
        bytes: manifest.bytes,
      });
      if (typeof added === 'string') return { ...result, digest: published.digest, error: added };
      if (added) {
        context.reporter.info(`${request.file}: already published; added its v0 name ${v0.reference}`);
        return { ...result, digest: published.digest, status: 'promoted' };
      }
    }
    context.reporter.info(`${request.file}: already published as ${result.reference}`);
    return { ...result, digest: published.digest, status: 'already-published' };
  }

  const staged = await fetchingStaged;
  const info = readPackageManifest(staged.bytes, stagedWhere);
  if (info.packageLayer.digest !== claimed) {
    return {
      ...result,
      error: `${stagedWhere} holds ${info.packageLayer.digest}, not the requested ${claimed} (re-tagged since validation?)`,
    };
  }
  const record = await passingRecord(staging.repository, staged, request, options.recordKey);
  if (typeof record === 'string') return { ...result, digest: staged.descriptor.digest, error: record };
  // Before anything is written: a v0 name that holds other content stops the promotion whole.
  const v0State = v0
    ? await inspectV0(context.production, v0, identity, staged.descriptor.digest)
    : undefined;
  if (v0 && v0State && v0State.kind !== 'free' && v0State.kind !== 'same')
    return {
      ...result,
      digest: staged.descriptor.digest,
      error: conflictError(v0, identity, v0State).message,
    };

  // The blobs of the package and of its record at once (they share the empty config blob).
  await copyManifestBlobs(
    staging,
    production,
    [
      { mediaType: staged.descriptor.mediaType, bytes: staged.bytes },
      { mediaType: record.descriptor.mediaType, bytes: record.bytes },
    ],
    6,
  );
  await pushReferrer(
    production.repository,
    { mediaType: record.descriptor.mediaType, bytes: record.bytes },
    staged.descriptor.digest,
  );
  const stagedManifest = { mediaType: staged.descriptor.mediaType, bytes: staged.bytes };
  if (v0 && v0State?.kind === 'free') await writeV0(context.production, productionName, v0, stagedManifest);
  await production.repository.pushManifest(stagedManifest, ref.tag);

  // No registry offers a conditional PUT: read back, so a concurrent writer cannot go unnoticed.
  const now = await production.repository.resolve(ref.tag);
  if (now?.digest !== staged.descriptor.digest) {
    return {
      ...result,
      digest: staged.descriptor.digest,
      error: `${result.reference} points to ${now?.digest ?? 'nothing'} after the push, not ${staged.descriptor.digest}`,
    };
  }
  if (options.deleteStaged) {
    await deleteStaged(staging.repository, staged.descriptor.digest);
    if (v0)
      await deleteV0(
        context.staging,
        v0Name(options.from, request.subdir, identity),
        staged.descriptor.digest,
      );
  }
  context.reporter.info(`${request.file}: promoted to ${result.reference}`);
  return {
    ...result,
    digest: staged.descriptor.digest,
    md5: info.md5,
    size: info.packageLayer.size,
    status: 'promoted',
  };
}

/**
 * Gives an already published artifact its v0 name. Returns true when it wrote it, false when it
 * was there, or why it cannot (the name holds other content).
 */
async function ensureV0(
  store: Store,
  from: string,
  name: V0Name,
  identity: { name: string; version: string; build: string },
  manifest: { mediaType: string; bytes: Uint8Array },
): Promise<boolean | string> {
  const digest = digestOf(manifest.bytes);
  const state = await inspectV0(store, name, identity, digest);
  if (state.kind === 'same') return false;
  if (state.kind !== 'free') return conflictError(name, identity, state).message;
  await writeV0(store, from, name, manifest);
  return true;
}

/**
 * The newest passing validation record of exactly this staged manifest, or why there is none.
 * With a key, only records whose signature verifies count.
 */
async function passingRecord(
  repository: Repository,
  staged: FetchedManifest,
  request: RequestedArtifact,
  key: string | undefined,
): Promise<FetchedManifest | string> {
  const subject = staged.descriptor.digest;
  const candidates = (await listReferrers(repository, subject, ARTIFACT_TYPE_VALIDATION))
    .filter((d) => d.annotations?.[ANNOTATION_VALIDATION_RESULT] === 'passed')
    .sort((a, b) =>
      (b.annotations?.[ANNOTATION_CREATED] ?? '').localeCompare(a.annotations?.[ANNOTATION_CREATED] ?? ''),
    );
  const reasons: string[] = [];
  for (const candidate of candidates) {
    const fetched = await repository.fetchManifest(candidate.digest);
    const { manifest, layer } = recordLayer(
      fetched.bytes,
      ARTIFACT_TYPE_VALIDATION,
      `validation record ${candidate.digest}`,
    );
    const body = await repository.readBlob(layer, 1024 * 1024);
    if (key && !verifyRecordSignature(body, manifest.annotations?.[ANNOTATION_RECORD_SIGNATURE], key)) {
      reasons.push(`record ${candidate.digest} is not signed with the record key`);
      continue;
    }
    const parsed = parseRecordBody<ValidationRecord>(body, `validation record ${candidate.digest}`);
    if (
      parsed.passed === true &&
      parsed.subject?.digest === subject &&
      parsed.claimed?.sha256 === request.sha256 &&
      manifest.subject?.digest === subject
    ) {
      return fetched;
    }
    reasons.push(`record ${candidate.digest} does not pass this exact artifact`);
  }
  return `no passing validation record for ${subject}${reasons.length ? ` (${reasons.join('; ')})` : ''}; run validate first`;
}
