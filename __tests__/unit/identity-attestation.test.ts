/**
 * CEP 27 publish attestations end to end, offline: the real `@sigstore/sign` client signs
 * against loopback Fulcio, Rekor and timestamp authority stand-ins (helpers/sigstore.ts, built on
 * @sigstore/mock) with GitHub-shaped OIDC tokens from a loopback token endpoint
 * (helpers/github-oidc.ts), and the real `@sigstore/verify` checks the bundles against a
 * trusted_root.json made for the test. Our modules run unchanged, with URLs and the trusted root
 * swapped. Each attack is its own test and asserts the check that refused it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SerializedBundle } from '@sigstore/bundle';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AttestationError, SigningError } from '../../src/identity/errors.js';
import { githubActionsIdToken } from '../../src/identity/github-oidc.js';
import {
  IN_TOTO_STATEMENT_V1,
  MEDIA_TYPE_SIGSTORE_BUNDLE_V03,
  PAYLOAD_TYPE_IN_TOTO,
  PREDICATE_TYPE_CONDA_PUBLISH,
  publishStatement,
  signPublishAttestation,
  signStatement,
  type Publication,
  type SignOptions,
} from '../../src/identity/publish-attestation.js';
import { trustFromFile, type SigstoreTrust } from '../../src/identity/trust.js';
import {
  GITHUB_ACTIONS_ISSUER,
  verifyPublishAttestation,
  type PublisherPolicy,
} from '../../src/identity/verify.js';
import { describeError } from '../../src/util/describe-error.js';
import { startGitHubOidc, type GitHubOidcStandIn, type WorkflowRun } from '../helpers/github-oidc.js';
import { registerTestSecret, testSecret } from '../helpers/secrets.js';
import { startSigstore, type SigstoreStandIn } from '../helpers/sigstore.js';

const OTHER_ISSUER = 'https://gitlab.com';
const CHANNEL = 'oci://ghcr.io/channel-mirrors/conda-forge';
const NUMPY: Publication = {
  fileName: 'numpy-2.1.0-py312h1234567_0.conda',
  sha256: '5f1c2ad4f6a2b3e9d0c1e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7',
  targetChannel: CHANNEL,
};
const NUMPY_FEEDSTOCK: WorkflowRun = {
  repository: 'conda-forge/numpy-feedstock',
  sha: 'c0ffee0000000000000000000000000000c0ffee',
  runId: '9876543210',
  runAttempt: '2',
};
const POLICY: PublisherPolicy = { organizations: ['conda-forge'], feedstocks: ['numpy'] };

let dir: string;
let oidc: GitHubOidcStandIn;
/** Public-good shape: Fulcio (with a CT log) and Rekor. */
let publicGood: SigstoreStandIn;
/** GitHub's shape: Fulcio and a timestamp authority, no transparency log. */
let github: SigstoreStandIn;
/** A second instance with keys of its own, which the trusted root does not know. */
let stranger: SigstoreStandIn;
/** A CA whose clock is an hour behind: its certificates expired before anything timestamps them. */
let lateCa: SigstoreStandIn;
let publicGoodTrust: SigstoreTrust;
let githubTrust: SigstoreTrust;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'conda-oci-identity-'));
  oidc = await startGitHubOidc();
  const issuers = { [GITHUB_ACTIONS_ISSUER]: oidc.publicKey, [OTHER_ISSUER]: oidc.publicKey };
  publicGood = await startSigstore({ issuers });
  github = await startSigstore({ issuers, rekor: false, tsa: true });
  stranger = await startSigstore({ issuers });
  lateCa = await startSigstore({ issuers, tsa: true, caClock: new Date(Date.now() - 3600_000) });
  publicGoodTrust = await trustFromFile(
    await publicGood.writeTrustedRoot(join(dir, 'public-good.json')),
    'public-good',
  );
  githubTrust = await trustFromFile(await github.writeTrustedRoot(join(dir, 'github.json')), 'github');
});

afterAll(async () => {
  for (const s of [publicGood, github, stranger, lateCa]) await s?.close();
  await oidc?.close();
  await rm(dir, { recursive: true, force: true });
});

function signer(run: WorkflowRun, instance: SigstoreStandIn = publicGood): SignOptions {
  const issued = oidc.run(run);
  return {
    endpoints: instance.endpoints,
    identity: githubActionsIdToken({ requestUrl: issued.requestUrl, requestToken: issued.requestToken }),
    retries: 0,
  };
}

function sign(run: WorkflowRun, publication: Publication = NUMPY, instance?: SigstoreStandIn) {
  return signPublishAttestation(publication, signer(run, instance));
}

