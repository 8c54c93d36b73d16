/**
 * The trust material a bundle is verified against: the Fulcio CAs, Rekor logs, CT logs and
 * timestamp authorities of one Sigstore instance, as a `trusted_root.json`
 * (https://github.com/sigstore/protobuf-specs, TrustedRoot).
 *
 * - Public-good: fetched through TUF from Sigstore's repository (`@sigstore/tuf`, the root of
 *   trust shipped in that package), where the network reaches it.
 * - A file given by the caller: for GitHub's instance (`gh attestation trusted-root` prints it),
 *   for air-gapped verification, and for tests.
 *
 * How many witnesses a bundle needs depends on the instance, never on the bundle: public-good
 * bundles carry a Rekor entry (with its signed timestamp) and the certificate's SCT; GitHub's carry
 * an RFC 3161 timestamp and neither, as `gh attestation verify` expects.
 */
import { readFile, stat } from 'node:fs/promises';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { getTrustedRoot } from '@sigstore/tuf';
import { toTrustMaterial, type TrustMaterial, type VerifierOptions } from '@sigstore/verify';
import { TrustRootError } from './errors.js';

export type SigstoreInstance = 'public-good' | 'github';

/** Trusted roots are a few KiB; this is far above any real one. */
export const TRUSTED_ROOT_SIZE_LIMIT = 1024 * 1024;

export const INSTANCE_THRESHOLDS: Readonly<
  Record<SigstoreInstance, Required<Omit<VerifierOptions, 'tsaThreshold'>>>
> = {
  'public-good': { tlogThreshold: 1, ctlogThreshold: 1, timestampThreshold: 1 },
  github: { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 1 },
};

export interface SigstoreTrust {
  instance: SigstoreInstance;
  material: TrustMaterial;
  thresholds: VerifierOptions;
  /** Where the root came from, for messages: a file path or a TUF mirror. */
  origin: string;
}

function trustFrom(root: TrustedRoot, instance: SigstoreInstance, origin: string): SigstoreTrust {
  if (root.certificateAuthorities.length === 0)
    throw new TrustRootError(`trusted root ${origin} has no certificate authority`);
  const thresholds = INSTANCE_THRESHOLDS[instance];
  if (thresholds.timestampThreshold > 0 && root.tlogs.length === 0 && root.timestampAuthorities.length === 0)
    throw new TrustRootError(
      `trusted root ${origin} has neither a transparency log nor a timestamp authority`,
    );
  return { instance, material: toTrustMaterial(root), thresholds: { ...thresholds }, origin };
}

/** A trusted_root.json file (the protobuf JSON form). */
export async function trustFromFile(path: string, instance: SigstoreInstance): Promise<SigstoreTrust> {
  let root: TrustedRoot;
  try {
    const { size } = await stat(path);
    if (size > TRUSTED_ROOT_SIZE_LIMIT)
      throw new TrustRootError(`${size} bytes, over the ${TRUSTED_ROOT_SIZE_LIMIT}-byte limit`);
    root = TrustedRoot.fromJSON(JSON.parse(await readFile(path, 'utf8')));
  } catch (cause) {
    throw new TrustRootError(`trusted root ${path} cannot be read`, { cause });
  }
  return trustFrom(root, instance, path);
}

export interface TufOptions {
  /** Default Sigstore's public-good repository. */
  mirrorUrl?: string;
  /** The initial root.json; default the one @sigstore/tuf ships for the public-good mirror. */
  rootPath?: string;
  /** Where TUF metadata and targets are cached between runs. */
  cachePath?: string;
  timeoutMs?: number;
}

/** The public-good trusted root, refreshed through TUF. */
export async function trustFromTuf(options: TufOptions = {}): Promise<SigstoreTrust> {
  const origin = options.mirrorUrl ?? 'https://tuf-repo-cdn.sigstore.dev';
  let root: TrustedRoot;
  try {
    root = await getTrustedRoot({
      ...(options.mirrorUrl ? { mirrorURL: options.mirrorUrl } : {}),
      ...(options.rootPath ? { rootPath: options.rootPath } : {}),
      ...(options.cachePath ? { cachePath: options.cachePath } : {}),
      timeout: options.timeoutMs ?? 10_000,
    });
  } catch (cause) {
    throw new TrustRootError(`the Sigstore trusted root cannot be fetched through TUF from ${origin}`, {
      cause,
    });
  }
  return trustFrom(root, 'public-good', origin);
}
