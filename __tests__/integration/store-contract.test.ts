/**
 * One contract, every store: the on-disk OCI layout and the real distribution registry must
 * behave the same through the Store/Repository interfaces the commands use.
 */
import { mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { copyManifestBlobs } from '../../src/oci/copy.js';
import { digestOf } from '../../src/oci/digest.js';
import { DigestMismatchError, NotFoundError, OciError } from '../../src/oci/errors.js';
import { LayoutStore } from '../../src/oci/layout/store.js';
import { descriptorOf, EMPTY_CONFIG, type ImageManifest } from '../../src/oci/manifest.js';
import { canonicalJson } from '../../src/util/canonical-json.js';
import { EMPTY_JSON_BYTES, MEDIA_TYPE_OCI_MANIFEST } from '../../src/oci/media-types.js';
import { pushArtifact } from '../../src/oci/push.js';
import { deleteReferrers, fallbackTag, listReferrers } from '../../src/oci/referrers.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import type { BlobSource, Store } from '../../src/oci/storage.js';
import { useRegistry } from '../helpers/registry.js';

const registry = useRegistry({ auth: 'none' });
let layoutDir: string;

beforeAll(async () => {
  layoutDir = await mkdtemp(join(tmpdir(), 'conda-oci-layout-'));
});
afterAll(async () => {
  await rm(layoutDir, { recursive: true, force: true });
});

const stores: [string, () => Store][] = [
  ['oci-layout', () => new LayoutStore(layoutDir)],
  ['registry', () => new RemoteStore({ host: registry.host, plainHttp: true })],
];

function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function imageOf(layers: Uint8Array[], extra: Partial<ImageManifest> = {}) {
  const layerDescriptors = layers.map((l) => descriptorOf('application/octet-stream', l));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    config: EMPTY_CONFIG,
    layers: layerDescriptors,
    ...extra,
  };
  const manifestBytes = canonicalJson(manifest);
  return {
    manifest: { mediaType: MEDIA_TYPE_OCI_MANIFEST, bytes: manifestBytes },
    descriptor: descriptorOf(MEDIA_TYPE_OCI_MANIFEST, manifestBytes),
    blobs: [
      { descriptor: EMPTY_CONFIG, content: EMPTY_JSON_BYTES },
      ...layers.map((l, i) => ({ descriptor: layerDescriptors[i]!, content: l })),
    ],
  };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe.each(stores)('store contract: %s', (kind, open) => {
  let store: Store;
  const repo = (name: string) => store.repository(`contract/${kind}/${name}`);

  beforeAll(() => {
    store = open();
  });
  afterAll(async () => {
    await store.close();
  });

  test('a pushed blob can be stated, read and streamed; pushing again sends nothing', async () => {
    const content = bytes(`blob of ${kind} ${'x'.repeat(1000)}`);
    const descriptor = { digest: digestOf(content), size: content.length };
    const r = repo('blobs');
    expect(await r.statBlob(descriptor.digest)).toBeUndefined();
    expect((await r.pushBlob(descriptor, content)).action).toBe('uploaded');
    expect(await r.statBlob(descriptor.digest)).toEqual({ size: content.length });
    expect(Buffer.from(await r.readBlob(descriptor, 1 << 20))).toEqual(Buffer.from(content));
    expect(await readAll(await r.openBlob(descriptor))).toEqual(Buffer.from(content));
    expect(await r.pushBlob(descriptor, content)).toEqual({ action: 'exists', bytesSent: 0 });
  });

  test('content that does not match its digest is refused and not stored', async () => {
    const claimed = bytes('what the caller says');
    const actual = bytes('what the stream holds');
    const descriptor = { digest: digestOf(claimed), size: actual.length };
    const r = repo('lies');
    await expect(r.pushBlob(descriptor, actual)).rejects.toThrow(OciError);
    expect(await r.statBlob(descriptor.digest)).toBeUndefined();
  });

  test('a streamed source of several MiB arrives byte for byte', async () => {
    const size = 9 * 1024 * 1024 + 17;
    const content = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) content.writeUInt32LE((i * 2654435761) >>> 0, i);
    const descriptor = { digest: digestOf(content), size };
    const source: BlobSource = {
      size,
      open: (offset) =>
        Readable.from([content.subarray(offset, offset + 3_000_000), content.subarray(offset + 3_000_000)]),
    };
    const r = repo('large');
    const outcome = await r.pushBlob(descriptor, source);
    expect(outcome).toEqual({ action: 'uploaded', bytesSent: size });
    expect((await readAll(await r.openBlob(descriptor))).equals(content)).toBe(true);
  });

  test('manifests: push by tag, resolve, fetch exact bytes, list tags, move a tag, delete', async () => {
    const r = repo('manifests');
    const one = imageOf([bytes('layer one')]);
    const two = imageOf([bytes('layer two')]);
    for (const image of [one, two])
      for (const blob of image.blobs) await r.pushBlob(blob.descriptor, blob.content);
    const pushed = await r.pushManifest(one.manifest, '1.0-0');
    expect(pushed.descriptor.digest).toBe(one.descriptor.digest);
    expect(await r.resolve('1.0-0')).toMatchObject({
      digest: one.descriptor.digest,
      size: one.manifest.bytes.length,
    });
    const fetched = await r.fetchManifest('1.0-0');
    expect(Buffer.from(fetched.bytes)).toEqual(Buffer.from(one.manifest.bytes));
    expect(fetched.descriptor.mediaType).toBe(MEDIA_TYPE_OCI_MANIFEST);
    expect(Buffer.from((await r.fetchManifest(one.descriptor.digest)).bytes)).toEqual(
      Buffer.from(one.manifest.bytes),
    );

    await r.pushManifest(two.manifest, '2.0-0');
    await r.pushManifest(two.manifest, 'moving');
    expect((await r.resolve('moving'))?.digest).toBe(two.descriptor.digest);
    await r.pushManifest(one.manifest, 'moving');
    expect((await r.resolve('moving'))?.digest).toBe(one.descriptor.digest);
    const tags: string[] = [];
    for await (const t of r.listTags()) tags.push(t);
    expect(tags.sort()).toEqual(['1.0-0', '2.0-0', 'moving']);

    await r.deleteManifest(two.descriptor.digest);
    expect(await r.resolve('2.0-0')).toBeUndefined();
    await expect(r.fetchManifest('2.0-0')).rejects.toThrow(NotFoundError);
    expect((await r.resolve('1.0-0'))?.digest).toBe(one.descriptor.digest);
  });

  test('a manifest whose blobs are missing is refused, and no tag appears', async () => {
    const r = repo('incomplete');
    const image = imageOf([bytes('never pushed')]);
    await r.pushBlob(EMPTY_CONFIG, EMPTY_JSON_BYTES);
    await expect(r.pushManifest(image.manifest, 'broken')).rejects.toThrow(OciError);
    expect(await r.resolve('broken')).toBeUndefined();
  });

  test('an unknown tag or blob is absent, not an error', async () => {
    const r = repo('empty');
    expect(await r.resolve('nothing-here')).toBeUndefined();
    expect(await r.statBlob(digestOf('nothing'))).toBeUndefined();
    const tags: string[] = [];
    for await (const t of r.listTags()) tags.push(t);
    expect(tags).toEqual([]);
    await expect(r.readBlob({ digest: digestOf('nothing'), size: 7 }, 100)).rejects.toThrow(NotFoundError);
  });

  test('a blob mounts from a sibling repository without being sent', async () => {
    const content = bytes(`mount me ${kind}`);
    const descriptor = { digest: digestOf(content), size: content.length };
    await repo('mount-src').pushBlob(descriptor, content);
    const outcome = await repo('mount-dst').pushBlob(descriptor, content, {
      mountFrom: `contract/${kind}/mount-src`,
    });
    expect(outcome).toEqual({ action: 'mounted', bytesSent: 0 });
    expect(Buffer.from(await repo('mount-dst').readBlob(descriptor, 1000))).toEqual(Buffer.from(content));
  });

  test('referrers: pushed with a subject, found by type, removed with their fallback entry', async () => {
    const r = repo('referrers');
    const subject = imageOf([bytes('the subject')]);
    await pushArtifact(r, subject, { tag: 'subject' });
    const note = (text: string) =>
      imageOf([bytes(text)], { artifactType: 'application/vnd.test.note', subject: subject.descriptor });
    const a = note('note a');
    const b = note('note b');
    await pushArtifact(r, a, { subject: subject.descriptor });
    await pushArtifact(r, b, { subject: subject.descriptor });
    const found = await listReferrers(r, subject.descriptor.digest, 'application/vnd.test.note');
    expect(found.map((d) => d.digest).sort()).toEqual([a.descriptor.digest, b.descriptor.digest].sort());
    expect(found.every((d) => d.artifactType === 'application/vnd.test.note')).toBe(true);
    expect(await listReferrers(r, subject.descriptor.digest, 'application/vnd.other')).toEqual([]);

    await deleteReferrers(
      r,
      subject.descriptor.digest,
      found.filter((d) => d.digest === a.descriptor.digest),
    );
    expect((await listReferrers(r, subject.descriptor.digest)).map((d) => d.digest)).toEqual([
      b.descriptor.digest,
    ]);
    expect(await r.resolve(fallbackTag(subject.descriptor.digest))).toBeDefined();
  });

  test('repositories are listed below a prefix', async () => {
    await repo('listing/one').pushBlob(EMPTY_CONFIG, EMPTY_JSON_BYTES);
    const image = imageOf([bytes('listed')]);
    for (const name of ['listing/one', 'listing/two']) await pushArtifact(repo(name), image, { tag: 'v1' });
    const names: string[] = [];
    for await (const name of store.listRepositories(`contract/${kind}/listing`)) names.push(name);
    expect(names.sort()).toEqual([`contract/${kind}/listing/one`, `contract/${kind}/listing/two`]);
  });
});