/** The AttestationError `verify` throws (fails the test if it does not throw one). */
function refusal(verify: () => unknown): AttestationError {
  try {
    verify();
  } catch (err) {
    expect(err).toBeInstanceOf(AttestationError);
    return err as AttestationError;
  }
  throw new Error('the attestation was accepted');
}

function statementOf(bundle: SerializedBundle): unknown {
  const envelope = (bundle as { dsseEnvelope: { payload: string; payloadType: string } }).dsseEnvelope;
  return JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8'));
}

describe('the honest flow', () => {
  test('a feedstock signs on public-good (Fulcio + Rekor) and the gate learns exactly who published', async () => {
    const bundle = await sign(NUMPY_FEEDSTOCK);
    expect(bundle.mediaType).toBe(MEDIA_TYPE_SIGSTORE_BUNDLE_V03);
    expect(statementOf(bundle)).toEqual({
      _type: IN_TOTO_STATEMENT_V1,
      subject: [{ name: NUMPY.fileName, digest: { sha256: NUMPY.sha256 } }],
      predicateType: PREDICATE_TYPE_CONDA_PUBLISH,
      predicate: { targetChannel: CHANNEL },
    });
    expect((bundle as { dsseEnvelope: { payloadType: string } }).dsseEnvelope.payloadType).toBe(
      PAYLOAD_TYPE_IN_TOTO,
    );
    expect(bundle.verificationMaterial.tlogEntries).toHaveLength(1);

    const identity = verifyPublishAttestation(bundle, NUMPY, POLICY, publicGoodTrust);
    const repo = 'https://github.com/conda-forge/numpy-feedstock';
    expect(identity).toEqual({
      feedstock: 'numpy-feedstock',
      organization: 'conda-forge',
      repository: repo,
      workflowRef: `${repo}/.github/workflows/conda-build.yml@refs/heads/main`,
      ref: 'refs/heads/main',
      commitSha: 'c0ffee0000000000000000000000000000c0ffee',
      run: `${repo}/actions/runs/9876543210/attempts/2`,
      issuer: GITHUB_ACTIONS_ISSUER,
      subjectAlternativeName: `${repo}/.github/workflows/conda-build.yml@refs/heads/main`,
      signedAt: expect.any(String) as string,
    });
    expect(Math.abs(Date.parse(identity.signedAt) - Date.now())).toBeLessThan(120_000);
    // The stored bytes verify as the parsed JSON does.
    expect(
      verifyPublishAttestation(Buffer.from(JSON.stringify(bundle)), NUMPY, POLICY, publicGoodTrust),
    ).toEqual(identity);
  });

  test("a private feedstock signs on GitHub's shape (Fulcio + timestamp authority, no log)", async () => {
    const bundle = await sign({ ...NUMPY_FEEDSTOCK, visibility: 'private' }, NUMPY, github);
    expect(bundle.verificationMaterial.tlogEntries ?? []).toHaveLength(0);
    expect(bundle.verificationMaterial.timestampVerificationData?.rfc3161Timestamps).toHaveLength(1);
    expect(verifyPublishAttestation(bundle, NUMPY, POLICY, githubTrust).feedstock).toBe('numpy-feedstock');
  });

  test('with no owners given, any feedstock of an allowed organization is named', async () => {
    const bundle = await sign({ ...NUMPY_FEEDSTOCK, repository: 'conda-forge/scipy-feedstock' });
    const identity = verifyPublishAttestation(
      bundle,
      NUMPY,
      { organizations: ['Conda-Forge'] },
      publicGoodTrust,
    );
    expect(identity.feedstock).toBe('scipy-feedstock');
  });
});

