/**
 * Decompresses the zstd info archive of a .conda with Node's zstd (libzstd, node:zlib), streaming
 * and bounded: at most a 128 MiB window (`ZSTD_d_windowLogMax` 27, libzstd's default limit, so
 * what conda's python-zstandard reads), output within its expansion limit, checked as it is produced.
 *
 * libzstd decodes every frame it is given and silently drops what follows the last one, while
 * conda reads only the first frame (conda-package-handling's `stream_reader`). So a frame check
 * walks the compressed bytes as they arrive (frame header and block headers, RFC 8878 §3.1) and
 * allows exactly one frame with nothing after it, no skippable frame and no dictionary; it also
 * refuses a declared window or content size over the limits before anything is decoded.
 */
import { constants, createZstdDecompress } from 'node:zlib';
import { formatBytes } from '../util/format-bytes.js';
import { ArchiveError } from './archive-error.js';
import type { ExpansionLimit } from './expansion.js';
import { OUTPUT_CHUNK, ZlibDecoder } from './zlib-decoder.js';

const FRAME_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
/** libzstd's default limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT), which python-zstandard keeps. */
const MAX_WINDOW_LOG = 27;
export const MAX_ZSTD_WINDOW = 2 ** MAX_WINDOW_LOG;

/** One zstd member, decoded as its bytes arrive; output goes to `onData` (views, valid during the call). */
export class ZstdDecoder {
  private readonly frame: FrameCheck;
  private readonly zlib: ZlibDecoder;
  private produced = 0;

  constructor(
    /** For messages: `"info-….tar.zst"`. */
    private readonly what: string,
    /** Its compressed size: no frame may declare more content than this may expand to. */
    compressedSize: number,
    limit: ExpansionLimit,
    onData: (chunk: Uint8Array) => void,
  ) {
    this.frame = new FrameCheck(what, limit.allowed(compressedSize), () => limit.error(compressedSize));
    const stream = createZstdDecompress({
      chunkSize: OUTPUT_CHUNK,
      params: { [constants.ZSTD_d_windowLogMax]: MAX_WINDOW_LOG },
    });
    this.zlib = new ZlibDecoder(
      stream,
      (chunk, consumed) => {
        this.produced += chunk.length;
        limit.check(this.produced, consumed);
        onData(chunk);
      },
      (err) => this.describe(err),
    );
  }

  write(chunk: Uint8Array): void {
    this.frame.push(chunk);
    this.zlib.write(chunk);
  }

  /** All compressed bytes were written. */
  end(): void {
    this.frame.end();
    this.zlib.end();
  }

  /** See ZlibDecoder.settle. */
  settle(): Promise<void> {
    return this.zlib.settle();
  }

  destroy(): void {
    this.zlib.destroy();
  }

  private describe(err: Error & { code?: string }): ArchiveError {
    if (err.code === 'Z_BUF_ERROR')
      return new ArchiveError(`${this.what} is truncated (the zstd data ends inside a frame)`);
    return new ArchiveError(`${this.what} is not valid zstd data (${err.message})`, { cause: err });
  }
}

type State = 'header' | 'block' | 'content' | 'checksum' | 'done';

/** Walks frame and block headers, skipping block contents: a few bytes of work per 128 KiB block. */
class FrameCheck {
  private state: State = 'header';
  /** Frame header (at most 18 bytes) or block header (3 bytes) being collected. */
  private readonly head = new Uint8Array(18);
  private fill = 0;
  private need = 5;
  private skip = 0;
  private last = false;
  private checksum = false;
  private seen = 0;

  constructor(
    private readonly what: string,
    /** The most output a frame may declare, and the refusal beyond it. */
    private readonly maxDeclared: number,
    private readonly overLimit: () => ArchiveError,
  ) {}

