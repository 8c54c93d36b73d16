/**
 * What a Fulcio certificate says about the workflow that signed: the extensions of
 * https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md. For a GitHub Actions token
 * Fulcio copies them from the token's claims (repository, ref, sha, workflow_ref, run, ...), and
 * the Subject Alternative Name is the job's workflow `https://github.com/<job_workflow_ref>`.
 */
import { ASN1Obj, X509Certificate } from '@sigstore/core';

/** OID 1.3.6.1.4.1.57264.1.1: the issuer, raw bytes (deprecated, still written). */
export const OID_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';

/** The extensions from 1.3.6.1.4.1.57264.1.8 on hold a DER UTF8String each. */
export const FULCIO_OIDS = {
  issuer: '1.3.6.1.4.1.57264.1.8',
  buildSignerUri: '1.3.6.1.4.1.57264.1.9',
  buildSignerDigest: '1.3.6.1.4.1.57264.1.10',
  runnerEnvironment: '1.3.6.1.4.1.57264.1.11',
  sourceRepositoryUri: '1.3.6.1.4.1.57264.1.12',
  sourceRepositoryDigest: '1.3.6.1.4.1.57264.1.13',
  sourceRepositoryRef: '1.3.6.1.4.1.57264.1.14',
  sourceRepositoryIdentifier: '1.3.6.1.4.1.57264.1.15',
  sourceRepositoryOwnerUri: '1.3.6.1.4.1.57264.1.16',
  sourceRepositoryOwnerIdentifier: '1.3.6.1.4.1.57264.1.17',
  buildConfigUri: '1.3.6.1.4.1.57264.1.18',
  buildConfigDigest: '1.3.6.1.4.1.57264.1.19',
  buildTrigger: '1.3.6.1.4.1.57264.1.20',
  runInvocationUri: '1.3.6.1.4.1.57264.1.21',
  sourceRepositoryVisibility: '1.3.6.1.4.1.57264.1.22',
} as const;

export type FulcioClaimName = keyof typeof FULCIO_OIDS;

export type FulcioClaims = Partial<Record<FulcioClaimName, string>> & {
  /** The certificate's Subject Alternative Name (URI or e-mail). */
  subjectAlternativeName?: string;
};

const UTF8_STRING_TAG = 0x0c;

function utf8Extension(cert: X509Certificate, oid: string): string | undefined {
  const ext = cert.extension(oid);
  if (!ext) return undefined;
  const inner = ext.valueObj.subs[0] ?? ASN1Obj.parseBuffer(ext.value as Buffer<ArrayBuffer>);
  if (inner.tag.number !== UTF8_STRING_TAG || inner.tag.constructed)
    throw new TypeError(`certificate extension ${oid} is not a UTF8String`);
  return inner.value.toString('utf8');
}

export interface SigningCertificate {
  claims: FulcioClaims;
  /** When Fulcio issued it: the signing time. */
  notBefore: Date;
}

/** The Fulcio claims of a certificate (DER bytes). */
export function readSigningCertificate(der: Uint8Array): SigningCertificate {
  const cert = X509Certificate.parse(Buffer.from(der));
  const claims: FulcioClaims = {};
  for (const [name, oid] of Object.entries(FULCIO_OIDS) as [FulcioClaimName, string][]) {
    const value = utf8Extension(cert, oid);
    if (value !== undefined) claims[name] = value;
  }
  if (claims.issuer === undefined) {
    const legacy = cert.extension(OID_ISSUER_V1);
    if (legacy) claims.issuer = legacy.value.toString('utf8');
  }
  const san = cert.subjectAltName;
  if (san !== undefined) claims.subjectAlternativeName = san;
  return { claims, notBefore: cert.notBefore };
}