describe('oci-layout housekeeping', () => {
  test("a deletion's garbage collection removes temporary files of killed writers, not of live ones", async () => {
    const store = new LayoutStore(layoutDir);
    const repository = store.repository('housekeeping/pkg');
    const image = imageOf([bytes('kept')]);
    const other = imageOf([bytes('deleted')]);
    await pushArtifact(repository, image, { tag: 'v1' });
    await pushArtifact(repository, other, { tag: 'v2' });
    const root = join(layoutDir, 'housekeeping', 'pkg');
    const blobs = join(root, 'blobs', 'sha256');
    const hourAgo = new Date(Date.now() - 3600_000);
    const abandoned = [join(root, '.tmp-4000001-aaaaaaaaaaaa'), join(blobs, '.tmp-4000001-bbbbbbbbbbbb')];
    const live = [join(root, '.tmp-4000002-cccccccccccc'), join(blobs, '.tmp-4000002-dddddddddddd')];
    for (const path of [...abandoned, ...live]) await writeFile(path, 'half written');
    for (const path of abandoned) await utimes(path, hourAgo, hourAgo);

    await repository.deleteManifest(other.descriptor.digest);
    for (const path of abandoned) await expect(stat(path), path).rejects.toThrow(/ENOENT/);
    for (const path of live) expect((await stat(path)).isFile(), path).toBe(true);
    // The artifact still there is whole.
    expect((await repository.fetchManifest('v1')).descriptor.digest).toBe(image.descriptor.digest);
    for (const blob of image.blobs) expect(await repository.statBlob(blob.descriptor.digest)).toBeDefined();
  });
});

