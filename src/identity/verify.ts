/**
 * Verifies a CEP 27 publish attestation and says who published: the Sigstore checks
 * (`@sigstore/verify`: certificate chain to a trusted Fulcio CA at a trusted time, SCT, Rekor
 * inclusion or RFC 3161 timestamp, DSSE signature), then an identity policy over the Fulcio
 * certificate's claims, then the statement against the artifact the caller holds. Every refusal
 * is an AttestationError naming the check, what was expected and what was found.
 *
 * Verification steps of CEP 27 ("Verifying"): predicateType, subject[0].name equal to the file
 * name, subject[0].digest equal to its sha256, and targetChannel equal to the channel, which
 * this gate requires (the CEP lets mirrors allow a mismatch; a staging gate is not a mirror).
 */
import { bundleFromJSON, isBundleWithDsseEnvelope, type Bundle } from '@sigstore/bundle';
import { toSignedEntity, Verifier } from '@sigstore/verify';
import { readSigningCertificate, type FulcioClaims, type SigningCertificate } from './certificate-claims.js';
import { AttestationError, type AttestationCheck } from './errors.js';
import {
  IN_TOTO_STATEMENT_V1,
  MEDIA_TYPE_SIGSTORE_BUNDLE_V03,
  PAYLOAD_TYPE_IN_TOTO,
  PREDICATE_TYPE_CONDA_PUBLISH,
  type Publication,
} from './publish-attestation.js';
import type { SigstoreTrust } from './trust.js';

export const GITHUB_ACTIONS_ISSUER = 'https://token.actions.githubusercontent.com';
/** Bundles are a few KiB (one certificate, one log entry or timestamp); this is far above. */
export const BUNDLE_SIZE_LIMIT = 1024 * 1024;

/**
 * Who may publish. Defaults, and why:
 * - `issuer`: GitHub Actions. Fulcio also certifies other issuers (GitLab, Buildkite, e-mail
 *   logins) whose subjects anyone can register under any name.
 * - `repositorySuffix` `-feedstock`: an organization holds other repositories (tooling, admin)
 *   that are not feedstocks and must not publish packages.
 * - `workflows` unset: any workflow file of the feedstock itself. The Build Config URI must name
 *   the feedstock repository (it always does for GitHub's top-level workflow); which file builds
 *   is the feedstock's business, conda-smithy renders it.
 * - `refs` `refs/heads/*`: any branch of the feedstock (conda-forge publishes from `main` and from
 *   maintenance branches such as `v1.x`), never a pull request's merge ref (`refs/pull/N/merge`),
 *   whose code nobody has reviewed yet, and never a tag.
 */
export interface PublisherPolicy {
  /** GitHub organizations (or users) whose feedstocks may publish; compared without case. */
  organizations: readonly string[];
  /** Feedstocks that may publish this artifact (the owners map's answer), with or without `-feedstock`. */
  feedstocks?: readonly string[];
  issuer?: string;
  /** Default `https://github.com` (GitHub Enterprise: its server URL). */
  serverUrl?: string;
  repositorySuffix?: string;
  /** Workflow files in the feedstock, e.g. `.github/workflows/conda-build.yml`. */
  workflows?: readonly string[];
  /** Exact refs, or prefixes ending in `*`. */
  refs?: readonly string[];
}

export const DEFAULT_REFS: readonly string[] = ['refs/heads/*'];

/** What a validation record keeps as provenance of the publication. */
export interface PublisherIdentity {
  /** The feedstock repository's name, e.g. `numpy-feedstock`. */
  feedstock: string;
  organization: string;
  /** Source Repository URI, e.g. `https://github.com/conda-forge/numpy-feedstock`. */
  repository: string;
  /** Build Config URI: the workflow file and ref, e.g. `…/.github/workflows/conda-build.yml@refs/heads/main`. */
  workflowRef: string;
  /** Source Repository Ref. */
  ref: string;
  /** Source Repository Digest: the commit built. */
  commitSha: string;
  /** Run Invocation URI, e.g. `…/actions/runs/123/attempts/1`. */
  run: string;
  issuer: string;
  /** The certificate's Subject Alternative Name: the job's workflow (`job_workflow_ref`). */
  subjectAlternativeName: string;
  /** When Fulcio certified the signing key (notBefore); verified timestamps lie within its validity. */
  signedAt: string;
}

function refuse(check: AttestationCheck, what: string, expected: string, found: string): never {
  throw new AttestationError(check, `${what}: expected ${expected}, found ${found}`, expected, found);
}

function quoted(value: string | undefined): string {
  return value === undefined ? 'none' : JSON.stringify(value);
}

