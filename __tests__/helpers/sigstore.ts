/**
 * A loopback Sigstore instance for tests: Fulcio, Rekor and a timestamp authority on one HTTP
 * server, and the trusted_root.json that trusts exactly them. The certificate authority, the
 * transparency logs and the TSA are @sigstore/mock's (sigstore-js's own stand-ins, the ones its
 * client tests run against); they are served here on a real port instead of through nock, so
 * the real `@sigstore/sign` client talks HTTP to them, with only the URLs changed.
 *
 * What real Fulcio does and @sigstore/mock leaves out, done here in front of its handler
 * (https://github.com/sigstore/fulcio/blob/main/docs/how-certificate-issuing-works.md):
 * - the OIDC token's signature is verified with its issuer's key (unknown issuer: 401), and its
 *   audience (`sigstore`) and expiry are checked;
 * - the proof of possession (the `sub` claim signed with the key to certify) is verified;
 * - for a GitHub Actions token the Subject Alternative Name is `https://github.com/` +
 *   `job_workflow_ref`, as Fulcio's GitHub principal sets it (the mock takes any one claim as
 *   is, so the token passed on carries that URI in a claim of its own).
 *
 * The mock is loaded by its module paths, not its index: the index loads nock, which replaces
 * Node's HTTP client in the whole worker.
 *
 * Likewise for Rekor: a `dsse` v0.0.1 entry is proposed as the envelope and its verifiers, and
 * Rekor stores (and signs) its canonical form, the hashes of envelope and payload and the
 * signatures with their verifiers (rekor pkg/types/dsse/v0.0.1); the mock logs what it is sent,
 * so that form is made here first.
 */
import { createHash, createPublicKey, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fulcioHandler, initializeCA, initializeCTLog } from '@sigstore/mock/dist/fulcio/index.js';
import { initializeTLog, rekorHandler } from '@sigstore/mock/dist/rekor/index.js';
import type { Handler } from '@sigstore/mock/dist/shared.types.js';
import { initializeTSA, tsaHandler } from '@sigstore/mock/dist/timestamp/index.js';
import type { SigstoreEndpoints } from '../../src/identity/publish-attestation.js';

export interface SigstoreStandInOptions {
  /** OIDC issuers Fulcio accepts tokens of, with the key their tokens are signed by. */
  issuers: Record<string, KeyObject>;
  /** Default true: a Rekor log (the public-good shape). */
  rekor?: boolean;
  /** Default false: an RFC 3161 timestamp authority (GitHub's shape, with rekor: false). */
  tsa?: boolean;
  /** Certificates are issued as of this time (default now); their validity is 10 minutes. */
  caClock?: Date;
}

export interface SigstoreStandIn {
  readonly url: string;
  readonly endpoints: SigstoreEndpoints;
  /** trusted_root.json (protobuf JSON) trusting this instance's CA, logs and TSA. */
  readonly trustedRoot: Record<string, unknown>;
  writeTrustedRoot(path: string): Promise<string>;
  /** Every request served: path and status. */
  readonly requests: { path: string; status: number }[];
  close(): Promise<void>;
}

const FULCIO_PATH = '/api/v2/signingCert';
const SAN_CLAIM = 'x_fulcio_subject';

function bytes(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

function ecKeyPair(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

type Answer = { statusCode: number; response: string | ArrayBufferView; contentType?: string };

/** Checks the token and the proof of possession as Fulcio does, then lets the mock CA issue. */
function fulcioFront(mock: Handler, issuers: Record<string, KeyObject>) {
  return async (body: string): Promise<Answer> => {
    const request = JSON.parse(body) as {
      credentials?: { oidcIdentityToken?: string };
      publicKeyRequest?: { publicKey?: { content?: string }; proofOfPossession?: string };
    };
    const jwt = request.credentials?.oidcIdentityToken ?? '';
    const [header = '', payload = '', signature = ''] = jwt.split('.');
    let claims: Record<string, unknown>;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      return { statusCode: 400, response: 'malformed identity token' };
    }
    const key = typeof claims.iss === 'string' ? issuers[claims.iss] : undefined;
    if (!key) return { statusCode: 401, response: `untrusted issuer ${String(claims.iss)}` };
    if (!verify('sha256', Buffer.from(`${header}.${payload}`), key, Buffer.from(signature, 'base64url')))
      return { statusCode: 401, response: 'identity token signature does not verify' };
    const audience = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audience.includes('sigstore')) return { statusCode: 401, response: 'audience is not sigstore' };
    if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now())
      return { statusCode: 401, response: 'identity token expired' };
    const pem = request.publicKeyRequest?.publicKey?.content ?? '';
    const proof = Buffer.from(request.publicKeyRequest?.proofOfPossession ?? '', 'base64');
    if (!verify('sha256', Buffer.from(String(claims.sub)), createPublicKey(pem), proof))
      return { statusCode: 400, response: 'proof of possession does not verify' };
    const san =
      typeof claims.job_workflow_ref === 'string'
        ? `https://github.com/${claims.job_workflow_ref}`
        : String(claims.sub);
    // The mock reads claims without verifying; hand it the verified ones plus the subject URI.
    const forwarded = `${header}.${Buffer.from(JSON.stringify({ ...claims, [SAN_CLAIM]: san })).toString('base64url')}.`;
    return mock.fn(JSON.stringify({ ...request, credentials: { oidcIdentityToken: forwarded } }));
  };
}