  push(chunk: Uint8Array): void {
    this.seen += chunk.length;
    let at = 0;
    while (at < chunk.length) {
      if (this.state === 'done') {
        throw new ArchiveError(
          `${this.what} has data after its zstd frame (conda reads only the first frame)`,
        );
      }
      if (this.state === 'content' || this.state === 'checksum') {
        const take = Math.min(this.skip, chunk.length - at);
        this.skip -= take;
        at += take;
        if (this.skip === 0) this.afterSkip();
        continue;
      }
      const take = Math.min(this.need - this.fill, chunk.length - at);
      this.head.set(chunk.subarray(at, at + take), this.fill);
      this.fill += take;
      at += take;
      if (this.fill === this.need) {
        if (this.state === 'header') this.onFrameHeader();
        else this.onBlockHeader();
      }
    }
  }

  end(): void {
    if (this.state === 'done') return;
    if (this.seen === 0) throw new ArchiveError(`${this.what} is empty`);
    throw new ArchiveError(`${this.what} is truncated (the zstd data ends inside a frame)`);
  }

  private onFrameHeader(): void {
    const h = this.head;
    const magic = (h[0]! | (h[1]! << 8) | (h[2]! << 16) | (h[3]! << 24)) >>> 0;
    if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
      throw new ArchiveError(`${this.what} starts with a skippable zstd frame (conda would read nothing)`);
    }
    if (magic !== FRAME_MAGIC) throw new ArchiveError(`${this.what} is not zstd-compressed`);
    const descriptor = h[4]!;
    const singleSegment = (descriptor & 0x20) !== 0;
    const dictionaryBytes = [0, 1, 2, 4][descriptor & 3]!;
    const sizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][descriptor >> 6]!;
    const headerSize = 5 + (singleSegment ? 0 : 1) + dictionaryBytes + sizeBytes;
    if (this.need < headerSize) {
      this.need = headerSize;
      return;
    }
    if (descriptor & 0x08) throw this.corrupt('the frame header has the reserved bit set');
    this.checksum = (descriptor & 0x04) !== 0;
    let at = 5;
    let window = 0;
    if (!singleSegment) {
      const exponent = h[at++]!;
      const base = 2 ** (10 + (exponent >> 3));
      window = base + (base / 8) * (exponent & 7);
    }
    let dictionary = 0;
    for (let i = 0; i < dictionaryBytes; i++) dictionary += h[at++]! * 2 ** (8 * i);
    if (dictionary !== 0)
      throw new ArchiveError(`${this.what} needs a zstd dictionary, which conda does not have`);
    let declared: number | undefined;
    if (sizeBytes > 0) {
      let size = 0;
      for (let i = 0; i < sizeBytes; i++) size += h[at++]! * 2 ** (8 * i);
      declared = sizeBytes === 2 ? size + 256 : size;
    }
    if (declared !== undefined && declared > this.maxDeclared) throw this.overLimit();
    if (singleSegment) window = declared ?? 0;
    if (window > MAX_ZSTD_WINDOW) {
      throw new ArchiveError(
        `${this.what} needs a zstd window of ${formatBytes(window)}, more than the ${formatBytes(MAX_ZSTD_WINDOW)} zstd decoders accept by default`,
      );
    }
    this.state = 'block';
    this.fill = 0;
    this.need = 3;
  }

  private onBlockHeader(): void {
    const header = this.head[0]! | (this.head[1]! << 8) | (this.head[2]! << 16);
    const type = (header >> 1) & 3;
    if (type === 3) throw this.corrupt('a block has the reserved type');
    this.last = (header & 1) === 1;
    this.skip = type === 1 ? 1 : header >>> 3; // an RLE block holds one byte
    this.state = 'content';
    this.fill = 0;
    if (this.skip === 0) this.afterSkip();
  }

  private afterSkip(): void {
    if (this.state === 'content' && this.last && this.checksum) {
      this.state = 'checksum';
      this.skip = 4;
      return;
    }
    this.state = this.last || this.state === 'checksum' ? 'done' : 'block';
  }

  private corrupt(detail: string): ArchiveError {
    return new ArchiveError(`${this.what} is not valid zstd data (${detail})`);
  }
}
