/**
 * Where credentials come from (SPEC §7): options, then CONDA_OCI_USERNAME/CONDA_OCI_PASSWORD,
 * then the `auths` of the docker config file, else anonymous.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { dockerConfigCredentials, resolveCredentials } from '../../src/oci/remote/credentials.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'conda-oci-credentials-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let configs = 0;
/** A fresh $DOCKER_CONFIG directory holding `config` as config.json. */
async function dockerConfig(config: unknown): Promise<string> {
  const configDir = join(dir, `config-${configs++}`);
  await mkdir(configDir);
  await writeFile(
    join(configDir, 'config.json'),
    typeof config === 'string' ? config : JSON.stringify(config),
  );
  return configDir;
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');

describe('precedence', () => {
  test('options beat the environment and the docker config', async () => {
    const DOCKER_CONFIG = await dockerConfig({ auths: { 'ghcr.io': { auth: b64('docker:from-docker') } } });
    const env = { CONDA_OCI_USERNAME: 'envuser', CONDA_OCI_PASSWORD: 'from-env', DOCKER_CONFIG };
    expect(resolveCredentials('ghcr.io', { username: 'me', password: 'from-options', env })).toEqual({
      credentials: { username: 'me', password: 'from-options' },
      origin: 'options',
    });
  });

  test('a password alone (a token) gets a placeholder user name', () => {
    expect(resolveCredentials('ghcr.io', { password: 'ghp_x', env: {} })).toEqual({
      credentials: { username: 'token', password: 'ghp_x' },
      origin: 'options',
    });
  });

  test('the environment beats the docker config', async () => {
    const DOCKER_CONFIG = await dockerConfig({ auths: { 'ghcr.io': { auth: b64('docker:from-docker') } } });
    expect(
      resolveCredentials('ghcr.io', {
        env: { CONDA_OCI_USERNAME: 'envuser', CONDA_OCI_PASSWORD: 'from-env', DOCKER_CONFIG },
      }),
    ).toEqual({ credentials: { username: 'envuser', password: 'from-env' }, origin: 'environment' });
    expect(resolveCredentials('ghcr.io', { env: { CONDA_OCI_PASSWORD: 'tok', DOCKER_CONFIG } })).toEqual({
      credentials: { username: 'token', password: 'tok' },
      origin: 'environment',
    });
  });

  test('a user name without a password does not count', async () => {
    const DOCKER_CONFIG = await dockerConfig({ auths: { 'ghcr.io': { auth: b64('docker:from-docker') } } });
    expect(
      resolveCredentials('ghcr.io', {
        username: 'me',
        env: { CONDA_OCI_USERNAME: 'envuser', DOCKER_CONFIG },
      }),
    ).toEqual({ credentials: { username: 'docker', password: 'from-docker' }, origin: 'docker-config' });
  });

  test('nothing anywhere: anonymous', async () => {
    const DOCKER_CONFIG = await dockerConfig({ auths: { 'quay.io': { auth: b64('q:q') } } });
    expect(resolveCredentials('ghcr.io', { env: { DOCKER_CONFIG } })).toEqual({ origin: 'anonymous' });
    expect(resolveCredentials('ghcr.io', { env: { DOCKER_CONFIG: join(dir, 'missing') } })).toEqual({
      origin: 'anonymous',
    });
  });

  test('without DOCKER_CONFIG, ~/.docker/config.json of $HOME', async () => {
    const home = join(dir, 'home');
    await mkdir(join(home, '.docker'), { recursive: true });
    await writeFile(
      join(home, '.docker', 'config.json'),
      JSON.stringify({ auths: { 'ghcr.io': { auth: b64('homeuser:home-secret') } } }),
    );
    expect(resolveCredentials('ghcr.io', { env: { HOME: home } })).toEqual({
      credentials: { username: 'homeuser', password: 'home-secret' },
      origin: 'docker-config',
    });
  });
});

describe('docker config auths', () => {
  test.each([
    ['host', 'ghcr.io', 'ghcr.io'],
    ['https://host', 'https://ghcr.io', 'ghcr.io'],
    ['https://host/v1/', 'https://ghcr.io/v1/', 'ghcr.io'],
    ['http://host', 'http://ghcr.io', 'ghcr.io'],
    ['host:port', '127.0.0.1:5000', '127.0.0.1:5000'],
    ['https://host:port/v2/', 'https://127.0.0.1:5000/v2/', '127.0.0.1:5000'],
    ['upper-case key', 'GHCR.IO', 'ghcr.io'],
  ])('key form %s', async (_form, key, host) => {
    const DOCKER_CONFIG = await dockerConfig({ auths: { [key]: { auth: b64('user:secret') } } });
    expect(dockerConfigCredentials(host, { DOCKER_CONFIG })).toEqual({
      username: 'user',
      password: 'secret',
    });
  });

  test('the auth form keeps colons in the password', async () => {
    const DOCKER_CONFIG = await dockerConfig({ auths: { 'ghcr.io': { auth: b64('user:se:cr:et') } } });
    expect(dockerConfigCredentials('ghcr.io', { DOCKER_CONFIG })).toEqual({
      username: 'user',
      password: 'se:cr:et',
    });
  });

  test('the username/password form', async () => {
    const DOCKER_CONFIG = await dockerConfig({
      auths: { 'https://ghcr.io': { username: 'octo', password: 'ghp_secret' } },
    });
    expect(dockerConfigCredentials('ghcr.io', { DOCKER_CONFIG })).toEqual({
      username: 'octo',
      password: 'ghp_secret',
    });
  });

  test('another port, another host, or an unusable entry: none', async () => {
    const DOCKER_CONFIG = await dockerConfig({
      auths: {
        '127.0.0.1:5001': { auth: b64('a:b') },
        'ghcr.io.evil.net': { auth: b64('a:b') },
        'quay.io': { auth: b64('no-colon') },
        'docker.io': { identitytoken: 'refresh-token-only' },
        'gcr.io': null,
      },
    });
    for (const host of ['127.0.0.1:5000', 'ghcr.io', 'quay.io', 'docker.io', 'gcr.io'])
      expect(dockerConfigCredentials(host, { DOCKER_CONFIG })).toBeUndefined();
  });

  test('a config that is not JSON is ignored (anonymous)', async () => {
    const DOCKER_CONFIG = await dockerConfig('{ not json');
    expect(resolveCredentials('ghcr.io', { env: { DOCKER_CONFIG } })).toEqual({ origin: 'anonymous' });
  });
});
