/**
 * A streaming, strict reader of the zip container of a .conda package.
 *
 * It walks the local file headers in order as the bytes arrive (no random access), hands each
 * member's data to a sink chosen by the caller, and at the end parses the central directory and
 * the end-of-central-directory records (zip64 included) from the tail and cross-checks them with
 * what the local headers said. Readers that trust the central directory (python's zipfile, which
 * conda uses) and readers that trust the local headers (this one) must see the same archive, or
 * the package is refused.
 *
 * Format reference: PKWARE APPNOTE.TXT 6.3.x, sections 4.3.7 (local file header), 4.3.12 (central
 * directory header), 4.3.14-4.3.16 (zip64 end of central directory record and locator, end of
 * central directory record), 4.5.3 (zip64 extended information extra field).
 */
import { crc32 } from 'node:zlib';
import { ArchiveError, quote } from './archive-error.js';
import { formatBytes } from '../util/format-bytes.js';

const LOCAL_HEADER = 0x04034b50;
const CENTRAL_HEADER = 0x02014b50;
const ZIP64_END = 0x06064b50;
const ZIP64_LOCATOR = 0x07064b50;
const END = 0x06054b50;
const DATA_DESCRIPTOR = 0x08074b50;
const ZIP64_EXTRA = 0x0001;
const LOCAL_FIXED = 30;
/** The central directory of a .conda has three entries; anything this large is not one. */
const MAX_TAIL = 1024 * 1024;

/** One member as its local header describes it. */
export interface ZipMember {
  readonly name: string;
  readonly offset: number;
  readonly method: number;
  readonly flags: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly size: number;
}

/** Receives a member's bytes; chunks are views only valid during the call. */
export interface ZipMemberSink {
  data(chunk: Uint8Array): void;
  /** Called after the CRC-32 of the data was verified. */
  end(): void;
}

export interface ZipVisitor {
  /** Called once per local header (in file order); return the sink for its data. */
  member(member: ZipMember): ZipMemberSink | undefined;
}

