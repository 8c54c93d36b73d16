/**
 * Who is asking, from proof only (README "Security"; SPEC §10): a CEP 27 publish attestation
 * attached to the staged manifest and verified with Sigstore, or a conda-forge feedstock token
 * checked against its scrypt hash. Request fields (`feedstock`, `repository`, `run`, `label`)
 * never establish identity; the claimed feedstock only says which token entry to check.
 *
 * Then what that identity may do: publish the names the owners map gives it, under the labels
 * the label policy allows it, with provenance annotations that agree with the proof.
 */
import { channelUrl, parseChannel, withoutLabel, type Channel } from '../conda/channel.js';
import { ownershipName } from '../conda/naming-scheme.js';
import type { VerifiedRequester } from '../conda/records.js';
import { verifyFeedstockToken } from '../identity/feedstock-tokens.js';
import { attestationLayer, MEDIA_TYPE_SIGSTORE_BUNDLE_V03 } from '../identity/publish-attestation.js';
import { trustFromFile, trustFromTuf, type SigstoreInstance, type SigstoreTrust } from '../identity/trust.js';
import {
  BUNDLE_SIZE_LIMIT,
  DEFAULT_REFS,
  verifyPublishAttestation,
  type PublisherIdentity,
  type PublisherPolicy,
} from '../identity/verify.js';
import type { Digest } from '../oci/digest.js';
import { parseImageManifest } from '../oci/manifest.js';
import { ANNOTATION_REVISION, ANNOTATION_SOURCE } from '../oci/media-types.js';
import { listReferrers } from '../oci/referrers.js';
import type { Repository } from '../oci/storage.js';
import { UsageError } from '../usage.js';
import { describeError } from '../util/describe-error.js';
import { normalizeFeedstock, ownersOf, type OwnersMap } from './owners.js';

/** Attestations looked at per artifact: anyone can attach more, each costs two requests. */
export const MAX_ATTESTATIONS = 8;

/** The label nothing may be published to on request: conda-forge moves packages there by hand. */
export const BROKEN_LABEL = 'broken';

export interface RequesterOptions {
  owners?: OwnersMap;
  /** The feedstock the request names: which token entry to check, nothing more. */
  feedstock?: string;
  feedstockToken?: string;
  /** A checkout of the feedstock-tokens registry (holding `tokens/`). */
  feedstockTokens?: string;
  /** The production channel: an attestation's targetChannel must be it. */
  production?: string;
  trustedRoot?: string;
  sigstore: SigstoreInstance;
  /** GitHub organizations whose feedstocks may publish. */
  publishers: string[];
  workflows?: string[];
  refs?: string[];
  /** Entries `<label>` (any requester) or `<feedstock>:<label>`. */
  labels: string[];
}

/** The URL a publish attestation names as its target: the channel without a label. */
export function publicationChannel(channel: Channel): string {
  return channelUrl(withoutLabel(channel)).replace(/\/+$/, '');
}

/** Checks a `labels` entry: `<label>` or `<feedstock>:<label>`. */
export function parseLabelEntry(entry: string): string {
  const [who, label] = entry.includes(':') ? entry.split(':', 2) : ['', entry];
  if (!label || !/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/.test(label))
    throw new Error(`"${entry}" is not <label> or <feedstock>:<label>`);
  if (label === BROKEN_LABEL) throw new Error(`"${BROKEN_LABEL}" is never published on request`);
  if (who && !/^[A-Za-z0-9_.-]+$/.test(who))
    throw new Error(`"${who}" in "${entry}" is not a feedstock name`);
  return entry;
}

/** One validate run's proofs: the token checked once, the Sigstore trust loaded when first needed. */
export class RequesterProof {
  private trust: Promise<SigstoreTrust> | undefined;
  private readonly policy: PublisherPolicy;
  private readonly target: string | undefined;

  private constructor(
    private readonly options: RequesterOptions,
    /** The identity the request's feedstock token proves, if any, and what was wrong otherwise. */
    readonly token: { identity?: VerifiedRequester; problem?: string },
  ) {
    this.policy = {
      organizations: options.publishers,
      ...(options.workflows?.length ? { workflows: options.workflows } : {}),
      refs: options.refs?.length ? options.refs : DEFAULT_REFS,
    };
    this.target = options.production ? publicationChannel(parseChannel(options.production)) : undefined;
  }

