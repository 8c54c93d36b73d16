/**
 * `promote` (SPEC §6.3): copies validated artifacts from staging to production. Only an artifact
 * with a passing validation record for its exact staged manifest digest is copied; blobs go first
 * (mounted within one registry, else streamed), then the validation record, then the tagged
 * manifest, so production never shows a tag whose blobs or provenance are missing. A production
 * tag is never moved to different content; promoting again is a no-op.
 */
import { readPackageManifest } from '../conda/artifact.js';
import { channelUrl, withoutLabel, type Channel } from '../conda/channel.js';
import { parseArtifactFileName, type PackageIdentity } from '../conda/naming.js';
import {
  ANNOTATION_RECORD_SIGNATURE,
  ANNOTATION_VALIDATION_RESULT,
  ARTIFACT_TYPE_VALIDATION,
  parseRecordBody,
  recordLayer,
  recordMismatch,
  verifyRecordSignature,
  type RecordExpectation,
  type ValidationRecord,
} from '../conda/records.js';
import { defineCommand, type CommandContext } from '../core/command.js';
import {
  ARTIFACTS_OPTION,
  concurrencyOption,
  GITHUB_TOKEN_OPTION,
  LABEL_OPTION,
  NAMING_OPTION,
  REGISTRY_OPTIONS,
  RESULT_OPTIONS,
} from '../core/common-options.js';
import { flag, integerIn, text, type OptionsOf } from '../core/options.js';
import { UsageError } from '../usage.js';
import { nonEmptyKey } from './validate.js';
import { copyManifestBlobs, type Located } from '../oci/copy.js';
import { ProtocolError } from '../oci/errors.js';
import type { ManifestBytes } from '../oci/manifest.js';
import { ANNOTATION_CREATED } from '../oci/media-types.js';
import { listReferrers, pushReferrer } from '../oci/referrers.js';
import type { FetchedManifest, Repository, Store } from '../oci/storage.js';
import { describeError } from '../util/describe-error.js';
import { mapLimit } from '../util/map-limit.js';
import type { RequestedArtifact } from './artifact-list.js';
import {
  conflictError,
  deleteIfHolds,
  inspectPlace,
  manifestAt,
  places,
  writeCopy,
  type Place,
} from './locations.js';
import { finish, type ArtifactResult, type CommandResult } from './report.js';
import { deleteStaged } from './staged.js';

const PROMOTE_OPTIONS = {
  from: text('from', {
    help: 'The staging channel. Never taken from a dispatch payload: the credentials of the step go where it points.',
    placeholder: '<channel>',
    required: true,
  }),
  to: text('to', {
    help: 'The production channel.',
    placeholder: '<channel>',
    example: 'oci://ghcr.io/conda-forge/conda-forge',
    required: true,
  }),
  ...ARTIFACTS_OPTION,
  deleteStaged: flag('delete-staged', { help: 'Delete artifacts from staging once promoted.' }),
  recordKey: text('record-key', {
    help: 'The key validate signed its records with: only records signed with it count. Required.',
    placeholder: '<key>',
    env: ['CONDA_OCI_RECORD_KEY'],
    secret: true,
    parse: nonEmptyKey,
  }),
  unsignedRecords: flag('accept-unsigned-records-anyone-can-forge', {
    help:
      'Promote without a record key, on records nobody signed: anyone who can write to staging can then ' +
      'forge a passing record and publish anything. Only for a staging channel nobody else can write to.',
  }),
  settleMs: text('settle-ms', {
    help: 'How long after writing a production tag it is read again, so that a promotion that lost a race to the same tag fails.',
    placeholder: '<ms>',
    parse: integerIn(0, 60_000),
    default: 1500,
  }),
  ...LABEL_OPTION,
  ...NAMING_OPTION,
  ...concurrencyOption('Artifacts promoted', 4),
  ...REGISTRY_OPTIONS,
  ...GITHUB_TOKEN_OPTION,
  ...RESULT_OPTIONS,
};

export type PromoteOptions = OptionsOf<typeof PROMOTE_OPTIONS>;

export const promoteCommand = defineCommand({
  name: 'promote',
  summary: 'copy validated artifacts from staging to production',
  description:
    'Copies each artifact that has a passing validation record for its exact staged manifest: blobs ' +
    'first (mounted within one registry, else streamed), then the record, then the tagged manifest, ' +
    'read back. A production tag is never moved; promoting again is a no-op.',
  examples: [
    'conda-oci promote --from oci://ghcr.io/cf-staging/conda-forge --to oci://ghcr.io/conda-forge/conda-forge --artifacts result.json',
  ],
  options: PROMOTE_OPTIONS,
  run: (options, context) => promote(options, context),
});

