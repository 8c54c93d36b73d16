/**
 * `upload`: the feedstock side (SPEC §6.1). Reads each built artifact, checks it, and pushes it to
 * the staging channel in the CEP v1 layout. Blobs and manifests already there are not sent again;
 * one bad artifact does not stop the others.
 */
import { basename, dirname } from 'node:path';
import { glob, isDynamicPattern } from 'tinyglobby';
import {
  buildPackageArtifact,
  MEDIA_TYPE_CONDA_PACKAGE_V2,
  readPackageManifest,
  type ProvenanceOptions,
} from '../conda/artifact.js';
import { packageReference, parseArtifactFileName } from '../conda/naming.js';
import { readPackageFile, type PackageContents } from '../conda/package-reader.js';
import { ARTIFACT_TYPE_UPLOAD_RECEIPT, buildRecord, type UploadReceipt } from '../conda/records.js';
import { mapLimit } from '../oci/copy.js';
import { describeError, InvalidReferenceError } from '../oci/errors.js';
import { pushArtifact } from '../oci/push.js';
import { listReferrers } from '../oci/referrers.js';
import { channelRepository, channelUrl, formatReference, isSubdir, type Channel } from '../oci/reference.js';
import { fileSource, type Store } from '../oci/storage.js';
import { finish, formatBytes, type ArtifactResult, type CommandResult, type Reporter } from './report.js';

export interface UploadOptions {
  /** Paths or glob patterns. */
  files: string[];
  channel: Channel;
  provenance?: ProvenanceOptions;
  /** The CI run, recorded in the upload receipt. */
  run?: string;
  /** Artifacts uploaded at once. */
  concurrency?: number;
  /** Base directory for relative paths and patterns. */
  cwd?: string;
}

export interface UploadContext {
  store: Store;
  reporter: Reporter;
  now?: () => Date;
  tool?: string;
}

/** Expands patterns; a literal path is kept even if missing (its failure is reported per file). */
export async function expandFiles(patterns: string[], cwd = process.cwd()): Promise<string[]> {
  const files: string[] = [];
  for (const pattern of patterns) {
    if (isDynamicPattern(pattern)) {
      const matched = await glob(pattern, { cwd, absolute: true, onlyFiles: true, expandDirectories: false });
      if (matched.length === 0) throw new InvalidReferenceError(`no file matches "${pattern}" (in ${cwd})`);
      files.push(...matched.sort());
    } else {
      files.push(pattern.startsWith('/') ? pattern : `${cwd}/${pattern}`);
    }
  }
  if (files.length === 0) throw new InvalidReferenceError('no files to upload');
  return [...new Set(files)];
}

/**
 * SPEC §4: when a package is there as both .conda and .tar.bz2, the .conda is stored. Returns
 * the .tar.bz2 files to skip, keyed by path.
 */
function tarBz2Shadowed(files: string[]): Set<string> {
  const condas = new Set<string>();
  for (const file of files)
    if (file.endsWith('.conda')) condas.add(`${dirname(file)}/${basename(file, '.conda')}`);
  return new Set(
    files.filter((f) => f.endsWith('.tar.bz2') && condas.has(`${dirname(f)}/${basename(f, '.tar.bz2')}`)),
  );
}

export async function upload(options: UploadOptions, context: UploadContext): Promise<CommandResult> {
  const files = await expandFiles(options.files, options.cwd);
  const shadowed = tarBz2Shadowed(files);
  context.reporter.info(`Uploading ${files.length} artifact(s) to ${channelUrl(options.channel)}`);
  const results = await mapLimit(files, options.concurrency ?? 4, async (path) => {
    if (shadowed.has(path)) {
      return {
        subdir: subdirHint(path) ?? '',
        file: basename(path),
        status: 'skipped',
        error: 'the .conda of the same package is uploaded instead',
      } satisfies ArtifactResult;
    }
    try {
      return await uploadOne(path, options, context);
    } catch (err) {
      const result: ArtifactResult = {
        subdir: subdirHint(path) ?? '',
        file: basename(path),
        status: 'failed',
        error: describeError(err),
      };
      context.reporter.warn(`${basename(path)}: ${result.error}`);
      return result;
    }
  });
  const bytesSent = results.reduce((sum, r) => sum + (r.bytesSent ?? 0), 0);
  return finish('upload', { to: channelUrl(options.channel) }, results, { bytesSent });
}

