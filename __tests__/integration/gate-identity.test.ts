/**
 * Trusted publishing end to end (README "Security"): the feedstock's upload signs CEP 27 publish
 * attestations with its workflow's OIDC identity (loopback GitHub OIDC and Sigstore stand-ins,
 * the real @sigstore/sign and @sigstore/verify), validate learns the requester from them (or from
 * a feedstock token), never from the request, and promote copies the attestation to production.
 * Each attack a feedstock holding a staging token can mount is its own test; every assertion is on
 * registry state or on the records themselves.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { readInputs } from '../../src/action/inputs.js';
import { packageReference } from '../../src/conda/naming.js';
import { parseOwners } from '../../src/commands/owners.js';
import {
  ARTIFACT_TYPE_VALIDATION,
  parseRecordBody,
  recordLayer,
  type ValidationRecord,
} from '../../src/conda/records.js';
import { silentReporter, type CommandResult } from '../../src/commands/report.js';
import type { CommandInput } from '../../src/core/commands.js';
import { execute } from '../../src/core/execute.js';
import { githubActionsIdToken } from '../../src/identity/github-oidc.js';
import { attestationLayer, MEDIA_TYPE_SIGSTORE_BUNDLE_V03 } from '../../src/identity/publish-attestation.js';
import { trustFromFile } from '../../src/identity/trust.js';
import { GITHUB_ACTIONS_ISSUER, verifyPublishAttestation } from '../../src/identity/verify.js';
import { parseImageManifest } from '../../src/oci/manifest.js';
import { listReferrers } from '../../src/oci/referrers.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import { makeTokenRegistry } from '../helpers/feedstock-tokens.js';
import { startGitHubOidc, type GitHubOidcStandIn } from '../helpers/github-oidc.js';
import { makePackage, type MadePackage } from '../helpers/packages.js';
import { useRegistry } from '../helpers/registry.js';
import { testSecret } from '../helpers/secrets.js';
import { startSigstore, type SigstoreStandIn } from '../helpers/sigstore.js';

// @actions/github reads the event once, at import; here each readInputs() sees the event of its test.
vi.mock('@actions/github', async (importOriginal) => {
  const real = await importOriginal<typeof import('@actions/github')>();
  const Context = real.context.constructor as new () => typeof real.context;
  return {
    ...real,
    get context() {
      return new Context();
    },
  };
});

// Outside a runner core.setSecret prints `::add-mask::<secret>`; the runner would swallow it.
vi.mock('@actions/core', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@actions/core')>()),
  setSecret: vi.fn(),
}));

const registry = useRegistry({ auth: 'none' });
const KEY = testSecret('gate-record-key');
let oidc: GitHubOidcStandIn;
let sigstore: SigstoreStandIn;
let trustedRoot: string;
let work: string;
let store: RemoteStore;

const VICTIM = 'conda-forge/victimpkg-feedstock';
const ATTACKER = 'conda-forge/attacker-feedstock';
let victimPkg: MadePackage;
let attackersVictimPkg: MadePackage;
let ownersFile: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'conda-oci-gate-'));
  oidc = await startGitHubOidc();
  sigstore = await startSigstore({ issuers: { [GITHUB_ACTIONS_ISSUER]: oidc.publicKey } });
  trustedRoot = await sigstore.writeTrustedRoot(join(work, 'trusted_root.json'));
  store = new RemoteStore({ host: registry.host, plainHttp: true });
  victimPkg = await makePackage(join(work, 'victim'), { name: 'victimpkg', version: '1.0', build: 'h0_0' });
  // The attacker's own build of victimpkg: same name, version and build, other bytes.
  attackersVictimPkg = await makePackage(join(work, 'attacker'), {
    name: 'victimpkg',
    version: '1.0',
    build: 'h0_0',
    payloadBytes: 2048,
    depends: ['attacker-backdoor >=1'],
  });
  ownersFile = join(work, 'owners.json');
  writeFileSync(ownersFile, JSON.stringify({ victimpkg: ['victimpkg'], attackerpkg: ['attacker'] }));
});

afterAll(async () => {
  await store?.close();
  await sigstore?.close();
  await oidc?.close();
});

const url = (path: string) => `oci://${registry.host}/${path}`;
const request = (p: MadePackage) => ({ subdir: p.subdir, file: p.file, sha256: p.sha256 });

function run(options: CommandInput, signAs?: string): Promise<CommandResult> {
  const issued = signAs ? oidc.run({ repository: signAs }) : undefined;
  return execute(options, {
    reporter: silentReporter,
    ...(issued
      ? {
          signing: {
            endpoints: sigstore.endpoints,
            identity: githubActionsIdToken({
              requestUrl: issued.requestUrl,
              requestToken: issued.requestToken,
            }),
          },
        }
      : {}),
  });
}

/** Upload with a publish attestation signed as the workflow of `repository`. */
async function attestedUpload(p: MadePackage, staging: string, production: string, repository: string) {
  const up = await run(
    { command: 'upload', files: [p.path], to: url(staging), attest: true, targetChannel: url(production) },
    repository,
  );
  expect(up.artifacts.map((a) => a.error ?? a.status)).toEqual(['uploaded']);
  expect(up.artifacts[0]!.attestation).toMatch(/^sha256:/);
  return up;
}