/** What one promote run works with. */
interface Run {
  from: Channel;
  to: Channel;
  staging: Store;
  production: Store;
  options: PromoteOptions;
  context: CommandContext;
}

export async function promote(options: PromoteOptions, context: CommandContext): Promise<CommandResult> {
  const source = context.open(options.from);
  const target = context.open(options.to, { mayBeNew: true });
  const run: Run = {
    from: source.channel,
    to: target.channel,
    staging: source.store,
    production: target.store,
    options,
    context,
  };
  context.reporter.info(
    `Promoting ${options.artifacts.length} artifact(s) from ${channelUrl(run.from)} to ${channelUrl(run.to)}`,
  );
  if (!options.recordKey) {
    if (!options.unsignedRecords)
      throw new UsageError(
        'promote needs record-key (the key validate signs its records with): without it anyone who can write to staging can forge a passing record. ' +
          'A missing secret reads as no key. To accept unsigned records anyway, set accept-unsigned-records-anyone-can-forge.',
      );
    context.reporter.warn(
      'No record key: validation records are not signed, so anyone who can write to staging can forge one (accept-unsigned-records-anyone-can-forge is set).',
    );
  }
  const results = await mapLimit(options.artifacts, options.concurrency, async (request) => {
    try {
      return await promoteOne(request, run);
    } catch (err) {
      const result: ArtifactResult = {
        subdir: request.subdir,
        file: request.file,
        sha256: request.sha256,
        status: 'failed',
        error: describeError(err),
      };
      context.reporter.warn(`${request.file}: failed (the reason is in the summary)`);
      return result;
    }
  });
  return finish('promote', { from: channelUrl(run.from), to: channelUrl(run.to) }, results);
}

