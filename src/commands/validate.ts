/**
 * `validate`: the webservices side (SPEC §6.2). Proves that what staging holds for each requested
 * artifact is exactly what the feedstock built and may publish, and records the outcome as a
 * referrer of the staged manifest. The registry is not trusted: the package bytes are downloaded,
 * hashed and opened again.
 */
import { readFileSync } from 'node:fs';
import { readPackageManifest, type PackageManifestInfo } from '../conda/artifact.js';
import { channelUrl, type Channel } from '../conda/channel.js';
import { sameInfoTarball } from '../conda/info-compare.js';
import { parseArtifactFileName, type PackageIdentity } from '../conda/naming.js';
import { ownershipName } from '../conda/naming-scheme.js';
import { DEFAULT_LIMITS, PackageError, readPackage, type PackageContents } from '../conda/package-reader.js';
import {
  ANNOTATION_VALIDATION_RESULT,
  ARTIFACT_TYPE_VALIDATION,
  buildRecord,
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
import { flag, text, type OptionsOf } from '../core/options.js';
import { reportFailures } from '../github/issues.js';
import { runUrl } from '../github/run.js';
import { digestHex, digestOf } from '../oci/digest.js';
import { DigestMismatchError, InvalidReferenceError, NotFoundError, SizeLimitError } from '../oci/errors.js';
import type { Descriptor } from '../oci/manifest.js';
import { pushArtifact } from '../oci/push.js';
import type { Repository, Store } from '../oci/storage.js';
import { UsageError } from '../usage.js';
import { describeError } from '../util/describe-error.js';
import { mapLimit } from '../util/map-limit.js';
import type { RequestedArtifact } from './artifact-list.js';
import { conflictError, deleteIfHolds, inspectPlace, places, type Place } from './locations.js';
import { checkOwner, parseOwners, type OwnersMap } from './owners.js';
import { finish, type ArtifactResult, type Check, type CommandResult } from './report.js';
import { deleteStaged } from './staged.js';

/** The info layer is read whole only when its digest differs (another tool's tarball). */
const INFO_LAYER_LIMIT = 256 * 1024 * 1024;

export interface Requester {
  feedstock?: string;
  /** The workflow run that asked, e.g. `https://github.com/org/repo/actions/runs/1`. */
  run?: string;
  repository?: string;
}

const VALIDATE_OPTIONS = {
  from: text('from', {
    help: 'The staging channel. Never taken from a dispatch payload: the credentials of the step go where it points.',
    placeholder: '<channel>',
    example: 'oci://ghcr.io/cf-staging/conda-forge',
    required: true,
  }),
  ...ARTIFACTS_OPTION,
  owners: text<OwnersMap>('owners', {
    help: 'A JSON map of package name (or glob) to the feedstocks allowed to publish it.',
    placeholder: '<file>',
    example: 'feedstock-outputs.json',
    parse: readOwners,
  }),
  feedstock: text('feedstock', {
    help: 'The feedstock asking, checked against the owners map.',
    placeholder: '<name>',
    fallback: ({ payload }) => (typeof payload?.feedstock === 'string' ? payload.feedstock : undefined),
    defaultText: 'in the action, "feedstock" of the dispatch payload',
  }),
  production: text('production', {
    help: 'The production channel: a name and tag it already holds with other content is refused.',
    placeholder: '<channel>',
  }),
  deleteFailed: flag('delete-failed', { help: 'Delete artifacts that fail validation from staging.' }),
  recordKey: text('record-key', {
    help: 'Secret key that signs validation records; promote then accepts only records signed with it.',
    placeholder: '<key>',
    env: ['CONDA_OCI_RECORD_KEY'],
    secret: true,
  }),
  reportIssue: flag('report-issue', {
    help: 'Open or update an issue on the feedstock repository when validation fails.',
  }),
  feedstockRepository: text('feedstock-repository', {
    help: 'The feedstock repository for report-issue.',
    placeholder: '<owner>/<repo>',
    fallback: ({ payload }) => (typeof payload?.repository === 'string' ? payload.repository : undefined),
    defaultText: 'in the action, "repository" of the dispatch payload',
  }),
  ...LABEL_OPTION,
  ...NAMING_OPTION,
  ...concurrencyOption('Artifacts validated', 4),
  ...REGISTRY_OPTIONS,
  ...GITHUB_TOKEN_OPTION,
  ...RESULT_OPTIONS,
};

export type ValidateOptions = OptionsOf<typeof VALIDATE_OPTIONS> & { requester?: Requester };

export const validateCommand = defineCommand({
  name: 'validate',
  summary: 'prove staged artifacts are exactly what the feedstock built and may publish',
  description:
    'Re-reads each requested artifact from staging: its manifest, the package bytes (downloaded and ' +
    'hashed: the registry is not trusted), index.json and the info layer against the package, the ' +
    'owners map, and production. The outcome is recorded next to the staged manifest as an OCI ' +
    'referrer, which promote requires.',
  examples: [
    'conda-oci validate --from oci://ghcr.io/cf-staging/conda-forge --artifacts result.json --record-key "$KEY"',
  ],
  options: VALIDATE_OPTIONS,
  run: async (options, context) => {
    const result = await validate(options, context);
    if (options.reportIssue && result.exitCode !== 0) await reportIssue(result, options, context);
    return result;
  },
});

function readOwners(path: string): OwnersMap {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InvalidReferenceError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidReferenceError(`${path} is not JSON`);
  }
  return parseOwners(value, path);
}

