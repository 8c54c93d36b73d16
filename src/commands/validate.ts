/**
 * `validate`: the webservices side (SPEC §6.2, §10). Proves that what staging holds for each
 * requested artifact is exactly what the feedstock built (validate-content.ts), that whoever asks
 * is who they say and may publish it (requester.ts), and that production does not hold other
 * content there; then records the outcome, bound to the whole request, as a referrer of the
 * staged manifest. The registry is not trusted: the package bytes are downloaded and hashed.
 */
import { readFileSync } from 'node:fs';
import { readPackageManifest, type PackageManifestInfo } from '../conda/artifact.js';
import { channelUrl, withoutLabel, type Channel } from '../conda/channel.js';
import { parseArtifactFileName, type PackageIdentity } from '../conda/naming.js';
import type { PackageContents } from '../conda/package-reader.js';
import {
  ANNOTATION_VALIDATION_RESULT,
  ARTIFACT_TYPE_VALIDATION,
  buildRecord,
  type ValidationRecord,
  type VerifiedRequester,
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
import { flag, list, oneOf, text, type OptionsOf } from '../core/options.js';
import { reportFailures } from '../github/issues.js';
import { runUrl } from '../github/run.js';
import type { SigstoreInstance } from '../identity/trust.js';
import { InvalidReferenceError, NotFoundError } from '../oci/errors.js';
import type { Descriptor, ManifestBytes } from '../oci/manifest.js';
import { pushArtifact } from '../oci/push.js';
import type { FetchedManifest, Repository, Store } from '../oci/storage.js';
import { describeError } from '../util/describe-error.js';
import { mapLimit } from '../util/map-limit.js';
import type { RequestedArtifact } from './artifact-list.js';
import { conflictError, deleteIfHolds, digestAt, inspectPlace, places, type Place } from './locations.js';
import { parseOwners, type OwnersMap } from './owners.js';
import { finish, type ArtifactResult, type CommandResult } from './report.js';
import {
  describeRequester,
  labelCheck,
  ownerCheck,
  parseLabelEntry,
  provenanceCheck,
  RequesterProof,
} from './requester.js';
import { deleteStaged } from './staged.js';
import { CheckList, checkContent } from './validate-content.js';

const VALIDATE_OPTIONS = {
  from: text('from', {
    help: 'The staging channel. Never taken from a dispatch payload: the credentials of the step go where it points.',
    placeholder: '<channel>',
    example: 'oci://ghcr.io/cf-staging/conda-forge',
    required: true,
  }),
  ...ARTIFACTS_OPTION,
  production: text('production', {
    help: 'The production channel: a name and tag it holds with other content is refused, and publish attestations must name it as their targetChannel.',
    placeholder: '<channel>',
    example: 'oci://ghcr.io/conda-forge/conda-forge',
  }),
  owners: text<OwnersMap>('owners', {
    help: 'A JSON map of package name (or glob) to the feedstocks allowed to publish it. With it, an artifact whose requester proves no identity fails.',
    placeholder: '<file>',
    example: 'feedstock-outputs.json',
    parse: readOwners,
  }),
  publishers: list('publishers', {
    help: 'GitHub organizations whose feedstocks may sign publish attestations.',
    placeholder: '<org>',
    example: 'conda-forge',
    commas: true,
    fallback: ({ env }) => (env.GITHUB_REPOSITORY_OWNER ? [env.GITHUB_REPOSITORY_OWNER] : undefined),
    defaultText: "in Actions, the owner of this workflow's repository",
  }),
  workflows: list('workflows', {
    help: "Workflow files an attestation's certificate may name, e.g. .github/workflows/conda-build.yml.",
    placeholder: '<path>',
    commas: true,
    defaultText: 'any workflow of the feedstock',
  }),
  refs: list('refs', {
    help: 'Git refs an attestation may come from (exact, or a prefix ending in *).',
    placeholder: '<ref>',
    commas: true,
    defaultText: 'refs/heads/* (branches; never pull requests or tags)',
  }),
  trustedRoot: text('trusted-root', {
    help: "Sigstore's trusted_root.json to verify attestations against (air-gapped use, GitHub's instance, tests).",
    placeholder: '<file>',
    defaultText: "Sigstore's public-good root through TUF",
  }),
  sigstore: text<SigstoreInstance>('sigstore', {
    help: 'Which Sigstore instance signed the attestations: public-good (public repositories) or github (private ones).',
    placeholder: 'public-good|github',
    parse: oneOf(['public-good', 'github'] as const),
    default: 'public-good',
  }),
  feedstockTokens: text('feedstock-tokens', {
    help: "A checkout of conda-forge's feedstock-tokens registry (its tokens/<feedstock>.json files).",
    placeholder: '<dir>',
  }),
  feedstock: text('feedstock', {
    help: "The feedstock whose token the request presents. It proves nothing by itself: only the token's check does.",
    placeholder: '<name>',
    fallback: ({ payload }) => (typeof payload?.feedstock === 'string' ? payload.feedstock : undefined),
    defaultText: 'in the action, "feedstock" of the dispatch payload',
  }),
  feedstockToken: text('feedstock-token', {
    help: "The requesting feedstock's token, checked against the registry in constant time; never printed or stored.",
    placeholder: '<token>',
    env: ['CONDA_OCI_FEEDSTOCK_TOKEN'],
    secret: true,
    fallback: ({ payload }) =>
      typeof payload?.feedstock_token === 'string' ? payload.feedstock_token : undefined,
    defaultText: 'in the action, "feedstock_token" of the dispatch payload',
  }),
  labels: list<string[]>('labels', {
    help: `Labels a requester may publish to: <label> for any, <feedstock>:<label> for one. "broken" never.`,
    placeholder: '<label>',
    example: 'rc',
    commas: true,
    item: parseLabelEntry,
    default: [],
    defaultText: 'main only',
  }),
  deleteFailed: flag('delete-failed', {
    help: 'Delete artifacts that fail validation from staging (only those attested by the requester).',
  }),
  recordKey: text('record-key', {
    help: 'Secret key that signs validation records; promote accepts only records signed with it.',
    placeholder: '<key>',
    env: ['CONDA_OCI_RECORD_KEY'],
    secret: true,
    parse: nonEmptyKey,
  }),
  reportIssue: flag('report-issue', {
    help: "Open or update an issue on the proven requester's feedstock repository when validation fails.",
  }),
  ...LABEL_OPTION,
  ...NAMING_OPTION,
  ...concurrencyOption('Artifacts validated', 4),
  ...REGISTRY_OPTIONS,
  ...GITHUB_TOKEN_OPTION,
  ...RESULT_OPTIONS,
};

export type ValidateOptions = OptionsOf<typeof VALIDATE_OPTIONS>;

export const validateCommand = defineCommand({
  name: 'validate',
  summary: 'prove staged artifacts are exactly what the feedstock built and may publish',
  description:
    'Re-reads each requested artifact from staging: the package bytes (downloaded and hashed: the ' +
    'registry is not trusted), and the manifest and every blob it names against the canonical ' +
    'artifact rebuilt from them. Learns who asks from a verified publish attestation or a feedstock ' +
    'token, never from the request, and checks the owners map and the label policy for that identity. ' +
    'The outcome, bound to the whole request, is recorded next to the staged manifest; promote requires it.',
  examples: [
    'conda-oci validate --from oci://ghcr.io/cf-staging/conda-forge --production oci://ghcr.io/conda-forge/conda-forge --artifacts result.json --owners outputs.json --record-key "$KEY"',
  ],
  options: VALIDATE_OPTIONS,
  run: async (options, context) => {
    const result = await validate(options, context);
    if (options.reportIssue && result.exitCode !== 0) await reportIssue(result, context);
    return result;
  },
});

/** An empty key is a missing secret, not a key. */
export function nonEmptyKey(key: string): string {
  if (key.trim() === '') throw new Error('is empty (a secret that is not set?)');
  return key;
}

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

/** What one validate run works with. */
interface Run {
  channel: Channel;
  staging: Store;
  production?: { channel: Channel; store: Store };
  proof: RequesterProof;
  options: ValidateOptions;
  context: CommandContext;
}

export async function validate(options: ValidateOptions, context: CommandContext): Promise<CommandResult> {
  const { channel, store: staging } = context.open(options.from);
  const proof = await RequesterProof.forRequest({
    ...options,
    publishers: options.publishers ?? [],
  });
  const run: Run = {
    channel,
    staging,
    ...(options.production ? { production: context.open(options.production, { mayBeNew: true }) } : {}),
    proof,
    options,
    context,
  };
  context.reporter.info(`Validating ${options.artifacts.length} artifact(s) in ${channelUrl(channel)}`);
  if (!options.owners) context.reporter.warn('No owners map: any requester may publish any name.');
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

async function validateOne(request: RequestedArtifact, run: Run): Promise<ArtifactResult> {
  const { options, context } = run;
  const identity = parseArtifactFileName(request.file);
  const result: ArtifactResult = {
    subdir: request.subdir,
    file: request.file,
    name: identity.name,
    version: identity.version,
    build: identity.build,
    status: 'failed',
  };
  const checks = new CheckList();
  let stagedPlaces: Place[];
  try {
    stagedPlaces = places(options.naming, run.channel, request.subdir, identity);
  } catch (err) {
    checks.fail('names', describeError(err));
    return finishResult(result, checks, context, request);
  }
  const [main, ...copies] = stagedPlaces as [Place, ...Place[]];
  const repository = run.staging.repository(main.repository);
  Object.assign(result, { repository: main.repository, tag: main.tag, reference: main.reference });
  if (copies.length) result.v0Reference = copies[0]!.reference;

  // The manifest is where SPEC §3 puts it and has the shape of SPEC §4.
  let staged: FetchedManifest | undefined;
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
  let requester: VerifiedRequester | undefined;
  const stagedBytes = staged && { mediaType: staged.descriptor.mediaType, bytes: staged.bytes };
  if (staged && info && stagedBytes) {
    result.digest = staged.descriptor.digest;
    pkg = await checkContent(request, staged, info, repository, checks);
    if (pkg) Object.assign(result, { sha256: pkg.sha256, md5: pkg.md5, size: pkg.size });
    for (const where of copies) await checkCopy(run.staging, where, identity, stagedBytes, checks);
    requester = await checkRequester(run, repository, staged.descriptor, request, info, identity, checks);
    if (requester) {
      result.requester = describeRequester(requester);
      const home = requesterRepository(requester, options.publishers);
      if (home) result.requesterRepository = home;
    }
    if (run.production) {
      const [published, ...publishedCopies] = places(
        options.naming,
        run.production.channel,
        request.subdir,
        identity,
      ) as [Place, ...Place[]];
      await checkProduction(run.production.store, published, info.packageLayer.digest, checks);
      for (const where of publishedCopies)
        await checkCopyInProduction(run.production.store, where, identity, stagedBytes, checks);
    }
  }

  if (staged)
    result.record = await recordOutcome(
      repository,
      staged.descriptor,
      request,
      result,
      checks,
      pkg,
      requester,
      run,
    );
  if (!checks.passed && options.deleteFailed && staged && stagedBytes) {
    // Only what the requester itself attested: a request cannot delete another feedstock's upload.
    if (requester?.method === 'attestation') {
      await deleteStaged(repository, staged.descriptor.digest);
      for (const where of copies) await deleteIfHolds(run.staging, where, stagedBytes);
      context.reporter.info(`${request.file}: deleted from staging after failing validation`);
    } else context.reporter.info(`${request.file}: kept in staging (not attested by the requester)`);
  }
  return finishResult(result, checks, context, request);
}

/** Who asked (proven), whether they may publish this name under this label, with this provenance. */
async function checkRequester(
  run: Run,
  repository: Repository,
  subject: Descriptor,
  request: RequestedArtifact,
  info: PackageManifestInfo,
  identity: PackageIdentity,
  checks: CheckList,
): Promise<VerifiedRequester | undefined> {
  const { options } = run;
  const proven = await run.proof.proveFor(repository, subject.digest, {
    fileName: request.file,
    sha256: request.sha256,
  });
  const requester = proven.identity;
  const tokenRefused = run.proof.token.problem !== undefined && options.feedstockToken !== undefined;
  if (requester && !tokenRefused) checks.pass('requester', describeRequester(requester));
  else if (options.owners || tokenRefused)
    checks.fail(
      'requester',
      `no identity was proven${proven.found.length ? `: ${proven.found.join('; ')}` : ' (no publish attestation and no feedstock token)'}`,
    );
  else checks.pass('requester', 'no identity proven; without an owners map none is needed');
  if (options.owners) {
    const owner = ownerCheck(options.owners, identity.name, requester, proven.found);
    checks.expect('owner', owner.ok, owner.detail, owner.detail);
  }
  const label = labelCheck(options.labels, run.channel.label, requester);
  checks.expect('label', label.ok, label.detail, label.detail);
  const provenance = provenanceCheck(info.manifest.annotations ?? {}, requester);
  checks.expect('provenance', provenance.ok, provenance.detail, provenance.detail);
  return requester;
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
  const failed = checks.checks.filter((c) => !c.ok).map((c) => c.name);
  context.reporter[checks.passed ? 'info' : 'warn'](
    `${request.file}: ${checks.passed ? 'passed' : `failed ${failed.join(', ')} (the reasons are in the summary)`}`,
  );
  return result;
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
  manifest: ManifestBytes,
  checks: CheckList,
): Promise<void> {
  const digest = digestAt(where, manifest);
  const name = `${where.scheme}-name`;
  try {
    const state = await inspectPlace(store, where, identity, manifest);
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
  manifest: ManifestBytes,
  checks: CheckList,
): Promise<void> {
  const name = `production-${where.scheme}`;
  try {
    const state = await inspectPlace(store, where, identity, manifest);
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

/** Writes the record, bound to the whole request; returns its digest. */
async function recordOutcome(
  repository: Repository,
  subject: Descriptor,
  request: RequestedArtifact,
  result: ArtifactResult,
  checks: CheckList,
  pkg: PackageContents | undefined,
  requester: VerifiedRequester | undefined,
  run: Run,
): Promise<string> {
  const validatedAt = run.context.now().toISOString();
  const record: ValidationRecord = {
    schema: 2,
    passed: checks.passed,
    channel: channelUrl(withoutLabel(run.channel)),
    label: run.channel.label ?? '',
    ...(run.production ? { production: channelUrl(run.production.channel) } : {}),
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
    requester: requester ?? null,
    validatedAt,
    tool: run.context.tool,
  };
  const artifact = buildRecord(
    ARTIFACT_TYPE_VALIDATION,
    record,
    subject,
    validatedAt,
    { [ANNOTATION_VALIDATION_RESULT]: checks.passed ? 'passed' : 'failed' },
    run.options.recordKey,
  );
  await pushArtifact(repository, artifact, { subject, fresh: true });
  return artifact.descriptor.digest;
}

/**
 * Tells the feedstock, at the repository its proof names (never one a request field names); a
 * failed report is only a warning (the failures themselves fail the step).
 */
async function reportIssue(result: CommandResult, context: CommandContext): Promise<void> {
  if (!context.github) {
    context.reporter.warn('report-issue needs github-token');
    return;
  }
  const targets = new Set(
    result.artifacts
      .filter((a) => a.status === 'failed' && a.requesterRepository)
      .map((a) => a.requesterRepository!),
  );
  if (targets.size === 0) {
    context.reporter.warn('report-issue: no failed artifact proved whose it is, so no feedstock is told');
    return;
  }
  for (const target of targets) {
    const theirs = { ...result, artifacts: result.artifacts.filter((a) => a.requesterRepository === target) };
    try {
      const url = await reportFailures(context.github, target, theirs, runUrl(context.sources.env));
      context.reporter.info(`Reported the failures in ${url}`);
    } catch (err) {
      context.reporter.warn(`Could not report the failures on ${target}: ${describeError(err)}`);
    }
  }
}

/** `<owner>/<repo>` of the proven requester: from the certificate, or the token's feedstock in the first publisher org. */
function requesterRepository(
  requester: VerifiedRequester,
  publishers: string[] | undefined,
): string | undefined {
  const fromCertificate = /^https:\/\/[^/]+\/([^/]+\/[^/]+)$/.exec(requester.repository ?? '')?.[1];
  if (fromCertificate) return fromCertificate;
  return publishers?.[0] ? `${publishers[0]}/${requester.feedstock}` : undefined;
}
