/**
 * `validate`: the webservices side (SPEC §6.2). Proves that what staging holds for each requested
 * artifact is exactly what the feedstock built and may publish, and records the outcome as a
 * referrer of the staged manifest. The registry is not trusted: the package bytes are downloaded,
 * hashed and opened again.
 */
import { readPackageManifest, type PackageManifestInfo } from '../conda/artifact.js';
import { sameInfoTarball } from '../conda/info-compare.js';
import { packageReference, parseArtifactFileName, type PackageIdentity } from '../conda/naming.js';
import { DEFAULT_LIMITS, PackageError, readPackage, type PackageContents } from '../conda/package-reader.js';
import {
  ANNOTATION_VALIDATION_RESULT,
  ARTIFACT_TYPE_VALIDATION,
  buildRecord,
  type ValidationRecord,
} from '../conda/records.js';
import { mapLimit } from '../util/map-limit.js';
import { digestHex, digestOf, type Digest } from '../oci/digest.js';
import { DigestMismatchError, NotFoundError, SizeLimitError } from '../oci/errors.js';
import { describeError } from '../util/describe-error.js';
import type { Descriptor } from '../oci/manifest.js';
import { pushArtifact } from '../oci/push.js';
import { deleteReferrers, listReferrers } from '../oci/referrers.js';
import { channelRepository, channelUrl, formatReference, type Channel } from '../conda/channel.js';
import type { Repository, Store } from '../oci/storage.js';
import type { RequestedArtifact } from './artifact-list.js';
import { checkOwner, type OwnersMap } from './owners.js';
import { finish, type ArtifactResult, type Check, type CommandResult, type Reporter } from './report.js';
import { conflictError, deleteV0, inspectV0, v0Name, type Layout } from './v0-compat.js';

/** The info layer is read whole only when its digest differs (another tool's tarball). */
const INFO_LAYER_LIMIT = 256 * 1024 * 1024;

export interface Requester {
  feedstock?: string;
  /** The workflow run that asked, e.g. `https://github.com/org/repo/actions/runs/1`. */
  run?: string;
  repository?: string;
}

export interface ValidateOptions {
  channel: Channel;
  artifacts: RequestedArtifact[];
  owners?: OwnersMap;
  feedstock?: string;
  production?: Channel;
  deleteFailed?: boolean;
  requester?: Requester;
  /** Signs records so promote can tell them from records anyone with staging access could write. */
  recordKey?: string;
  concurrency?: number;
  /** `both`: the v0 name is part of the artifact (see v0-compat.ts). */
  layout?: Layout;
}

export interface ValidateContext {
  staging: Store;
  production?: Store;
  reporter: Reporter;
  now?: () => Date;
  tool?: string;
}

