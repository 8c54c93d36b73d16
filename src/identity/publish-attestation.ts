/**
 * CEP 27 publish attestations (https://github.com/conda/ceps/blob/main/cep-0027.md): for one
 * conda artifact, an in-toto Statement v1 with exactly one subject (the file name and its
 * sha256) and the predicate `{targetChannel}`, signed keyless with Sigstore into a bundle v0.3
 * (a DSSE envelope, the Fulcio certificate of the signer's OIDC identity, and a Rekor entry or an
 * RFC 3161 timestamp), then stored next to the staged package as an OCI referrer.
 *
 * Signing follows @actions/attest: public repositories sign with the public-good instance
 * (Fulcio + Rekor), private ones with GitHub's (fulcio.githubapp.com + its timestamp authority),
 * so that a private repository's names never reach the public log. The endpoints and the OIDC
 * token source are parameters, so tests run the real signer against loopback stand-ins.
 */
import { bundleToJSON, type SerializedBundle } from '@sigstore/bundle';
import { X509Certificate } from '@sigstore/core';
import {
  DSSEBundleBuilder,
  FulcioSigner,
  RekorWitness,
  TSAWitness,
  type IdentityProvider,
  type Witness,
} from '@sigstore/sign';
import { packArtifact, type Artifact } from '../oci/artifact.js';
import { descriptorOf, type Descriptor, type ImageManifest } from '../oci/manifest.js';
import { ANNOTATION_CREATED } from '../oci/media-types.js';
import { SigningError, withoutSecret } from './errors.js';

export const PREDICATE_TYPE_CONDA_PUBLISH = 'https://schemas.conda.org/attestations-publish-1.schema.json';
export const IN_TOTO_STATEMENT_V1 = 'https://in-toto.io/Statement/v1';
/** The DSSE payload type of an in-toto statement. */
export const PAYLOAD_TYPE_IN_TOTO = 'application/vnd.in-toto+json';
/** Sigstore bundle v0.3: the media type of the bundle, of its OCI layer and the referrer's artifactType. */
export const MEDIA_TYPE_SIGSTORE_BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';
/** Annotations GitHub (actions/attest, through @sigstore/oci) writes on an attestation referrer. */
export const ANNOTATION_BUNDLE_CONTENT = 'dev.sigstore.bundle.content';
export const ANNOTATION_BUNDLE_PREDICATE_TYPE = 'dev.sigstore.bundle.predicateType';
export const BUNDLE_CONTENT_DSSE = 'dsse-envelope';

export interface InTotoSubject {
  name: string;
  digest: Record<string, string>;
}

export interface InTotoStatement {
  _type: string;
  subject: InTotoSubject[];
  predicateType: string;
  predicate?: unknown;
}