/** Rekor's canonical body of a proposed dsse v0.0.1 entry; other kinds are logged as sent. */
function rekorFront(mock: Handler) {
  return (body: string): Promise<Answer> => {
    const entry = JSON.parse(body) as {
      kind?: string;
      apiVersion?: string;
      spec?: { proposedContent?: { envelope?: string; verifiers?: string[] } };
    };
    const proposed = entry.spec?.proposedContent;
    if (entry.kind !== 'dsse' || !proposed?.envelope) return mock.fn(body);
    const envelope = JSON.parse(proposed.envelope) as { payload: string; signatures: { sig: string }[] };
    const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
    const canonical = {
      apiVersion: entry.apiVersion,
      kind: 'dsse',
      spec: {
        envelopeHash: { algorithm: 'sha256', value: sha256(Buffer.from(proposed.envelope)) },
        payloadHash: { algorithm: 'sha256', value: sha256(Buffer.from(envelope.payload, 'base64')) },
        signatures: envelope.signatures.map((s, i) => ({
          signature: s.sig,
          verifier: proposed.verifiers?.[i],
        })),
      },
    };
    return mock.fn(JSON.stringify(canonical));
  };
}

export async function startSigstore(options: SigstoreStandInOptions): Promise<SigstoreStandIn> {
  const requests: { path: string; status: number }[] = [];
  const routes = new Map<string, (body: string) => Promise<Answer>>();
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://stand-in').pathname;
    void readBody(req)
      .then((body) => {
        const route = req.method === 'POST' ? routes.get(path) : undefined;
        return route ? route(body) : { statusCode: 404, response: 'not found' };
      })
      .catch((err: unknown) => ({ statusCode: 500, response: String(err) }))
      .then((answer: Answer) => {
        requests.push({ path, status: answer.statusCode });
        const out = typeof answer.response === 'string' ? answer.response : bytes(answer.response);
        res.writeHead(answer.statusCode, { 'content-type': answer.contentType ?? 'text/plain' }).end(out);
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const start = new Date(Date.now() - 24 * 3600_000).toISOString();

  const caKeys = ecKeyPair();
  const ctlog = await initializeCTLog(caKeys);
  const ca = await initializeCA(caKeys, ctlog, options.caClock);
  routes.set(FULCIO_PATH, fulcioFront(fulcioHandler(ca, { subjectClaim: SAN_CLAIM }), options.issuers));
  const root: Record<string, unknown> = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    certificateAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
        uri: url,
        certChain: { certificates: [{ rawBytes: bytes(ca.rootCertificate).toString('base64') }] },
        validFor: { start },
      },
    ],
    ctlogs: [
      {
        baseUrl: url,
        hashAlgorithm: 'SHA2_256',
        publicKey: {
          rawBytes: ctlog.publicKey.toString('base64'),
          keyDetails: 'PKIX_ECDSA_P256_SHA_256',
          validFor: { start },
        },
        logId: { keyId: bytes(ctlog.logID).toString('base64') },
      },
    ],
    tlogs: [],
    timestampAuthorities: [],
  };
  const endpoints: SigstoreEndpoints = { fulcioUrl: url };

  if (options.rekor ?? true) {
    const tlogKeys = ecKeyPair();
    const tlog = await initializeTLog(url, tlogKeys);
    const handler = rekorHandler(tlog);
    routes.set(handler.path, rekorFront(handler));
    const spki = tlogKeys.publicKey.export({ format: 'der', type: 'spki' });
    root.tlogs = [
      {
        baseUrl: url,
        hashAlgorithm: 'SHA2_256',
        publicKey: {
          rawBytes: spki.toString('base64'),
          keyDetails: 'PKIX_ECDSA_P256_SHA_256',
          validFor: { start },
        },
        logId: { keyId: createHash('sha256').update(spki).digest('base64') },
      },
    ];
    endpoints.rekorUrl = url;
  }
  if (options.tsa ?? false) {
    const tsa = await initializeTSA(ecKeyPair());
    // The mock writes genTime as asn1js does, with the trailing zeros of the milliseconds cut
    // ("…05.12Z"); @sigstore/core reads only three digits or none, so one timestamp in ten
    // would not parse ("invalid time"). A millisecond that ends in 0 is moved on by one.
    (tsa as unknown as { getCurrentTime: () => Date }).getCurrentTime = () => {
      const now = new Date();
      const ms = now.getUTCMilliseconds();
      if (ms !== 0 && ms % 10 === 0) now.setUTCMilliseconds(ms + 1);
      return now;
    };
    const handler = tsaHandler(tsa);
    routes.set(handler.path, handler.fn);
    root.timestampAuthorities = [
      {
        subject: { organization: 'sigstore.mock', commonName: 'tsa' },
        uri: url,
        certChain: {
          certificates: [
            { rawBytes: bytes(tsa.intCertificate).toString('base64') },
            { rawBytes: bytes(tsa.rootCertificate).toString('base64') },
          ],
        },
        validFor: { start },
      },
    ];
    endpoints.tsaUrl = url;
  }

  return {
    url,
    endpoints,
    trustedRoot: root,
    requests,
    async writeTrustedRoot(path) {
      await writeFile(path, JSON.stringify(root, null, 2));
      return path;
    },
    close: () =>
      new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}