/** The subdir a conventional build layout implies (`build_artifacts/linux-64/x.conda`). */
function subdirHint(path: string): string | undefined {
  const parent = basename(dirname(path));
  return isSubdir(parent) ? parent : undefined;
}

async function uploadOne(
  path: string,
  options: UploadOptions,
  context: UploadContext,
): Promise<ArtifactResult> {
  const file = basename(path);
  parseArtifactFileName(file);
  const pkg = await readPackageFile(path);
  const subdir = checkedSubdir(pkg, path);
  const ref = packageReference(subdir, pkg.index.name, pkg.index.version, pkg.index.build);
  const repositoryName = channelRepository(options.channel, ref.repository);
  const repository = context.store.repository(repositoryName);
  const artifact = buildPackageArtifact(pkg, fileSource(path, pkg.size), options.provenance);
  const result: ArtifactResult = {
    subdir,
    file,
    name: pkg.index.name,
    version: pkg.index.version,
    build: pkg.index.build,
    sha256: pkg.sha256,
    md5: pkg.md5,
    size: pkg.size,
    repository: repositoryName,
    tag: ref.tag,
    digest: artifact.descriptor.digest,
    reference: formatReference(options.channel, repositoryName, ref.tag),
    status: 'uploaded',
    bytesSent: 0,
  };

  const existing = await repository.resolve(ref.tag);
  if (existing?.digest === artifact.descriptor.digest) {
    // A run cut off after the manifest and before the receipt left no receipt: write it now.
    if ((await listReferrers(repository, existing.digest, ARTIFACT_TYPE_UPLOAD_RECEIPT)).length === 0) {
      await pushReceipt(
        repository,
        artifact.descriptor,
        { file, subdir, sha256: pkg.sha256 },
        options,
        context,
      );
    }
    context.reporter.info(`${file}: already staged as ${result.reference}`);
    return { ...result, status: 'exists' };
  }
  if (existing && pkg.format === 'tar.bz2') {
    const current = await repository.fetchManifest(existing.digest);
    if (
      readPackageManifest(current.bytes, result.reference!).packageLayer.mediaType ===
      MEDIA_TYPE_CONDA_PACKAGE_V2
    ) {
      return {
        ...result,
        status: 'skipped',
        error: `${result.reference} already holds the .conda of this package, which is kept`,
      };
    }
  }

  const large = pkg.size >= 8 * 1024 * 1024;
  const outcome = await pushArtifact(repository, artifact, {
    tag: ref.tag,
    ...(large && context.reporter.progress
      ? {
          onProgress: (blob, sent) =>
            blob.size === pkg.size && context.reporter.progress!(file, sent, pkg.size),
        }
      : {}),
  });
  await pushReceipt(repository, artifact.descriptor, { file, subdir, sha256: pkg.sha256 }, options, context);
  context.reporter.info(
    `${file}: ${existing ? 'replaced' : 'staged'} ${result.reference} (${formatBytes(outcome.bytesSent)} sent)`,
  );
  return { ...result, bytesSent: outcome.bytesSent };
}

function checkedSubdir(pkg: PackageContents, path: string): string {
  const subdir = pkg.index.subdir;
  if (typeof subdir !== 'string' || !isSubdir(subdir)) {
    throw new InvalidReferenceError(
      `${basename(path)}: info/index.json has no valid "subdir" (${JSON.stringify(subdir)})`,
    );
  }
  const hint = subdirHint(path);
  if (hint !== undefined && hint !== subdir) {
    throw new InvalidReferenceError(
      `${basename(path)}: lies in a "${hint}" directory but info/index.json says subdir "${subdir}"`,
    );
  }
  return subdir;
}

async function pushReceipt(
  repository: ReturnType<Store['repository']>,
  subject: Parameters<typeof buildRecord>[2],
  what: { file: string; subdir: string; sha256: string },
  options: UploadOptions,
  context: UploadContext,
): Promise<void> {
  const uploadedAt = (context.now?.() ?? new Date()).toISOString();
  const receipt: UploadReceipt = {
    schema: 1,
    ...what,
    uploadedAt,
    ...(options.provenance?.source ? { source: options.provenance.source } : {}),
    ...(options.provenance?.revision ? { revision: options.provenance.revision } : {}),
    ...(options.run ? { run: options.run } : {}),
    tool: context.tool ?? 'conda-oci',
  };
  const record = buildRecord(ARTIFACT_TYPE_UPLOAD_RECEIPT, receipt, subject, uploadedAt);
  await pushArtifact(repository, record, { subject });
}
