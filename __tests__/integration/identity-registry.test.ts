/**
 * A publish attestation stored next to a staged package in a real registry (Debian's
 * docker-registry), read back as the validate side will read it, and checked by a standard
 * verifier: sigstore-js's own CLI (`@sigstore/cli`, `sigstore verify`), which takes its trust
 * material only through TUF, here from a loopback TUF repository serving the test's
 * trusted_root.json. Everything runs offline on loopback.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildPackageArtifact } from '../../src/conda/artifact.js';
import { packageReference } from '../../src/conda/naming.js';
import { readPackageFile } from '../../src/conda/package-reader.js';
import { githubActionsIdToken } from '../../src/identity/github-oidc.js';
import {
  attestationArtifact,
  attestationLayer,
  bundleBytes,
  MEDIA_TYPE_SIGSTORE_BUNDLE_V03,
  PREDICATE_TYPE_CONDA_PUBLISH,
  signPublishAttestation,
} from '../../src/identity/publish-attestation.js';
import { trustFromFile, type SigstoreTrust } from '../../src/identity/trust.js';
import {
  BUNDLE_SIZE_LIMIT,
  GITHUB_ACTIONS_ISSUER,
  verifyPublishAttestation,
} from '../../src/identity/verify.js';
import { parseImageManifest, type Descriptor } from '../../src/oci/manifest.js';
import { EMPTY_JSON_DIGEST, MEDIA_TYPE_OCI_EMPTY } from '../../src/oci/media-types.js';
import { pushArtifact } from '../../src/oci/push.js';
import { listReferrers } from '../../src/oci/referrers.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import { fileSource } from '../../src/oci/storage.js';
import { fixturePath } from '../helpers/fixtures.js';
import { startGitHubOidc, type GitHubOidcStandIn } from '../helpers/github-oidc.js';
import { recordOutput, testSecret } from '../helpers/secrets.js';
import { startSigstore, type SigstoreStandIn } from '../helpers/sigstore.js';
import { startTufRepository, type TufRepository } from '../helpers/tuf-repository.js';
import { useRegistry } from '../helpers/registry.js';

const execFileAsync = promisify(execFile);
const SIGSTORE_CLI = join(
  dirname(createRequire(import.meta.url).resolve('@sigstore/cli/package.json')),
  'bin',
  'run',
);
const FILE = 'demo-pkg-1.2.3-h1234567_0.conda';
const SAN =
  'https://github.com/conda-forge/demo-pkg-feedstock/.github/workflows/conda-build.yml@refs/heads/main';

const USER = { username: 'demo-pkg-feedstock', password: testSecret('staging-password') };
const registry = useRegistry({ auth: 'htpasswd', users: [USER] });
let store: RemoteStore;
let dir: string;
let oidc: GitHubOidcStandIn;
let sigstore: SigstoreStandIn;
let tuf: TufRepository;
let trust: SigstoreTrust;

beforeAll(async () => {
  store = new RemoteStore({ host: registry.host, plainHttp: true, credentials: USER });
  dir = await mkdtemp(join(tmpdir(), 'conda-oci-identity-registry-'));
  oidc = await startGitHubOidc();
  sigstore = await startSigstore({ issuers: { [GITHUB_ACTIONS_ISSUER]: oidc.publicKey } });
  const rootPath = await sigstore.writeTrustedRoot(join(dir, 'trusted_root.json'));
  trust = await trustFromFile(rootPath, 'public-good');
  tuf = await startTufRepository({ 'trusted_root.json': Buffer.from(JSON.stringify(sigstore.trustedRoot)) });
});

afterAll(async () => {
  await store?.close();
  await tuf?.close();
  await sigstore?.close();
  await oidc?.close();
  await rm(dir, { recursive: true, force: true });
});

async function sigstoreCli(args: string[]) {
  const run = await execFileAsync(process.execPath, [SIGSTORE_CLI, ...args], { timeout: 60_000 }).then(
    (r) => ({ code: 0, ...r }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({
      code: err.code ?? -1,
      stdout: err.stdout ?? '',
      stderr: err.stderr ?? '',
    }),
  );
  recordOutput(`sigstore ${args[0]}`, `${run.stdout}\n${run.stderr}`);
  return run;
}

/** `sigstore verify` with the trust material from the loopback TUF repository. */
async function sigstoreVerify(bundlePath: string, identityUri: string) {
  return sigstoreCli([
    'verify',
    bundlePath,
    '--certificate-issuer',
    GITHUB_ACTIONS_ISSUER,
    '--certificate-identity-uri',
    identityUri,
    '--tuf-mirror-url',
    tuf.url,
    '--tuf-root-path',
    tuf.rootPath,
    '--tuf-cache-path',
    await mkdtemp(join(dir, 'tuf-cache-')),
  ]);
}