/** Tells the feedstock; a failed report is only a warning (the failures fail the step). */
async function reportIssue(
  result: CommandResult,
  options: ValidateOptions,
  context: CommandContext,
): Promise<void> {
  if (!context.github || !options.feedstockRepository) {
    context.reporter.warn(
      'report-issue needs github-token and the feedstock repository (input feedstock-repository or the payload)',
    );
    return;
  }
  try {
    const url = await reportFailures(
      context.github,
      options.feedstockRepository,
      result,
      runUrl(context.sources.env),
    );
    context.reporter.info(`Reported the failures in ${url}`);
  } catch (err) {
    context.reporter.warn(
      `Could not report the failures on ${options.feedstockRepository}: ${describeError(err)}`,
    );
  }
}

/** What one validate run works with. */
interface Run {
  channel: Channel;
  staging: Store;
  production?: { channel: Channel; store: Store };
  options: ValidateOptions;
  context: CommandContext;
}

export async function validate(options: ValidateOptions, context: CommandContext): Promise<CommandResult> {
  if (options.owners && !options.feedstock)
    throw new UsageError('owners needs feedstock (or a payload with "feedstock")');
  const { channel, store: staging } = context.open(options.from);
  const run: Run = {
    channel,
    staging,
    ...(options.production ? { production: context.open(options.production) } : {}),
    options,
    context,
  };
  context.reporter.info(`Validating ${options.artifacts.length} artifact(s) in ${channelUrl(channel)}`);
  const results = await mapLimit(options.artifacts, options.concurrency, async (request) => {
    try {
      return await validateOne(request, run);
    } catch (err) {
      return {
        subdir: request.subdir,
        file: request.file,
        sha256: request.sha256,
        status: 'failed',
        error: describeError(err),
      } satisfies ArtifactResult;
    }
  });
  const channels: Record<string, string> = { from: channelUrl(channel) };
  if (run.production) channels.production = channelUrl(run.production.channel);
  return finish('validate', channels, results);
}

/** Runs checks in order; a failed check stops those that depend on it. */
class CheckList {
  readonly checks: Check[] = [];
  pass(name: string, detail: string): void {
    this.checks.push({ name, ok: true, detail });
  }
  fail(name: string, detail: string): void {
    this.checks.push({ name, ok: false, detail });
  }
  expect(name: string, ok: boolean, passDetail: string, failDetail: string): boolean {
    this.checks.push({ name, ok, detail: ok ? passDetail : failDetail });
    return ok;
  }
  get passed(): boolean {
    return this.checks.every((c) => c.ok);
  }
  firstFailure(): string | undefined {
    const failed = this.checks.find((c) => !c.ok);
    return failed ? `${failed.name}: ${failed.detail}` : undefined;
  }
}

