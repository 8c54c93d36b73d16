/**
 * `upload`: the feedstock side (SPEC §6.1). Reads each built artifact, checks it, and pushes it to
 * the staging channel in the CEP v1 layout. Blobs and manifests already there are not sent again;
 * one bad artifact does not stop the others.
 */
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { glob, isDynamicPattern } from 'tinyglobby';
import {
  buildPackageArtifact,
  MEDIA_TYPE_CONDA_PACKAGE_V2,
  readPackageManifest,
  type ProvenanceOptions,
} from '../conda/artifact.js';
import { packageReference, parseArtifactFileName, type ArtifactFileName } from '../conda/naming.js';
import { localHasher, ThreadHasher, type PackageHasher } from '../conda/package-hashes.js';
import { PackageError, readPackage, readPackageFile, type PackageContents } from '../conda/package-reader.js';
import { ARTIFACT_TYPE_UPLOAD_RECEIPT, buildRecord, type UploadReceipt } from '../conda/records.js';
import { mapLimit } from '../util/map-limit.js';
import type { Digest } from '../oci/digest.js';
import { InvalidReferenceError } from '../oci/errors.js';
import { describeError } from '../util/describe-error.js';
import type { Artifact } from '../oci/artifact.js';
import { pushArtifact, pushBlobs } from '../oci/push.js';
import { listReferrers } from '../oci/referrers.js';
import { channelRepository, channelUrl, formatReference, isSubdir, type Channel } from '../conda/channel.js';
import { fileSource, type Repository, type Store } from '../oci/storage.js';
import { finish, type ArtifactResult, type CommandResult, type Reporter } from './report.js';
import { formatBytes } from '../util/format-bytes.js';
import { FilePieces } from './file-pieces.js';
import { stageV0, type Layout } from './v0-compat.js';

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
  /** `both`: also put each artifact under its v0 name (see v0-compat.ts). Default v1. */
  layout?: Layout;
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
      const result = await uploadOne(path, options, context);
      return options.layout === 'both'
        ? await stageV0(result, options.channel, context.store, context.reporter)
        : result;
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
  const streamed = await readWhileUploading(path, parseArtifactFileName(file), options, context);
  const pkg = streamed?.pkg ?? (await readPackageFile(path));
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

  const existing = streamed ? streamed.existing : await repository.resolve(ref.tag);
  if (existing?.digest === artifact.descriptor.digest) {
    // A run cut off after the manifest and before the receipt left no receipt: write it now.
    if ((await listReferrers(repository, existing.digest, ARTIFACT_TYPE_UPLOAD_RECEIPT)).length === 0) {
      const receipt = uploadReceipt(
        artifact.descriptor,
        { file, subdir, sha256: pkg.sha256 },
        options,
        context,
      );
      await pushArtifact(repository, receipt, { subject: artifact.descriptor, fresh: true });
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

  const receipt = uploadReceipt(artifact.descriptor, { file, subdir, sha256: pkg.sha256 }, options, context);
  let early = 0;
  if (streamed) {
    // The registry is still working through the package's last tens of MB (held in socket buffers
    // on their way): the small blobs of the artifact and of its receipt go meanwhile, so that
    // only the manifests are left once it is stored.
    const packageDigest = `sha256:${pkg.sha256}`;
    const others = artifact.blobs.filter((b) => b.descriptor.digest !== packageDigest);
    const small = pushBlobs(repository, { blobs: others }, { fresh: true })
      .then(async (pushed) => {
        await pushBlobs(repository, receipt, { fresh: true }); // after: both share the empty config
        return { pushed };
      })
      .catch((error: unknown) => ({ error }));
    early = await streamed.uploaded; // its failure is no error: pushArtifact sends the package
    const outcome = await small;
    if ('error' in outcome) throw outcome.error;
    early += outcome.pushed.reduce((sum, b) => sum + b.bytesSent, 0);
  }
  const large = pkg.size >= 8 * 1024 * 1024;
  const outcome = await pushArtifact(repository, artifact, {
    tag: ref.tag,
    fresh: existing === undefined,
    ...(large && context.reporter.progress
      ? {
          onProgress: (blob, sent) =>
            blob.size === pkg.size && context.reporter.progress!(file, sent, pkg.size),
        }
      : {}),
  });
  await pushArtifact(repository, receipt, { subject: artifact.descriptor, fresh: true });
  const bytesSent = outcome.bytesSent + early;
  context.reporter.info(
    `${file}: ${existing ? 'replaced' : 'staged'} ${result.reference} (${formatBytes(bytesSent)} sent)`,
  );
  return { ...result, bytesSent };
}

/** Packages at least this large are sent while they are read (see readWhileUploading). */
export const STREAMED_UPLOAD_MIN = 16 * 1024 * 1024;

/**
 * A large package that is not staged yet, whose repository is known before it is read, is read
 * once: each piece of the file goes to the registry (one PATCH) and through the package reader
 * (hashes, checks), and the upload is closed with the digest once the reader has it. Hashing and
 * checking 500 MB take ~2 s of CPU: done before the upload, as for other packages, they added
 * ~40% to its time. The file goes through a ring of reused buffers (file-pieces.ts) and the hashes
 * are computed on another thread (ThreadHasher), so that memory stays flat and hashing overlaps
 * the sending (bench/README.md, "Large uploads"). The repository needs the subdir, which
 * index.json names at the end of the file: this path is taken when the file's directory names it
 * (conda-build and rattler-build write `<subdir>/<file>`; an index.json that names another subdir
 * is refused anyway).
 *
 * Nothing is stored unless the package reads without a problem (else the session is cancelled and
 * the ordinary path reads the file again and reports the problem as it always does). If the
 * registry refuses the stream, the package as read is uploaded the ordinary way.
 *
 * Returns undefined where this does not apply; else, once the package is read, the package, the
 * tag's current descriptor (undefined: a tag already there takes the ordinary path) and the
 * bytes the upload sent, once it is done (0 if it failed, and the ordinary path sends them).
 */
async function readWhileUploading(
  path: string,
  name: ArtifactFileName,
  options: UploadOptions,
  context: UploadContext,
): Promise<{ pkg: PackageContents; existing: undefined; uploaded: Promise<number> } | undefined> {
  const subdir = subdirHint(path);
  if (subdir === undefined) return undefined;
  const size = await stat(path).then(
    (s) => s.size,
    () => 0, // the ordinary path reports the file's problem
  );
  if (size < STREAMED_UPLOAD_MIN) return undefined;
  const ref = packageReference(subdir, name.name, name.version, name.build);
  const repository: Repository = context.store.repository(channelRepository(options.channel, ref.repository));
  if (!repository.pushBlobStream || (await repository.resolve(ref.tag))) return undefined;

  const file = basename(path);
  const reporter = context.reporter;
  const pieces = await FilePieces.open(path, size, {
    ...(reporter.progress ? { onRead: (n: number) => reporter.progress?.(file, n, size) } : {}),
  }).catch(() => undefined); // the ordinary path reports the file's problem
  if (!pieces) return undefined;
  // Hashed on another thread, so that hashing (most of the CPU) and sending overlap.
  const hasher = startHasher();
  let settle!: { resolve: (digest: Digest) => void; reject: (err: unknown) => void };
  const digest = new Promise<Digest>((resolve, reject) => (settle = { resolve, reject }));
  digest.catch(() => undefined); // the upload sees the rejection
  const upload = repository
    .pushBlobStream({ size, ...pieces.upload, digest })
    .catch((err: unknown) => ({ failed: err }));
  let pkg: PackageContents;
  try {
    pkg = await readPackage(pieces.forReader(), file, undefined, { hasher });
  } catch (err) {
    settle.reject(err); // the upload's stream has failed too, if it was not complete
    await upload;
    return undefined;
  } finally {
    void hasher.close?.();
    await pieces.close();
  }
  if (pkg.index.subdir !== subdir || pkg.size !== size) {
    settle.reject(new PackageError(file, 'not the package its directory and size announced'));
    await upload;
    return { pkg, existing: undefined, uploaded: Promise.resolve(0) }; // checkedSubdir says what is wrong
  }
  settle.resolve(`sha256:${pkg.sha256}`);
  // Not awaited here: the registry has yet to work through what the socket buffers hold.
  const uploaded = upload.then((outcome) => {
    if (!('failed' in outcome)) return outcome.bytesSent;
    context.reporter.info(
      `${file}: the registry did not take it streamed (${describeError(outcome.failed)}); sending it again`,
    );
    return 0;
  });
  return { pkg, existing: undefined, uploaded };
}

/** A ThreadHasher, or (where no worker thread can start) hashing on this thread. */
function startHasher(): PackageHasher & { close?: () => Promise<void> } {
  try {
    return new ThreadHasher();
  } catch {
    return localHasher();
  }
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

/** The upload receipt of a package manifest (SPEC §6.1), to push as its referrer. */
function uploadReceipt(
  subject: Parameters<typeof buildRecord>[2],
  what: { file: string; subdir: string; sha256: string },
  options: UploadOptions,
  context: UploadContext,
): Artifact {
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
  return buildRecord(ARTIFACT_TYPE_UPLOAD_RECEIPT, receipt, subject, uploadedAt);
}
