/**
 * `upload`: the feedstock side (SPEC §6.1). Reads each built artifact, checks it, and pushes it to
 * the staging channel in the CEP v1 layout. Blobs and manifests already there are not sent again;
 * one bad artifact does not stop the others.
 */
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { glob, isDynamicPattern } from 'tinyglobby';
import { buildPackageArtifact, MEDIA_TYPE_CONDA_PACKAGE_V2, readPackageManifest } from '../conda/artifact.js';
import { channelRepository, channelUrl, isSubdir, KNOWN_SUBDIRS, type Channel } from '../conda/channel.js';
import { packageReference, parseArtifactFileName, type ArtifactFileName } from '../conda/naming.js';
import { localHasher, ThreadHasher, type PackageHasher } from '../conda/package-hashes.js';
import { PackageError, readPackage, readPackageFile, type PackageContents } from '../conda/package-reader.js';
import { ARTIFACT_TYPE_UPLOAD_RECEIPT, buildRecord, type UploadReceipt } from '../conda/records.js';
import { defineCommand, type CommandContext } from '../core/command.js';
import {
  concurrencyOption,
  GITHUB_TOKEN_OPTION,
  LABEL_OPTION,
  NAMING_OPTION,
  REGISTRY_OPTIONS,
  RESULT_OPTIONS,
} from '../core/common-options.js';
import { flag, list, oneOf, text, type OptionsOf } from '../core/options.js';
import { requestValidation, validationRequest } from '../github/dispatch.js';
import { runUrl } from '../github/run.js';
import { githubActionsIdToken } from '../identity/github-oidc.js';
import {
  attestationArtifact,
  githubSigstore,
  sigstoreForVisibility,
  signPublishAttestation,
  type SigstoreEndpoints,
} from '../identity/publish-attestation.js';
import type { SigstoreInstance } from '../identity/trust.js';
import type { Digest } from '../oci/digest.js';
import { InvalidReferenceError } from '../oci/errors.js';
import type { Artifact } from '../oci/artifact.js';
import type { Descriptor, ManifestBytes } from '../oci/manifest.js';
import { pushArtifact, pushBlobs } from '../oci/push.js';
import { listReferrers } from '../oci/referrers.js';
import { fileSource, type Repository, type Store } from '../oci/storage.js';
import { UsageError } from '../usage.js';
import { describeError } from '../util/describe-error.js';
import { formatBytes } from '../util/format-bytes.js';
import { mapLimit } from '../util/map-limit.js';
import { FilePieces } from './file-pieces.js';
import {
  conflictError,
  inspectPlace,
  manifestAt,
  places,
  writeCopy,
  type Place,
  type PlaceState,
} from './locations.js';
import { finish, type ArtifactResult, type CommandResult } from './report.js';
import { publicationChannel } from './requester.js';
import { deleteStaged } from './staged.js';