async function promoteOne(request: RequestedArtifact, run: Run): Promise<ArtifactResult> {
  const { options, context } = run;
  const identity = parseArtifactFileName(request.file);
  const [stagedMain, ...stagedCopies] = places(options.naming, run.from, request.subdir, identity) as [
    Place,
    ...Place[],
  ];
  const [main, ...copies] = places(options.naming, run.to, request.subdir, identity) as [Place, ...Place[]];
  const staging: Located = { store: run.staging, repository: run.staging.repository(stagedMain.repository) };
  const production: Located = {
    store: run.production,
    repository: run.production.repository(main.repository),
  };
  const claimed = `sha256:${request.sha256}`;
  const result: ArtifactResult = {
    subdir: request.subdir,
    file: request.file,
    name: identity.name,
    version: identity.version,
    build: identity.build,
    sha256: request.sha256,
    repository: main.repository,
    tag: main.tag,
    reference: main.reference,
    ...(copies.length ? { v0Reference: copies[0]!.reference } : {}),
    status: 'failed',
  };

  // Production first: the same package there already is success; a different one is refused.
  // The staged manifest is asked for meanwhile (one round trip less), and only used when needed.
  const fetchingStaged = staging.repository.fetchManifest(stagedMain.tag).then(
    (fetched) => fetched,
    (err: unknown) => {
      throw new ProtocolError(`nothing to promote at ${stagedMain.reference}: ${describeError(err)}`, {
        cause: err,
      });
    },
  );
  fetchingStaged.catch(() => undefined); // not awaited when production already holds the package
  const published = await production.repository.resolve(main.tag);
  if (published) {
    const manifest = await production.repository.fetchManifest(published.digest);
    const held = readPackageManifest(manifest.bytes, main.reference);
    if (held.packageLayer.digest !== claimed) {
      return {
        ...result,
        digest: published.digest,
        error: `${main.reference} already holds ${held.name} ${held.version} ${held.build} (${held.packageLayer.digest}), not ${request.file} (${claimed}); production tags never move`,
      };
    }
    // Published before layout both (or by a run cut off between names): add the further names.
    const added = await ensureCopies(run.production, main, copies, identity, {
      mediaType: manifest.descriptor.mediaType,
      bytes: manifest.bytes,
    });
    if (typeof added === 'string') return { ...result, digest: published.digest, error: added };
    if (added.length) {
      context.reporter.info(`${request.file}: already published; added ${added.join(', ')}`);
      return { ...result, digest: published.digest, status: 'promoted' };
    }
    context.reporter.info(`${request.file}: already published as ${main.reference}`);
    return { ...result, digest: published.digest, status: 'already-published' };
  }

  const staged = await fetchingStaged;
  const info = readPackageManifest(staged.bytes, stagedMain.reference);
  if (request.digest && staged.descriptor.digest !== request.digest)
    return {
      ...result,
      digest: staged.descriptor.digest,
      error: `${stagedMain.reference} holds ${staged.descriptor.digest}, not ${request.digest}, which validate passed (re-tagged since validation)`,
    };
  if (info.packageLayer.digest !== claimed) {
    return {
      ...result,
      error: `${stagedMain.reference} holds ${info.packageLayer.digest}, not the requested ${claimed} (re-tagged since validation?)`,
    };
  }
  // Only a manifest that is the request's package may take the request's names.
  if (
    info.fileName !== request.file ||
    info.name !== identity.name ||
    info.version !== identity.version ||
    info.build !== identity.build
  )
    return {
      ...result,
      digest: staged.descriptor.digest,
      error: `${stagedMain.reference} describes ${info.fileName} (${info.name} ${info.version} ${info.build}), not ${request.file}`,
    };
  const proven = await provenRecord(
    staging.repository,
    staged,
    request,
    {
      channel: channelUrl(withoutLabel(run.from)),
      label: run.from.label ?? '',
      production: channelUrl(run.to),
      subject: { repository: stagedMain.repository, tag: stagedMain.tag, digest: staged.descriptor.digest },
      artifact: {
        subdir: request.subdir,
        file: request.file,
        name: identity.name,
        version: identity.version,
        build: identity.build,
      },
      sha256: request.sha256,
    },
    options.recordKey,
  );
  if (typeof proven === 'string') return { ...result, digest: staged.descriptor.digest, error: proven };
  const { record, body } = proven;
  const attestation = body.requester?.attestation
    ? await staging.repository.fetchManifest(body.requester.attestation)
    : undefined;
  const stagedManifest = { mediaType: staged.descriptor.mediaType, bytes: staged.bytes };
  // Before anything is written: a further name that holds other content stops the promotion whole.
  const copyStates = await Promise.all(
    copies.map((where) => inspectPlace(run.production, where, identity, stagedManifest)),
  );
  const taken = copyStates.findIndex((s) => s.kind !== 'free' && s.kind !== 'same');
  if (taken !== -1)
    return {
      ...result,
      digest: staged.descriptor.digest,
      error: conflictError(copies[taken]!, identity, copyStates[taken]!).message,
    };

  // The blobs of the package, its record and its attestation at once (they share the empty config blob).
  const referrers = [record, ...(attestation ? [attestation] : [])].map((m) => ({
    mediaType: m.descriptor.mediaType,
    bytes: m.bytes,
  }));
  await copyManifestBlobs(
    staging,
    production,
    [{ mediaType: staged.descriptor.mediaType, bytes: staged.bytes }, ...referrers],
    6,
  );
  // The record and the publish attestation go beside the package, so anyone can verify later
  // what was checked and who published it.
  for (const referrer of referrers)
    await pushReferrer(production.repository, referrer, staged.descriptor.digest);
  // Further names before the v1 tag: production never shows a v1 tag without them.
  for (const [i, where] of copies.entries())
    if (copyStates[i]!.kind === 'free')
      await writeCopy(run.production, main.repository, where, manifestAt(where, stagedManifest));
  const lost = await writeProductionTag(
    production.repository,
    main,
    stagedManifest,
    staged.descriptor.digest,
    options.settleMs,
  );
  if (lost) return { ...result, digest: staged.descriptor.digest, error: lost };
  if (options.deleteStaged) {
    await deleteStaged(staging.repository, staged.descriptor.digest);
    for (const where of stagedCopies) await deleteIfHolds(run.staging, where, stagedManifest);
  }
  context.reporter.info(`${request.file}: promoted to ${main.reference}`);
  return {
    ...result,
    digest: staged.descriptor.digest,
    md5: info.md5,
    size: info.packageLayer.size,
    status: 'promoted',
  };
}

/**
 * Gives an already published artifact its further names. Returns the references it wrote
 * (none when they were there), or why it cannot (a name holds other content).
 */