function validateAs(staging: string, production: string, p: MadePackage, extra: Partial<CommandInput> = {}) {
  return run({
    command: 'validate',
    from: url(staging),
    production: url(production),
    artifacts: [request(p)],
    owners: parseOwners(JSON.parse(readFileSync(ownersFile, 'utf8')), ownersFile),
    trustedRoot,
    publishers: ['conda-forge'],
    recordKey: KEY,
    ...extra,
  } as CommandInput);
}

function readInputsFor(inputs: Record<string, string>) {
  const saved = { ...process.env };
  for (const [k, v] of Object.entries(inputs)) process.env[`INPUT_${k.replace(/ /g, '_').toUpperCase()}`] = v;
  try {
    return readInputs().options as Extract<CommandInput, { command: 'validate' }>;
  } finally {
    process.env = saved;
  }
}

async function productionTag(path: string, p: MadePackage) {
  const ref = packageReference(p.subdir, p.name, p.version, p.build);
  return store.repository(`${path}/${ref.repository}`).resolve(ref.tag);
}

async function recordOf(path: string, p: MadePackage, digest: string): Promise<ValidationRecord> {
  const ref = packageReference(p.subdir, p.name, p.version, p.build);
  const repository = store.repository(`${path}/${ref.repository}`);
  const [entry] = await listReferrers(repository, digest as `sha256:${string}`, ARTIFACT_TYPE_VALIDATION);
  const fetched = await repository.fetchManifest(entry!.digest);
  const { layer } = recordLayer(fetched.bytes, ARTIFACT_TYPE_VALIDATION, 'record');
  return parseRecordBody<ValidationRecord>(await repository.readBlob(layer, 1 << 20), 'record');
}

describe('the honest feedstock', () => {
  test('upload --attest, validate learns the identity from the attestation, promote copies it beside the package', async () => {
    await attestedUpload(victimPkg, 'h/staging', 'h/prod', VICTIM);
    const validated = await validateAs('h/staging', 'h/prod', victimPkg);
    const result = validated.artifacts[0]!;
    expect(result.error).toBeUndefined();
    expect(result.status).toBe('passed');
    expect(result.requester).toMatch(
      /^https:\/\/github\.com\/conda-forge\/victimpkg-feedstock \(attestation: .*\.github\/workflows\/.*@refs\/heads\/main, commit [0-9a-f]{40}\)$/,
    );
    const record = await recordOf('h/staging', victimPkg, result.digest!);
    expect(record.requester).toMatchObject({
      method: 'attestation',
      feedstock: 'victimpkg-feedstock',
      repository: `https://github.com/${VICTIM}`,
      issuer: GITHUB_ACTIONS_ISSUER,
    });
    expect(record.checks.find((c) => c.name === 'owner')).toMatchObject({ ok: true });

    const promoted = await run({
      command: 'promote',
      from: url('h/staging'),
      to: url('h/prod'),
      artifacts: validated.artifacts.map((a) => ({
        ...request(victimPkg),
        digest: a.digest!,
        record: a.record!,
      })),
      recordKey: KEY,
    });
    expect(promoted.artifacts[0]!.status).toBe('promoted');
    // Production holds the attestation beside the package, and it verifies for this very file.
    const ref = packageReference(victimPkg.subdir, victimPkg.name, victimPkg.version, victimPkg.build);
    const production = store.repository(`h/prod/${ref.repository}`);
    const [bundleRef] = await listReferrers(
      production,
      result.digest as `sha256:${string}`,
      MEDIA_TYPE_SIGSTORE_BUNDLE_V03,
    );
    const layer = attestationLayer(
      parseImageManifest((await production.fetchManifest(bundleRef!.digest)).bytes),
    )!;
    const bundle = JSON.parse(new TextDecoder().decode(await production.readBlob(layer, 1 << 20))) as unknown;
    const identity = verifyPublishAttestation(
      bundle,
      { fileName: victimPkg.file, sha256: victimPkg.sha256, targetChannel: url('h/prod') },
      { organizations: ['conda-forge'] },
      await trustFromFile(trustedRoot, 'public-good'),
    );
    expect(identity.repository).toBe(`https://github.com/${VICTIM}`);
  });
});

