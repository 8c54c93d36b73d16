/**
 * Drives one of Node's native decompressors (node:zlib's zstd or gunzip stream) from the
 * synchronous, push-driven readers: bytes go in with `write`, come out (in chunks of at most
 * `OUTPUT_CHUNK`) to `onData` as libzstd / zlib produce them, and `settle` waits until all that
 * was written has been decoded. A problem, whether of the data or thrown by `onData` (a limit, a
 * tar rule), stops the decoder at once and is what `settle` rejects with.
 *
 * The decoding runs on libuv's thread pool: one round trip per output chunk, so a bomb is cut
 * after the chunk that crosses its allowance.
 */
import type { Transform } from 'node:stream';
import { ArchiveError } from './archive-error.js';

/** Output chunk: a zstd block at most, and ~40 µs per round trip keeps 128 KiB under 1 ms/MiB. */
export const OUTPUT_CHUNK = 128 * 1024;

export class ZlibDecoder {
  private failure: Error | undefined;
  private inFlight = 0;
  private ended = false;
  private finished = false;
  private closed = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly stream: Transform & { bytesWritten: number },
    /** Receives the output and the compressed bytes the decompressor has consumed so far. */
    onData: (chunk: Uint8Array, consumed: number) => void,
    /** Turns an error of the decompressor into the ArchiveError to report. */
    describe: (err: Error & { code?: string }) => ArchiveError,
  ) {
    stream.on('data', (chunk: Buffer) => {
      if (this.failure !== undefined) return;
      try {
        onData(chunk, this.stream.bytesWritten);
      } catch (err) {
        this.fail(err);
      }
    });
    stream.on('error', (err: Error) => this.fail(describe(err)));
    stream.on('end', () => {
      this.finished = true;
      this.poke();
    });
    stream.on('close', () => {
      this.closed = true;
      this.poke();
    });
  }

  /** Hands compressed bytes to the decoder (copied: the caller's view may be reused). */
  write(chunk: Uint8Array): void {
    if (this.failure !== undefined || this.ended || chunk.length === 0) return;
    this.inFlight++;
    this.stream.write(Buffer.from(chunk), () => {
      this.inFlight--;
      this.poke();
    });
  }

  /** No more input: `settle` then waits for the last output. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.failure === undefined) this.stream.end();
  }

  /** Resolves when everything written so far is decoded (after `end`: all of it). */
  async settle(): Promise<void> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      if (this.ended ? this.finished : this.inFlight === 0) return;
      if (this.closed) throw new ArchiveError('the decompressor stopped before the end of its input');
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Abandons decoding (the reader failed elsewhere). */
  destroy(): void {
    this.stream.destroy();
  }

  private fail(err: unknown): void {
    this.failure ??= err instanceof Error ? err : new Error(String(err));
    this.stream.destroy();
    this.poke();
  }

  private poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
