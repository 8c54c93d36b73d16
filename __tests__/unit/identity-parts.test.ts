/**
 * The pieces around signing and verifying: the CEP 27 statement's constraints, which Sigstore
 * instance a repository signs with (as @actions/attest chooses), and where the trusted root comes
 * from (a file, or TUF: here a loopback TUF repository serving a stand-in's root).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TrustRootError } from '../../src/identity/errors.js';
import { githubActionsIdToken } from '../../src/identity/github-oidc.js';
import {
  PUBLIC_GOOD_SIGSTORE,
  publishStatement,
  signPublishAttestation,
  sigstoreForVisibility,
} from '../../src/identity/publish-attestation.js';
import { trustFromFile, trustFromTuf } from '../../src/identity/trust.js';
import { GITHUB_ACTIONS_ISSUER, verifyPublishAttestation } from '../../src/identity/verify.js';
import { startGitHubOidc, type GitHubOidcStandIn } from '../helpers/github-oidc.js';
import { startSigstore, type SigstoreStandIn } from '../helpers/sigstore.js';
import { startTufRepository, type TufRepository } from '../helpers/tuf-repository.js';

const SHA = 'ab'.repeat(32);

describe('the CEP 27 statement', () => {
  test('has one subject, the file name and sha256, and the target channel', () => {
    expect(
      publishStatement({
        fileName: 'x-1-0.tar.bz2',
        sha256: SHA,
        targetChannel: 'https://prefix.dev/conda-forge',
      }),
    ).toEqual({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'x-1-0.tar.bz2', digest: { sha256: SHA } }],
      predicateType: 'https://schemas.conda.org/attestations-publish-1.schema.json',
      predicate: { targetChannel: 'https://prefix.dev/conda-forge' },
    });
  });

  test.each([
    [{ fileName: 'numpy.whl' }, /not a conda artifact file name/],
    [{ fileName: 'linux-64/numpy-1-0.conda' }, /not a conda artifact file name/],
    [{ fileName: 'numpy-1.conda' }, /not a conda artifact file name/],
    [{ sha256: SHA.toUpperCase() }, /not a lower-case hex sha256/],
    [{ sha256: SHA.slice(2) }, /not a lower-case hex sha256/],
    [{ targetChannel: 'oci://ghcr.io/channel-mirrors/conda-forge/' }, /without a trailing slash/],
    [{ targetChannel: 'conda-forge' }, /not a URL/],
  ])('refuses %o', (change, message) => {
    const publication = {
      fileName: 'numpy-2-0.conda',
      sha256: SHA,
      targetChannel: 'oci://ghcr.io/x/y',
      ...change,
    };
    expect(() => publishStatement(publication)).toThrow(message);
  });
});

describe('the Sigstore instance a repository signs with', () => {
  test.each([
    ['public', undefined, PUBLIC_GOOD_SIGSTORE],
    [
      'private',
      undefined,
      { fulcioUrl: 'https://fulcio.githubapp.com', tsaUrl: 'https://timestamp.githubapp.com' },
    ],
    [
      'internal',
      undefined,
      { fulcioUrl: 'https://fulcio.githubapp.com', tsaUrl: 'https://timestamp.githubapp.com' },
    ],
    [
      undefined,
      undefined,
      { fulcioUrl: 'https://fulcio.githubapp.com', tsaUrl: 'https://timestamp.githubapp.com' },
    ],
    [
      'private',
      'https://example.ghe.com',
      { fulcioUrl: 'https://fulcio.example.ghe.com', tsaUrl: 'https://timestamp.example.ghe.com' },
    ],
  ])('%s (%s)', (visibility, server, endpoints) => {
    expect(sigstoreForVisibility(visibility, server)).toEqual(endpoints);
  });
});

describe('where the trusted root comes from', () => {
  let dir: string;
  let oidc: GitHubOidcStandIn;
  let sigstore: SigstoreStandIn;
  let tuf: TufRepository;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'conda-oci-trust-'));
    oidc = await startGitHubOidc();
    sigstore = await startSigstore({ issuers: { [GITHUB_ACTIONS_ISSUER]: oidc.publicKey } });
    tuf = await startTufRepository({
      'trusted_root.json': Buffer.from(JSON.stringify(sigstore.trustedRoot)),
    });
  });
  afterAll(async () => {
    await tuf?.close();
    await sigstore?.close();
    await oidc?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('through TUF, and a bundle verifies against it', async () => {
    const trust = await trustFromTuf({
      mirrorUrl: tuf.url,
      rootPath: tuf.rootPath,
      cachePath: join(dir, 'tuf'),
    });
    expect(trust).toMatchObject({ instance: 'public-good', origin: tuf.url });
    const run = oidc.run({ repository: 'conda-forge/numpy-feedstock' });
    const publication = { fileName: 'numpy-2-0.conda', sha256: SHA, targetChannel: 'oci://ghcr.io/x/y' };
    const bundle = await signPublishAttestation(publication, {
      endpoints: sigstore.endpoints,
      identity: githubActionsIdToken({ requestUrl: run.requestUrl, requestToken: run.requestToken }),
    });
    expect(
      verifyPublishAttestation(bundle, publication, { organizations: ['conda-forge'] }, trust).feedstock,
    ).toBe('numpy-feedstock');
  });

  test('a TUF mirror that cannot be reached is a TrustRootError naming it', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });
    const mirrorUrl = `http://127.0.0.1:${port}`;
    const err = await trustFromTuf({
      mirrorUrl,
      rootPath: tuf.rootPath,
      cachePath: join(dir, 'tuf-gone'),
      timeoutMs: 2000,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrustRootError);
    expect((err as Error).message).toContain(mirrorUrl);
  });

  test.each([
    ['a missing file', undefined, /cannot be read/],
    ['not JSON', '{', /cannot be read/],
    [
      'a root with no certificate authority',
      JSON.stringify({ mediaType: 'x', tlogs: [] }),
      /has no certificate authority/,
    ],
  ])('%s is a TrustRootError', async (_, content, message) => {
    const path = join(dir, `root-${Math.random()}.json`);
    if (content !== undefined) await writeFile(path, content);
    await expect(trustFromFile(path, 'public-good')).rejects.toThrow(message);
    await expect(trustFromFile(path, 'public-good')).rejects.toBeInstanceOf(TrustRootError);
  });
});
