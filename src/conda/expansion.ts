/**
 * Decompression allowances tied to the compressed size (SPEC §10, "cost is bounded"): whatever a
 * decoder produces (bzip2, zstd, gzip) may be at most `ratio` times the compressed bytes it has
 * consumed, plus `floor`, checked as the bytes come out, so a bomb stops after a few milliseconds
 * and an attacker gets CPU time only in proportion to the bytes sent.
 *
 * Real packages compress 2-20:1 as a whole (their info/ folders up to ~30:1: paths.json is mostly
 * hashes); zeros compress 1000:1 (gzip) to a million to one (bzip2). The floor lets any archive
 * expand to that much regardless of its ratio.
 */
import { SizeLimitError } from '../oci/errors.js';
import { formatBytes } from '../util/format-bytes.js';
import { ArchiveError } from './archive-error.js';

const MIB = 1024 * 1024;

export interface ExpansionLimits {
  /** Output allowed per compressed byte. */
  ratio: number;
  /** Output allowed whatever the compressed size. */
  floor: number;
}

/**
 * 100:1 is five times the most real packages reach; 16 MiB holds the info/ folder of nearly
 * every package and the whole of most. A bomb then costs at most ~0.1 s (bzip2 decodes zeros at
 * ~170 MiB/s here, zstd and gzip several times faster).
 */
export const DEFAULT_EXPANSION: Readonly<ExpansionLimits> = Object.freeze({ ratio: 100, floor: 16 * MIB });

/** The most `compressed` bytes may expand to. */
export function expansionAllowance(limits: ExpansionLimits, compressed: number): number {
  return limits.ratio * compressed + limits.floor;
}

/** A size cap on top of the expansion limit (info/ of a package, a whole info layer). */
export interface OutputCap {
  bytes: number;
  /** The refusal, naming the cap. */
  error: () => ArchiveError;
}

/**
 * The limit for one decoder: what `consumed` compressed bytes may expand to, at most the cap.
 * `consumed` is what the decoder has taken in when it hands out the output (zlib's
 * `bytesWritten`, the bzip2 block end), not what was received: so the limit is a function of the
 * bytes alone, whatever the chunks they arrive in, and a layer read whole or streamed is judged
 * alike.
 */
export class ExpansionLimit {
  constructor(
    /** For messages: `the tar archive`, `the info layer`. */
    private readonly what: string,
    private readonly limits: ExpansionLimits,
    private readonly cap?: OutputCap,
  ) {}

  /** Bytes allowed out of `consumed` compressed bytes. */
  allowed(consumed: number): number {
    const allowance = expansionAllowance(this.limits, consumed);
    return this.cap === undefined ? allowance : Math.min(allowance, this.cap.bytes);
  }

  /** Throws once `produced` exceeds what `consumed` compressed bytes may give. */
  check(produced: number, consumed: number): void {
    if (produced > this.allowed(consumed)) throw this.error(consumed);
  }

  /** The refusal for output over the allowance of `consumed` compressed bytes. */
  error(consumed: number): ArchiveError {
    if (this.cap !== undefined && this.cap.bytes <= expansionAllowance(this.limits, consumed))
      return this.cap.error();
    return expansionError(this.what, this.limits, consumed);
  }
}

/** The refusal, naming the limit: `… decompresses to more than 16.3 MiB, the expansion limit (…)`. */
export function expansionError(what: string, limits: ExpansionLimits, compressed: number): ArchiveError {
  const allowed = expansionAllowance(limits, compressed);
  return new ArchiveError(
    `${what} decompresses to more than ${formatBytes(allowed)}, the expansion limit (${limits.ratio} times its ${formatBytes(compressed)} compressed, plus ${formatBytes(limits.floor)}; a decompression bomb?)`,
    { cause: new SizeLimitError(`${what} (decompressed)`, allowed) },
  );
}