describe('a feedstock that holds only a staging token', () => {
  test('a dispatch whose payload says "feedstock": "victimpkg" does not make the attacker victimpkg', async () => {
    // The attacker stages its own build of victimpkg, attested as itself, and names the victim.
    await attestedUpload(attackersVictimPkg, 'f/staging', 'f/prod', ATTACKER);
    const eventPath = join(work, 'event.json');
    writeFileSync(
      eventPath,
      JSON.stringify({
        client_payload: {
          feedstock: 'victimpkg',
          repository: VICTIM,
          outputs: { [`${attackersVictimPkg.subdir}/${attackersVictimPkg.file}`]: attackersVictimPkg.sha256 },
        },
      }),
    );
    const saved = { ...process.env };
    Object.assign(process.env, {
      GITHUB_EVENT_PATH: eventPath,
      INPUT_COMMAND: 'validate',
      INPUT_FROM: url('f/staging'),
      INPUT_PRODUCTION: url('f/prod'),
      INPUT_OWNERS: ownersFile,
      'INPUT_TRUSTED-ROOT': trustedRoot,
      INPUT_PUBLISHERS: 'conda-forge',
      'INPUT_RECORD-KEY': KEY,
    });
    let inputs;
    try {
      inputs = readInputs();
    } finally {
      process.env = saved;
    }
    const validated = await execute(inputs.options, { reporter: silentReporter, sources: inputs.sources! });
    const result = validated.artifacts[0]!;
    expect(result.status).toBe('failed');
    expect(result.checks!.find((c) => c.name === 'owner')).toEqual({
      name: 'owner',
      ok: false,
      detail: '"victimpkg" may be published by victimpkg, not by attacker',
    });
    const record = await recordOf('f/staging', attackersVictimPkg, result.digest!);
    expect(record.requester?.feedstock).toBe('attacker-feedstock');
    const promoted = await run({
      command: 'promote',
      from: url('f/staging'),
      to: url('f/prod'),
      artifacts: [request(attackersVictimPkg)],
      recordKey: KEY,
    });
    expect(promoted.artifacts[0]!.status).toBe('failed');
    expect(await productionTag('f/prod', attackersVictimPkg)).toBeUndefined();
  });

  test('no identity at all (no attestation, no token): every artifact fails, saying who was expected', async () => {
    const up = await run({ command: 'upload', files: [attackersVictimPkg.path], to: url('n/staging') });
    expect(up.exitCode).toBe(0);
    const validated = await validateAs('n/staging', 'n/prod', attackersVictimPkg, { feedstock: 'victimpkg' });
    const failed = validated.artifacts[0]!.checks!.filter((c) => !c.ok);
    expect(failed.map((c) => c.name)).toEqual(['requester', 'owner']);
    expect(failed[1]!.detail).toBe(
      '"victimpkg" may be published by victimpkg; no identity was proven (found: no publish attestation and no feedstock token)',
    );
  });

  test("the victim's genuine attestation replayed on the attacker's artifact proves nothing", async () => {
    // The victim's bundle (for the victim's file and sha256) is copied onto the attacker's build.
    await attestedUpload(victimPkg, 'r/victim', 'r/prod', VICTIM);
    await run({ command: 'upload', files: [attackersVictimPkg.path], to: url('r/staging') });
    const ref = packageReference(victimPkg.subdir, victimPkg.name, victimPkg.version, victimPkg.build);
    const from = store.repository(`r/victim/${ref.repository}`);
    const to = store.repository(`r/staging/${ref.repository}`);
    const victimSubject = (await from.resolve(ref.tag))!.digest;
    const attackerSubject = (await to.resolve(ref.tag))!;
    const [bundleRef] = await listReferrers(from, victimSubject, MEDIA_TYPE_SIGSTORE_BUNDLE_V03);
    const original = parseImageManifest((await from.fetchManifest(bundleRef!.digest)).bytes);
    const layer = attestationLayer(original)!;
    const bytes = await from.readBlob(layer, 1 << 20);
    const { attestationArtifact } = await import('../../src/identity/publish-attestation.js');
    const { pushArtifact } = await import('../../src/oci/push.js');
    const replay = attestationArtifact(JSON.parse(new TextDecoder().decode(bytes)) as never, attackerSubject);
    await pushArtifact(to, replay, { subject: attackerSubject });

    const validated = await validateAs('r/staging', 'r/prod', attackersVictimPkg);
    const requester = validated.artifacts[0]!.checks!.find((c) => c.name === 'requester')!;
    expect(requester.ok).toBe(false);
    expect(requester.detail).toMatch(/attestation .* refused: .*subject|digest/);
  });

  test("another feedstock's token does not prove this one, and a payload field never does", async () => {
    const tokens = makeTokenRegistry(['victimpkg-feedstock', 'attacker-feedstock']);
    await run({ command: 'upload', files: [attackersVictimPkg.path], to: url('t/staging') });
    const withAttackersToken = await validateAs('t/staging', 't/prod', attackersVictimPkg, {
      feedstockTokens: tokens.dir,
      feedstock: 'victimpkg',
      feedstockToken: tokens.tokens['attacker-feedstock']!,
    });
    const checks = withAttackersToken.artifacts[0]!.checks!;
    expect(checks.find((c) => c.name === 'requester')).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/the feedstock token of victimpkg-feedstock was refused/),
    });
    expect(JSON.stringify(withAttackersToken)).not.toContain(tokens.tokens['attacker-feedstock']);
    // The attacker's own token, honestly presented, proves the attacker: not victimpkg's owner.
    const asItself = await validateAs('t/staging', 't/prod', attackersVictimPkg, {
      feedstockTokens: tokens.dir,
      feedstock: 'attacker',
      feedstockToken: tokens.tokens['attacker-feedstock']!,
    });
    expect(asItself.artifacts[0]!.checks!.find((c) => c.name === 'owner')!.detail).toBe(
      '"victimpkg" may be published by victimpkg, not by attacker',
    );
  });

  test('delete-failed deletes what the requester attested, never what another feedstock staged', async () => {
    // The victim's honest upload and the attacker's request about it: nothing of the victim's goes.
    await attestedUpload(victimPkg, 'd/victim', 'd/prod', VICTIM);
    const tokens = makeTokenRegistry(['attacker-feedstock']);
    const attack = await validateAs('d/victim', 'd/prod', victimPkg, {
      feedstockTokens: tokens.dir,
      feedstock: 'attacker',
      feedstockToken: tokens.tokens['attacker-feedstock']!,
      deleteFailed: true,
    });
    expect(attack.artifacts[0]!.status).toBe('failed'); // two proofs, two feedstocks
    expect(await productionTag('d/victim', victimPkg)).toBeDefined();
    // The attacker's own attested upload, failing the owners check, is deleted.
    await attestedUpload(attackersVictimPkg, 'd/attacker', 'd/prod', ATTACKER);
    const own = await validateAs('d/attacker', 'd/prod', attackersVictimPkg, { deleteFailed: true });
    expect(own.artifacts[0]!.status).toBe('failed');
    expect(await productionTag('d/attacker', attackersVictimPkg)).toBeUndefined();
  });
});

