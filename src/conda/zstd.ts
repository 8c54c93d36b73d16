/**
 * Decompresses one zstd member whose compressed size is known up front (the `info-*.tar.zst` of a
 * .conda), with a hard limit on the decompressed size that is enforced while the compressed bytes
 * are still arriving.
 *
 * fzstd's streaming decoder allocates the full window the frame declares and moves the whole
 * window after every 128 KiB block; conda-package-handling writes info archives with a 64 MiB
 * window, so decoding a few hundred bytes costs 64 MiB of memory, and a bomb with a large window
 * costs time quadratic in its size. So decoding runs in two passes over the (bounded) compressed
 * bytes:
 *
 * 1. While the bytes arrive, a walker checks the frame structure (RFC 8878 §3.1: frame header,
 *    block headers, block sizes at most 128 KiB, checksum, skippable frames) and feeds each frame,
 *    with its header rewritten to a window of at most 128 KiB, to fzstd's streaming decoder only to
 *    count the output. The sizes of literals and matches, hence the output size, do not depend on
 *    the window, so the count is exact, and a bomb stops after `limit` bytes with ~1 MiB of memory.
 * 2. At the end, each frame is decoded once more with fzstd's one-shot decoder into an output
 *    buffer of exactly the counted size, which serves as its own window: linear time, exact bytes.
 */
import { performance } from 'node:perf_hooks';
import { createContext, Script } from 'node:vm';
import { Decompress, decompress } from 'fzstd';
import { SizeLimitError } from '../oci/errors.js';
import { ArchiveError } from './archive-error.js';
import { formatBytes } from '../util/format-bytes.js';

const FRAME_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const MAX_BLOCK = 128 * 1024;
/**
 * Frames that need a larger window are refused: libzstd (and so python-zstandard, which conda
 * uses) refuses them by default too (ZSTD_WINDOWLOG_LIMIT_DEFAULT = 27).
 */
export const MAX_ZSTD_WINDOW = 128 * 1024 * 1024;

/**
 * fzstd does not check that a block's sequences stay within the block: a crafted compressed block
 * of ~20 KB whose matches are each 128 KiB long makes it run billions of loop iterations (seconds
 * of CPU per block; the output is still cut to the block size, so the output limit never fires).
 * Every decoding step therefore runs under a time budget per member: node:vm's `timeout` stops
 * synchronous code, fzstd's loops included. Real info archives decode at 100+ MB/s, so even the
 * 256 MiB info/ limit stays well within the default.
 */
export const DEFAULT_ZSTD_DECODE_MS = 10_000;

const budgetContext = createContext({ step: undefined as (() => unknown) | undefined });
const runStep = new Script('step()');

/** Runs `step` synchronously, stopped (ERR_SCRIPT_EXECUTION_TIMEOUT) after `ms` milliseconds. */
function withTimeLimit(ms: number, step: () => unknown): void {
  budgetContext.step = step;
  try {
    runStep.runInContext(budgetContext, { timeout: Math.max(1, Math.ceil(ms)) });
  } finally {
    budgetContext.step = undefined;
  }
}

interface Frame {
  start: number;
  end: number;
  output: number;
}

interface OpenFrame {
  start: number;
  blockMax: number;
  checksum: boolean;
  declaredSize: number | undefined;
  decoder: Decompress;
  output: number;
}

type State = 'frame' | 'block' | 'checksum' | 'skippable';

export class ZstdMemberDecoder {
  private readonly data: Uint8Array;
  private fill = 0;
  private at = 0;
  private state: State = 'frame';
  private skip = 0;
  private frame: OpenFrame | undefined;
  private readonly frames: Frame[] = [];
  private total = 0;
  /** Milliseconds spent decoding so far, against `budgetMs`. */
  private spent = 0;

  constructor(
    compressedSize: number,
    private readonly limit: number,
    /** For messages: `the info archive`. */
    private readonly what: string,
    /** Time all decoding of this member may take (see DEFAULT_ZSTD_DECODE_MS). */
    private readonly budgetMs: number = DEFAULT_ZSTD_DECODE_MS,
  ) {
    this.data = new Uint8Array(compressedSize);
  }

