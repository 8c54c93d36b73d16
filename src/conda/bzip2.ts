/**
 * A streaming bzip2 decoder with bounded memory.
 *
 * Written for this project from the format (Julian Seward's bzip2 1.0 file format: stream header
 * `BZh1`..`BZh9`, bit-packed blocks of Huffman-coded MTF/RLE2 symbols over a Burrows-Wheeler
 * transform, the RLE1 stage, big-endian CRC-32 per block and per stream) rather than using
 * unbzip2-stream, because that one collects every decompressed block as an array of JS numbers
 * (one 45 MB block of a bzip2 bomb costs several hundred MB of heap) and can loop forever on a
 * crafted run length. Here:
 *
 * - compressed input is buffered only until the next block is complete (a block is at most
 *   ~2.3 MB, see MAX_BLOCK_BYTES), the block itself lives in one reused Uint32Array(900k);
 * - output is handed out in 64 KiB views as it is produced, so a caller can stop a bomb after the
 *   first bytes over its limit by throwing from `onData`;
 * - every length, index and run is checked, so corrupt input ends in an ArchiveError.
 */
import { ArchiveError } from './archive-error.js';

const BLOCK_MAGIC_HI = 0x314159;
const BLOCK_MAGIC_LO = 0x265359;
const END_MAGIC_HI = 0x177245;
const END_MAGIC_LO = 0x385090;
const MAX_GROUPS = 6;
const MAX_ALPHA = 258;
const MAX_CODE_LENGTH = 20;
const MAX_SELECTORS = 18002;
const GROUP_SIZE = 50;
const OUT_CHUNK = 64 * 1024;
/**
 * An upper bound of one compressed block: 900,000 symbols of at most 20 bits, 32,767 selectors,
 * six code tables, headers. Input is decoded block by block once this much is buffered (or the
 * input ended), so a block never has to be resumed.
 */
const MAX_BLOCK_BYTES = 2_400_000;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    table[i] = c >>> 0;
  }
  return table;
})();

class NeedInput extends Error {}

interface HuffmanGroup {
  minLength: number;
  maxLength: number;
  /** Largest code of each length (or -1). */
  limit: Int32Array;
  /** Code minus index into `symbols` for each length. */
  base: Int32Array;
  symbols: Uint16Array;
  /** Codes up to `tableBits` long, by their first `tableBits` bits: symbol << 5 | length, 0 if longer. */
  table: Uint16Array;
  tableBits: number;
}

/** Codes are at most 20 bits; most are under 10, decoded with one lookup. */
const TABLE_BITS = 10;

export class Bzip2Decoder {
  private input = new Uint8Array(0);
  private inputEnd = 0;
  private bytePos = 0;
  /** Input bytes consumed and dropped from `input`. */
  private dropped = 0;
  private bitBuffer = 0;
  private bitCount = 0;
  private inputEnded = false;

  private expectStream = true;
  private streams = 0;
  private blockMax = 0;
  private streamCrc = 0;
  private tt: Uint32Array = new Uint32Array(0);
  private readonly out = new Uint8Array(OUT_CHUNK);
  private outFill = 0;
  private produced = 0;

  private readonly selectors = new Uint8Array(MAX_SELECTORS);
  private readonly groups: HuffmanGroup[] = Array.from({ length: MAX_GROUPS }, () => ({
    minLength: 0,
    maxLength: 0,
    limit: new Int32Array(MAX_CODE_LENGTH + 2),
    base: new Int32Array(MAX_CODE_LENGTH + 2),
    symbols: new Uint16Array(MAX_ALPHA),
    table: new Uint16Array(1 << TABLE_BITS),
    tableBits: 0,
  }));

  /** `onData` receives views into a reused buffer; it may throw to stop decoding. */
  constructor(private readonly onData: (chunk: Uint8Array) => void) {}

  /** Decompressed bytes produced so far. */
  get bytesOut(): number {
    return this.produced + this.outFill;
  }

  /**
   * Compressed bytes consumed so far. While a block's output is handed out, that block has been
   * consumed whole: the count is a function of the data, not of how it was chunked.
   */
  get bytesIn(): number {
    return this.dropped + this.bytePos;
  }

  push(chunk: Uint8Array): void {
    this.append(chunk);
    this.decodeAvailable();
  }

  end(): void {
    this.inputEnded = true;
    this.decodeAvailable();
    if (this.streams === 0) throw new ArchiveError('the bzip2 data is empty');
    if (!this.expectStream)
      throw new ArchiveError('the bzip2 data is truncated (the file ends inside a block)');
    this.flush();
  }

