/**
 * Interoperability: skopeo (containers/image) reads what our registry client and our OCI layout
 * store write, byte for byte: `skopeo inspect --raw` returns our exact manifest bytes, and
 * `skopeo copy` moves the artifact into an OCI layout whose blobs hash right.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { digestOf } from '../../src/oci/digest.js';
import { LayoutStore } from '../../src/oci/layout/store.js';
import { descriptorOf, EMPTY_CONFIG, type ImageManifest } from '../../src/oci/manifest.js';
import { canonicalJson } from '../../src/util/canonical-json.js';
import { EMPTY_JSON_BYTES, MEDIA_TYPE_OCI_MANIFEST } from '../../src/oci/media-types.js';
import { pushArtifact } from '../../src/oci/push.js';
import type { Artifact as ArtifactToPush } from '../../src/oci/artifact.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import { useRegistry } from '../helpers/registry.js';

const run = promisify(execFile);
const registry = useRegistry({ auth: 'none' });
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'conda-oci-skopeo-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function skopeo(...args: string[]): Promise<Buffer> {
  const { stdout } = await run('skopeo', ['--insecure-policy', ...args], {
    encoding: 'buffer',
    timeout: 30_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/** A conda-like artifact: the package file, an info tarball stand-in, index.json. */
function artifact(name: string): ArtifactToPush {
  const files: [string, Uint8Array][] = [
    ['application/vnd.conda.package.v2', new TextEncoder().encode(`PK package bytes of ${name}`)],
    ['application/vnd.conda.info.v1.tar+gzip', new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3])],
    [
      'application/vnd.conda.info.index.v1+json',
      new TextEncoder().encode(`{"name":"${name}","version":"1.0"}`),
    ],
  ];
  const layers = files.map(([mediaType, bytes]) =>
    descriptorOf(
      mediaType,
      bytes,
      mediaType.endsWith('v2') ? { 'org.opencontainers.image.title': `${name}-1.0-0.conda` } : undefined,
    ),
  );
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    config: EMPTY_CONFIG,
    layers,
    annotations: { 'org.conda.oci.schema': '1', 'org.conda.package.name': name },
  };
  const bytes = canonicalJson(manifest);
  return {
    manifest: { mediaType: MEDIA_TYPE_OCI_MANIFEST, bytes },
    descriptor: descriptorOf(MEDIA_TYPE_OCI_MANIFEST, bytes),
    blobs: [
      { descriptor: EMPTY_CONFIG, content: EMPTY_JSON_BYTES },
      ...files.map(([, content], i) => ({ descriptor: layers[i]!, content })),
    ],
  };
}

const sha256 = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('skopeo reads what we write', () => {
  test('to the registry: inspect --raw gives our exact manifest bytes; copy to oci: hashes right', async () => {
    const store = new RemoteStore({ host: registry.host, plainHttp: true });
    const item = artifact('skopeo-pkg');
    try {
      const pushed = await pushArtifact(store.repository('interop/linux-64/cskopeo-pkg'), item, {
        tag: '1.0-0',
      });
      expect(pushed.descriptor.digest).toBe(item.descriptor.digest);
    } finally {
      await store.close();
    }
    const ref = `docker://${registry.host}/interop/linux-64/cskopeo-pkg:1.0-0`;
    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', ref);
    expect(raw.equals(Buffer.from(item.manifest.bytes))).toBe(true);
    expect(digestOf(raw)).toBe(item.descriptor.digest);

    const out = join(dir, 'copied');
    await skopeo('copy', '--src-tls-verify=false', ref, `oci:${out}:1.0-0`);
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as {
      manifests: { digest: string; annotations?: Record<string, string> }[];
    };
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0]!.digest).toBe(item.descriptor.digest);
    expect(index.manifests[0]!.annotations?.['org.opencontainers.image.ref.name']).toBe('1.0-0');
    // Every blob skopeo wrote hashes to its name, and they are exactly ours.
    const names = await readdir(join(out, 'blobs', 'sha256'));
    for (const name of names) {
      const bytes = await readFile(join(out, 'blobs', 'sha256', name));
      expect(sha256(bytes)).toBe(`sha256:${name}`);
    }
    const expected = [item.descriptor.digest, ...item.blobs.map((b) => b.descriptor.digest)].map((d) =>
      d.slice('sha256:'.length),
    );
    expect(names.sort()).toEqual([...new Set(expected)].sort());
  });

  test('an OCI layout written by LayoutStore: inspect --raw oci:<dir>/<repo>:<tag> gives our bytes', async () => {
    const root = join(dir, 'channel');
    const store = new LayoutStore(root);
    const item = artifact('layout-pkg');
    await pushArtifact(store.repository('conda-forge/noarch/clayout-pkg'), item, { tag: '1.0-0' });
    const raw = await skopeo(
      'inspect',
      '--raw',
      `oci:${join(root, 'conda-forge', 'noarch', 'clayout-pkg')}:1.0-0`,
    );
    expect(raw.equals(Buffer.from(item.manifest.bytes))).toBe(true);
    // And skopeo copies it on to the registry, where our client reads the same manifest back.
    await skopeo(
      'copy',
      '--dest-tls-verify=false',
      `oci:${join(root, 'conda-forge', 'noarch', 'clayout-pkg')}:1.0-0`,
      `docker://${registry.host}/interop/noarch/clayout-pkg:1.0-0`,
    );
    const remote = new RemoteStore({ host: registry.host, plainHttp: true });
    try {
      const fetched = await remote.repository('interop/noarch/clayout-pkg').fetchManifest('1.0-0');
      expect(Buffer.from(fetched.bytes).equals(Buffer.from(item.manifest.bytes))).toBe(true);
    } finally {
      await remote.close();
    }
  });
});