export async function validate(options: ValidateOptions, context: ValidateContext): Promise<CommandResult> {
  context.reporter.info(
    `Validating ${options.artifacts.length} artifact(s) in ${channelUrl(options.channel)}`,
  );
  const results = await mapLimit(options.artifacts, options.concurrency ?? 4, async (request) => {
    try {
      return await validateOne(request, options, context);
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
  const channels: Record<string, string> = { from: channelUrl(options.channel) };
  if (options.production) channels.production = channelUrl(options.production);
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

async function validateOne(
  request: RequestedArtifact,
  options: ValidateOptions,
  context: ValidateContext,
): Promise<ArtifactResult> {
  const fileName = parseArtifactFileName(request.file);
  const ref = packageReference(request.subdir, fileName.name, fileName.version, fileName.build);
  const repositoryName = channelRepository(options.channel, ref.repository);
  const repository = context.staging.repository(repositoryName);
  const reference = formatReference(options.channel, repositoryName, ref.tag);
  const result: ArtifactResult = {
    subdir: request.subdir,
    file: request.file,
    name: fileName.name,
    version: fileName.version,
    build: fileName.build,
    repository: repositoryName,
    tag: ref.tag,
    reference,
    status: 'failed',
  };
  const checks = new CheckList();

  // 1. The manifest is where SPEC §3 puts it and has the shape of SPEC §4.
  let staged: { descriptor: Descriptor; bytes: Uint8Array } | undefined;
  let info: PackageManifestInfo | undefined;
  try {
    staged = await repository.fetchManifest(ref.tag);
    info = readPackageManifest(staged.bytes, reference);
    checks.pass('manifest', `${reference} is a conda package artifact (${staged.descriptor.digest})`);
  } catch (err) {
    checks.fail(
      'manifest',
      err instanceof NotFoundError ? `nothing is staged at ${reference}` : describeError(err),
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
    if (options.layout === 'both') {
      const v0 = await checkV0(
        options.channel,
        context.staging,
        request.subdir,
        fileName,
        staged.descriptor.digest,
        checks,
      );
      if (v0) result.v0Reference = v0;
    }
    if (options.owners && options.feedstock) {
      const owner = checkOwner(options.owners, fileName.name, options.feedstock);
      checks.expect('owner', owner.ok, owner.detail, owner.detail);
    }
    if (options.production && context.production) {
      await checkProduction(options.production, context.production, ref, info.packageLayer.digest, checks);
      if (options.layout === 'both')
        await checkV0Production(
          options.production,
          context.production,
          request.subdir,
          fileName,
          staged.descriptor.digest,
          checks,
        );
    }
  }

  result.checks = checks.checks;
  result.status = checks.passed ? 'passed' : 'failed';
  if (!checks.passed) result.error = checks.firstFailure();
  if (staged)
    await recordOutcome(repository, staged.descriptor, request, result, checks, pkg, options, context);
  if (!checks.passed && options.deleteFailed && staged) {
    await deleteStaged(repository, staged.descriptor.digest);
    // Its v0 name goes too, where it holds this very manifest (never another package's).
    if (options.layout === 'both')
      await deleteV0(
        context.staging,
        v0Name(options.channel, request.subdir, fileName),
        staged.descriptor.digest,
      );
    context.reporter.info(`${request.file}: deleted from staging after failing validation`);
  }
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
  channel: Channel,
  store: Store,
  ref: { repository: string; tag: string },
  packageDigest: string,
  checks: CheckList,
): Promise<void> {
  const repositoryName = channelRepository(channel, ref.repository);
  const where = formatReference(channel, repositoryName, ref.tag);
  try {
    const repository = store.repository(repositoryName);
    const existing = await repository.resolve(ref.tag);
    if (!existing) {
      checks.pass('production', `${where} is free`);
      return;
    }
    const published = readPackageManifest((await repository.fetchManifest(existing.digest)).bytes, where);
    checks.expect(
      'production',
      published.packageLayer.digest === packageDigest,
      `${where} already holds this exact package (already published)`,
      `${where} already holds a different package (${published.packageLayer.digest}); published artifacts are immutable, bump the build number`,
    );
  } catch (err) {
    checks.fail('production', describeError(err));
  }
}

/** Layout both: staging's v0 name holds the very manifest of the v1 name. Returns the v0 reference. */
async function checkV0(
  channel: Channel,
  store: Store,
  subdir: string,
  identity: PackageIdentity,
  digest: string,
  checks: CheckList,
): Promise<string | undefined> {
  try {
    const name = v0Name(channel, subdir, identity);
    const state = await inspectV0(store, name, identity, digest);
    checks.expect(
      'v0-name',
      state.kind === 'same',
      `${name.reference} holds the same manifest (${digest})`,
      state.kind === 'free'
        ? `nothing is staged at the v0 name ${name.reference} (upload with layout both)`
        : state.kind === 'other-package'
          ? conflictError(name, identity, state).message
          : `${name.reference} holds ${state.digest}, not the staged ${digest}`,
    );
    return name.reference;
  } catch (err) {
    checks.fail('v0-name', describeError(err));
    return undefined;
  }
}

/** Layout both: production's v0 name is free or holds this very manifest. */
async function checkV0Production(
  channel: Channel,
  store: Store,
  subdir: string,
  identity: PackageIdentity,
  digest: string,
  checks: CheckList,
): Promise<void> {
  try {
    const name = v0Name(channel, subdir, identity);
    const state = await inspectV0(store, name, identity, digest);
    checks.expect(
      'production-v0',
      state.kind === 'free' || state.kind === 'same',
      state.kind === 'same' ? `${name.reference} already holds this manifest` : `${name.reference} is free`,
      state.kind === 'free' || state.kind === 'same' ? '' : conflictError(name, identity, state).message,
    );
  } catch (err) {
    checks.fail('production-v0', describeError(err));
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
  context: ValidateContext,
): Promise<void> {
  const validatedAt = (context.now?.() ?? new Date()).toISOString();
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
    requester: { ...options.requester, ...(options.feedstock ? { feedstock: options.feedstock } : {}) },
    validatedAt,
    tool: context.tool ?? 'conda-oci',
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

/** Removes a staged artifact and every record about it. */
export async function deleteStaged(repository: Repository, digest: Digest): Promise<void> {
  const referrers = await listReferrers(repository, digest);
  await deleteReferrers(repository, digest, referrers);
  await repository.deleteManifest(digest);
}