  private append(chunk: Uint8Array): void {
    if (this.input.length - this.inputEnd < chunk.length) {
      // Drop what was decoded; grow only when the undecoded rest and the chunk do not fit.
      const pending = this.inputEnd - this.bytePos;
      if (this.input.length >= pending + chunk.length) {
        this.input.copyWithin(0, this.bytePos, this.inputEnd);
      } else {
        const next = new Uint8Array(Math.max(pending + chunk.length, 2 * MAX_BLOCK_BYTES));
        next.set(this.input.subarray(this.bytePos, this.inputEnd));
        this.input = next;
      }
      this.inputEnd = pending;
      this.dropped += this.bytePos;
      this.bytePos = 0;
    }
    this.input.set(chunk, this.inputEnd);
    this.inputEnd += chunk.length;
  }

  private decodeAvailable(): void {
    for (;;) {
      const buffered = this.inputEnd - this.bytePos;
      if (this.expectStream) {
        if (buffered === 0 && this.bitCount === 0) return;
        if (buffered < 4 && !this.inputEnded) return;
        this.readStreamHeader();
        continue;
      }
      if (buffered < MAX_BLOCK_BYTES && !this.inputEnded) return;
      if (buffered === 0 && this.bitCount === 0) return;
      this.decodeBlockOrEnd();
    }
  }

  private readStreamHeader(): void {
    // Streams start on a byte boundary; pbzip2 and `cat a.bz2 b.bz2` concatenate them.
    const b = this.input;
    const at = this.bytePos;
    const available = this.inputEnd - at;
    const magicOk = available >= 4 && b[at] === 0x42 && b[at + 1] === 0x5a && b[at + 2] === 0x68;
    const level = (b[at + 3] ?? 0) - 0x30;
    if (!magicOk || level < 1 || level > 9) {
      if (this.streams === 0) throw new ArchiveError('the file is not bzip2-compressed (no "BZh" header)');
      throw new ArchiveError('there is unexpected data after the end of the bzip2 stream');
    }
    this.bytePos += 4;
    this.streams++;
    this.expectStream = false;
    this.streamCrc = 0;
    this.blockMax = level * 100_000;
    if (this.tt.length < this.blockMax) this.tt = new Uint32Array(this.blockMax);
  }

  private decodeBlockOrEnd(): void {
    try {
      const hi = this.bits(24);
      const lo = this.bits(24);
      if (hi === BLOCK_MAGIC_HI && lo === BLOCK_MAGIC_LO) {
        this.decodeBlock();
      } else if (hi === END_MAGIC_HI && lo === END_MAGIC_LO) {
        const stored = ((this.bits(16) << 16) | this.bits(16)) >>> 0;
        if (stored !== this.streamCrc) throw corrupt('the stream checksum does not match');
        this.bitCount = 0; // align to the next byte
        this.bitBuffer = 0;
        this.expectStream = true;
      } else {
        throw corrupt('a block does not start with the block marker');
      }
    } catch (err) {
      if (err instanceof NeedInput) {
        if (this.inputEnded)
          throw new ArchiveError('the bzip2 data is truncated (the file ends inside a block)');
        // Only a corrupt block is larger than MAX_BLOCK_BYTES.
        throw corrupt(`a block is larger than ${MAX_BLOCK_BYTES} bytes`);
      }
      throw err;
    }
  }

  private bits(count: number): number {
    while (this.bitCount < count) {
      if (this.bytePos >= this.inputEnd) throw new NeedInput();
      this.bitBuffer = (this.bitBuffer << 8) | (this.input[this.bytePos++] as number);
      this.bitCount += 8;
    }
    this.bitCount -= count;
    return (this.bitBuffer >>> this.bitCount) & ((1 << count) - 1);
  }