/** What a feedstock publishes: one artifact file, its sha256 and the channel it is meant for. */
export interface Publication {
  /** The artifact's file name as repodata lists it, e.g. `numpy-2.1.0-py312h1234567_0.conda`. */
  fileName: string;
  /** Lower-case hex SHA-256 of the file: the package layer's digest. */
  sha256: string;
  /** The production channel URL, without a trailing slash. */
  targetChannel: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Checks a publication as CEP 27 constrains it; throws TypeError naming the field. */
export function checkPublication(publication: Publication): void {
  const { fileName, sha256, targetChannel } = publication;
  if (!/\.(conda|tar\.bz2)$/.test(fileName) || /[/\\]/.test(fileName) || fileName.split('-').length < 3)
    throw new TypeError(
      `"${fileName}" is not a conda artifact file name (<name>-<version>-<build>.conda|.tar.bz2)`,
    );
  if (!SHA256_HEX.test(sha256)) throw new TypeError(`"${sha256}" is not a lower-case hex sha256`);
  let url: URL | undefined;
  try {
    url = new URL(targetChannel);
  } catch {
    url = undefined;
  }
  if (!url || targetChannel.endsWith('/'))
    throw new TypeError(`target channel "${targetChannel}" is not a URL without a trailing slash`);
}

/** The CEP 27 statement of one publication. */
export function publishStatement(publication: Publication): InTotoStatement {
  checkPublication(publication);
  return {
    _type: IN_TOTO_STATEMENT_V1,
    subject: [{ name: publication.fileName, digest: { sha256: publication.sha256 } }],
    predicateType: PREDICATE_TYPE_CONDA_PUBLISH,
    predicate: { targetChannel: publication.targetChannel },
  };
}

/** Where to sign: Fulcio always, and Rekor, a timestamp authority or both as witnesses. */
export interface SigstoreEndpoints {
  fulcioUrl: string;
  rekorUrl?: string;
  tsaUrl?: string;
}

export const PUBLIC_GOOD_SIGSTORE: Readonly<SigstoreEndpoints> = Object.freeze({
  fulcioUrl: 'https://fulcio.sigstore.dev',
  rekorUrl: 'https://rekor.sigstore.dev',
});

/** GitHub's Sigstore instance for a server (github.com signs at githubapp.com). */
export function githubSigstore(serverUrl = 'https://github.com'): SigstoreEndpoints {
  let host = new URL(serverUrl).hostname;
  if (host === 'github.com') host = 'githubapp.com';
  return { fulcioUrl: `https://fulcio.${host}`, tsaUrl: `https://timestamp.${host}` };
}

/** The instance @actions/attest picks: public-good for a public repository, GitHub's otherwise. */
export function sigstoreForVisibility(visibility: string | undefined, serverUrl?: string): SigstoreEndpoints {
  return visibility === 'public' ? { ...PUBLIC_GOOD_SIGSTORE } : githubSigstore(serverUrl);
}

export interface SignOptions {
  endpoints: SigstoreEndpoints;
  /** The OIDC token source, e.g. `githubActionsIdToken()`. */
  identity: IdentityProvider;
  /** Per request to each service. Default 10 s, as @actions/attest. */
  timeoutMs?: number;
  /** Retries per request. Default 3, as @actions/attest. */
  retries?: number;
}

/** Signs any in-toto statement into a Sigstore bundle v0.3 (DSSE). */
export async function signStatement(
  statement: InTotoStatement,
  options: SignOptions,
): Promise<SerializedBundle> {
  const timeout = options.timeoutMs ?? 10_000;
  const retry = options.retries ?? 3;
  let token: string | undefined;
  const identityProvider: IdentityProvider = {
    getToken: async () => (token = await options.identity.getToken()),
  };
  const { fulcioUrl, rekorUrl, tsaUrl } = options.endpoints;
  const witnesses: Witness[] = [];
  if (rekorUrl)
    witnesses.push(new RekorWitness({ rekorBaseURL: rekorUrl, fetchOnConflict: true, timeout, retry }));
  if (tsaUrl) witnesses.push(new TSAWitness({ tsaBaseURL: tsaUrl, timeout, retry }));
  if (witnesses.length === 0) throw new SigningError('signing needs a Rekor or a timestamp authority URL');
  const signer = new FulcioSigner({ identityProvider, fulcioBaseURL: fulcioUrl, timeout, retry });
  // Without `certificateChain`, DSSEBundleBuilder writes a v0.3 bundle: the leaf certificate only.
  const builder = new DSSEBundleBuilder({ signer, witnesses });
  try {
    const bundle = bundleToJSON(
      await builder.create({ data: Buffer.from(JSON.stringify(statement)), type: PAYLOAD_TYPE_IN_TOTO }),
    );
    if (bundle.mediaType !== MEDIA_TYPE_SIGSTORE_BUNDLE_V03)
      throw new SigningError(
        `the signer made a ${bundle.mediaType} bundle, not ${MEDIA_TYPE_SIGSTORE_BUNDLE_V03}`,
      );
    return bundle;
  } catch (err) {
    if (err instanceof SigningError) throw err;
    throw new SigningError(`signing with ${fulcioUrl} failed`, { cause: withoutSecret(err, token) });
  }
}

/** Builds and signs the CEP 27 attestation of one publication. */
export function signPublishAttestation(
  publication: Publication,
  options: SignOptions,
): Promise<SerializedBundle> {
  return signStatement(publishStatement(publication), options);
}

/** The bundle as stored: the JSON GitHub stores (`JSON.stringify` of the serialized bundle). */
export function bundleBytes(bundle: SerializedBundle): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(bundle));
}

/** When the bundle was signed: its certificate's notBefore (Fulcio issues at signing time). */
export function signedAt(bundle: SerializedBundle): Date {
  const material = bundle.verificationMaterial as { certificate?: { rawBytes?: string } };
  const raw = material.certificate?.rawBytes;
  if (!raw) throw new TypeError('the bundle has no signing certificate (a v0.3 bundle holds one)');
  return X509Certificate.parse(Buffer.from(raw, 'base64')).notBefore;
}

/**
 * The OCI referrer holding a bundle, in the shape GitHub's attest action pushes (@sigstore/oci
 * `attachArtifactToImage`): artifactType and the one layer's media type are the bundle's media
 * type, the config is the empty descriptor, `subject` is the staged package manifest, and the
 * annotations are `dev.sigstore.bundle.content`, `dev.sigstore.bundle.predicateType` and
 * `org.opencontainers.image.created`. GitHub writes the clock there; we write the signing time,
 * so the same bundle always gives the same referrer digest.
 */
export function attestationArtifact(
  bundle: SerializedBundle,
  subject: Descriptor,
  predicateType = PREDICATE_TYPE_CONDA_PUBLISH,
): Artifact {
  const bytes = bundleBytes(bundle);
  return packArtifact({
    artifactType: bundle.mediaType,
    layers: [{ descriptor: descriptorOf(bundle.mediaType, bytes), content: bytes }],
    subject,
    annotations: {
      [ANNOTATION_CREATED]: signedAt(bundle).toISOString(),
      [ANNOTATION_BUNDLE_CONTENT]: BUNDLE_CONTENT_DSSE,
      [ANNOTATION_BUNDLE_PREDICATE_TYPE]: predicateType,
    },
  });
}

/**
 * The bundle layer of a referrer manifest, if it has the shape above. The annotations are hints
 * for finding candidates only: what the bundle proves is decided by verifying it.
 */
export function attestationLayer(manifest: ImageManifest): Descriptor | undefined {
  if (manifest.artifactType !== MEDIA_TYPE_SIGSTORE_BUNDLE_V03 || manifest.layers.length !== 1)
    return undefined;
  const layer = manifest.layers[0];
  return layer?.mediaType === MEDIA_TYPE_SIGSTORE_BUNDLE_V03 ? layer : undefined;
}