type State = 'header' | 'data' | 'tail';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export class ZipStreamReader {
  private state: State = 'header';
  private header = new Uint8Array(LOCAL_FIXED);
  private headerFill = 0;
  private headerNeed = 4;
  private offset = 0;
  private current:
    { member: ZipMember; sink: ZipMemberSink | undefined; left: number; crc: number } | undefined;
  private readonly members: ZipMember[] = [];
  private readonly names = new Set<string>();
  private tail = new Uint8Array(0);
  private tailFill = 0;
  private tailStart = 0;

  constructor(private readonly visitor: ZipVisitor) {}

  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.state === 'data') {
        const current = this.current as NonNullable<ZipStreamReader['current']>;
        const take = Math.min(current.left, chunk.length - at);
        const piece = chunk.subarray(at, at + take);
        current.crc = crc32(piece, current.crc);
        current.sink?.data(piece);
        current.left -= take;
        at += take;
        this.offset += take;
        if (current.left === 0) this.finishMember();
        continue;
      }
      if (this.state === 'tail') {
        this.appendTail(chunk.subarray(at));
        this.offset += chunk.length - at;
        return;
      }
      // header: first the signature, then the fixed part, then name and extra field.
      const take = Math.min(this.headerNeed - this.headerFill, chunk.length - at);
      this.ensureHeader(this.headerNeed);
      this.header.set(chunk.subarray(at, at + take), this.headerFill);
      this.headerFill += take;
      at += take;
      this.offset += take;
      if (this.headerFill === this.headerNeed) this.onHeaderBytes();
    }
  }

  /** Parses the central directory and cross-checks it; returns the members in file order. */
  end(): ZipMember[] {
    if (this.state === 'data') {
      const name = this.current?.member.name ?? '';
      throw new ArchiveError(`the file is truncated (it ends inside member ${quote(name)})`);
    }
    if (this.state === 'header') {
      if (this.offset === 0) throw new ArchiveError('the file is empty');
      if (this.offset < 4 && this.members.length === 0) {
        throw new ArchiveError('the file is not a zip archive (a .conda package is a zip file)');
      }
      throw new ArchiveError('the file is truncated (the zip central directory is missing)');
    }
    this.checkCentralDirectory(this.tail.subarray(0, this.tailFill));
    return this.members;
  }

  private ensureHeader(size: number): void {
    if (this.header.length < size) {
      const next = new Uint8Array(size);
      next.set(this.header.subarray(0, this.headerFill));
      this.header = next;
    }
  }

  private onHeaderBytes(): void {
    const h = this.header;
    const signature = u32(h, 0);
    if (this.headerNeed === 4) {
      if (signature === LOCAL_HEADER) {
        this.headerNeed = LOCAL_FIXED;
        return;
      }
      if (signature === CENTRAL_HEADER || signature === END || signature === ZIP64_END) {
        this.state = 'tail';
        this.tailStart = this.offset - 4;
        this.appendTail(h.subarray(0, 4));
        this.headerFill = 0;
        return;
      }
      if (this.tailStart === 0 && this.members.length === 0 && this.offset === 4) {
        throw new ArchiveError('the file is not a zip archive (a .conda package is a zip file)');
      }
      if (signature === DATA_DESCRIPTOR) {
        throw new ArchiveError('the zip uses data descriptors (member sizes not in the local headers)');
      }
      throw new ArchiveError(`the zip is corrupt: unexpected bytes at offset ${this.offset - 4}`);
    }
    if (this.headerNeed === LOCAL_FIXED) {
      const nameLength = u16(h, 26);
      const extraLength = u16(h, 28);
      if (nameLength + extraLength > 0) {
        this.headerNeed = LOCAL_FIXED + nameLength + extraLength;
        return;
      }
    }
    this.onLocalHeader();
  }

  private onLocalHeader(): void {
    const h = this.header;
    const offset = this.offset - this.headerNeed;
    const flags = u16(h, 6);
    const method = u16(h, 8);
    const crc = u32(h, 14);
    let compressedSize = u32(h, 18);
    let size = u32(h, 22);
    const nameLength = u16(h, 26);
    const extraLength = u16(h, 28);
    const nameBytes = h.slice(LOCAL_FIXED, LOCAL_FIXED + nameLength);
    const extra = h.subarray(LOCAL_FIXED + nameLength, LOCAL_FIXED + nameLength + extraLength);
    const name = decodeName(nameBytes);

    if (compressedSize === 0xffffffff || size === 0xffffffff) {
      // In a local header the zip64 field holds both sizes, uncompressed first.
      const zip64 = findExtra(extra, ZIP64_EXTRA);
      if (!zip64 || zip64.length < 16) {
        throw new ArchiveError(
          `zip member ${quote(name)} has 32-bit sizes of 0xFFFFFFFF without zip64 sizes`,
        );
      }
      size = u64(zip64, 0, name);
      compressedSize = u64(zip64, 8, name);
    }
    if (flags & 0x0001) throw new ArchiveError(`zip member ${quote(name)} is encrypted`);
    if (flags & 0x0008) {
      throw new ArchiveError(
        `zip member ${quote(name)} has its sizes in a data descriptor after the data, so a stream cannot tell where it ends (conda packages store sizes in the local header)`,
      );
    }
    if (method !== 0) {
      throw new ArchiveError(
        `zip member ${quote(name)} is compressed with zip method ${method}; conda packages store their members uncompressed (method 0)`,
      );
    }
    if (compressedSize !== size) {
      throw new ArchiveError(
        `zip member ${quote(name)} is stored but its two sizes differ (${compressedSize} and ${size})`,
      );
    }
    if (this.names.has(name)) throw new ArchiveError(`the zip holds member ${quote(name)} twice`);
    this.names.add(name);

    const member: ZipMember = { name, offset, method, flags, crc32: crc, compressedSize, size };
    this.members.push(member);
    const sink = this.visitor.member(member);
    this.current = { member, sink, left: compressedSize, crc: 0 };
    this.headerFill = 0;
    this.headerNeed = 4;
    this.header = new Uint8Array(LOCAL_FIXED);
    this.state = 'data';
    if (compressedSize === 0) this.finishMember();
  }

  private finishMember(): void {
    const current = this.current as NonNullable<ZipStreamReader['current']>;
    if (current.crc >>> 0 !== current.member.crc32) {
      throw new ArchiveError(
        `zip member ${quote(current.member.name)} is corrupt (its CRC-32 does not match)`,
      );
    }
    current.sink?.end();
    this.current = undefined;
    this.state = 'header';
  }

  private appendTail(bytes: Uint8Array): void {
    if (this.tailFill + bytes.length > MAX_TAIL) {
      throw new ArchiveError(
        `the zip central directory is larger than ${formatBytes(MAX_TAIL)}, which no .conda has`,
      );
    }
    if (this.tail.length < this.tailFill + bytes.length) {
      const next = new Uint8Array(Math.min(MAX_TAIL, Math.max(4096, 2 * (this.tailFill + bytes.length))));
      next.set(this.tail.subarray(0, this.tailFill));
      this.tail = next;
    }
    this.tail.set(bytes, this.tailFill);
    this.tailFill += bytes.length;
  }

  private checkCentralDirectory(tail: Uint8Array): void {
    const lie = (what: string): never => {
      throw new ArchiveError(`the zip central directory disagrees with the local headers (${what})`);
    };
    const need = (at: number, bytes: number): void => {
      if (at + bytes > tail.length)
        throw new ArchiveError('the file is truncated (inside the zip central directory)');
    };
    let at = 0;
    const central: ZipMember[] = [];
    while (tail.length - at >= 4 && u32(tail, at) === CENTRAL_HEADER) {
      need(at, 46);
      const flags = u16(tail, at + 8);
      const method = u16(tail, at + 10);
      const crc = u32(tail, at + 16);
      let compressedSize = u32(tail, at + 20);
      let size = u32(tail, at + 24);
      const nameLength = u16(tail, at + 28);
      const extraLength = u16(tail, at + 30);
      const commentLength = u16(tail, at + 32);
      let disk = u16(tail, at + 34);
      let offset = u32(tail, at + 42);
      need(at, 46 + nameLength + extraLength + commentLength);
      const name = decodeName(tail.slice(at + 46, at + 46 + nameLength));
      const extra = tail.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength);
      if (size === 0xffffffff || compressedSize === 0xffffffff || offset === 0xffffffff || disk === 0xffff) {
        // Only the fields that overflowed are present, in this order.
        const zip64 = findExtra(extra, ZIP64_EXTRA) ?? lie(`member ${quote(name)} lacks its zip64 field`);
        let z = 0;
        const next = (): number => {
          if (z + 8 > zip64.length) lie(`member ${quote(name)} has a short zip64 field`);
          const value = u64(zip64, z, name);
          z += 8;
          return value;
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (offset === 0xffffffff) offset = next();
        if (disk === 0xffff) {
          if (z + 4 > zip64.length) lie(`member ${quote(name)} has a short zip64 field`);
          disk = u32(zip64, z);
        }
      }
      if (disk !== 0) throw new ArchiveError('the zip spans several disks');
      central.push({ name, offset, method, flags, crc32: crc, compressedSize, size });
      at += 46 + nameLength + extraLength + commentLength;
    }
    const centralSize = at;

    let zip64: { entries: number; size: number; offset: number } | undefined;
    let zip64At = -1;
    if (tail.length - at >= 4 && u32(tail, at) === ZIP64_END) {
      need(at, 56);
      const recordSize = u64(tail, at + 4, 'zip64 end record');
      need(at, 12 + recordSize);
      if (u32(tail, at + 16) !== 0 || u32(tail, at + 20) !== 0)
        throw new ArchiveError('the zip spans several disks');
      const onDisk = u64(tail, at + 24, 'zip64 end record');
      const entries = u64(tail, at + 32, 'zip64 end record');
      if (onDisk !== entries) throw new ArchiveError('the zip spans several disks');
      zip64 = {
        entries,
        size: u64(tail, at + 40, 'zip64 end record'),
        offset: u64(tail, at + 48, 'zip64 end record'),
      };
      zip64At = at;
      at += 12 + recordSize;
    }
    if (tail.length - at >= 4 && u32(tail, at) === ZIP64_LOCATOR) {
      need(at, 20);
      if (zip64At < 0) lie('a zip64 locator without a zip64 end record');
      if (u64(tail, at + 8, 'zip64 locator') !== this.tailStart + zip64At)
        lie('the zip64 locator points elsewhere');
      at += 20;
    } else if (zip64) {
      lie('a zip64 end record without its locator');
    }
    if (tail.length - at < 4 || u32(tail, at) !== END) {
      if (tail.length - at < 22 && (tail.length - at < 4 || u32(tail, at) === END)) {
        throw new ArchiveError('the file is truncated (inside the zip end record)');
      }
      throw new ArchiveError(`the zip is corrupt: unexpected bytes at offset ${this.tailStart + at}`);
    }
    need(at, 22);
    const diskNumber = u16(tail, at + 4);
    const centralDisk = u16(tail, at + 6);
    let onDisk = u16(tail, at + 8);
    let entries = u16(tail, at + 10);
    let size = u32(tail, at + 12);
    let offset = u32(tail, at + 16);
    const commentLength = u16(tail, at + 20);
    if (at + 22 + commentLength !== tail.length) {
      if (at + 22 + commentLength > tail.length)
        throw new ArchiveError('the file is truncated (inside the zip comment)');
      throw new ArchiveError('there is unexpected data after the end of the zip');
    }
    if (diskNumber !== 0 || centralDisk !== 0) throw new ArchiveError('the zip spans several disks');
    if (zip64) {
      if (onDisk === 0xffff) onDisk = zip64.entries;
      if (entries === 0xffff) entries = zip64.entries;
      if (size === 0xffffffff) size = zip64.size;
      if (offset === 0xffffffff) offset = zip64.offset;
      if (entries !== zip64.entries || size !== zip64.size || offset !== zip64.offset) {
        lie('the zip64 end record and the end record differ');
      }
    }
    if (onDisk !== entries) throw new ArchiveError('the zip spans several disks');
    if (entries !== central.length)
      lie(`the end record counts ${entries} members, the directory lists ${central.length}`);
    if (offset !== this.tailStart)
      lie(`the directory is said to start at ${offset}, it starts at ${this.tailStart}`);
    if (size !== centralSize) lie(`the directory is said to be ${size} bytes long, it is ${centralSize}`);

    if (central.length !== this.members.length) {
      lie(`the directory lists ${central.length} members, the file holds ${this.members.length}`);
    }
    const byName = new Map<string, ZipMember>();
    for (const entry of central) {
      if (byName.has(entry.name)) throw new ArchiveError(`the zip holds member ${quote(entry.name)} twice`);
      byName.set(entry.name, entry);
    }
    for (const local of this.members) {
      const entry = byName.get(local.name) ?? lie(`member ${quote(local.name)} is not in the directory`);
      const differs = (['offset', 'method', 'crc32', 'compressedSize', 'size', 'flags'] as const)
        .filter((key) => (key === 'flags' ? (entry.flags ^ local.flags) & 0x0009 : entry[key] !== local[key]))
        .map((key) => `${key} ${entry[key]} in the directory, ${local[key]} in the local header`);
      if (differs.length > 0) lie(`member ${quote(local.name)}: ${differs.join('; ')}`);
    }
  }
}

function decodeName(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    const shown = Array.from(bytes, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '?')).join('');
    throw new ArchiveError(`zip member name ${quote(shown)} is not valid UTF-8`);
  }
}

function findExtra(extra: Uint8Array, id: number): Uint8Array | undefined {
  let at = 0;
  while (at + 4 <= extra.length) {
    const fieldId = u16(extra, at);
    const length = u16(extra, at + 2);
    if (at + 4 + length > extra.length) throw new ArchiveError('a zip extra field is malformed');
    if (fieldId === id) return extra.subarray(at + 4, at + 4 + length);
    at += 4 + length;
  }
  return undefined;
}

function u16(bytes: Uint8Array, at: number): number {
  return (bytes[at] as number) | ((bytes[at + 1] as number) << 8);
}

function u32(bytes: Uint8Array, at: number): number {
  return (u16(bytes, at) | (u16(bytes, at + 2) << 16)) >>> 0;
}

function u64(bytes: Uint8Array, at: number, what: string): number {
  const value = u32(bytes, at) + u32(bytes, at + 4) * 2 ** 32;
  if (!Number.isSafeInteger(value))
    throw new ArchiveError(`a zip64 size or offset of ${quote(what)} is out of range`);
  return value;
}