describe('refused: who signed', () => {
  test("another feedstock's attestation for this package (the owners say numpy)", async () => {
    const bundle = await sign({ ...NUMPY_FEEDSTOCK, repository: 'conda-forge/scipy-feedstock' });
    const err = refusal(() => verifyPublishAttestation(bundle, NUMPY, POLICY, publicGoodTrust));
    expect(err.check).toBe('feedstock');
    expect(err.expected).toBe('numpy-feedstock');
    expect(err.found).toBe('scipy-feedstock (https://github.com/conda-forge/scipy-feedstock)');
    expect(err.message).toContain('expected numpy-feedstock, found scipy-feedstock');
  });

  test('a same-named feedstock in an organization the policy does not allow', async () => {
    const bundle = await sign({ ...NUMPY_FEEDSTOCK, repository: 'conda-f0rge/numpy-feedstock' });
    const err = refusal(() => verifyPublishAttestation(bundle, NUMPY, POLICY, publicGoodTrust));
    expect(err.check).toBe('organization');
    expect(err.found).toBe('organization "conda-f0rge"');
  });

  test('a repository of the organization that is not a feedstock', async () => {
    const bundle = await sign({ ...NUMPY_FEEDSTOCK, repository: 'conda-forge/admin-requests' });
    const err = refusal(() =>
      verifyPublishAttestation(bundle, NUMPY, { organizations: ['conda-forge'] }, publicGoodTrust),
    );
    expect(err.check).toBe('feedstock');
    expect(err.found).toBe('"admin-requests"');
  });

  test("a pull request's merge ref (unreviewed code) under the default refs", async () => {
    const bundle = await sign({ ...NUMPY_FEEDSTOCK, ref: 'refs/pull/12/merge', eventName: 'pull_request' });
    const err = refusal(() => verifyPublishAttestation(bundle, NUMPY, POLICY, publicGoodTrust));
    expect(err.check).toBe('ref');
    expect(err.expected).toBe('refs/heads/*');
    expect(err.found).toBe('"refs/pull/12/merge"');
  });

  test('a workflow file other than the ones the policy names', async () => {
    const bundle = await sign({ ...NUMPY_FEEDSTOCK, workflowPath: '.github/workflows/scratch.yml' });
    const policy = { ...POLICY, workflows: ['.github/workflows/conda-build.yml'] };
    const err = refusal(() => verifyPublishAttestation(bundle, NUMPY, policy, publicGoodTrust));
    expect(err.check).toBe('workflow');
    expect(err.found).toBe('".github/workflows/scratch.yml"');
    // The same bundle passes a policy that allows its workflow, and a maintenance branch.
    const allowed = {
      ...POLICY,
      workflows: ['.github/workflows/scratch.yml'],
      refs: ['refs/heads/main', 'refs/heads/v*'],
    };
    expect(verifyPublishAttestation(bundle, NUMPY, allowed, publicGoodTrust).workflowRef).toMatch(
      /scratch\.yml@refs\/heads\/main$/,
    );
  });

  test('a token of another OIDC issuer (Fulcio certifies it; the policy does not)', async () => {
    const bundle = await sign({ ...NUMPY_FEEDSTOCK, issuer: OTHER_ISSUER });
    const err = refusal(() => verifyPublishAttestation(bundle, NUMPY, POLICY, publicGoodTrust));
    expect(err.check).toBe('issuer');
    expect(err.expected).toBe(JSON.stringify(GITHUB_ACTIONS_ISSUER));
    expect(err.found).toBe(JSON.stringify(OTHER_ISSUER));
  });
});

describe('refused: what was signed', () => {
  test('a bundle for another digest', async () => {
    const bundle = await sign(NUMPY_FEEDSTOCK, { ...NUMPY, sha256: 'e'.repeat(64) });
    const err = refusal(() => verifyPublishAttestation(bundle, NUMPY, POLICY, publicGoodTrust));
    expect(err.check).toBe('subject');
    expect(err.message).toContain(
      `expected {"sha256":"${NUMPY.sha256}"}, found {"sha256":"${'e'.repeat(64)}"}`,
    );
  });

  test('a bundle replayed for another artifact (same digest, other file name)', async () => {
    const bundle = await sign(NUMPY_FEEDSTOCK);
    const other = { ...NUMPY, fileName: 'numpy-2.1.0-py313h1234567_0.conda' };
    const err = refusal(() => verifyPublishAttestation(bundle, other, POLICY, publicGoodTrust));
    expect(err.check).toBe('subject');
    expect(err.expected).toBe(JSON.stringify(other.fileName));
    expect(err.found).toBe(JSON.stringify(NUMPY.fileName));
  });

  test('a bundle for another target channel', async () => {
    const bundle = await sign(NUMPY_FEEDSTOCK, {
      ...NUMPY,
      targetChannel: 'oci://ghcr.io/cf-staging/conda-forge',
    });
    const err = refusal(() => verifyPublishAttestation(bundle, NUMPY, POLICY, publicGoodTrust));
    expect(err.check).toBe('target-channel');
    expect(err.found).toBe('"oci://ghcr.io/cf-staging/conda-forge"');
  });

  test('a signed statement whose predicateType is not CEP 27 (a SLSA provenance for the same file)', async () => {
    const bundle = await signStatement(
      {
        _type: IN_TOTO_STATEMENT_V1,
        subject: [{ name: NUMPY.fileName, digest: { sha256: NUMPY.sha256 } }],
        predicateType: 'https://slsa.dev/provenance/v1',
        predicate: { targetChannel: CHANNEL },
      },
      signer(NUMPY_FEEDSTOCK),
    );
    const err = refusal(() => verifyPublishAttestation(bundle, NUMPY, POLICY, publicGoodTrust));
    expect(err.check).toBe('predicate-type');
    expect(err.found).toBe('"https://slsa.dev/provenance/v1"');
  });

  test('a statement edited after signing (another digest put in, signature kept)', async () => {
    const bundle = await sign(NUMPY_FEEDSTOCK, { ...NUMPY, sha256: 'e'.repeat(64) });
    const edited = structuredClone(bundle) as SerializedBundle & { dsseEnvelope: { payload: string } };
    edited.dsseEnvelope.payload = Buffer.from(JSON.stringify(publishStatement(NUMPY))).toString('base64');
    const err = refusal(() => verifyPublishAttestation(edited, NUMPY, POLICY, publicGoodTrust));
    expect(err.check).toBe('signature');
  });
});