describe('an attestation beside a staged package', () => {
  let staged: Descriptor;
  let bytes: Uint8Array;
  let sha256: string;
  let ourReferrer: string;
  const channel = () => `oci://${registry.host}/prod/identity`;
  const repository = () => {
    const ref = packageReference('linux-64', 'demo-pkg', '1.2.3', 'h1234567_0');
    return { repo: store.repository(`staging/identity/${ref.repository}`), tag: ref.tag };
  };

  beforeAll(async () => {
    const path = fixturePath(FILE);
    const pkg = await readPackageFile(path);
    sha256 = pkg.sha256;
    const { repo, tag } = repository();
    staged = (await pushArtifact(repo, buildPackageArtifact(pkg, fileSource(path, pkg.size)), { tag }))
      .descriptor;

    const issued = oidc.run({ repository: 'conda-forge/demo-pkg-feedstock' });
    const bundle = await signPublishAttestation(
      { fileName: FILE, sha256, targetChannel: channel() },
      {
        endpoints: sigstore.endpoints,
        identity: githubActionsIdToken({ requestUrl: issued.requestUrl, requestToken: issued.requestToken }),
      },
    );
    bytes = bundleBytes(bundle);
    const attestation = attestationArtifact(bundle, staged);
    const pushed = await pushArtifact(repo, attestation, { subject: staged });
    expect(pushed.descriptor.digest).toBe(attestation.descriptor.digest);
    ourReferrer = pushed.descriptor.digest;
    // The same bundle always makes the same referrer.
    expect(attestationArtifact(bundle, staged).descriptor.digest).toBe(attestation.descriptor.digest);
  });

  test('is a referrer in the form GitHub attaches bundles, and its layer is the bundle', async () => {
    const { repo } = repository();
    const referrers = await listReferrers(repo, staged.digest, MEDIA_TYPE_SIGSTORE_BUNDLE_V03);
    expect(referrers).toHaveLength(1);
    const manifest = parseImageManifest((await repo.fetchManifest(referrers[0]!.digest)).bytes);
    expect(manifest).toEqual({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: MEDIA_TYPE_SIGSTORE_BUNDLE_V03,
      config: { mediaType: MEDIA_TYPE_OCI_EMPTY, digest: EMPTY_JSON_DIGEST, size: 2 },
      layers: [
        {
          mediaType: MEDIA_TYPE_SIGSTORE_BUNDLE_V03,
          digest: expect.stringMatching(/^sha256:/) as string,
          size: bytes.length,
        },
      ],
      subject: { mediaType: staged.mediaType, digest: staged.digest, size: staged.size },
      annotations: {
        'dev.sigstore.bundle.content': 'dsse-envelope',
        'dev.sigstore.bundle.predicateType': PREDICATE_TYPE_CONDA_PUBLISH,
        'org.opencontainers.image.created': expect.stringMatching(
          /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/,
        ) as string,
      },
    });
    const layer = attestationLayer(manifest)!;
    expect(Buffer.from(await repo.readBlob(layer, BUNDLE_SIZE_LIMIT))).toEqual(Buffer.from(bytes));
  });

  test("verifies for the staged package layer's file name and digest, naming the feedstock", async () => {
    const { repo, tag } = repository();
    const packageLayer = parseImageManifest((await repo.fetchManifest(tag)).bytes).layers[0]!;
    const [referrer] = await listReferrers(repo, staged.digest, MEDIA_TYPE_SIGSTORE_BUNDLE_V03);
    const layer = attestationLayer(parseImageManifest((await repo.fetchManifest(referrer!.digest)).bytes))!;
    const identity = verifyPublishAttestation(
      await repo.readBlob(layer, BUNDLE_SIZE_LIMIT),
      {
        fileName: packageLayer.annotations!['org.opencontainers.image.title']!,
        sha256: packageLayer.digest.slice('sha256:'.length),
        targetChannel: channel(),
      },
      { organizations: ['conda-forge'], feedstocks: ['demo-pkg'] },
      trust,
    );
    expect(identity).toMatchObject({ feedstock: 'demo-pkg-feedstock', subjectAlternativeName: SAN });
  });

  test("sigstore-js's CLI verifies the attached bundle against the test root (and refuses another identity)", async () => {
    const bundlePath = join(dir, 'bundle.sigstore.json');
    await writeFile(bundlePath, bytes);
    const ok = await sigstoreVerify(bundlePath, SAN);
    expect(ok.stderr).toContain('Verification succeeded');
    expect(ok.code).toBe(0);
    expect(tuf.requests).toEqual(expect.arrayContaining(['/timestamp.json', '/targets/trusted_root.json']));

    const other = await sigstoreVerify(bundlePath, SAN.replace('demo-pkg-feedstock', 'other-feedstock'));
    expect(other.code).not.toBe(0);
    expect(other.stderr).not.toContain('Verification succeeded');
    expect(other.stderr).toContain('PolicyError: certificate identity error');
  });

  test("a bundle attached by GitHub's own library (sigstore attach, @sigstore/oci) has our shape and verifies the same", async () => {
    const { repo } = repository();
    const bundlePath = join(dir, 'attach.sigstore.json');
    await writeFile(bundlePath, bytes);
    const attached = await sigstoreCli([
      'attach',
      '--attestation',
      bundlePath,
      '-u',
      USER.username,
      '-p',
      USER.password,
      `${registry.host}/${repo.name}@${staged.digest}`,
    ]);
    expect(attached.code).toBe(0);
    const referrers = await listReferrers(repo, staged.digest, MEDIA_TYPE_SIGSTORE_BUNDLE_V03);
    // Both referrers are listed: @sigstore/oci extended the fallback index our push wrote.
    expect(referrers).toHaveLength(2);
    const their = referrers.find((r) => r.digest !== ourReferrer)!;
    const [ours, theirs] = await Promise.all(
      [ourReferrer, their.digest].map(async (d) => parseImageManifest((await repo.fetchManifest(d)).bytes)),
    );
    const shape = (m: typeof ours) => ({ ...m, annotations: undefined });
    expect(shape(theirs)).toEqual(shape(ours));
    expect(Object.keys(theirs!.annotations ?? {})).toEqual(['org.opencontainers.image.created']);
    const layer = attestationLayer(theirs!)!;
    expect(
      verifyPublishAttestation(
        await repo.readBlob(layer, BUNDLE_SIZE_LIMIT),
        { fileName: FILE, sha256, targetChannel: channel() },
        { organizations: ['conda-forge'] },
        trust,
      ).feedstock,
    ).toBe('demo-pkg-feedstock');
  });
});
