/**
 * A file read once, in pieces, for two consumers at once: the package reader, which sets the pace
 * (`forReader`), and an upload, which the HTTP client pulls (`upload.chunks`). The pieces live in
 * a fixed ring of buffers that are read into again and again: memory stays at the ring's size
 * whatever the file's, and no garbage of freed buffers builds up (fresh 4 MiB buffers per read
 * cost ~40 MB more peak RSS and ~0.15 CPU-s per 300 MB, page faults and GC; see bench/README.md).
 *
 * A buffer is read into again only when both consumers are done with the piece it held:
 * - the reader with a piece once it asks for the next (readPackage keeps no input chunk);
 * - the upload once it has asked for two more: undici writes an iterable body piece by piece and
 *   asks for the next only after the socket took the last one (its 'drain'), so a piece two back
 *   is surely out of its hands. Were that ever not so, the registry would compute another digest
 *   than the one the upload is closed with and refuse it: the bytes are never stored wrong.
 * Once the upload is gone (finished, failed or abandoned) the reader goes on alone.
 */
import { open, type FileHandle } from 'node:fs/promises';

export interface FilePiecesOptions {
  /** Bytes per piece. */
  pieceBytes?: number;
  /** Buffers in the ring; at least 4 (the upload's two-piece margin, one being read, one ahead). */
  buffers?: number;
  /** Told of the bytes read so far. */
  onRead?: (bytes: number) => void;
}

export const DEFAULT_PIECE_BYTES = 1024 * 1024;
export const DEFAULT_BUFFERS = 8;

export class FilePieces {
  private readonly ring: Buffer[];
  private readonly pieceBytes: number;
  private readonly count: number;
  /** Pieces read so far. */
  private produced = 0;
  /** Pieces the upload has asked for. */
  private pulled = 0;
  private uploadGone = false;
  /** Why the reader stopped before the end, once it has. */
  private readerStopped: Error | undefined;
  private closed: Promise<void> | undefined;
  private wakeReader: (() => void) | undefined;
  private wakeUpload: (() => void) | undefined;

  private constructor(
    private readonly file: FileHandle,
    readonly size: number,
    private readonly options: FilePiecesOptions,
  ) {
    this.pieceBytes = options.pieceBytes ?? DEFAULT_PIECE_BYTES;
    this.count = Math.ceil(size / this.pieceBytes);
    const buffers = Math.min(Math.max(4, options.buffers ?? DEFAULT_BUFFERS), this.count);
    const length = Math.min(this.pieceBytes, size);
    this.ring = Array.from({ length: buffers }, () => Buffer.allocUnsafeSlow(length));
  }

  /** Opens `path` for reading its first `size` bytes. */
  static async open(path: string, size: number, options: FilePiecesOptions = {}): Promise<FilePieces> {
    return new FilePieces(await open(path, 'r'), size, options);
  }

  /**
   * The pieces in order, each valid until the next is asked for; the file is read as this is
   * iterated. If it ends early (a read failure, or the reader stops), so does the upload's stream,
   * with an error.
   */
  async *forReader(): AsyncGenerator<Buffer> {
    try {
      for (let index = 0; index < this.count; index++) {
        // A buffer used before: its piece, `ring.length` back, must be out of the upload's hands.
        while (index >= this.ring.length && !this.uploadGone && this.pulled < index - this.ring.length + 3)
          await new Promise<void>((resolve) => (this.wakeReader = resolve));
        const piece = this.piece(index);
        const start = index * this.pieceBytes;
        for (let filled = 0; filled < piece.length;) {
          const { bytesRead } = await this.file.read(piece, filled, piece.length - filled, start + filled);
          if (bytesRead === 0)
            throw new Error(`the file ended after ${start + filled} of ${this.size} bytes`);
          filled += bytesRead;
        }
        this.produced = index + 1;
        this.wake('upload');
        this.options.onRead?.(start + piece.length);
        yield piece;
      }
    } catch (err) {
      this.readerStopped = err instanceof Error ? err : new Error(String(err));
      throw err;
    } finally {
      if (this.produced < this.count)
        this.readerStopped ??= new Error('the package reader stopped before the end of the file');
      this.wake('upload');
      await this.close();
    }
  }

  /** For the upload (see StreamedBlob): the pieces as the reader has them read. */
  readonly upload = {
    chunks: this.chunks(),
    /** The upload ends early (or never starts): the reader stops waiting for it. */
    abandon: (): void => {
      this.uploadGone = true;
      this.wake('reader');
    },
  };

  /** Closes the file (also when the reader never started). */
  close(): Promise<void> {
    this.closed ??= this.file.close();
    return this.closed;
  }

  private async *chunks(): AsyncGenerator<Buffer> {
    try {
      for (let index = 0; index < this.count; index++) {
        this.pulled = index + 1;
        this.wake('reader');
        while (this.produced <= index) {
          if (this.readerStopped !== undefined) throw this.readerStopped;
          await new Promise<void>((resolve) => (this.wakeUpload = resolve));
        }
        yield this.piece(index);
      }
    } finally {
      this.upload.abandon();
    }
  }

  private piece(index: number): Buffer {
    const length = Math.min(this.pieceBytes, this.size - index * this.pieceBytes);
    return this.ring[index % this.ring.length]!.subarray(0, length);
  }

  private wake(who: 'reader' | 'upload'): void {
    const wake = who === 'reader' ? this.wakeReader : this.wakeUpload;
    if (who === 'reader') this.wakeReader = undefined;
    else this.wakeUpload = undefined;
    wake?.();
  }
}