async function validateOne(request: RequestedArtifact, run: Run): Promise<ArtifactResult> {
  const { options, context } = run;
  const fileName = parseArtifactFileName(request.file);
  const result: ArtifactResult = {
    subdir: request.subdir,
    file: request.file,
    name: fileName.name,
    version: fileName.version,
    build: fileName.build,
    status: 'failed',
  };
  const checks = new CheckList();
  let stagedPlaces: Place[];
  try {
    stagedPlaces = places(options.naming, run.channel, request.subdir, fileName);
  } catch (err) {
    checks.fail('names', describeError(err));
    return finishResult(result, checks, context, request);
  }
  const [main, ...copies] = stagedPlaces as [Place, ...Place[]];
  const repository = run.staging.repository(main.repository);
  Object.assign(result, { repository: main.repository, tag: main.tag, reference: main.reference });
  if (copies.length) result.v0Reference = copies[0]!.reference;

  // 1. The manifest is where SPEC §3 puts it and has the shape of SPEC §4.
  let staged: { descriptor: Descriptor; bytes: Uint8Array } | undefined;
  let info: PackageManifestInfo | undefined;
  try {
    staged = await repository.fetchManifest(main.tag);
    info = readPackageManifest(staged.bytes, main.reference);
    checks.pass('manifest', `${main.reference} is a conda package artifact (${staged.descriptor.digest})`);
  } catch (err) {
    checks.fail(
      'manifest',
      err instanceof NotFoundError ? `nothing is staged at ${main.reference}` : describeError(err),
    );
  }
  let pkg: PackageContents | undefined;
  if (staged && info) {
    result.digest = staged.descriptor.digest;
    pkg = await checkContent(request, info, repository, checks);
    if (pkg) {
      result.sha256 = pkg.sha256;
      result.md5 = pkg.md5;
      result.size = pkg.size;
    }
    for (const where of copies)
      await checkCopy(run.staging, where, fileName, staged.descriptor.digest, checks);
    if (options.owners && options.feedstock) {
      const owner = checkOwner(options.owners, ownershipName(fileName.name), options.feedstock);
      checks.expect('owner', owner.ok, owner.detail, owner.detail);
    }
    if (run.production) {
      const [publishedMain, ...publishedCopies] = places(
        options.naming,
        run.production.channel,
        request.subdir,
        fileName,
      ) as [Place, ...Place[]];
      await checkProduction(run.production.store, publishedMain, info.packageLayer.digest, checks);
      for (const where of publishedCopies)
        await checkCopyInProduction(run.production.store, where, fileName, staged.descriptor.digest, checks);
    }
  }

  if (staged)
    await recordOutcome(repository, staged.descriptor, request, result, checks, pkg, options, context);
  if (!checks.passed && options.deleteFailed && staged) {
    await deleteStaged(repository, staged.descriptor.digest);
    // Its further names go too, where they hold this very manifest (never another package's).
    for (const where of copies) await deleteIfHolds(run.staging, where, staged.descriptor.digest);
    context.reporter.info(`${request.file}: deleted from staging after failing validation`);
  }
  return finishResult(result, checks, context, request);
}

function finishResult(
  result: ArtifactResult,
  checks: CheckList,
  context: CommandContext,
  request: RequestedArtifact,
): ArtifactResult {
  result.checks = checks.checks;
  result.status = checks.passed ? 'passed' : 'failed';
  if (!checks.passed) result.error = checks.firstFailure();
  context.reporter[checks.passed ? 'info' : 'warn'](
    `${request.file}: ${checks.passed ? 'passed' : `FAILED (${result.error})`}`,
  );
  return result;
}

