/**
 * Feedstock tokens in conda-forge's format (feedstock-tokens repository, `tokens/<feedstock>.json`).
 * Two files were written by Python with OpenSSL's scrypt (`hashlib.scrypt(token, salt=os.urandom(64),
 * n=16384, r=8, p=1, dklen=256)`, what conda-smithy's `register_feedstock_token` stores through
 * py-scrypt), so the check is tested against hashes our code did not make; the others are
 * registered here the way conda-smithy registers them.
 */
import { randomBytes, scryptSync } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TokenRegistryError } from '../../src/identity/errors.js';
import { verifyFeedstockToken, type FeedstockTokenResult } from '../../src/identity/feedstock-tokens.js';
import { describeError } from '../../src/util/describe-error.js';
import { testSecret } from '../helpers/secrets.js';

/** Written by Python (see above) for this token. */
const PYTHON_TOKEN = 'feedstock-token-Qx7SecretMarkr-made-by-python';
const PYTHON_FILE = JSON.stringify({
  tokens: [
    {
      salt: '1bd87a3e9b410116c315870e1161d11248b31868c696a7eca52ea41bbcdc1400e1a2f75a4c0e1b444887fa9815f6a54f63eba08d2ed07809720044f8a9d62994',
      hashed_token:
        '6bbbee5a2851c8bcc70a50a436195e1a42b1631433fd7414cac54452f09f2f8577702b4fd506996d99d357931ba2d8fa477eb9fe1ad86bb35d42505a2bdd84748b455779417dec5531d347b40c8a4526f5338655ab95fe8ec9acd463e5362140dc83411eaebb54ce91e4515f0b6dda3faadae96c09abb45844cf1df903878055cdb561c172d24809095db6953f6643787464d5aeab9ef95203a8a0a071f85dd951d2e086567d8fbd8394c7bc722f533a0834f9d56592ee1d5e1b33f8ccf38d4580b854345c2e3644b1c9a587893d60c3bf29ec131710db4e40c42a350396b129050e19500044fc6b88326b5ca98e9e985caa701ad56709c3bab77cbcb59bd2d9',
    },
  ],
});
/** The older form: one bare entry, here bound to a provider. */
const PYTHON_LEGACY_TOKEN = 'legacy-token-Qx7SecretMarkr-made-by-python';
const PYTHON_LEGACY_FILE = JSON.stringify({
  salt: '7b6537eef1a75481757ba71000079385cc940859b8a2c240c800bcdf523fea97013d82c63f4552d3abdd7c659198b1de2ade6998dca9c66efa21748f8fb99b60',
  hashed_token:
    '4feec38bedce946c72e3de588caab7a2429d7567c69249574f855e19abb20ed0cfe89a374a780e8383b77000bc5950e846ec3c9c9db8fbdaea92f27e2e352dcbde51b18391ac0e56e38d9c11f5c9d36642acf5319c791e9e0405891afabb5346d8662cb719ec3150c40a4fa4159ea1946585abffd868034ba7863bc6e33c9dc06d70e207300453dc09fe4ac9da472d1f623990bb39f7f840761bd50c700d5ec81666aee73e48542903a5b4fbe991b1cbad77a8056387bdaebcf8c4ee7bdd9030264bce9088f50aacaaf9783514ab5ca3c703c6e39fb33979b24cab57d97b33755548a8e38a75441169c326425065a3e9ec9481e81e3d5421732afc00649f7795',
  provider: 'azure',
});

interface Registration {
  token: string;
  provider?: string;
  /** Seconds since the epoch, as conda-smithy writes `time.time() + ttl`. */
  expiresAt?: number;
}

/** A token entry as conda-smithy's register_feedstock_token writes it. */
function entry({ token, provider, expiresAt }: Registration): Record<string, unknown> {
  const salt = randomBytes(64);
  return {
    salt: salt.toString('hex'),
    hashed_token: scryptSync(token, salt, 256, { N: 16384, r: 8, p: 1 }).toString('hex'),
    ...(provider ? { provider } : {}),
    ...(expiresAt !== undefined ? { expires_at: expiresAt } : {}),
  };
}

let registry: string;
const NUMPY = testSecret('numpy-feedstock-token');
const SCIPY = testSecret('scipy-feedstock-token');
const OLD = testSecret('numpy-old-token');
const NEW = testSecret('numpy-new-token');
const now = Date.now() / 1000;

async function writeTokens(feedstock: string, content: string): Promise<void> {
  await writeFile(join(registry, 'tokens', `${feedstock}.json`), content);
}

beforeAll(async () => {
  registry = await mkdtemp(join(tmpdir(), 'conda-oci-feedstock-tokens-'));
  await mkdir(join(registry, 'tokens'));
  await writeTokens('python-feedstock', PYTHON_FILE);
  await writeTokens('legacy-feedstock', PYTHON_LEGACY_FILE);
  await writeTokens('numpy-feedstock', JSON.stringify({ tokens: [entry({ token: NUMPY })] }));
  await writeTokens('scipy-feedstock', JSON.stringify({ tokens: [entry({ token: SCIPY })] }));
  // Rotation as conda-smithy does it: the old token expires at a time, the new one does not.
  await writeTokens(
    'rotated-feedstock',
    JSON.stringify({
      tokens: [entry({ token: OLD, expiresAt: now - 60 }), entry({ token: NEW, provider: 'github_actions' })],
    }),
  );
  await writeTokens(
    'rotating-feedstock',
    JSON.stringify({ tokens: [entry({ token: OLD, expiresAt: now + 3600 }), entry({ token: NEW })] }),
  );
});