  private decodeBlock(): void {
    const blockCrc = ((this.bits(16) << 16) | this.bits(16)) >>> 0;
    if (this.bits(1)) throw corrupt('the block uses the obsolete randomised mode');
    const origPtr = this.bits(24);

    // Which byte values occur: 16 ranges of 16.
    const seqToByte = new Uint8Array(256);
    let inUse = 0;
    const ranges = this.bits(16);
    for (let i = 0; i < 16; i++) {
      if (ranges & (0x8000 >>> i)) {
        const used = this.bits(16);
        for (let j = 0; j < 16; j++) if (used & (0x8000 >>> j)) seqToByte[inUse++] = i * 16 + j;
      }
    }
    if (inUse === 0) throw corrupt('a block uses no byte values');
    const alphaSize = inUse + 2;

    const groupCount = this.bits(3);
    if (groupCount < 2 || groupCount > MAX_GROUPS)
      throw corrupt('a block has an invalid number of code tables');
    const selectorCount = this.bits(15);
    if (selectorCount === 0) throw corrupt('a block has no code table selectors');
    const mtfGroups = [0, 1, 2, 3, 4, 5];
    for (let i = 0; i < selectorCount; i++) {
      let j = 0;
      while (this.bits(1)) {
        j++;
        if (j >= groupCount) throw corrupt('a code table selector is out of range');
      }
      const value = mtfGroups[j] as number;
      for (let k = j; k > 0; k--) mtfGroups[k] = mtfGroups[k - 1] as number;
      mtfGroups[0] = value;
      // bzip2 1.0.8 reads and ignores selectors beyond the maximum.
      if (i < MAX_SELECTORS) this.selectors[i] = value;
    }
    const usableSelectors = Math.min(selectorCount, MAX_SELECTORS);

    const lengths = new Uint8Array(MAX_ALPHA);
    for (let g = 0; g < groupCount; g++) {
      let length = this.bits(5);
      for (let s = 0; s < alphaSize; s++) {
        for (;;) {
          if (length < 1 || length > MAX_CODE_LENGTH) throw corrupt('a Huffman code length is out of range');
          if (!this.bits(1)) break;
          length += this.bits(1) ? -1 : 1;
        }
        lengths[s] = length;
      }
      buildGroup(this.groups[g] as HuffmanGroup, lengths, alphaSize);
    }

    // Huffman -> RLE2 runs and move-to-front -> the BWT column in tt (low 8 bits).
    const tt = this.tt;
    const blockMax = this.blockMax;
    const counts = new Int32Array(256);
    const mtf = new Uint8Array(256);
    for (let i = 0; i < 256; i++) mtf[i] = i;
    const endOfBlock = alphaSize - 1;
    let count = 0;
    let selector = 0;
    let groupLeft = 0;
    let group = this.groups[0] as HuffmanGroup;
    let runLength = 0;
    let runWeight = 0;
    // The hot loop keeps the bit reader in locals: up to 32 bits in `bits`, `held` of them unread.
    const input = this.input;
    const inputEnd = this.inputEnd;
    let at = this.bytePos;
    let bits = this.bitBuffer;
    let held = this.bitCount;
    for (;;) {
      if (groupLeft === 0) {
        if (selector >= usableSelectors) throw corrupt('a block runs out of code table selectors');
        group = this.groups[this.selectors[selector++] as number] as HuffmanGroup;
        groupLeft = GROUP_SIZE;
      }
      groupLeft--;
      while (held <= 24 && at < inputEnd) {
        bits = (bits << 8) | (input[at++] as number);
        held += 8;
      }
      const tableBits = group.tableBits;
      const peek =
        held >= tableBits
          ? (bits >>> (held - tableBits)) & ((1 << tableBits) - 1)
          : (bits << (tableBits - held)) & ((1 << tableBits) - 1);
      const hit = group.table[peek] as number;
      let symbol: number;
      if (hit !== 0) {
        const length = hit & 31;
        if (length > held) throw new NeedInput();
        held -= length;
        symbol = hit >>> 5;
      } else {
        let length = tableBits + 1;
        for (;;) {
          if (length > group.maxLength) throw corrupt('a Huffman code is invalid');
          if (length > held) throw new NeedInput();
          const code = (bits >>> (held - length)) & ((1 << length) - 1);
          if (code <= (group.limit[length] as number)) {
            const index = code - (group.base[length] as number);
            if (index < 0 || index >= alphaSize) throw corrupt('a Huffman code is invalid');
            symbol = group.symbols[index] as number;
            held -= length;
            break;
          }
          length++;
        }
      }

      if (symbol <= 1) {
        // RUNA / RUNB: a bijective base-2 run length of the byte at the front of the MTF list.
        if (runWeight === 0) runWeight = 1;
        runLength += (symbol + 1) * runWeight;
        runWeight *= 2;
        if (runLength > blockMax) throw corrupt('a run is longer than the block');
        continue;
      }
      if (runWeight !== 0) {
        if (count + runLength > blockMax) throw corrupt('a block is longer than its declared size');
        const byte = seqToByte[mtf[0] as number] as number;
        counts[byte] = (counts[byte] as number) + runLength;
        tt.fill(byte, count, count + runLength);
        count += runLength;
        runLength = 0;
        runWeight = 0;
      }
      if (symbol === endOfBlock) break;
      if (count >= blockMax) throw corrupt('a block is longer than its declared size');
      const position = symbol - 1;
      const value = mtf[position] as number;
      if (position < 16) for (let p = position; p > 0; p--) mtf[p] = mtf[p - 1] as number;
      else mtf.copyWithin(1, 0, position);
      mtf[0] = value;
      const byte = seqToByte[value] as number;
      counts[byte] = (counts[byte] as number) + 1;
      tt[count++] = byte;
    }
    this.bytePos = at;
    this.bitBuffer = bits;
    this.bitCount = held;
    if (origPtr >= count) throw corrupt('the block start pointer is out of range');

    // Inverse BWT: link every position to the next one in the upper 24 bits of tt.
    let sum = 0;
    for (let b = 0; b < 256; b++) {
      const c = counts[b] as number;
      counts[b] = sum;
      sum += c;
    }
    for (let i = 0; i < count; i++) {
      const b = (tt[i] as number) & 0xff;
      const slot = counts[b] as number;
      tt[slot] = (tt[slot] as number) | (i << 8);
      counts[b] = slot + 1;
    }

    // Walk the chain, undo RLE1 (four equal bytes then a repeat count), checksum, emit.
    let crc = 0xffffffff;
    let pos = (tt[origPtr] as number) >>> 8;
    let last = -1;
    let run = 0;
    const out = this.out;
    let fill = this.outFill;
    for (let n = 0; n < count; n++) {
      const entry = tt[pos] as number;
      const byte = entry & 0xff;
      pos = entry >>> 8;
      if (run === 4) {
        for (let r = 0; r < byte; r++) {
          crc = (crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ last) & 0xff] as number);
          out[fill++] = last;
          if (fill === OUT_CHUNK) {
            this.outFill = fill;
            this.flush();
            fill = 0;
          }
        }
        run = 0;
        continue;
      }
      if (byte === last) run++;
      else {
        last = byte;
        run = 1;
      }
      crc = (crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ byte) & 0xff] as number);
      out[fill++] = byte;
      if (fill === OUT_CHUNK) {
        this.outFill = fill;
        this.flush();
        fill = 0;
      }
    }
    this.outFill = fill;
    crc = ~crc >>> 0;
    if (crc !== blockCrc) throw corrupt('a block checksum does not match');
    this.streamCrc = (((this.streamCrc << 1) | (this.streamCrc >>> 31)) ^ crc) >>> 0;
    this.flush();
  }

  private flush(): void {
    if (this.outFill === 0) return;
    const chunk = this.out.subarray(0, this.outFill);
    this.produced += this.outFill;
    this.outFill = 0;
    this.onData(chunk);
  }
}