/** Checks 2-8: the package layer, its bytes, and the layers derived from it. */
async function checkContent(
  request: RequestedArtifact,
  info: PackageManifestInfo,
  repository: Repository,
  checks: CheckList,
): Promise<PackageContents | undefined> {
  const file = parseArtifactFileName(request.file);
  const identityOk =
    info.name === file.name &&
    info.version === file.version &&
    info.build === file.build &&
    info.format === file.ext &&
    info.fileName === request.file;
  checks.expect(
    'identity',
    identityOk,
    'annotations and layer title agree with the file name',
    `the manifest describes ${info.fileName} (${info.name} ${info.version} ${info.build}, .${info.format}), not ${request.file}`,
  );
  const claimed = `sha256:${request.sha256}`;
  if (
    !checks.expect(
      'claimed-sha256',
      info.packageLayer.digest === claimed,
      `package layer digest is the claimed ${claimed}`,
      `package layer digest is ${info.packageLayer.digest}, the feedstock claimed ${claimed}`,
    )
  ) {
    return undefined;
  }

  let pkg: PackageContents;
  let blob: AsyncIterator<Uint8Array> | undefined;
  try {
    blob = (await repository.openBlob(info.packageLayer))[Symbol.asyncIterator]();
    // The reader stops at the first problem, before the digest of the whole blob is known; it
    // must not close the download, so that the rest can be checked (see below).
    const shielded: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: () => ({ next: () => blob!.next() }),
    };
    // openBlob verifies size and digest (the claimed one, checked above) as the bytes arrive and
    // fails at the end unless they match: the reader need not hash them again.
    pkg = await readPackage(shielded, request.file, DEFAULT_LIMITS, {
      verifiedSha256: digestHex(info.packageLayer.digest),
    });
  } catch (err) {
    // Bytes altered on the way would otherwise be blamed on the package: read the same download
    // to its end, where the digest is checked.
    const altered =
      err instanceof PackageError && blob ? await digestProblem(blob, info.packageLayer) : undefined;
    checks.fail('package-bytes', altered ?? describeError(err));
    return undefined;
  } finally {
    await blob?.return?.().catch(() => undefined);
  }
  const bytesOk = `sha256:${pkg.sha256}` === claimed && pkg.size === info.packageLayer.size;
  if (
    !checks.expect(
      'package-bytes',
      bytesOk,
      `downloaded ${pkg.size} bytes hash to ${claimed}`,
      `downloaded bytes hash to sha256:${pkg.sha256} (${pkg.size} bytes)`,
    )
  ) {
    return undefined;
  }
  const index = pkg.index;
  const indexOk =
    index.name === file.name &&
    index.version === file.version &&
    index.build === file.build &&
    index.subdir === request.subdir;
  checks.expect(
    'package-index',
    indexOk,
    `info/index.json names ${index.name} ${index.version} ${index.build} in ${index.subdir}`,
    `info/index.json names ${index.name} ${index.version} ${index.build} in ${String(index.subdir)}, the request ${file.name} ${file.version} ${file.build} in ${request.subdir}`,
  );
  const indexDigest = digestOf(pkg.indexJson);
  checks.expect(
    'index-layer',
    info.indexLayer.digest === indexDigest,
    "index.json layer equals the package's info/index.json",
    `index.json layer ${info.indexLayer.digest} differs from the package's (${indexDigest})`,
  );
  checks.expect(
    'md5',
    info.md5 === pkg.md5,
    `md5 annotation is ${pkg.md5}`,
    `md5 annotation is ${info.md5 ?? 'missing'}, the package's md5 is ${pkg.md5}`,
  );
  try {
    const same =
      info.infoLayer.digest === digestOf(pkg.infoTarGz) ||
      (await sameInfoTarball(await repository.readBlob(info.infoLayer, INFO_LAYER_LIMIT), pkg.infoTarGz));
    checks.expect(
      'info-layer',
      same === true,
      "info layer holds the package's info/ folder, file by file",
      typeof same === 'string' ? same : "info layer differs from the package's info/ folder",
    );
  } catch (err) {
    checks.fail('info-layer', describeError(err));
  }
  return pkg;
}

/** Why the rest of a verified download does not match its descriptor, or undefined. */
async function digestProblem(
  rest: AsyncIterator<Uint8Array>,
  layer: Descriptor,
): Promise<string | undefined> {
  try {
    while (!(await rest.next()).done);
    return undefined;
  } catch (err) {
    return err instanceof DigestMismatchError || err instanceof SizeLimitError
      ? `the registry served other bytes than ${layer.digest}: ${describeError(err)}`
      : undefined;
  }
}