const UPLOAD_OPTIONS = {
  files: list('files', {
    help: 'Artifact paths or globs (CLI: positional arguments; action: separated by spaces or new lines).',
    placeholder: '<file|glob>...',
    example: 'build_artifacts/**/*.conda',
    positional: true,
    required: true,
  }),
  to: text('to', {
    help: 'The destination channel: oci://<host>/<path>[/label/<label>] or oci-layout:<dir>.',
    placeholder: '<channel>',
    example: 'oci://ghcr.io/cf-staging/conda-forge',
    aliases: ['channel'],
    required: true,
  }),
  ...LABEL_OPTION,
  source: text('source', {
    help: 'org.opencontainers.image.source of the artifacts (on GHCR it links the package to that repository).',
    placeholder: '<url>',
    fallback: ({ env }) =>
      env.GITHUB_REPOSITORY
        ? `${env.GITHUB_SERVER_URL ?? 'https://github.com'}/${env.GITHUB_REPOSITORY}`
        : undefined,
    defaultText: 'in Actions, this repository',
  }),
  revision: text('revision', {
    help: 'org.opencontainers.image.revision: the commit the artifacts were built from.',
    placeholder: '<sha>',
    fallback: ({ env }) => env.GITHUB_SHA || undefined,
    defaultText: 'in Actions, the commit being built',
  }),
  run: text('run', {
    help: 'The CI run, recorded in the upload receipt.',
    placeholder: '<url>',
    fallback: ({ env }) => runUrl(env),
    defaultText: 'in Actions, this workflow run',
  }),
  attest: flag('attest', {
    help:
      "Sign a CEP 27 publish attestation of each artifact with the workflow's OIDC identity (Sigstore keyless; " +
      'the job needs permissions id-token: write) and attach it to the staged manifest. Validate learns the requester from it.',
  }),
  targetChannel: text('target-channel', {
    help: 'The production channel the attestations name (validate checks it against its own).',
    placeholder: '<channel>',
    example: 'oci://ghcr.io/conda-forge/conda-forge',
  }),
  sigstore: text<SigstoreInstance>('sigstore', {
    help: 'Where to sign: public-good (public repositories) or github (private ones).',
    placeholder: 'public-good|github',
    parse: oneOf(['public-good', 'github'] as const),
    fallback: ({ env }) =>
      repositoryVisibility(env) === undefined
        ? undefined
        : repositoryVisibility(env) === 'public'
          ? 'public-good'
          : 'github',
    default: 'public-good',
    defaultText: "by the repository's visibility, as actions/attest chooses; else public-good",
  }),
  feedstockToken: text('feedstock-token', {
    help: "With request-validation: the feedstock's conda-forge feedstock token, sent in the dispatch so the validating side can check who asks.",
    placeholder: '<token>',
    env: ['CONDA_OCI_FEEDSTOCK_TOKEN'],
    secret: true,
  }),
  requestValidation: text('request-validation', {
    help: 'Afterwards, send a repository_dispatch (conda-oci-validate) with the uploaded artifacts to this repository.',
    placeholder: '<owner>/<repo>',
    example: 'conda-forge/webservices',
  }),
  ...NAMING_OPTION,
  ...concurrencyOption('Artifacts uploaded', 4),
  ...REGISTRY_OPTIONS,
  ...GITHUB_TOKEN_OPTION,
  ...RESULT_OPTIONS,
};

export type UploadOptions = OptionsOf<typeof UPLOAD_OPTIONS> & {
  /** Base directory for relative paths and patterns (tests). */
  cwd?: string;
};

export const uploadCommand = defineCommand({
  name: 'upload',
  summary: 'push built .conda/.tar.bz2 artifacts to a (staging) channel',
  description:
    'Reads each artifact, checks it (name, index.json, archive members) and pushes it in the CEP v1 ' +
    'layout: the package file, its info/ folder and info/index.json as layers of one manifest. Blobs ' +
    'and manifests already there are not sent again; one bad artifact does not stop the others.',
  examples: [
    'conda-oci upload build_artifacts/**/*.conda --to oci://ghcr.io/cf-staging/conda-forge',
    'conda-oci upload pkgs/*.conda --to oci-layout:./staging --label rc --result result.json',
  ],
  options: UPLOAD_OPTIONS,
  run: async (options, context) => {
    const result = await upload(options, context);
    if (options.requestValidation) await askForValidation(result, options, context);
    return result;
  },
});

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

/** What one upload run works with: its channel and store, opened once. */
interface Target {
  channel: Channel;
  store: Store;
  options: UploadOptions;
  context: CommandContext;
}

export async function upload(options: UploadOptions, context: CommandContext): Promise<CommandResult> {
  if (options.attest && !options.targetChannel)
    throw new UsageError('attest needs target-channel: the production channel the attestations name');
  const files = await expandFiles(options.files, options.cwd);
  const shadowed = tarBz2Shadowed(files);
  const target: Target = { ...context.open(options.to, { mayBeNew: true }), options, context };
  context.reporter.info(`Uploading ${files.length} artifact(s) to ${channelUrl(target.channel)}`);
  const results = await mapLimit(files, options.concurrency, async (path) => {
    if (shadowed.has(path)) {
      return {
        subdir: subdirHint(path) ?? '',
        file: basename(path),
        status: 'skipped',
        error: 'the .conda of the same package is uploaded instead',
      } satisfies ArtifactResult;
    }
    try {
      return await uploadOne(path, target);
    } catch (err) {
      const result: ArtifactResult = {
        subdir: subdirHint(path) ?? '',
        file: basename(path),
        status: 'failed',
        error: describeError(err),
      };
      context.reporter.warn(`${basename(path)}: failed (the reason is in the summary)`);
      return result;
    }
  });
  const bytesSent = results.reduce((sum, r) => sum + (r.bytesSent ?? 0), 0);
  return finish('upload', { to: channelUrl(target.channel) }, results, { bytesSent });
}