/** Canonical Huffman decoding tables from code lengths. */
function buildGroup(group: HuffmanGroup, lengths: Uint8Array, alphaSize: number): void {
  let minLength = MAX_CODE_LENGTH;
  let maxLength = 0;
  for (let s = 0; s < alphaSize; s++) {
    const length = lengths[s] as number;
    if (length > maxLength) maxLength = length;
    if (length < minLength) minLength = length;
  }
  let index = 0;
  for (let length = minLength; length <= maxLength; length++) {
    for (let s = 0; s < alphaSize; s++) if (lengths[s] === length) group.symbols[index++] = s;
  }
  let code = 0;
  index = 0;
  group.limit.fill(-1);
  for (let length = minLength; length <= maxLength; length++) {
    let n = 0;
    for (let s = 0; s < alphaSize; s++) if (lengths[s] === length) n++;
    group.base[length] = code - index;
    code += n;
    index += n;
    group.limit[length] = code - 1;
    code <<= 1;
  }
  group.minLength = minLength;
  group.maxLength = maxLength;
  const tableBits = Math.min(maxLength, TABLE_BITS);
  group.tableBits = tableBits;
  group.table.fill(0);
  code = 0;
  for (let length = minLength; length <= tableBits; length++) {
    for (let s = 0; s < alphaSize; s++) {
      if (lengths[s] !== length) continue;
      const first = code << (tableBits - length);
      const last = (code + 1) << (tableBits - length);
      // An over-subscribed code would run past the table: such input fails on the slow path.
      if (last > 1 << tableBits) return;
      group.table.fill((s << 5) | length, first, last);
      code++;
    }
    code <<= 1;
  }
}

function corrupt(detail: string): ArchiveError {
  return new ArchiveError(`the bzip2 data is corrupt (${detail})`);
}