/** A bundle from its stored bytes (Uint8Array) or its parsed JSON (a SerializedBundle). */
export function parseBundle(input: unknown): Bundle {
  let json: unknown = input;
  if (input instanceof Uint8Array) {
    if (input.length > BUNDLE_SIZE_LIMIT)
      throw new AttestationError(
        'bundle',
        `the bundle is ${input.length} bytes, over the ${BUNDLE_SIZE_LIMIT}-byte limit`,
      );
    try {
      json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(input));
    } catch (cause) {
      throw new AttestationError('bundle', 'the bundle is not JSON', undefined, undefined, { cause });
    }
  }
  const mediaType = (json as { mediaType?: unknown } | null)?.mediaType;
  if (mediaType !== MEDIA_TYPE_SIGSTORE_BUNDLE_V03)
    refuse('bundle', 'bundle media type', MEDIA_TYPE_SIGSTORE_BUNDLE_V03, quoted(String(mediaType)));
  try {
    return bundleFromJSON(json);
  } catch (cause) {
    throw new AttestationError('bundle', 'the bundle is not a valid Sigstore bundle', undefined, undefined, {
      cause,
    });
  }
}

/** Runs the Sigstore checks; returns the leaf certificate's DER. */
function verifySignature(bundle: Bundle, trust: SigstoreTrust): Uint8Array {
  if (!isBundleWithDsseEnvelope(bundle))
    refuse('bundle', 'bundle content', 'a DSSE envelope', 'a message signature');
  if (bundle.content.dsseEnvelope.payloadType !== PAYLOAD_TYPE_IN_TOTO)
    refuse(
      'bundle',
      'DSSE payload type',
      PAYLOAD_TYPE_IN_TOTO,
      quoted(bundle.content.dsseEnvelope.payloadType),
    );
  const material = bundle.verificationMaterial.content;
  if (material.$case !== 'certificate')
    refuse('bundle', 'verification material', 'a Fulcio certificate (keyless signing)', material.$case);
  try {
    new Verifier(trust.material, trust.thresholds).verify(toSignedEntity(bundle));
  } catch (cause) {
    const code = (cause as { code?: unknown }).code;
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new AttestationError(
      'signature',
      `the bundle does not verify against the ${trust.instance} trusted root (${trust.origin}): ${typeof code === 'string' ? `${code}: ` : ''}${detail}`,
      undefined,
      undefined,
      { cause },
    );
  }
  return material.certificate.rawBytes;
}

function normalizeFeedstock(name: string): string {
  return name
    .trim()
    .replace(/-feedstock$/, '')
    .toLowerCase();
}

function matchesRef(ref: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.endsWith('*') ? ref.startsWith(p.slice(0, -1)) : ref === p));
}

function required(claims: FulcioClaims, name: keyof FulcioClaims, label: string): string {
  const value = claims[name];
  if (value === undefined || value === '')
    refuse('repository', `the certificate's ${label}`, 'a value', 'none');
  return value;
}