  push(chunk: Uint8Array): void {
    if (this.fill + chunk.length > this.data.length) {
      throw new ArchiveError(`${this.what} is longer than its zip entry says`);
    }
    this.data.set(chunk, this.fill);
    this.fill += chunk.length;
    this.walk();
  }

  /** The decompressed bytes. Call once all compressed bytes were pushed. */
  end(): Uint8Array {
    this.walk();
    if (this.fill !== this.data.length || this.state !== 'frame' || this.at !== this.fill) {
      throw new ArchiveError(`${this.what} is truncated (the zstd data ends inside a frame)`);
    }
    if (this.frames.length === 0) throw new ArchiveError(`${this.what} holds no zstd frame`);
    const output = new Uint8Array(this.total);
    // fzstd compares its output buffer with a number (`w == 1`), which would join the whole
    // array into a string: make that comparison cheap.
    Object.defineProperty(output, Symbol.toPrimitive, { value: () => 0 });
    let offset = 0;
    for (const frame of this.frames) {
      const target = output.subarray(offset, offset + frame.output);
      Object.defineProperty(target, Symbol.toPrimitive, { value: () => 0 });
      this.guard(() => decompress(this.data.subarray(frame.start, frame.end), target), true);
      offset += frame.output;
    }
    return output;
  }