/** Production must not hold different content under the same name and tag. */
async function checkProduction(
  store: Store,
  where: Place,
  packageDigest: string,
  checks: CheckList,
): Promise<void> {
  try {
    const repository = store.repository(where.repository);
    const existing = await repository.resolve(where.tag);
    if (!existing) {
      checks.pass('production', `${where.reference} is free`);
      return;
    }
    const published = readPackageManifest(
      (await repository.fetchManifest(existing.digest)).bytes,
      where.reference,
    );
    checks.expect(
      'production',
      published.packageLayer.digest === packageDigest,
      `${where.reference} already holds this exact package (already published)`,
      `${where.reference} already holds a different package (${published.packageLayer.digest}); published artifacts are immutable, bump the build number`,
    );
  } catch (err) {
    checks.fail('production', describeError(err));
  }
}

/** A further name in staging (layout both: the v0 name) holds the very manifest of the v1 name. */
async function checkCopy(
  store: Store,
  where: Place,
  identity: PackageIdentity,
  digest: string,
  checks: CheckList,
): Promise<void> {
  const name = `${where.scheme}-name`;
  try {
    const state = await inspectPlace(store, where, identity, digest);
    checks.expect(
      name,
      state.kind === 'same',
      `${where.reference} holds the same manifest (${digest})`,
      state.kind === 'free'
        ? `nothing is staged at the ${where.scheme} name ${where.reference} (upload with layout both)`
        : state.kind === 'other-package'
          ? conflictError(where, identity, state).message
          : `${where.reference} holds ${state.kind === 'same' ? digest : state.digest}, not the staged ${digest}`,
    );
  } catch (err) {
    checks.fail(name, describeError(err));
  }
}

/** A further name in production is free or holds this very manifest. */
async function checkCopyInProduction(
  store: Store,
  where: Place,
  identity: PackageIdentity,
  digest: string,
  checks: CheckList,
): Promise<void> {
  const name = `production-${where.scheme}`;
  try {
    const state = await inspectPlace(store, where, identity, digest);
    const ok = state.kind === 'free' || state.kind === 'same';
    checks.expect(
      name,
      ok,
      state.kind === 'same' ? `${where.reference} already holds this manifest` : `${where.reference} is free`,
      ok ? '' : conflictError(where, identity, state).message,
    );
  } catch (err) {
    checks.fail(name, describeError(err));
  }
}

async function recordOutcome(
  repository: Repository,
  subject: Descriptor,
  request: RequestedArtifact,
  result: ArtifactResult,
  checks: CheckList,
  pkg: PackageContents | undefined,
  options: ValidateOptions,
  context: CommandContext,
): Promise<void> {
  const validatedAt = context.now().toISOString();
  const record: ValidationRecord = {
    schema: 1,
    passed: checks.passed,
    subject: { repository: repository.name, tag: result.tag!, digest: subject.digest },
    artifact: {
      subdir: request.subdir,
      file: request.file,
      name: result.name!,
      version: result.version!,
      build: result.build!,
    },
    claimed: { sha256: request.sha256 },
    measured: pkg ? { sha256: pkg.sha256, md5: pkg.md5, size: pkg.size } : {},
    checks: checks.checks,
    requester: requesterOf(options, context),
    validatedAt,
    tool: context.tool,
  };
  const artifact = buildRecord(
    ARTIFACT_TYPE_VALIDATION,
    record,
    subject,
    validatedAt,
    { [ANNOTATION_VALIDATION_RESULT]: checks.passed ? 'passed' : 'failed' },
    options.recordKey,
  );
  await pushArtifact(repository, artifact, { subject, fresh: true });
}

/** Who asked, as the record keeps it. */
function requesterOf(options: ValidateOptions, context: CommandContext): Requester {
  const payload = context.sources.payload;
  const run = typeof payload?.run === 'string' ? payload.run : runUrl(context.sources.env);
  return {
    ...options.requester,
    ...(run && !options.requester?.run ? { run } : {}),
    ...(typeof payload?.repository === 'string' && !options.requester?.repository
      ? { repository: payload.repository }
      : {}),
    ...(options.feedstock ? { feedstock: options.feedstock } : {}),
  };
}