describe('refused: the Sigstore checks', () => {
  test('a certificate from a CA the trusted root does not hold', async () => {
    const bundle = await sign(NUMPY_FEEDSTOCK, NUMPY, stranger);
    const err = refusal(() => verifyPublishAttestation(bundle, NUMPY, POLICY, publicGoodTrust));
    expect(err.check).toBe('signature');
    expect((err.cause as { code?: string }).code).toBe('CERTIFICATE_ERROR');
    // With its own root the same bundle verifies: the refusal is about trust, not the bundle.
    const own = await trustFromFile(
      await stranger.writeTrustedRoot(join(dir, 'stranger.json')),
      'public-good',
    );
    expect(verifyPublishAttestation(bundle, NUMPY, POLICY, own).feedstock).toBe('numpy-feedstock');
  });

  test('an expired certificate: no trusted timestamp falls within its validity', async () => {
    const bundle = await sign(NUMPY_FEEDSTOCK, NUMPY, lateCa);
    const trust = await trustFromFile(await lateCa.writeTrustedRoot(join(dir, 'late.json')), 'public-good');
    const err = refusal(() => verifyPublishAttestation(bundle, NUMPY, POLICY, trust));
    expect(err.check).toBe('signature');
    expect(describeError(err)).toContain('certificate is not valid or expired at the specified date');
    expect((err.cause as { code?: string }).code).toBe('CERTIFICATE_ERROR');
  });

  test("a GitHub-shaped bundle (no log entry) under public-good's thresholds", async () => {
    const bundle = await sign(NUMPY_FEEDSTOCK, NUMPY, github);
    const trust = await trustFromFile(join(dir, 'github.json'), 'public-good');
    const err = refusal(() => verifyPublishAttestation(bundle, NUMPY, POLICY, trust));
    expect(err.check).toBe('signature');
  });

  test.each([
    ['not JSON', Buffer.from('{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"'), 'bundle'],
    ['a v0.2 bundle', { mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.2' }, 'bundle'],
    ['over the size limit', Buffer.alloc(1024 * 1024 + 1, 0x20), 'bundle'],
    ['a v0.3 bundle missing its parts', { mediaType: MEDIA_TYPE_SIGSTORE_BUNDLE_V03 }, 'bundle'],
  ])('a bundle that is %s', (_, input, check) => {
    expect(refusal(() => verifyPublishAttestation(input, NUMPY, POLICY, publicGoodTrust)).check).toBe(check);
  });
});

describe('tokens stay secret', () => {
  test('an unparsable OIDC token is not quoted in the signing error (@sigstore/sign quotes it)', async () => {
    const token = testSecret('not-a-jwt');
    const err = await signPublishAttestation(NUMPY, {
      endpoints: publicGood.endpoints,
      identity: { getToken: () => Promise.resolve(token) },
      retries: 0,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SigningError);
    const text = `${describeError(err)} ${JSON.stringify(err)} ${String((err as Error).stack)}`;
    expect(text).toMatch(/invalid identity token: \*\*\*/);
    expect(text).not.toContain(token);
  });

  test('a refused token request says the status, never the request token', async () => {
    const run = oidc.run(NUMPY_FEEDSTOCK);
    const wrong = testSecret('wrong-request-token');
    const err = await githubActionsIdToken({ requestUrl: run.requestUrl, requestToken: wrong })
      .getToken()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SigningError);
    expect(describeError(err)).toBe('GitHub Actions OIDC token request answered 401');
  });

  test('the token source reads the variables a job with id-token: write has', async () => {
    const run = oidc.run(NUMPY_FEEDSTOCK);
    const env = {
      ACTIONS_ID_TOKEN_REQUEST_URL: run.requestUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: run.requestToken,
    };
    const jwt = await githubActionsIdToken({ env }).getToken();
    registerTestSecret(jwt);
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
    expect(claims).toMatchObject({
      aud: 'sigstore',
      repository: 'conda-forge/numpy-feedstock',
      iss: GITHUB_ACTIONS_ISSUER,
    });
    await expect(githubActionsIdToken({ env: {} }).getToken()).rejects.toThrow(/id-token: write/);
  });
});