async function ensureCopies(
  store: Store,
  main: Place,
  copies: Place[],
  identity: PackageIdentity,
  manifest: ManifestBytes,
): Promise<string[] | string> {
  const written: string[] = [];
  for (const where of copies) {
    const state = await inspectPlace(store, where, identity, manifest);
    if (state.kind === 'same') continue;
    if (state.kind !== 'free') return conflictError(where, identity, state).message;
    await writeCopy(store, main.repository, where, manifestAt(where, manifest));
    written.push(`its ${where.scheme} name ${where.reference}`);
  }
  return written;
}

/** Records looked at when the request does not name one: anyone who can write staging can add more. */
export const MAX_RECORD_CANDIDATES = 8;
const RECORD_SIZE_LIMIT = 1024 * 1024;

/**
 * The validation record that proves this exact request: the one the request names (validate's
 * own result), else the newest of at most MAX_RECORD_CANDIDATES passing ones. With a key, only a
 * record whose signature verifies counts; every field must answer this request (recordMismatch).
 */
async function provenRecord(
  repository: Repository,
  staged: FetchedManifest,
  request: RequestedArtifact,
  expected: RecordExpectation,
  key: string | undefined,
): Promise<{ record: FetchedManifest; body: ValidationRecord } | string> {
  const subject = staged.descriptor.digest;
  let candidates: string[];
  const reasons: string[] = [];
  if (request.record) candidates = [request.record];
  else {
    const listed = (await listReferrers(repository, subject, ARTIFACT_TYPE_VALIDATION))
      .filter((d) => d.annotations?.[ANNOTATION_VALIDATION_RESULT] === 'passed')
      .sort((a, b) =>
        (b.annotations?.[ANNOTATION_CREATED] ?? '').localeCompare(a.annotations?.[ANNOTATION_CREATED] ?? ''),
      );
    if (listed.length > MAX_RECORD_CANDIDATES)
      reasons.push(
        `${listed.length} records claim to pass; only the newest ${MAX_RECORD_CANDIDATES} are looked at (the limit)`,
      );
    candidates = listed.slice(0, MAX_RECORD_CANDIDATES).map((d) => d.digest);
  }
  for (const digest of candidates) {
    const what = `validation record ${digest}`;
    try {
      const fetched = await repository.fetchManifest(digest);
      const { manifest, layer } = recordLayer(fetched.bytes, ARTIFACT_TYPE_VALIDATION, what);
      if (manifest.subject?.digest !== subject) {
        reasons.push(`${what} is about ${manifest.subject?.digest ?? 'nothing'}, not ${subject}`);
        continue;
      }
      const bytes = await repository.readBlob(layer, RECORD_SIZE_LIMIT);
      if (key && !verifyRecordSignature(bytes, manifest.annotations?.[ANNOTATION_RECORD_SIGNATURE], key)) {
        reasons.push(`${what} is not signed with the record key`);
        continue;
      }
      const body = parseRecordBody<ValidationRecord>(bytes, what);
      const mismatch = recordMismatch(body, expected);
      if (mismatch === undefined) return { record: fetched, body };
      reasons.push(`${what} does not answer this request: ${mismatch}`);
    } catch (err) {
      reasons.push(`${what}: ${describeError(err)}`);
    }
  }
  return `no passing validation record for ${subject}${reasons.length ? ` (${reasons.join('; ')})` : ''}; run validate first`;
}

/**
 * Writes the production tag so that it never moves: checked immediately before the write, read
 * back at once, and read again after `settleMs`. No registry offers a conditional PUT, so two
 * promotions of two builds of one name-version-build can both find the tag free; the one whose
 * write is overwritten sees it on a read-back and fails, naming both digests. Returns why it
 * lost, or undefined when the tag is ours.
 */
async function writeProductionTag(
  repository: Repository,
  where: Place,
  manifest: ManifestBytes,
  digest: string,
  settleMs: number,
): Promise<string | undefined> {
  const taken = (other: string) =>
    `${where.reference} was taken by ${other} while this promotion of ${digest} ran; production tags never move, so this one stops`;
  const before = await repository.resolve(where.tag);
  if (before && before.digest !== digest) return taken(before.digest);
  await repository.pushManifest(manifest, where.tag);
  for (const wait of [0, settleMs]) {
    if (wait) await new Promise((resolve) => setTimeout(resolve, wait));
    const now = await repository.resolve(where.tag);
    if (now?.digest !== digest) return taken(now?.digest ?? 'nothing');
  }
  return undefined;
}