/** Applies the policy to the certificate's claims. */
function checkIdentity(claims: FulcioClaims, policy: PublisherPolicy, signedAt: Date): PublisherIdentity {
  const issuer = policy.issuer ?? GITHUB_ACTIONS_ISSUER;
  if (claims.issuer !== issuer) refuse('issuer', 'OIDC issuer', quoted(issuer), quoted(claims.issuer));

  const server = (policy.serverUrl ?? 'https://github.com').replace(/\/+$/, '');
  const repository = required(claims, 'sourceRepositoryUri', 'Source Repository URI');
  const match = repository.startsWith(`${server}/`)
    ? /^([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)\/([A-Za-z0-9._-]+)$/.exec(
        repository.slice(server.length + 1),
      )
    : null;
  if (!match)
    refuse('repository', 'Source Repository URI', `${server}/<organization>/<feedstock>`, quoted(repository));
  const [, organization = '', feedstock = ''] = match;
  const allowed = policy.organizations.map((o) => o.toLowerCase());
  if (!allowed.includes(organization.toLowerCase()))
    refuse(
      'organization',
      `repository ${repository}`,
      `a feedstock of ${policy.organizations.join(', ') || '(no organization)'}`,
      `organization ${quoted(organization)}`,
    );
  const suffix = policy.repositorySuffix ?? '-feedstock';
  if (!feedstock.endsWith(suffix) || feedstock === suffix)
    refuse('feedstock', `repository ${repository}`, `a repository named <name>${suffix}`, quoted(feedstock));
  if (policy.feedstocks && !policy.feedstocks.map(normalizeFeedstock).includes(normalizeFeedstock(feedstock)))
    refuse(
      'feedstock',
      'publisher',
      policy.feedstocks.map((f) => `${normalizeFeedstock(f)}-feedstock`).join(' or '),
      `${feedstock} (${repository})`,
    );

  const workflowRef = required(claims, 'buildConfigUri', 'Build Config URI');
  const at = workflowRef.lastIndexOf('@');
  const workflowPath =
    workflowRef.startsWith(`${repository}/`) && at > repository.length
      ? workflowRef.slice(repository.length + 1, at)
      : undefined;
  if (workflowPath === undefined)
    refuse('workflow', 'Build Config URI', `a workflow of ${repository}`, quoted(workflowRef));
  if (policy.workflows && !policy.workflows.includes(workflowPath))
    refuse('workflow', 'workflow file', policy.workflows.join(' or '), quoted(workflowPath));

  const ref = required(claims, 'sourceRepositoryRef', 'Source Repository Ref');
  const refs = policy.refs ?? DEFAULT_REFS;
  if (!matchesRef(ref, refs)) refuse('ref', 'ref', refs.join(' or '), quoted(ref));

  return {
    feedstock,
    organization,
    repository,
    workflowRef,
    ref,
    commitSha: required(claims, 'sourceRepositoryDigest', 'Source Repository Digest'),
    run: required(claims, 'runInvocationUri', 'Run Invocation URI'),
    issuer,
    subjectAlternativeName: required(claims, 'subjectAlternativeName', 'Subject Alternative Name'),
    signedAt: signedAt.toISOString(),
  };
}

/** Checks the signed statement against the artifact the caller holds. */
function checkStatement(bundle: Bundle, expected: Publication): void {
  if (!isBundleWithDsseEnvelope(bundle)) return;
  let statement: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(bundle.content.dsseEnvelope.payload),
    );
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
      throw new TypeError('not an object');
    statement = parsed as Record<string, unknown>;
  } catch (cause) {
    throw new AttestationError(
      'statement',
      'the signed payload is not an in-toto statement',
      undefined,
      undefined,
      { cause },
    );
  }
  if (statement._type !== IN_TOTO_STATEMENT_V1)
    refuse('statement', 'statement type', IN_TOTO_STATEMENT_V1, quoted(String(statement._type)));
  if (statement.predicateType !== PREDICATE_TYPE_CONDA_PUBLISH)
    refuse(
      'predicate-type',
      'predicateType',
      PREDICATE_TYPE_CONDA_PUBLISH,
      quoted(String(statement.predicateType)),
    );
  const subjects = statement.subject;
  if (!Array.isArray(subjects) || subjects.length !== 1)
    refuse('subject', 'subjects', 'exactly one', Array.isArray(subjects) ? String(subjects.length) : 'none');
  const subject = subjects[0] as { name?: unknown; digest?: unknown } | null;
  const name = typeof subject?.name === 'string' ? subject.name : undefined;
  if (name !== expected.fileName) refuse('subject', 'subject name', quoted(expected.fileName), quoted(name));
  const digest = subject?.digest;
  const digestKeys = digest !== null && typeof digest === 'object' ? Object.keys(digest) : [];
  const sha256 = (digest as { sha256?: unknown } | undefined)?.sha256;
  if (digestKeys.length !== 1 || sha256 !== expected.sha256)
    refuse(
      'subject',
      `subject digest of ${expected.fileName}`,
      `{"sha256":"${expected.sha256}"}`,
      JSON.stringify(digest ?? null),
    );
  const predicate = statement.predicate as { targetChannel?: unknown } | null | undefined;
  const channel = typeof predicate?.targetChannel === 'string' ? predicate.targetChannel : undefined;
  if (channel !== expected.targetChannel)
    refuse('target-channel', 'targetChannel', quoted(expected.targetChannel), quoted(channel));
}

/**
 * Verifies a publish attestation for `expected` (the staged package layer's file name and
 * digest, and the production channel) and returns the publisher, or throws AttestationError.
 */
export function verifyPublishAttestation(
  input: unknown,
  expected: Publication,
  policy: PublisherPolicy,
  trust: SigstoreTrust,
): PublisherIdentity {
  const bundle = parseBundle(input);
  const der = verifySignature(bundle, trust);
  let certificate: SigningCertificate;
  try {
    certificate = readSigningCertificate(der);
  } catch (cause) {
    throw new AttestationError('bundle', 'the signing certificate cannot be read', undefined, undefined, {
      cause,
    });
  }
  const identity = checkIdentity(certificate.claims, policy, certificate.notBefore);
  checkStatement(bundle, expected);
  return identity;
}
