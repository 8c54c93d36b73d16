import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DigestMismatchError, InvalidReferenceError, SizeLimitError } from './errors.js';

/** A content digest as the image spec writes it: `sha256:<64 lower-case hex>`. */
export type Digest = `sha256:${string}`;

const DIGEST_PATTERN = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && DIGEST_PATTERN.test(value);
}

export function parseDigest(value: string, what = 'digest'): Digest {
  if (!isDigest(value)) throw new InvalidReferenceError(`${what} "${value}" is not a sha256 digest`);
  return value;
}

/** `sha256:<hex>` from a bare hex string or a digest. */
export function toDigest(hexOrDigest: string, what = 'sha256'): Digest {
  const value = hexOrDigest.startsWith('sha256:') ? hexOrDigest : `sha256:${hexOrDigest.toLowerCase()}`;
  return parseDigest(value, what);
}

export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

export function digestOf(bytes: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * A pass-through stream that hashes what flows through it and, at the end, fails the stream
 * when the bytes do not match the expected digest and size. It also fails as soon as more bytes
 * than expected arrive, so a lying server cannot make the reader buffer without bound.
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private received = 0;

  constructor(
    private readonly expected: { digest: Digest; size?: number },
    private readonly what: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length;
    const size = this.expected.size;
    if (size !== undefined && this.received > size) {
      callback(new SizeLimitError(`${this.what} (declared ${size} bytes)`, size));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const size = this.expected.size;
    if (size !== undefined && this.received !== size) {
      callback(new DigestMismatchError(`${this.what} size`, String(size), String(this.received)));
      return;
    }
    const actual: Digest = `sha256:${this.hash.digest('hex')}`;
    if (actual !== this.expected.digest) {
      callback(new DigestMismatchError(this.what, this.expected.digest, actual));
      return;
    }
    callback();
  }
}

/** Throws unless `bytes` have the expected digest (and size, when given). */
export function verifyBytes(
  bytes: Uint8Array,
  expected: { digest: Digest; size?: number },
  what: string,
): void {
  if (expected.size !== undefined && bytes.length !== expected.size) {
    throw new DigestMismatchError(`${what} size`, String(expected.size), String(bytes.length));
  }
  const actual = digestOf(bytes);
  if (actual !== expected.digest) throw new DigestMismatchError(what, expected.digest, actual);
}