  static async forRequest(options: RequesterOptions): Promise<RequesterProof> {
    return new RequesterProof(options, await checkToken(options));
  }

  /**
   * The identity proven for one artifact: a verified attestation of exactly this file and digest
   * for this production channel, else the request's feedstock token. Two proofs that name
   * different feedstocks prove nothing.
   */
  async proveFor(
    repository: Repository,
    subject: Digest,
    file: { fileName: string; sha256: string },
  ): Promise<{ identity?: VerifiedRequester; found: string[] }> {
    const found: string[] = [];
    const attested = await this.attestations(repository, subject, file, found);
    const identities = [...attested, ...(this.token.identity ? [this.token.identity] : [])];
    if (this.token.problem) found.push(this.token.problem);
    const names = new Set(identities.map((i) => normalizeFeedstock(i.feedstock)));
    if (names.size > 1) {
      found.push(`the proofs name different feedstocks (${[...names].join(', ')})`);
      return { found };
    }
    return { ...(identities[0] ? { identity: identities[0] } : {}), found };
  }

  private async attestations(
    repository: Repository,
    subject: Digest,
    file: { fileName: string; sha256: string },
    found: string[],
  ): Promise<VerifiedRequester[]> {
    const candidates = await listReferrers(repository, subject, MEDIA_TYPE_SIGSTORE_BUNDLE_V03);
    if (candidates.length === 0) return [];
    if (!this.target) {
      found.push(
        'an attestation, not checked: its targetChannel needs the production channel (option production)',
      );
      return [];
    }
    if (candidates.length > MAX_ATTESTATIONS)
      found.push(
        `${candidates.length} attestations, of which the first ${MAX_ATTESTATIONS} were looked at (the limit)`,
      );
    const verified: VerifiedRequester[] = [];
    for (const candidate of candidates.slice(0, MAX_ATTESTATIONS)) {
      try {
        const manifest = parseImageManifest(
          (await repository.fetchManifest(candidate.digest)).bytes,
          candidate.digest,
        );
        const layer = attestationLayer(manifest);
        if (!layer || manifest.subject?.digest !== subject)
          throw new Error('not a Sigstore bundle referrer of this manifest');
        const bundle = JSON.parse(
          new TextDecoder().decode(await repository.readBlob(layer, BUNDLE_SIZE_LIMIT)),
        ) as unknown;
        const identity = verifyPublishAttestation(
          bundle,
          { ...file, targetChannel: this.target },
          this.policy,
          await this.sigstoreTrust(),
        );
        verified.push(fromAttestation(identity, candidate.digest));
      } catch (err) {
        found.push(`attestation ${candidate.digest.slice(0, 19)}… refused: ${describeError(err)}`);
      }
    }
    return verified;
  }

  private sigstoreTrust(): Promise<SigstoreTrust> {
    this.trust ??= this.options.trustedRoot
      ? trustFromFile(this.options.trustedRoot, this.options.sigstore)
      : this.options.sigstore === 'public-good'
        ? trustFromTuf()
        : Promise.reject(
            new UsageError(
              "GitHub's Sigstore instance needs its trusted root as a file (option trusted-root)",
            ),
          );
    return this.trust;
  }
}

function fromAttestation(identity: PublisherIdentity, digest: string): VerifiedRequester {
  return {
    method: 'attestation',
    feedstock: identity.feedstock,
    repository: identity.repository,
    workflowRef: identity.workflowRef,
    ref: identity.ref,
    commitSha: identity.commitSha,
    run: identity.run,
    issuer: identity.issuer,
    subjectAlternativeName: identity.subjectAlternativeName,
    attestation: digest,
  };
}

async function checkToken(
  options: RequesterOptions,
): Promise<{ identity?: VerifiedRequester; problem?: string }> {
  if (options.feedstockToken === undefined) return {};
  if (!options.feedstockTokens)
    return { problem: 'a feedstock token, not checked: no feedstock-tokens registry was given' };
  if (!options.feedstock) return { problem: 'a feedstock token without the feedstock it belongs to' };
  const feedstock = `${normalizeFeedstock(options.feedstock)}-feedstock`;
  const result = await verifyFeedstockToken({
    registry: options.feedstockTokens,
    feedstock,
    token: options.feedstockToken,
  });
  return result.verified
    ? { identity: { method: 'feedstock-token', feedstock } }
    : { problem: `the feedstock token of ${feedstock} was refused (${result.detail})` };
}