/** Asks the validating side to look at what was staged (conda-forge's webservices request). */
async function askForValidation(
  result: CommandResult,
  options: UploadOptions,
  context: CommandContext,
): Promise<void> {
  if (!context.github) throw new UsageError('request-validation needs a GitHub token (github-token)');
  const channel = context.channel(options.to);
  const repository = context.sources.env.GITHUB_REPOSITORY;
  const request = validationRequest(result.artifacts, {
    staging: options.to,
    ...(channel.label ? { label: channel.label } : {}),
    ...(repository ? { repository, feedstock: repository.split('/')[1]!.replace(/-feedstock$/, '') } : {}),
    ...(options.revision ? { sha: options.revision } : {}),
    ...(options.run ? { run: options.run } : {}),
    ...(options.feedstockToken ? { feedstock_token: options.feedstockToken } : {}),
  });
  const count = Object.keys(request.outputs).length;
  // Nothing was staged: there is nothing to validate, and the failures are reported already.
  if (count === 0) {
    context.reporter.warn('No artifact was uploaded: validation not requested');
    return;
  }
  const sent = await requestValidation(context.github, options.requestValidation!, request);
  context.reporter.info(
    `Asked ${options.requestValidation} to validate ${count} artifact(s)${sent > 1 ? ` in ${sent} dispatches` : ''}`,
  );
}

/**
 * The subdir a conventional build layout implies (`build_artifacts/linux-64/x.conda`): only a
 * folder named after a subdir conda knows is a claim, not any folder that looks like one
 * (`release-files/`, `my-pkgs/`).
 */
function subdirHint(path: string): string | undefined {
  const parent = basename(dirname(path));
  return KNOWN_SUBDIRS.has(parent) ? parent : undefined;
}

async function uploadOne(path: string, target: Target): Promise<ArtifactResult> {
  const { channel, store, options, context } = target;
  const file = basename(path);
  // A missing file is missing, whatever its name says.
  await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new InvalidReferenceError(
      err.code === 'ENOENT' ? `no such file: ${path}` : `cannot read ${path}: ${err.message}`,
    );
  });
  const named = parseArtifactFileName(file);
  // A name the scheme cannot give this package stops it before anything is read or sent.
  options.naming.packageLocations(subdirHint(path) ?? 'noarch', named);
  const streamed = await readWhileUploading(path, named, target);
  const pkg = streamed?.pkg ?? (await readPackageFile(path));
  const subdir = checkedSubdir(pkg, path);
  const identity = { name: pkg.index.name, version: pkg.index.version, build: pkg.index.build };
  const [main, ...copies] = places(options.naming, channel, subdir, identity) as [Place, ...Place[]];
  const repository = store.repository(main.repository);
  const provenance = { source: options.source, revision: options.revision };
  const artifact = buildPackageArtifact(pkg, fileSource(path, pkg.size), provenance);
  const result: ArtifactResult = {
    subdir,
    file,
    ...identity,
    sha256: pkg.sha256,
    md5: pkg.md5,
    size: pkg.size,
    repository: main.repository,
    tag: main.tag,
    digest: artifact.descriptor.digest,
    reference: main.reference,
    ...(copies.length ? { v0Reference: copies[0]!.reference } : {}),
    status: 'uploaded',
    bytesSent: 0,
  };

  // Another package at a further place stops this one before anything is staged. Other bytes of
  // the same package are replaced there, as the v1 tag is: staging is a waiting room.
  const copyStates = await Promise.all(
    copies.map((where) => inspectPlace(store, where, identity, artifact.manifest)),
  );
  copyStates.forEach((state, i) => {
    if (state.kind === 'other-package') throw conflictError(copies[i]!, identity, state);
  });

  const existing = streamed ? streamed.existing : await repository.resolve(main.tag);
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
    const copied = await stageCopies(target, main, copies, copyStates, artifact.manifest, file);
    const attestation = await attest(target, repository, artifact.descriptor, file, pkg.sha256);
    context.reporter.info(`${file}: already staged as ${result.reference}`);
    return { ...result, status: 'exists', bytesSent: copied, ...attestation };
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
  const progress = context.reporter.progress?.bind(context.reporter);
  const outcome = await pushArtifact(repository, artifact, {
    tag: main.tag,
    fresh: existing === undefined,
    ...(large && progress
      ? { onProgress: (blob, sent) => blob.size === pkg.size && progress(file, sent, pkg.size) }
      : {}),
  });
  let copied: number;
  let attestation: { attestation?: string };
  try {
    await pushArtifact(repository, receipt, { subject: artifact.descriptor, fresh: true });
    copied = await stageCopies(target, main, copies, copyStates, artifact.manifest, file);
    attestation = await attest(target, repository, artifact.descriptor, file, pkg.sha256);
  } catch (err) {
    // All or nothing: the artifact is not left staged at some of its places only.
    await deleteStaged(repository, artifact.descriptor.digest).catch(() => undefined);
    throw err;
  }
  const bytesSent = outcome.bytesSent + early + copied;
  context.reporter.info(
    `${file}: ${existing ? 'replaced' : 'staged'} ${result.reference} (${formatBytes(bytesSent)} sent)`,
  );
  return { ...result, bytesSent, ...attestation };
}

