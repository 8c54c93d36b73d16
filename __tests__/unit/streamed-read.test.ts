/**
 * What upload's streamed path is built from (README "Performance"), each on its own with Node
 * alone: the ring of reused read buffers with its two consumers (commands/file-pieces.ts), the
 * hashing thread (conda/package-hashes.ts), and the package reader's promise that it keeps no
 * input chunk, which the reuse of buffers relies on.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, test } from 'vitest';
import { FilePieces } from '../../src/commands/file-pieces.js';
import { localHasher, ThreadHasher } from '../../src/conda/package-hashes.js';
import { readPackage, readPackageFile } from '../../src/conda/package-reader.js';
import { FIXTURES } from '../helpers/fixtures.js';

const MiB = 1024 * 1024;
const work = mkdtempSync(join(tmpdir(), 'conda-oci-streamed-read-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function fileOf(bytes: Buffer): string {
  const path = join(work, `file-${randomBytes(4).toString('hex')}`);
  writeFileSync(path, bytes);
  return path;
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

describe('FilePieces', () => {
  test('both consumers get every byte, in order, with a ring far smaller than the file', async () => {
    const bytes = randomBytes(10 * 64 * 1024 + 123);
    const pieces = await FilePieces.open(fileOf(bytes), bytes.length, { pieceBytes: 64 * 1024, buffers: 4 });
    const read: string[] = [];
    const readerDone = (async () => {
      const hash = createHash('sha256');
      for await (const piece of pieces.forReader()) {
        hash.update(piece);
        read.push(`r${piece.length}`);
      }
      return hash.digest('hex');
    })();
    // The upload, slower than the reader: the reader must wait for it, not overwrite its pieces.
    const sent = createHash('sha256');
    let total = 0;
    for await (const chunk of pieces.upload.chunks) {
      sent.update(chunk);
      total += chunk.length;
      await sleep(5);
    }
    expect(await readerDone).toBe(sha256(bytes));
    expect(sent.digest('hex')).toBe(sha256(bytes));
    expect(total).toBe(bytes.length);
    expect(read).toHaveLength(11);
  });

  test('an upload that stops (or never starts) leaves the reader to go on alone', async () => {
    const bytes = randomBytes(20 * 4096);
    // Stops after two pieces, as undici does when the request fails: the iterator is returned.
    const stopping = await FilePieces.open(fileOf(bytes), bytes.length, { pieceBytes: 4096, buffers: 4 });
    const stopped = (async () => {
      let n = 0;
      for await (const chunk of stopping.upload.chunks) if ((n += chunk.length) >= 8192) break;
      return n;
    })();
    // Never starts, as when the upload session could not be opened.
    const never = await FilePieces.open(fileOf(bytes), bytes.length, { pieceBytes: 4096, buffers: 4 });
    never.upload.abandon();
    for (const pieces of [stopping, never]) {
      const hash = createHash('sha256');
      for await (const piece of pieces.forReader()) hash.update(piece);
      expect(hash.digest('hex')).toBe(sha256(bytes));
    }
    expect(await stopped).toBe(8192);
  });

  /** The error a promise rejects with, caught at once (a rejection not yet awaited is not "unhandled"). */
  const failureOf = (promise: Promise<unknown>): Promise<unknown> =>
    promise.then(
      () => undefined,
      (err: unknown) => err,
    );

  test('a reader that stops early fails the upload instead of leaving it waiting', async () => {
    const bytes = randomBytes(20 * 4096);
    const pieces = await FilePieces.open(fileOf(bytes), bytes.length, { pieceBytes: 4096, buffers: 4 });
    const uploaded = failureOf(
      (async () => {
        for await (const chunk of pieces.upload.chunks) void chunk;
      })(),
    );
    for await (const piece of pieces.forReader()) if (piece.length > 0) break;
    expect(String(await uploaded)).toMatch(/stopped before the end/);
  });

  test('a file shorter than announced is an error for both', async () => {
    const bytes = randomBytes(5000);
    const pieces = await FilePieces.open(fileOf(bytes), 9000, { pieceBytes: 4096, buffers: 4 });
    const uploaded = failureOf(
      (async () => {
        for await (const chunk of pieces.upload.chunks) void chunk;
      })(),
    );
    const reading = failureOf(
      (async () => {
        for await (const piece of pieces.forReader()) void piece;
      })(),
    );
    expect(String(await reading)).toMatch(/ended after 5000 of 9000 bytes/);
    expect(String(await uploaded)).toMatch(/ended after 5000 of 9000 bytes/);
  });
});

describe('ThreadHasher', () => {
  test.each([
    ['one byte', [1]],
    ['chunks around the slot size', [0, 5, MiB, MiB + 1, 3 * MiB]],
    ['more than the ring holds, in chunks larger than it', [9 * MiB, 9 * MiB, 17]],
  ])('%s: the digests of createHash', async (_, sizes) => {
    const hasher = new ThreadHasher();
    const reference = localHasher();
    try {
      for (const size of sizes) {
        const chunk = randomBytes(size);
        void reference.update(chunk);
        const room = hasher.update(chunk);
        if (room) await room;
        chunk.fill(0); // copied once update returned, or its promise settled
      }
      expect(await hasher.digests()).toEqual(await reference.digests());
    } finally {
      await hasher.close();
    }
  });

  test('without sha256 it gives the md5 alone', async () => {
    const hasher = new ThreadHasher(false);
    try {
      await hasher.update(Buffer.from('abc'));
      expect(await hasher.digests()).toEqual({
        sha256: undefined,
        md5: createHash('md5').update('abc').digest('hex'),
      });
    } finally {
      await hasher.close();
    }
  });

  test('closed before its digests: they are refused, not waited for', async () => {
    const hasher = new ThreadHasher();
    await hasher.update(randomBytes(100));
    await hasher.close();
    await expect(hasher.digests()).rejects.toThrow(/closed/);
  });
});

describe('the package reader keeps no input chunk', () => {
  const packages = readdirSync(FIXTURES).filter((f) => f.endsWith('.conda') || f.endsWith('.tar.bz2'));

  /** The file in `size`-byte chunks, each overwritten once the next is asked for. */
  async function* reused(path: string, size: number): AsyncGenerator<Uint8Array> {
    let last: Buffer | undefined;
    for await (const chunk of createReadStream(path, { highWaterMark: size })) {
      last?.fill(0xa5);
      last = chunk as Buffer;
      yield last;
    }
  }

  test.each(packages)('%s: the same contents as from the file', async (file) => {
    const path = join(FIXTURES, file);
    const expected = await readPackageFile(path);
    for (const size of [1000, 65536]) {
      const got = await readPackage(reused(path, size), file);
      expect(got).toEqual(expected);
    }
  });
});