describe('labels', () => {
  test('main only by default; a labels policy allows others, per feedstock; "broken" never', async () => {
    const p = await makePackage(join(work, 'labels'), { name: 'victimpkg', version: '2.0', build: 'h0_0' });
    await attestedUpload(p, 'l/staging/label/rc', 'l/prod', VICTIM);
    const refused = await validateAs('l/staging/label/rc', 'l/prod', p);
    expect(refused.artifacts[0]!.checks!.find((c) => c.name === 'label')).toMatchObject({
      ok: false,
      detail: 'label "rc" is not allowed for victimpkg (the labels policy allows main only)',
    });
    const forOthers = await validateAs('l/staging/label/rc', 'l/prod', p, { labels: ['numpy:rc'] });
    expect(forOthers.artifacts[0]!.status).toBe('failed');
    const allowed = await validateAs('l/staging/label/rc', 'l/prod', p, { labels: ['victimpkg:rc'] });
    expect(allowed.artifacts[0]!.status).toBe('passed');
    const one = `{"noarch/x-1-0.conda":"${'0'.repeat(64)}"}`;
    expect(() =>
      readInputsFor({ command: 'validate', from: url('x'), artifacts: one, labels: 'broken' }),
    ).toThrow(/"broken" is never published on request/);
  });
});