  private walk(): void {
    for (;;) {
      const available = this.fill - this.at;
      const d = this.data;
      switch (this.state) {
        case 'frame': {
          if (available < 4) return;
          const magic = u32(d, this.at);
          if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
            if (available < 8) return;
            this.skip = u32(d, this.at + 4);
            this.at += 8;
            this.state = 'skippable';
            break;
          }
          if (magic !== FRAME_MAGIC) {
            throw new ArchiveError(
              this.frames.length === 0
                ? `${this.what} is not zstd-compressed`
                : `${this.what} has unexpected data after its zstd frames`,
            );
          }
          if (available < 5) return;
          const descriptor = d[this.at + 4] as number;
          const singleSegment = (descriptor & 0x20) !== 0;
          const dictionaryBytes = [0, 1, 2, 4][descriptor & 3] as number;
          const sizeFlag = descriptor >> 6;
          const sizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][sizeFlag] as number;
          const headerSize = 5 + (singleSegment ? 0 : 1) + dictionaryBytes + sizeBytes;
          if (available < headerSize) return;
          this.openFrame(descriptor, singleSegment, dictionaryBytes, sizeBytes, headerSize);
          break;
        }
        case 'block': {
          if (available < 3) return;
          const header =
            (d[this.at] as number) | ((d[this.at + 1] as number) << 8) | ((d[this.at + 2] as number) << 16);
          const last = (header & 1) === 1;
          const type = (header >> 1) & 3;
          const size = header >>> 3;
          const frame = this.frame as OpenFrame;
          if (type === 3) throw this.corrupt('a block has the reserved type');
          if (size > frame.blockMax)
            throw this.corrupt(`a block is larger than ${formatBytes(frame.blockMax)}`);
          const length = 3 + (type === 1 ? 1 : size);
          if (available < length) return;
          // Raw and RLE blocks cost fzstd a copy or a fill; compressed ones run under the budget.
          this.feed(d.subarray(this.at, this.at + length), false, type === 2);
          this.at += length;
          if (last) {
            this.feed(new Uint8Array(0), true);
            this.state = frame.checksum ? 'checksum' : 'block';
            if (!frame.checksum) this.closeFrame();
          }
          break;
        }
        case 'checksum':
          // fzstd does not verify content checksums and neither do we: the zip entry's CRC-32
          // has already covered these bytes.
          if (available < 4) return;
          this.at += 4;
          this.closeFrame();
          break;
        case 'skippable': {
          const take = Math.min(this.skip, available);
          this.at += take;
          this.skip -= take;
          if (this.skip > 0) return;
          this.state = 'frame';
          break;
        }
      }
    }
  }

  private openFrame(
    descriptor: number,
    singleSegment: boolean,
    dictionaryBytes: number,
    sizeBytes: number,
    headerSize: number,
  ): void {
    const d = this.data;
    if (descriptor & 0x08) throw this.corrupt('a frame header has the reserved bit set');
    let at = this.at + 5;
    let window = 0;
    if (!singleSegment) {
      const windowDescriptor = d[at++] as number;
      const base = 2 ** (10 + (windowDescriptor >> 3));
      window = base + (base / 8) * (windowDescriptor & 7);
    }
    let dictionary = 0;
    for (let i = 0; i < dictionaryBytes; i++) dictionary += (d[at++] as number) * 2 ** (8 * i);
    if (dictionary !== 0)
      throw new ArchiveError(`${this.what} needs a zstd dictionary, which is not supported`);
    let declaredSize: number | undefined;
    if (sizeBytes > 0) {
      let size = 0;
      for (let i = 0; i < sizeBytes; i++) size += (d[at++] as number) * 2 ** (8 * i);
      declaredSize = sizeBytes === 2 ? size + 256 : size;
    }
    if (singleSegment) window = declaredSize ?? 0;
    if (window > MAX_ZSTD_WINDOW) {
      throw new ArchiveError(
        `${this.what} needs a zstd window of ${formatBytes(window)}, more than the ${formatBytes(MAX_ZSTD_WINDOW)} zstd decoders accept by default`,
      );
    }
    if (declaredSize !== undefined && this.total + declaredSize > this.limit) this.overLimit();

    // Pass 1 only counts: give fzstd a window of at most 128 KiB (a power of two, so the header
    // can say it exactly, and never smaller than the frame's largest block).
    const blockMax = Math.min(window, MAX_BLOCK);
    let countingWindowLog = 10;
    while (2 ** countingWindowLog < blockMax) countingWindowLog++;
    const header = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x00, (countingWindowLog - 10) << 3]);
    const frame: OpenFrame = {
      start: this.at,
      blockMax,
      checksum: (descriptor & 0x04) !== 0,
      declaredSize,
      output: 0,
      decoder: new Decompress((chunk) => this.count(frame, chunk.length)),
    };
    this.frame = frame;
    this.at += headerSize;
    this.state = 'block';
    this.feed(header);
  }

  private count(frame: OpenFrame, bytes: number): void {
    frame.output += bytes;
    this.total += bytes;
    if (this.total > this.limit) this.overLimit();
    if (frame.declaredSize !== undefined && frame.output > frame.declaredSize) {
      throw this.corrupt('a frame holds more than its declared content size');
    }
  }

  private closeFrame(): void {
    const frame = this.frame as OpenFrame;
    if (frame.declaredSize !== undefined && frame.output !== frame.declaredSize) {
      throw this.corrupt('a frame holds less than its declared content size');
    }
    this.frames.push({ start: frame.start, end: this.at, output: frame.output });
    this.frame = undefined;
    this.state = 'frame';
  }

  private feed(bytes: Uint8Array, final = false, timed = false): void {
    const frame = this.frame as OpenFrame;
    this.guard(() => frame.decoder.push(bytes, final), timed);
  }

  private guard(decode: () => unknown, timed = false): void {
    const started = timed ? performance.now() : 0;
    try {
      if (timed) withTimeLimit(this.budgetMs - this.spent, decode);
      else decode();
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') {
        throw new ArchiveError(
          `${this.what} takes more than ${this.budgetMs / 1000} s to decompress (crafted zstd data?)`,
          { cause: err },
        );
      }
      if (err instanceof ArchiveError) throw err;
      const detail = err instanceof Error ? err.message : String(err);
      throw new ArchiveError(`${this.what} is not valid zstd data (${detail})`, { cause: err });
    } finally {
      if (timed) this.spent += performance.now() - started;
    }
  }

  private overLimit(): never {
    const cause = new SizeLimitError(`${this.what} (decompressed)`, this.limit);
    throw new ArchiveError(
      `${this.what} decompresses to more than ${formatBytes(this.limit)} (the limit for info/; a decompression bomb?)`,
      { cause },
    );
  }

  private corrupt(detail: string): ArchiveError {
    return new ArchiveError(`${this.what} is not valid zstd data (${detail})`);
  }
}

function u32(bytes: Uint8Array, at: number): number {
  return (
    ((bytes[at] as number) |
      ((bytes[at + 1] as number) << 8) |
      ((bytes[at + 2] as number) << 16) |
      ((bytes[at + 3] as number) << 24)) >>>
    0
  );
}