afterAll(async () => {
  await rm(registry, { recursive: true, force: true });
});

function check(feedstock: string, token: string, provider?: string): Promise<FeedstockTokenResult> {
  return verifyFeedstockToken({ registry, feedstock, token, ...(provider ? { provider } : {}) });
}

describe('accepted', () => {
  test('the right token, against a file Python hashed', async () => {
    const result = await check('python-feedstock', PYTHON_TOKEN);
    expect(result).toEqual({
      verified: true,
      feedstock: 'python-feedstock',
      provider: null,
      expiresAt: null,
    });
    expect(JSON.stringify(result)).not.toContain(PYTHON_TOKEN);
  });

  test('the older one-entry form, with the provider it is bound to', async () => {
    expect(await check('legacy-feedstock', PYTHON_LEGACY_TOKEN, 'azure')).toMatchObject({
      verified: true,
      provider: 'azure',
    });
  });

  test('during a rotation both tokens pass; any matching entry is enough, not only the last', async () => {
    expect(await check('rotating-feedstock', OLD)).toMatchObject({ verified: true, expiresAt: now + 3600 });
    expect(await check('rotating-feedstock', NEW)).toMatchObject({ verified: true, expiresAt: null });
  });

  test('a generic token (no provider) passes whatever provider the request names', async () => {
    expect(await check('numpy-feedstock', NUMPY, 'azure')).toMatchObject({ verified: true });
  });
});

describe('refused', () => {
  test("another feedstock's token", async () => {
    const result = await check('numpy-feedstock', SCIPY);
    expect(result).toEqual({
      verified: false,
      feedstock: 'numpy-feedstock',
      reason: 'wrong-token',
      detail: 'the token does not match any token registered for numpy-feedstock',
    });
  });

  test('an expired token', async () => {
    const result = await check('rotated-feedstock', OLD, 'github_actions');
    expect(result).toMatchObject({ verified: false, reason: 'expired' });
    expect(result.verified === false && result.detail).toBe(
      `the token of rotated-feedstock expired at ${new Date((now - 60) * 1000).toISOString()}`,
    );
  });

  test('a token bound to another provider, or to one when the request names none', async () => {
    expect(await check('legacy-feedstock', PYTHON_LEGACY_TOKEN, 'github_actions')).toMatchObject({
      verified: false,
      reason: 'wrong-provider',
      detail:
        'the token of legacy-feedstock is registered for provider "azure"; the request names provider "github_actions"',
    });
    expect(await check('legacy-feedstock', PYTHON_LEGACY_TOKEN)).toMatchObject({ reason: 'wrong-provider' });
    expect(await check('rotated-feedstock', NEW, 'azure')).toMatchObject({ reason: 'wrong-provider' });
  });

  test('a wrong token, and an empty one', async () => {
    expect(await check('python-feedstock', testSecret('guess'))).toMatchObject({ reason: 'wrong-token' });
    expect(await check('python-feedstock', '')).toMatchObject({ reason: 'wrong-token' });
  });

  test('a feedstock with no token file, and names that are not repository names', async () => {
    expect(await check('missing-feedstock', NUMPY)).toEqual({
      verified: false,
      feedstock: 'missing-feedstock',
      reason: 'unknown-feedstock',
      detail: 'no token is registered for missing-feedstock',
    });
    await writeFile(join(registry, 'outside.json'), JSON.stringify({ tokens: [entry({ token: NUMPY })] }));
    for (const name of ['../outside', '..', 'tokens/../../outside', ''])
      expect(await check(name, NUMPY)).toMatchObject({ verified: false, reason: 'unknown-feedstock' });
  });
});

describe('a registry that is not in the format', () => {
  test.each([
    ['not JSON', '{"tokens": ['],
    ['a list of tokens that is not a list', '{"tokens": {}}'],
    ['an entry without a salt', JSON.stringify({ tokens: [{ hashed_token: 'ab'.repeat(256) }] })],
    ['a hash of another length', JSON.stringify({ tokens: [{ salt: 'ab', hashed_token: 'ab'.repeat(64) }] })],
    [
      'an expiry that is not a number',
      JSON.stringify({ tokens: [{ ...entry({ token: NUMPY }), expires_at: 'soon' }] }),
    ],
    ['more entries than the limit', JSON.stringify({ tokens: Array.from({ length: 33 }, () => ({})) })],
  ])('%s is an error that names the file, not the token', async (_, content) => {
    await writeTokens('broken-feedstock', content);
    const err = await check('broken-feedstock', NUMPY).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenRegistryError);
    expect(describeError(err)).toContain(join(registry, 'tokens', 'broken-feedstock.json'));
    expect(describeError(err)).not.toContain(NUMPY);
  });

  test('a token file that is a symbolic link is not followed', async () => {
    await symlink(
      join(registry, 'tokens', 'numpy-feedstock.json'),
      join(registry, 'tokens', 'linked-feedstock.json'),
    );
    await expect(check('linked-feedstock', NUMPY)).rejects.toThrow(/is not a regular file/);
  });
});