describe('copy between stores', () => {
  test('layout -> registry -> layout keeps manifest and blobs byte-identical', async () => {
    const layout = new LayoutStore(layoutDir);
    const remote = new RemoteStore({ host: registry.host, plainHttp: true });
    const back = new LayoutStore(join(layoutDir, 'back'));
    try {
      const image = imageOf([bytes('copied layer'), Buffer.alloc(300_000, 7)]);
      const src = { store: layout, repository: layout.repository('copy/src') };
      const mid = { store: remote, repository: remote.repository('copy/mid') };
      const dst = { store: back, repository: back.repository('copy/dst') };
      await pushArtifact(src.repository, image, { tag: 'v1' });
      for (const [from, to] of [
        [src, mid],
        [mid, dst],
      ] as const) {
        const outcomes = await copyManifestBlobs(from, to, image.manifest);
        expect(outcomes.every((o) => o.action === 'uploaded')).toBe(true);
        await to.repository.pushManifest(image.manifest, 'v1');
      }
      const final = await dst.repository.fetchManifest('v1');
      expect(final.descriptor.digest).toBe(image.descriptor.digest);
      for (const blob of image.blobs) {
        expect(Buffer.from(await dst.repository.readBlob(blob.descriptor, 1 << 20))).toEqual(
          Buffer.from(blob.content),
        );
      }
    } finally {
      await remote.close();
    }
  });

  test('a copy whose source lies about the bytes fails and leaves nothing behind', async () => {
    const layout = new LayoutStore(layoutDir);
    const truth = bytes('the real bytes');
    const descriptor = { digest: digestOf(truth), size: truth.length };
    await layout.repository('lying/src').pushBlob(descriptor, truth);
    // Corrupt the stored blob behind the store's back.
    const { writeFile } = await import('node:fs/promises');
    await writeFile(
      join(layoutDir, 'lying', 'src', 'blobs', 'sha256', descriptor.digest.slice(7)),
      bytes('the fake bytes'),
    );
    const remote = new RemoteStore({ host: registry.host, plainHttp: true });
    try {
      const { copyBlob } = await import('../../src/oci/copy.js');
      const err = await copyBlob(
        { store: layout, repository: layout.repository('lying/src') },
        { store: remote, repository: remote.repository('lying/dst') },
        descriptor,
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OciError);
      expect((err as Error).cause).toBeInstanceOf(DigestMismatchError);
      expect(await remote.repository('lying/dst').statBlob(descriptor.digest)).toBeUndefined();
    } finally {
      await remote.close();
    }
  });
});