/** How an identity reads in checks and summaries. */
export function describeRequester(identity: VerifiedRequester): string {
  if (identity.method === 'feedstock-token') return `${identity.feedstock} (feedstock token)`;
  return `${identity.repository ?? identity.feedstock} (attestation: ${identity.workflowRef ?? 'workflow unknown'}, commit ${identity.commitSha ?? 'unknown'})`;
}

/** May `identity` publish `name`? Which feedstocks the owners map expects, and what was found. */
export function ownerCheck(
  owners: OwnersMap,
  name: string,
  identity: VerifiedRequester | undefined,
  found: string[],
): { ok: boolean; detail: string } {
  const expected = ownersOf(owners, ownershipName(name));
  const wanted = expected.length
    ? expected.join(' or ')
    : owners.allowNewNames
      ? 'any feedstock (a new name)'
      : 'nobody (not registered)';
  if (!identity)
    return {
      ok: false,
      detail: `"${name}" may be published by ${wanted}; no identity was proven (found: ${found.length ? found.join('; ') : 'no publish attestation and no feedstock token'})`,
    };
  const who = normalizeFeedstock(identity.feedstock);
  if (expected.length === 0)
    return owners.allowNewNames
      ? { ok: true, detail: `"${name}" is not registered yet; new names are allowed (${who})` }
      : { ok: false, detail: `"${name}" is not registered to any feedstock; register it for ${who} first` };
  return expected.includes(who)
    ? { ok: true, detail: `"${name}" is registered to ${who}` }
    : { ok: false, detail: `"${name}" may be published by ${wanted}, not by ${who}` };
}

/** May `identity` publish under `label`? Default: main only; never `broken`. */
export function labelCheck(
  labels: string[],
  label: string | undefined,
  identity: VerifiedRequester | undefined,
): {
  ok: boolean;
  detail: string;
} {
  if (!label) return { ok: true, detail: 'main (no label)' };
  if (label === BROKEN_LABEL)
    return { ok: false, detail: `nothing is published to "${BROKEN_LABEL}" on request` };
  const who = identity ? normalizeFeedstock(identity.feedstock) : undefined;
  const allowed = labels.some((entry) => {
    const [feedstock, l] = entry.includes(':') ? entry.split(':', 2) : [undefined, entry];
    return (
      l === label && (feedstock === undefined || (who !== undefined && normalizeFeedstock(feedstock) === who))
    );
  });
  return allowed
    ? { ok: true, detail: `label "${label}" is allowed${who ? ` for ${who}` : ''}` }
    : {
        ok: false,
        detail: `label "${label}" is not allowed${who ? ` for ${who}` : ' without a proven identity'} (the labels policy allows ${labels.length ? labels.join(', ') : 'main only'})`,
      };
}

/**
 * The provenance annotations are the only part of a manifest not derived from the package: with
 * an attestation they must name the attested repository and commit; otherwise they must at
 * least look like a repository URL and a commit.
 */
export function provenanceCheck(
  annotations: Record<string, string>,
  identity: VerifiedRequester | undefined,
): { ok: boolean; detail: string } {
  const source = annotations[ANNOTATION_SOURCE];
  const revision = annotations[ANNOTATION_REVISION];
  if (source !== undefined && (!/^https:\/\/[^\s]{1,500}$/.test(source) || source.length > 512))
    return {
      ok: false,
      detail: `${ANNOTATION_SOURCE} ${JSON.stringify(source.slice(0, 80))} is not an https URL`,
    };
  if (revision !== undefined && !/^[0-9a-f]{7,64}$/.test(revision))
    return {
      ok: false,
      detail: `${ANNOTATION_REVISION} ${JSON.stringify(revision.slice(0, 80))} is not a commit hash`,
    };
  if (identity?.method === 'attestation') {
    if (source !== undefined && source !== identity.repository)
      return {
        ok: false,
        detail: `${ANNOTATION_SOURCE} is ${source}, the attestation's repository ${identity.repository}`,
      };
    if (revision !== undefined && revision !== identity.commitSha)
      return {
        ok: false,
        detail: `${ANNOTATION_REVISION} is ${revision}, the attested commit ${identity.commitSha}`,
      };
  }
  return {
    ok: true,
    detail:
      source || revision
        ? `source ${source ?? '-'}, revision ${revision ?? '-'}`
        : 'no provenance annotations',
  };
}