/**
 * With `attest`: signs the CEP 27 publish attestation of the artifact (its file name and sha256,
 * for the target channel) with the job's OIDC identity, Sigstore keyless, and attaches the
 * bundle to the staged manifest as a referrer. Validate takes the requester from it.
 */
async function attest(
  target: Target,
  repository: Repository,
  subject: Descriptor,
  file: string,
  sha256: string,
): Promise<{ attestation?: string }> {
  const { options, context } = target;
  if (!options.attest) return {};
  const signing = context.signing ?? {};
  const bundle = await signPublishAttestation(
    { fileName: file, sha256, targetChannel: publicationChannel(context.channel(options.targetChannel!)) },
    {
      endpoints: signing.endpoints ?? sigstoreEndpoints(options.sigstore, context.sources.env),
      identity: signing.identity ?? githubActionsIdToken({ env: context.sources.env }),
    },
  );
  const referrer = attestationArtifact(bundle, subject);
  await pushArtifact(repository, referrer, { subject, fresh: true });
  context.reporter.info(`${file}: publish attestation signed and attached (${referrer.descriptor.digest})`);
  return { attestation: referrer.descriptor.digest };
}

/** Public-good Sigstore for a public repository, GitHub's instance otherwise, as @actions/attest chooses. */
function sigstoreEndpoints(instance: SigstoreInstance, env: NodeJS.ProcessEnv): SigstoreEndpoints {
  return instance === 'public-good' ? sigstoreForVisibility('public') : githubSigstore(env.GITHUB_SERVER_URL);
}

/** The visibility of the repository whose workflow runs, from the event GitHub wrote. */
function repositoryVisibility(env: NodeJS.ProcessEnv): string | undefined {
  if (!env.GITHUB_EVENT_PATH) return undefined;
  try {
    const event = JSON.parse(readFileSync(env.GITHUB_EVENT_PATH, 'utf8')) as {
      repository?: { visibility?: unknown };
    };
    return typeof event.repository?.visibility === 'string' ? event.repository.visibility : undefined;
  } catch {
    return undefined;
  }
}

/** Puts the staged manifest at its further places (v0 names), blobs mounted. Returns bytes sent. */
async function stageCopies(
  target: Target,
  main: Place,
  copies: Place[],
  states: PlaceState[],
  manifest: ManifestBytes,
  file: string,
): Promise<number> {
  let sent = 0;
  for (const [i, where] of copies.entries()) {
    if (states[i]!.kind === 'same') continue;
    sent += await writeCopy(target.store, main.repository, where, manifestAt(where, manifest));
    target.context.reporter.info(
      `${file}: also staged as ${where.reference} (${where.scheme} name, blobs mounted)`,
    );
  }
  return sent;
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
  target: Target,
): Promise<{ pkg: PackageContents; existing: undefined; uploaded: Promise<number> } | undefined> {
  const { context } = target;
  const subdir = subdirHint(path);
  if (subdir === undefined) return undefined;
  const size = await stat(path).then(
    (s) => s.size,
    () => 0, // the ordinary path reports the file's problem
  );
  if (size < STREAMED_UPLOAD_MIN) return undefined;
  const ref = packageReference(subdir, name.name, name.version, name.build);
  const repository: Repository = target.store.repository(channelRepository(target.channel, ref.repository));
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
  context: CommandContext,
): Artifact {
  const uploadedAt = context.now().toISOString();
  const receipt: UploadReceipt = {
    schema: 1,
    ...what,
    uploadedAt,
    source: options.source,
    revision: options.revision,
    run: options.run,
    tool: context.tool,
  };
  return buildRecord(ARTIFACT_TYPE_UPLOAD_RECEIPT, receipt, subject, uploadedAt);
}
